"""Seeds given to a subscriber, by `digestd subscribers seed` and the preferences page: which
are kept, which are not and why, in the same words for both."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass

from ..identity import title_key
from ..store.records import StoredSeed
from ..text import words
from .seedfile import Seed, SeedFile, id_of, parse_seeds, sniff, unknown_ids

MAX_SEEDS = 200  # a subscriber's seeds: the daily cost grows with distinct seeds x papers

PROBLEMS_SHOWN = 20  # the lines of entries not read that are shown (CLI, web page)


def problem_lines(problems: Sequence[str]) -> list[str]:
    """The first PROBLEMS_SHOWN lines of entries not read, then "... and N more not read"
    for the rest (a file in no seed format has a problem on every line)."""
    more = len(problems) - PROBLEMS_SHOWN
    return [*problems[:PROBLEMS_SHOWN], *([f"... and {more} more not read"] if more > 0 else [])]


def typed_seeds(text: str, name: str = "pasted") -> SeedFile:
    """Seeds typed or pasted into a box, or given as arguments: arXiv ids or URLs and DOIs,
    one a line or several separated by spaces; pasted BibTeX, RIS or JSON is read as such."""
    fmt = sniff("", text)
    if fmt != "ids":
        return parse_seeds(text, fmt, name=name)
    seeds, problems = [], []
    for n, item in enumerate(text.split(), 1):
        found = id_of(item)
        if found:
            seeds.append(Seed(id=found, ids=(found,), where=f"{name} {n}"))
        else:
            problems.append(f"not an arXiv id, DOI or URL: {item[:80]}")
    return SeedFile(tuple(seeds), tuple(problems))


def seed_key(seed: Seed) -> str:
    """The id a seed is stored under: its canonical id, else the title key."""
    return seed.id or title_key(seed.title) or "title:" + " ".join(words(seed.title))


def all_ids(parts: Sequence[tuple[SeedFile, str]]) -> Iterator[str]:
    """Every id the parts name: what to look up in the store (store.papers_by_alias)."""
    return (i for given, _origin in parts for s in given.seeds for i in s.ids)


@dataclass(frozen=True)
class SeedChoice:
    """What choose() makes of the seeds given: `rows` to store; `total` the seeds named plus
    the entries not read; `unknown` bare ids neither the store nor a file gave a text for;
    `twice` seeds given more than once; `over` new seeds past `limit`; `problems` one line
    per entry not read."""

    rows: tuple[StoredSeed, ...]
    total: int
    unknown: tuple[str, ...] = ()
    twice: int = 0
    over: int = 0
    limit: int = MAX_SEEDS
    problems: tuple[str, ...] = ()

    def summary(self, new: int, *, who: str = "", where_problems: str = "") -> str:
        """'kept 12 of 14 seeds for WHO (12 new); 2 unknown ids: arxiv:..., doi:...; ...'
        (`new`: how many rows the store did not have; `where_problems`: where the lines of
        the entries not read are shown, e.g. "above")."""
        text = f"kept {len(self.rows)} of {self.total} seeds"
        text += (f" for {who}" if who else "") + f" ({new} new)"
        if self.unknown:
            text += f"; {unknown_ids(self.unknown)}"
        if self.over:
            text += (f"; {self.over} more would pass the limit of {self.limit} seeds: "
                     "remove some first")
        if self.twice:
            text += f"; {self.twice} given twice"
        if self.problems:
            text += f"; {len(self.problems)} not read"
            text += f" ({where_problems})" if where_problems else ""
            if not self.rows and len(self.problems) == self.total:
                text += (": nothing in it could be read; give BibTeX, RIS, a JSON array of "
                         "papers, or one arXiv id, DOI or URL per line")
        if not self.total:  # an empty export, or the wrong file
            text += ": the file holds no paper (an empty export, or the wrong file?)"
        return text

    def problems_shown(self) -> tuple[tuple[str, ...], int]:
        """(the first PROBLEMS_SHOWN problem lines, how many more there are)."""
        return tuple(self.problems[:PROBLEMS_SHOWN]), max(0, len(self.problems) - PROBLEMS_SHOWN)


def choose(parts: Sequence[tuple[SeedFile, str]], known: Mapping[str, object], *,
           have: Collection[str] = (), limit: int = MAX_SEEDS) -> SeedChoice:
    """The seeds to store from `parts` ((seeds, origin): the file's name, "" for ids typed).

    `known`: id or alias -> stored paper (store.papers_by_alias of all_ids(parts)): a seed
    that names one is stored under its canonical id, with the file's text or else the
    paper's. A bare id the store does not know is unknown; `have`: the ids of the seeds
    stored already, which count against `limit` (new ones past it are left out)."""
    given = [(s, origin) for seeds, origin in parts for s in seeds.seeds]
    problems = tuple(x for seeds, _ in parts for x in seeds.problems)
    rows: dict[str, StoredSeed] = {}
    unknown: list[str] = []
    twice = over = 0
    room = limit - len(have)
    # seeds with a text first, so an id also given bare is not "unknown"
    for s, origin in sorted(given, key=lambda g: not g[0].title):
        paper = next((known[i] for i in s.ids if i in known), None)
        key = paper.id if paper is not None else seed_key(s)
        if key in rows or any(i in rows for i in s.ids):
            twice += 1
            continue
        if not s.title and paper is None:
            if s.id in unknown:  # one id given in several spellings: unknown once
                twice += 1
            else:
                unknown.append(s.id)
            continue
        if key not in have:
            if room <= 0:
                over += 1
                continue
            room -= 1
        # Google Scholar's BibTeX has no abstracts: the stored paper's is better than none
        abstract = s.abstract or (paper.abstract if paper is not None else "")
        rows[key] = StoredSeed(key, s.title or paper.title, abstract, origin)
    return SeedChoice(tuple(rows.values()), len(given) + len(problems), tuple(unknown),
                      twice, over, limit, problems)
