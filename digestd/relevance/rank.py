"""Rank a set of papers for one profile (seeds, liked and disliked papers): `digestd similar`,
the bench, and any caller with one reader; the daily build scores many with profile.iter_scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from . import profile as P
from .text import TfidfSpace, paper_text

METHODS = ("tfidf", "semantic")


class HasText(Protocol):
    title: str
    abstract: str


@dataclass(frozen=True)
class Ranked:
    """One paper's place for a profile: its cosine `score` in [-1, 1] and why (`shares`,
    the most similar positive seed's title in `similar_to`)."""

    paper: object
    score: float
    shares: tuple[str, ...] = ()
    similar_to: str = ""

    @property
    def why(self) -> str:
        parts = []
        if self.shares:
            parts.append("shares: " + ", ".join(self.shares))
        if self.similar_to:
            parts.append(f"similar to: {self.similar_to}")
        return " · ".join(parts)


def _vectors(method: str, texts: list[str]):
    """(space, vectors of texts) in the space of `method`."""
    if method == "tfidf":
        return TfidfSpace.fit_vectors(texts)
    if method == "semantic":
        from .semantic import SemanticSpace
        space = SemanticSpace.load()
        return space, space.vectors(texts)
    raise ValueError(f"unknown ranking method {method!r}: one of {', '.join(METHODS)}")


def rank(positives: Sequence[HasText], papers: Sequence[HasText],
         negatives: Sequence[HasText] = (), *, method: str = "tfidf",
         top: int | None = None, explain: bool = True, alpha: float = P.ALPHA,
         gamma: float = P.GAMMA, background: float = P.BACKGROUND) -> list[Ranked]:
    """`papers` best first for the profile of `positives` (seeds, liked papers) and
    `negatives` ("less like this"), each with its score and, with `explain`, why.

    The TF-IDF space is fitted on the papers plus the seeds (paper_text of title and
    abstract). Ties keep the input order. `top`: only the best that many.
    """
    seed_texts = [paper_text(s.title, s.abstract) for s in (*positives, *negatives)]
    paper_texts = [paper_text(p.title, p.abstract) for p in papers]
    space, vectors = _vectors(method, paper_texts + seed_texts)
    docs, seeds = vectors[:len(paper_texts)], vectors[len(paper_texts):]
    pos = list(range(len(positives)))
    neg = list(range(len(positives), len(seed_texts)))
    weights = P.profile_weights([pos], [neg], len(seed_texts), alpha=alpha, gamma=gamma)
    row = P.scores(weights, seeds, docs, background=background)[0]
    order = np.argsort(-row, kind="stable")
    if top is not None:
        order = order[:top]
    terms = space.terms if isinstance(space, TfidfSpace) and explain else None
    out = []
    for i in order:
        shares, similar = (), ""
        if explain and pos:
            e = P.explain(docs[int(i)], seeds, pos, neg, terms, alpha=alpha, gamma=gamma)
            shares = e.shares
            similar = positives[e.similar_to].title if e.similar_to is not None else ""
        out.append(Ranked(papers[int(i)], float(row[i]), shares, similar))
    return out
