"""`digestd similar` and `digestd subscribers seed`: seed papers and what they rank."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DigestdError
from .common import _config, _days_ago, _print_json, _store
from .subscribers import _papers_from_file


def cmd_similar(args: argparse.Namespace) -> int:
    from ..relevance.seedfile import Seed, SeedFile, read_seeds
    from ..relevance.seeding import problem_lines
    from ..relevance.similar import as_json, as_text, seeds_summary, similar
    from ..store.feedback import LESS, MORE

    config = _config(args) if args.subscriber or not args.papers else None
    liked, disliked = [], []
    if args.subscriber:
        # the profile the digest build makes: stored seeds and "more like this" papers as
        # positives, "less like this" papers as negatives
        with _store(config, read_only=True) as store:
            sub = store.get_subscriber(args.subscriber)
            seeds = SeedFile(tuple(Seed(id=s.paper_id, title=s.title, abstract=s.abstract,
                                        ids=(s.paper_id,), where=sub.email)
                                   for s in store.seeds(sub.id)))
            liked = [p for _pk, p in store.feedback_papers(sub.id, MORE)]
            disliked = [p for _pk, p in store.feedback_papers(sub.id, LESS)]
        if not seeds.seeds and not liked:
            raise DigestdError(f"{sub.email} has no seed papers and no \"more like this\": "
                               f"digestd subscribers seed {sub.email} --file FILE")
        named = f"the seeds and feedback of {sub.email}"
    else:
        seeds, named = read_seeds(args.seeds), args.seeds
    if args.papers:
        papers, where = _papers_from_file(args.papers), args.papers
    else:
        with _store(config, read_only=True) as store:
            papers = store.papers_since(_days_ago(args.days))
        where = "papers stored in the last " + ("day" if args.days == 1 else f"{args.days} days")
    result = similar(seeds, papers, liked=liked, disliked=disliked, top=args.top,
                     method=args.method)
    for problem in problem_lines(result.problems):
        print(problem, file=sys.stderr)
    summary = seeds_summary(result, len(seeds.seeds) + len(seeds.problems))
    if args.json:
        _print_json(as_json(result))
        print(summary, file=sys.stderr)
        return 0
    for line in as_text(result):
        print(line)
    print(f"{len(result.ranked)} of {len(papers)} {where}, by likeness to {named} "
          f"({summary})")
    return 0


def cmd_subscribers_seed(args: argparse.Namespace) -> int:
    from ..relevance.seedfile import id_of, read_seeds
    from ..relevance.seeding import all_ids, choose, problem_lines, typed_seeds

    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if args.list:
            seeds = store.seeds(sub.id)
            if args.json:
                _print_json([{"id": s.paper_id, "title": s.title, "origin": s.origin,
                              "added_at": s.added_at} for s in seeds])
                return 0
            for s in seeds:
                # the id on a line of its own: a seed read by title has a long one, and
                # --remove takes it as written
                print(s.title + (f"  ({s.origin})" if s.origin else "") + f"\n    {s.paper_id}")
            print(f"{len(seeds)} seeds for {sub.email}")
            return 0
        if args.remove:
            wanted = [i if i.startswith("title:") else (id_of(i) or i)
                      for i in [*args.remove, *args.ids]]
            gone = store.remove_seeds(sub.id, wanted)
            missing = [i for i in wanted if i not in gone]
            print(f"removed {len(gone)} of {len(wanted)} seeds of {sub.email}"
                  + (f"; not seeds of theirs: {', '.join(missing)}" if missing else ""))
            return 0 if not missing else 1
        if not args.file and not args.ids:
            raise DigestdError("give seed papers: --file FILE and/or arXiv ids, URLs or DOIs "
                               "(or --list, --remove ID ...)")
        # the preferences page's "Seed papers" card takes the same path (web/seeds.py)
        parts = [(read_seeds(args.file), Path(args.file).name)] if args.file else []
        if args.ids:
            parts.append((typed_seeds("\n".join(args.ids), name="argument"), ""))
        known = store.papers_by_alias(all_ids(parts))
        choice = choose(parts, known, have={s.paper_id for s in store.seeds(sub.id)})
        new = store.add_seeds(sub.id, list(choice.rows))
    for problem in problem_lines(choice.problems):
        print(problem, file=sys.stderr)
    print(choice.summary(new, who=sub.email, where_problems="above"))
    return 0 if choice.rows else 1  # nothing kept of a file: say so in the exit status too
