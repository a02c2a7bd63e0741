"""`digestd similar`: papers ranked by likeness to a reader's seed papers, without a store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DigestdError
from .rank import Ranked, rank
from .seedfile import Seed, SeedFile, resolve


@dataclass(frozen=True)
class Similar:
    """The answer of similar(): `ranked` best first; `seeds` used; `unknown` bare ids that
    neither the seed file nor the papers could give a text for; `problems` of the file."""

    ranked: list[Ranked]
    seeds: list[Seed]
    unknown: list[Seed]
    problems: tuple[str, ...]


def similar(seeds: SeedFile, papers: Sequence, *, top: int | None = 20,
            method: str = "tfidf") -> Similar:
    """Rank `papers` (models.Paper) by likeness to the seeds. A seed given only by id takes
    its text from the paper of that id among `papers` (which then is not ranked); papers
    that are seeds are left out. Raises DigestdError when no seed has a text."""
    known = {}
    for p in papers:
        for i in p.ids:
            known.setdefault(i, p)
    usable, unknown = resolve(seeds.seeds, known)
    if not usable:
        raise DigestdError("no usable seed paper: "
                           + ("; ".join(seeds.problems) or "the file names none")
                           + (f"; {len(unknown)} unknown ids: "
                              + ", ".join(s.id for s in unknown) if unknown else ""))
    seed_ids = {i for s in usable for i in s.ids}
    candidates = [p for p in papers if not seed_ids.intersection(p.ids)]
    ranked = rank(usable, candidates, method=method, top=top)
    return Similar(ranked, usable, unknown, seeds.problems)
