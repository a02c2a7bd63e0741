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
        for m in (paper_vectors, seed_vectors):
            if P._is_csr(m):
                # sorted (in place): TF-IDF rows hold a term once, and SciPy calls such rows
                # canonical only when sorted, which row_cosines needs to lay papers out by
                # assignment rather than np.add.at
                m.sort_indices()
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
        # every seed against every paper (keep_cosines), made only for whole rows of scores
        self.cosines: np.ndarray | None = None
        self._background: P.Background | None = None
        self._norms: np.ndarray | None = None  # each profile's, for at()

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

    def keep_cosines(self) -> None:
        """Compute every seed's cosine with every paper once, where that fits
        (profile.COSINE_BYTES): whole rows of scores (blocks) and each paper's nearest seed
        are then read from it, not multiplied again."""
        if self.cosines is None:
            self.cosines = P.seed_paper_cosines(self.seed_vectors, self.paper_vectors)

    def blocks(self, chunk: int = P.CHUNK, keys: Sequence[Hashable] | None = None
               ) -> Iterator[tuple[list[Hashable], np.ndarray]]:
        """(profile keys, (len(keys), n_papers) float32 cosines), `chunk` profiles at a time,
        of every profile or only of `keys`; memory is bounded as profile.iter_scores says.
        For a profile that needs only a few papers' scores, at() costs far less.

        Every profile's: the seed x paper cosines are kept (keep_cosines) for
        nearest_positives. Some profiles' (`keys`): only the seeds they use are multiplied
        with the papers, per group of profiles (profile.iter_scores)."""
        weights, order = self.weights, self.keys
        if keys is None:
            self.keep_cosines()
        else:
            order = list(keys)
            weights = weights[[self.row[k] for k in order]]
        for start, block in P.iter_scores(weights, self.seed_vectors, self.paper_vectors,
                                          chunk=chunk, cosines=self.cosines):
            yield order[start:start + len(block)], block

    def at(self, key: Hashable, paper_indexes: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """One profile's scores at a few papers only, and its nearest positive seed for each:
        ((len(paper_indexes),) float32 cosines, the same as the profile's row of blocks() at
        those papers; the seed rows nearest_positives gives, [] without positives).

        Only the profile's seeds are multiplied with only these papers (profile.row_cosines;
        about 0.5 ms of CPU for ~27 seeds and ~17 papers, mostly numpy's cost per call),
        where a whole row needs every seed with every paper of the day: what a digest ranked
        without recommendations needs."""
        i = self.row[key]
        cols = np.asarray(paper_indexes, dtype=np.intp)
        if self._norms is None:
            self._background = P.Background.of(self.paper_vectors)
            self._norms = P.profile_norms(self.weights, self.seed_vectors, self._background)
        pos = self.positives[i]
        # the positives first, in their order (nearest's ties go to the first), then the
        # negatives; each seed's weight (profile_weights's row) counted at its first place
        lo, hi = self.weights.indptr[i], self.weights.indptr[i + 1]
        weight = dict(zip(self.weights.indices[lo:hi].tolist(),
                          self.weights.data[lo:hi].tolist()))
        rows, seen = list(pos), set(pos)
        for n in self.negatives[i]:
            if n not in seen:
                seen.add(n)
                rows.append(n)
        w = np.asarray([weight.pop(r, 0.0) for r in rows], np.float32)
        if not rows or not len(cols):
            return np.zeros(len(cols), np.float32), []
        sims = self._cosines(rows, cols)
        bg = self._background
        scores = (w @ sims - bg.weight * bg.scores[cols]) / self._norms[i]
        nearest = [pos[int(b)] for b in np.argmax(sims[:len(pos)], axis=0)] if pos else []
        return scores.astype(np.float32, copy=False), nearest

    def _cosines(self, seed_rows: Sequence[int], cols: Sequence[int]) -> np.ndarray:
        """(len(seed_rows), len(cols)) float32 cosines, read from the kept cosines if made."""
        if self.cosines is not None:
            return self.cosines[np.ix_(list(seed_rows), list(cols))]
        if self._scratch is None:
            self._scratch = np.zeros(self.paper_vectors.shape[1], np.int32)
        return P.row_cosines(self.seed_vectors, seed_rows, self.paper_vectors, cols,
                             scratch=self._scratch)

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
        sims = self._cosines(pos, list(paper_indexes))
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
