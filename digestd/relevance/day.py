"""A day's papers against every subscriber's profile: what the digest build calls."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import profile as P
from .rank import HasText, Ranked, _vectors
from .text import TfidfSpace, paper_text


@dataclass(frozen=True)
class ProfileSeeds:
    """One subscriber's profile as plain data: `positives` (seeds and "more like this"
    papers) and `negatives` ("less like this"), each with a title and an abstract
    (store.StoredSeed, models.Paper, relevance.seedfile.Seed all do)."""

    positives: tuple[HasText, ...]
    negatives: tuple[HasText, ...] = ()


class DayScores:
    """The day's papers and every profile's seeds in one space, vectorized once.

        day = DayScores.build(papers, {sub.id: ProfileSeeds(seeds, disliked), ...})
        for keys, block in day.blocks():      # block: (len(keys), len(papers)) float32
            ...                               # e.g. np.argsort(-block[i]) for keys[i]
        day.why(key, paper_index)             # "shares: ... · similar to: <title>"

    A seed shared by many profiles (same title and abstract) is vectorized once. Scores are
    cosines in [-1, 1] (TF-IDF with the day's background taken out: the best papers of a
    profile typically score 0.05 to 0.3; semantic: 0.3 to 0.7). A profile without
    positives scores 0 everywhere: give it today's order.
    """

    def __init__(self, papers: Sequence[HasText], keys: list[Hashable], space, paper_vectors,
                 seed_vectors, seed_titles: list[str], positives: list[list[int]],
                 negatives: list[list[int]]) -> None:
        self.papers = papers
        self.keys = keys
        self.space = space
        self.paper_vectors = paper_vectors
        self.seed_vectors = seed_vectors
        self.seed_titles = seed_titles
        self.positives = positives
        self.negatives = negatives
        self.row = {k: i for i, k in enumerate(keys)}
        self._scratch: np.ndarray | None = None  # row_cosines's, made at the first call
        self.embedded: dict[tuple[str, str], np.ndarray] = {}  # build(known=...): new vectors
        self.weights = P.profile_weights(positives, negatives, len(seed_titles))
        # every seed against every paper, once, where it fits (profile.COSINE_BYTES): the
        # scores and each paper's nearest seed are then read from it, not multiplied again
        self.cosines = P.seed_paper_cosines(seed_vectors, paper_vectors)

    @classmethod
    def build(cls, papers: Sequence[HasText], profiles: Mapping[Hashable, ProfileSeeds], *,
              method: str = "tfidf",
              known: Mapping[tuple[str, str], np.ndarray] | None = None) -> DayScores:
        """Vectorize `papers` and the profiles' seeds (TF-IDF fitted on both, or the
        semantic extra's embeddings) and weigh each profile's seeds.

        `known` (semantic only): vectors of seed texts embedded before, by (title,
        abstract); only the other seeds are embedded, and those new vectors are left in
        `.embedded` for the caller to keep (a text's embedding never changes)."""
        seed_row: dict[tuple[str, str], int] = {}
        seed_texts, titles = [], []
        keys, positives, negatives = [], [], []
        for key, prof in profiles.items():
            rows = []
            for group in (prof.positives, prof.negatives):
                got = []
                for s in group:
                    ident = (s.title, s.abstract)
                    if ident not in seed_row:
                        seed_row[ident] = len(seed_texts)
                        seed_texts.append(paper_text(s.title, s.abstract))
                        titles.append(s.title)
                    got.append(seed_row[ident])
                rows.append(got)
            keys.append(key)
            positives.append(rows[0])
            negatives.append(rows[1])
        paper_texts = [paper_text(p.title, p.abstract) for p in papers]
        if method == "semantic" and known is not None:
            idents = list(seed_row)
            missing = [i for i, ident in enumerate(idents) if ident not in known]
            space, vectors = _vectors(method, paper_texts + [seed_texts[i] for i in missing])
            n = len(paper_texts)
            seeds = np.empty((len(idents), vectors.shape[1]), np.float32)
            for i, ident in enumerate(idents):
                if ident in known:
                    seeds[i] = known[ident]
            seeds[missing] = vectors[n:]
            day = cls(papers, keys, space, vectors[:n], seeds, titles, positives, negatives)
            day.embedded = {idents[i]: seeds[i] for i in missing}
            return day
        space, vectors = _vectors(method, paper_texts + seed_texts)
        n = len(paper_texts)
        return cls(papers, keys, space, vectors[:n], vectors[n:], titles, positives, negatives)

    def blocks(self, chunk: int = P.CHUNK) -> Iterator[tuple[list[Hashable], np.ndarray]]:
        """(profile keys, (len(keys), n_papers) float32 cosines), `chunk` profiles at a time;
        memory is bounded as profile.iter_scores says."""
        for start, block in P.iter_scores(self.weights, self.seed_vectors, self.paper_vectors,
                                          chunk=chunk, cosines=self.cosines):
            yield self.keys[start:start + len(block)], block

    def scores(self, key: Hashable) -> np.ndarray:
        """One profile's (n_papers,) cosines."""
        i = self.row[key]
        return P.scores(self.weights[i:i + 1], self.seed_vectors, self.paper_vectors)[0]

    def nearest_positives(self, key: Hashable, paper_indexes: Sequence[int]) -> list[int]:
        """For each paper (an index into `papers`), the seed row (into `seed_titles`) of the
        profile's positive most like it; [] for a profile without positives."""
        pos = self.positives[self.row[key]]
        if not pos or not len(paper_indexes):
            return []
        cols = list(paper_indexes)
        if self.cosines is not None:
            sims = self.cosines[np.ix_(pos, cols)]
        else:
            if self._scratch is None:
                self._scratch = np.zeros(self.paper_vectors.shape[1], np.int32)
            sims = P.row_cosines(self.seed_vectors, pos, self.paper_vectors, cols,
                                  scratch=self._scratch)
        return [pos[int(b)] for b in np.argmax(sims, axis=0)]

    def ranked(self, key: Hashable, top: int | None = None) -> list[Ranked]:
        """One profile's papers best first, each with its score and why."""
        row = self.scores(key)
        order = np.argsort(-row, kind="stable")[:top]
        return [Ranked(self.papers[j], float(row[j]), *self._why(key, int(j))) for j in order]

    def why(self, key: Hashable, paper_index: int) -> str:
        """'shares: diffusion, video, temporal · similar to: <seed title>' for one paper."""
        return Ranked(None, 0.0, *self._why(key, paper_index)).why

    def _why(self, key: Hashable, j: int) -> tuple[tuple[str, ...], str]:
        i = self.row[key]
        terms = self.space.terms if isinstance(self.space, TfidfSpace) else None
        e = P.explain(self.paper_vectors[j], self.seed_vectors, self.positives[i],
                      self.negatives[i], terms)
        return e.shares, (self.seed_titles[e.similar_to] if e.similar_to is not None else "")
