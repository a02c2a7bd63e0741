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
    from ..relevance.similar import as_json, as_text, seeds_summary, similar

    config = _config(args) if args.subscriber or not args.papers else None
    if args.subscriber:
        # the stored seeds; "more/less like this" join them once their table is there
        with _store(config) as store:
            sub = store.get_subscriber(args.subscriber)
            seeds = SeedFile(tuple(Seed(id=s.paper_id, title=s.title, abstract=s.abstract,
                                        ids=(s.paper_id,), where=sub.email)
                                   for s in store.seeds(sub.id)))
        if not seeds.seeds:
            raise DigestdError(f"{sub.email} has no seed papers: digestd subscribers seed "
                               f"{sub.email} --file FILE")
        named = f"the seeds of {sub.email}"
    else:
        seeds, named = read_seeds(args.seeds), args.seeds
    if args.papers:
        papers, where = _papers_from_file(args.papers), args.papers
    else:
        with _store(config) as store:
            papers = store.papers_since(_days_ago(args.days))
        where = f"papers stored in the last {args.days} days"
    result = similar(seeds, papers, top=args.top, method=args.method)
    for problem in result.problems:
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


def _seed_key(seed) -> str:
    """The id a seed is stored under: its canonical id, else the title key."""
    from ..identity import title_key
    from ..text import words

    return seed.id or title_key(seed.title) or "title:" + " ".join(words(seed.title))


def cmd_subscribers_seed(args: argparse.Namespace) -> int:
    from ..relevance.seedfile import SeedFile, id_of, parse_seeds, read_seeds
    from ..store import StoredSeed

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
                print(f"{s.paper_id:<32} {s.title}" + (f"  ({s.origin})" if s.origin else ""))
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
        parts = [read_seeds(args.file)] if args.file else []
        if args.ids:
            parts.append(parse_seeds("\n".join(args.ids), "ids", name="argument"))
        given = SeedFile(tuple(s for p in parts for s in p.seeds),
                         tuple(x for p in parts for x in p.problems))
        known = store.papers_by_alias(i for s in given.seeds for i in s.ids)
        origin = Path(args.file).name if args.file else ""
        rows: dict[str, StoredSeed] = {}
        unknown, twice = [], 0
        # seeds with a text first, so an id also given bare is not "unknown"
        for s in sorted(given.seeds, key=lambda s: not s.title):
            paper = next((known[i] for i in s.ids if i in known), None)
            key = paper.id if paper is not None else _seed_key(s)
            if key in rows or any(i in rows for i in s.ids):
                twice += 1
                continue
            if not s.title and paper is None:
                unknown.append(s.id)
                continue
            # Google Scholar's BibTeX has no abstracts: the stored paper's is better than none
            abstract = s.abstract or (paper.abstract if paper is not None else "")
            from_file = bool(args.file) and s.where.startswith(str(args.file))
            rows[key] = StoredSeed(key, s.title or paper.title, abstract,
                                   origin if from_file else "")
        new = store.add_seeds(sub.id, list(rows.values()))
    for problem in given.problems:
        print(problem, file=sys.stderr)
    total = len(given.seeds) + len(given.problems)
    text = f"kept {len(rows)} of {total} seeds for {sub.email} ({new} new)"
    if unknown:
        text += f"; {len(unknown)} unknown ids: {', '.join(unknown)}"
    if twice:
        text += f"; {twice} given twice"
    if given.problems:
        text += f"; {len(given.problems)} not read (above)"
    print(text)
    return 0 if rows or not total else 1
