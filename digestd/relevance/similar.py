"""`digestd similar`: papers ranked by likeness to a reader's seed papers, without a store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..errors import DigestdError
from .rank import Ranked, rank
from .seedfile import Seed, SeedFile, id_of, resolve, unknown_ids
from .seeding import problem_lines


@dataclass(frozen=True)
class Similar:
    """The answer of similar(): `ranked` best first; `seeds` used; `unknown` bare ids that
    neither the seed file nor the papers could give a text for; `problems` of the file;
    `liked` and `disliked` the papers of the profile's "more/less like this"."""

    ranked: list[Ranked]
    seeds: list[Seed]
    unknown: list[Seed]
    problems: tuple[str, ...]
    liked: tuple = ()
    disliked: tuple = ()


def similar(seeds: SeedFile, papers: Sequence, *, liked: Sequence = (),
            disliked: Sequence = (), top: int | None = 20, method: str = "tfidf") -> Similar:
    """Rank `papers` (models.Paper) by likeness to the seeds and the `liked` papers (a
    subscriber's "more like this"), and unlike the `disliked` ("less like this"). A seed
    given only by id takes its text from the paper of that id among `papers` (which then is
    not ranked); papers that are seeds, liked or disliked are left out. Raises DigestdError
    when neither a seed nor a liked paper has a text."""
    known = {}
    for p in papers:
        for i in p.ids:
            # a papers file may name ids bare ("2505.18291"): their store spelling too
            for key in (i, id_of(i)):
                if key:
                    known.setdefault(key, p)
    usable, unknown = resolve(seeds.seeds, known)
    seed_ids = {i for s in usable for i in s.ids}
    liked = tuple(p for p in liked if not seed_ids.intersection(p.ids))  # a seed counts once
    if not usable and not liked:
        raise DigestdError("no usable seed paper: "
                           + ("\n".join(problem_lines(seeds.problems)) or "the file names none")
                           + (f"; {unknown_ids([s.id for s in unknown])}" if unknown else ""))
    profile_ids = seed_ids.union(*(p.ids for p in (*liked, *disliked)))
    candidates = [p for p in papers
                  if not profile_ids.intersection((*p.ids, *filter(None, map(id_of, p.ids))))]
    ranked = rank([*usable, *liked], candidates, tuple(disliked), method=method, top=top)
    from ..ranking import SCALE

    a, b = SCALE.get(method, (1.0, 0.0))
    if (a, b) != (1.0, 0.0):  # on the scale min_score and the build use (ranking.SCALE)
        ranked = [replace(r, score=a * r.score + b) for r in ranked]
    return Similar(ranked, usable, unknown, seeds.problems, liked, tuple(disliked))


def as_json(result: Similar) -> list[dict]:
    """The ranked papers as `digestd similar --json` prints them, best first: id, title,
    score (rounded to 4 places, on min_score's scale: the TF-IDF cosine, or the semantic
    cosine mapped by ranking.SCALE), why, shares, similar_to, url."""
    return [{"id": r.paper.id, "title": r.paper.title, "score": round(r.score, 4),
             "why": r.why, "shares": list(r.shares), "similar_to": r.similar_to,
             "url": getattr(r.paper, "url", "")} for r in result.ranked]


def seeds_summary(result: Similar, total: int) -> str:
    """'kept 12 of 14 seeds; 2 unknown ids: arxiv:..., doi:...; 1 entry not read' (`total`:
    the seeds the file named plus its problem entries)."""
    text = f"kept {len(result.seeds)} of {total} seeds"
    if result.unknown:
        text += f"; {unknown_ids([s.id for s in result.unknown])}"
    if result.problems:
        n = len(result.problems)
        text += f"; {n} {'entry' if n == 1 else 'entries'} not read"
    if result.liked or result.disliked:
        text += (f"; {len(result.liked)} more like this, {len(result.disliked)} less like "
                 "this")
    return text


def as_text(result: Similar) -> list[str]:
    """Lines for a terminal: rank, score and title, then why and the link, indented."""
    lines = []
    for n, r in enumerate(result.ranked, 1):
        lines.append(f"{n:>3}. {r.score:.3f}  {r.paper.title}")
        if r.why:
            lines.append(f"           {r.why}")
        if getattr(r.paper, "url", ""):
            lines.append(f"           {r.paper.url}")
    return lines
