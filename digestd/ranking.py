"""The reader's relevance in the daily build: profiles from seeds and feedback, each digest's
order, the matches min_score leaves out, and the "also recommended" papers (plain data in,
plain data out; the build in jobs.py reads and writes the store).

A subscriber without a positive (no seed, no "more like this") gets no profile and today's
order (render.by_relevance), untouched. For the others, one DayScores over the build's
papers gives each profile the scores of its matches alone (DayScores.at), or, for readers
who want recommendations (chosen among all the day's papers), whole rows read in blocks of
profiles, each block turned into small results at once, so no subscriber's full row of
scores outlives its block.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .identity import title_key
from .models import Paper, PaperMatch
from .render import by_relevance, shorten, why_text

if TYPE_CHECKING:  # imported where used: scikit-learn and SciPy take ~1 s of CPU to import,
    # which every build process would pay even when nobody has a profile
    from .relevance.day import DayScores, ProfileSeeds

log = logging.getLogger("digestd.ranking")

# How a rule match's place is decided (docs/relevance.md, "In the digest"): its similarity to
# the profile (a cosine; a profile's best papers score 0.05 to 0.3 in the TF-IDF space) plus
# RULE_BONUS for every rule of the subscriber's it matched beyond the first, plus TITLE_BONUS
# when a rule hit its title. The bonuses are of the size of the gaps between a profile's good
# papers: two rules or a title hit lift a paper past near ties, not past a paper much more
# like the reader's seeds. Ties keep today's order.
RULE_BONUS = 0.03
TITLE_BONUS = 0.01
# "similar to: <title>" is said, and a paper is recommended, only above these similarities:
# below them the best seed is nearest by accident (a few common words)
SIMILAR_FLOOR = 0.05
RECOMMEND_FLOOR = 0.08
SEED_TITLE_CHARS = 60  # a seed's title in a why line at most
METHOD = "tfidf"  # the build's text space (relevance/text.py): no download, deterministic
# The semantic extra's cosines are higher and closer together (a profile's median paper 0.41,
# its best 2% 0.59; TF-IDF: 0.03 and 0.087). One affine map puts them on the TF-IDF scale,
# so that min_score, the floors and the bonuses above mean the same in both spaces; the
# order within a space is unchanged. Fitted on bench/relevance.py's day (40 five-seed
# profiles, percentiles 50 to 99.5; each mapped percentile within 0.006 of TF-IDF's).
SCALE = {"tfidf": (1.0, 0.0), "semantic": (0.3386, -0.1133)}


_WORD = re.compile(r"\w\w")


@dataclass
class Ranking:
    """One subscriber's digest, ranked: `items` (the rule matches kept, best first) with
    `whys`, `recommended` papers beyond the rules with theirs (each a PaperMatch without
    rules), and `left_out`, the matches min_score dropped, with theirs."""

    items: list[PaperMatch]
    whys: list[str]
    recommended: list[PaperMatch] = field(default_factory=list)
    recommended_whys: list[str] = field(default_factory=list)
    left_out: list[PaperMatch] = field(default_factory=list)
    left_out_whys: list[str] = field(default_factory=list)


def todays_order(items: Iterable[PaperMatch]) -> Ranking:
    """The order without a profile: render.by_relevance, why_text (the golden digests)."""
    ordered = by_relevance(list(items))
    return Ranking(ordered, [why_text(m) for m in ordered])


def _has_text(paper) -> bool:
    return bool(_WORD.search(paper.title or "") or _WORD.search(paper.abstract or ""))


def profiles_of(subscriber_ids: Iterable[int], seeds: Mapping[int, Sequence],
                feedback: Mapping[int, Mapping[int, int]],
                papers: Mapping[int, Paper]) -> dict[int, ProfileSeeds]:
    """Subscriber id -> ProfileSeeds for those with at least one usable positive: their
    seeds (store.seed_texts_of) and the papers they marked "more like this" (value +1 in
    store.feedback_values, papers from store.papers_by_pk); "less like this" (-1) are the
    negatives. A seed or paper without a word of text cannot describe anything and is left
    out (a profile of only such seeds is no profile)."""
    from .relevance.day import ProfileSeeds

    out: dict[int, ProfileSeeds] = {}
    for sid in subscriber_ids:
        marks = feedback.get(sid, {})
        positives = [s for s in seeds.get(sid, ()) if _has_text(s)]
        positives += [papers[pk] for pk, v in marks.items()
                      if v > 0 and pk in papers and _has_text(papers[pk])]
        if not positives:
            continue
        negatives = [papers[pk] for pk, v in marks.items()
                     if v < 0 and pk in papers and _has_text(papers[pk])]
        out[sid] = ProfileSeeds(tuple(positives), tuple(negatives))
    return out


@dataclass(frozen=True)
class Wanted:
    """What the build asks of one subscriber's ranking: their matches (in any order), the
    index in the build's papers where their window starts, the ids of papers ever sent to
    them, how many recommendations they want and their min_score (None: keep all)."""

    items: Sequence[PaperMatch]
    start: int = 0
    sent: frozenset[str] | set[str] = frozenset()
    recommend: int = 0
    min_score: float | None = None


def rank_day(papers: Sequence[Paper], profiles: Mapping[Hashable, ProfileSeeds],
             wanted: Mapping[Hashable, Wanted], *, method: str = METHOD,
             known: Mapping[tuple[str, str], np.ndarray] | None = None,
             remember: Callable[[dict[tuple[str, str], np.ndarray]], None] | None = None
             ) -> dict[Hashable, Ranking]:
    """Subscriber key -> Ranking, for the keys of `profiles` (the others keep today's order:
    the caller gives them todays_order). The papers and every profile's seeds are vectorized
    once (DayScores) and the scores read in blocks of profiles. A profile whose ranking
    fails is logged and gets today's order; if the day's space cannot be built at all,
    nobody is ranked (an empty dict), and the digests go out in today's order. `method`:
    "tfidf" or "semantic" (scores mapped onto the TF-IDF scale, see SCALE). `known` and
    `remember` (semantic): the seed vectors kept from earlier builds, by (title, abstract),
    and where to hand the ones embedded now (DayScores.build)."""
    keys = [k for k in profiles if k in wanted]
    if not keys or not papers:
        return {}
    from .relevance.day import DayScores

    try:
        day = DayScores.build(papers, {k: profiles[k] for k in keys}, method=method,
                              known=known)
    except Exception as e:  # noqa: BLE001 (relevance must never hold the digests back)
        log.error("event=ranking_failed scope=day profiles=%d error_type=%s error=%r",
                  len(keys), type(e).__name__, str(e)[:200])
        return {}
    if remember is not None and day.embedded:
        try:
            remember(day.embedded)
        except Exception as e:  # noqa: BLE001 (not kept: embedded again next time)
            log.warning("event=seed_vectors_not_kept count=%d error_type=%s error=%r",
                        len(day.embedded), type(e).__name__, str(e)[:200])
    index = {p.id: j for j, p in enumerate(papers)}
    a, b = SCALE.get(method, (1.0, 0.0))

    def scaled(scores: np.ndarray) -> np.ndarray:
        return scores if (a, b) == (1.0, 0.0) else scores * np.float32(a) + np.float32(b)

    out: dict[Hashable, Ranking] = {}
    title_keys = _TitleKeys(papers)  # profiles share seeds, and the day's papers come back

    def one(key: Hashable, row: np.ndarray | None) -> None:
        try:
            out[key] = _rank_one(day, key, wanted[key], index, scaled, row, title_keys)
        except Exception as e:  # noqa: BLE001 (one broken profile: today's order)
            log.error("event=ranking_failed subscriber=%s error_type=%s error=%r", key,
                      type(e).__name__, str(e)[:200])

    # recommendations are chosen among all the day's papers: those profiles need whole rows
    # of scores; the others only their matches' (DayScores.at), a few cosines each
    whole = [k for k in keys if wanted[k].recommend > 0]
    for block_keys, block in (day.blocks(keys=whole) if whole else ()):
        block = scaled(block)
        for i, key in enumerate(block_keys):
            one(key, block[i])
    for key in keys:
        if wanted[key].recommend <= 0:
            one(key, None)
    return out


def _title_hit(m: PaperMatch) -> bool:
    return any(h.field == "title" for r in m.rules for h in r.hits)


def combined(similarity: float, m: PaperMatch) -> float:
    """A rule match's ranking score: its similarity plus the bonuses of its rule evidence."""
    return (similarity + RULE_BONUS * max(len(m.rules) - 1, 0)
            + (TITLE_BONUS if _title_hit(m) else 0.0))


class _TitleKeys(dict):
    """Title -> identity.title_key(title), each title worked out once (a dict's
    __missing__): a day's rankings ask for the same seeds and papers many times. Also
    which of the day's `papers` have a given key (papers_with)."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        super().__init__()
        self.papers = papers
        self._by_key: dict[str, list[int]] | None = None

    def __missing__(self, title: str) -> str:
        key = self[title] = title_key(title)
        return key

    def papers_with(self, key: str) -> list[int]:
        """The indexes in the day's papers of those whose title has `key`."""
        if self._by_key is None:
            self._by_key = {}
            for j, p in enumerate(self.papers):
                self._by_key.setdefault(self[p.title], []).append(j)
        return self._by_key.get(key, [])


def _rank_one(day: DayScores, key: Hashable, want: Wanted, index: Mapping[str, int],
              scaled: Callable[[np.ndarray], np.ndarray], row: np.ndarray | None,
              title_keys: _TitleKeys) -> Ranking:
    """One profile's Ranking, from its whole `row` of (scaled) scores, or (None: no
    recommendations wanted) from the scores of its matches alone. `title_keys`: the
    _TitleKeys the day's rankings share."""
    base = by_relevance(list(want.items))  # today's order: the tie-breaker
    cols = [index[m.paper.id] for m in base]
    nearest: dict[str, int] | None = None  # paper id -> its nearest positive seed's row
    if row is None:
        at, seeds = day.at(key, cols)
        sims = scaled(at).tolist()
        nearest = dict(zip((m.paper.id for m in base), seeds))
    else:
        sims = [float(row[j]) for j in cols]
    if not np.all(np.isfinite(sims)):
        raise ValueError("a score is not a number")
    kept, dropped = [], []
    for m, s in zip(base, sims):
        if want.min_score is not None and s < want.min_score:
            dropped.append((m, s))
        else:
            kept.append((m, s))
    # sorted() is stable: equal scores keep today's order
    kept.sort(key=lambda ms: -combined(ms[1], ms[0]))
    own = _own_seeds(day, key, title_keys)  # the title keys of the profile's positives
    recs: list[tuple[PaperMatch, float]] = []
    if want.recommend > 0 and kept:  # recommendations ride along with rule matches only
        window = row[want.start:].astype(np.float32, copy=True)
        skip = {m.paper.id for m in want.items} | set(want.sent)
        # nor the reader's own seeds (or papers they liked) come back as new papers
        places = [index.get(pid) for pid in skip] + [
            j for k in own for j in title_keys.papers_with(k)]
        for j in places:
            if j is not None and j >= want.start:
                window[j - want.start] = -np.inf
        window[~np.isfinite(window)] = -np.inf
        n = min(want.recommend, len(window))
        if n:
            top = np.argpartition(-window, n - 1)[:n] if n < len(window) else \
                np.arange(len(window))
            # best first; equal scores: the newer paper (later in the build's list)
            top = sorted(top, key=lambda t: (-window[t], -t))
            for t in top:
                if window[t] < RECOMMEND_FLOOR:
                    break
                recs.append((PaperMatch(day.papers[want.start + t], ()), float(window[t])))
    # the best seed of each paper said "similar to", computed for those that need it only
    similar = _similar_to(day, key, [m.paper.id for m, s in kept if s >= SIMILAR_FLOOR]
                          + [m.paper.id for m, _ in recs], index, nearest)
    whys = []
    for m, s in kept:
        why = why_text(m)
        if own and title_keys[m.paper.title] in own:  # not "similar to" itself
            why = f"{why} · one of your seeds" if why else "one of your seeds"
        elif m.paper.id in similar:
            why = f"{why} · similar to: {similar[m.paper.id]}" if why else \
                f"similar to: {similar[m.paper.id]}"
        whys.append(why)
    return Ranking(
        items=[m for m, _ in kept], whys=whys,
        recommended=[m for m, _ in recs],
        recommended_whys=[f"similar to {similar.get(m.paper.id, 'your seeds')}"
                          for m, _ in recs],
        left_out=[m for m, _ in dropped], left_out_whys=[why_text(m) for m, _ in dropped])


def _own_seeds(day: DayScores, key: Hashable, title_keys: Mapping[str, str]) -> set[str]:
    """The title keys (identity.title_key, looked up in `title_keys`) of the profile's
    positives: a paper with one of them is the reader's own seed (or "more like this"
    choice) come back."""
    keys = (title_keys[day.seed_titles[r]] for r in day.positives[day.row[key]])
    return {k for k in keys if k}


def _similar_to(day: DayScores, key: Hashable, paper_ids: Sequence[str],
                index: Mapping[str, int], nearest: Mapping[str, int] | None = None
                ) -> dict[str, str]:
    """Paper id -> the (shortened) title of the profile's positive seed most like it
    (`nearest`: those seeds' rows already found, by paper id)."""
    if not paper_ids:
        return {}
    if nearest is not None:
        best = [nearest[pid] for pid in paper_ids if pid in nearest]
        if len(best) < len(paper_ids):  # a profile without positives
            return {}
    else:
        best = day.nearest_positives(key, [index[pid] for pid in paper_ids])
    return {pid: shorten(" ".join(day.seed_titles[b].split()), SEED_TITLE_CHARS)
            for pid, b in zip(paper_ids, best)}
