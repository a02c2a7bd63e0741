"""`digestd similar`: papers ranked by likeness to seed papers (digestd.relevance)."""

from __future__ import annotations

import argparse
import sys

from ..errors import DigestdError
from .common import _config, _days_ago, _print_json, _store
from .subscribers import _papers_from_file


def cmd_similar(args: argparse.Namespace) -> int:
    from ..relevance.seedfile import read_seeds
    from ..relevance.similar import as_json, as_text, seeds_summary, similar

    if args.subscriber:
        raise DigestdError("similar --subscriber: stored seeds are not there yet "
                           "(digestd subscribers seed); give the seeds with --seeds FILE")
    seeds = read_seeds(args.seeds)
    if args.papers:
        papers, where = _papers_from_file(args.papers), args.papers
    else:
        config = _config(args)
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
    print(f"{len(result.ranked)} of {len(papers)} {where}, by likeness to {args.seeds} "
          f"({summary})")
    return 0
