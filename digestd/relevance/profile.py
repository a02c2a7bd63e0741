"""Subscriber profiles: a Rocchio centroid of seed and liked papers minus disliked ones, scored
against a day's papers with one matrix product per chunk of profiles, and explained."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Rocchio weights, measured on bench/relevance.py (docs/relevance.md): the profile is
# ALPHA * mean(positives) - GAMMA * mean(negatives) - BACKGROUND * mean(today's papers).
# Taking the day's mean out ranks papers by what sets them apart from the rest of the day
# rather than by the words every paper of the day shares.
# GAMMA is small on purpose: on the bench, "less like this" pushes the disliked papers and
# their near twins down, but a larger GAMMA also pushes down unseen papers the reader wants
# (the dislikes share much of the seeds' vocabulary; see docs/relevance.md).
ALPHA = 1.0
GAMMA = 0.25
BACKGROUND = 0.5
CHUNK = 2048  # profiles per block that iter_scores yields
GROUP_BYTES = 512 << 20  # the scores of a group of profiles (n_profiles x n_papers float32)
SLICE_BYTES = 96 << 20  # one slice of paper x seed cosines, sparse then dense
# every seed's cosine with every paper is kept (seed_paper_cosines) when it fits in this: it
# serves the scores and each paper's "similar to" seed; beyond it they are computed per group
COSINE_BYTES = 512 << 20
SHARED_TERMS = 3


def _dense(m) -> np.ndarray:
    return m.toarray() if sparse.issparse(m) else np.asarray(m)


def profile_weights(positives: Sequence[Sequence[int]], negatives: Sequence[Sequence[int]],
                    n_seeds: int, *, alpha: float = ALPHA,
                    gamma: float = GAMMA) -> sparse.csr_matrix:
    """(n_profiles, n_seeds) float32: row i holds alpha/|pos_i| at each positive seed row of
    profile i and -gamma/|neg_i| at each negative one, so `weights @ seed_vectors` is the
    profiles' Rocchio centroids. `positives[i]`/`negatives[i]` are row numbers into the
    seed vectors (a seed shared by many profiles is vectorized once)."""
    rows, cols, vals = [], [], []
    for i, pos in enumerate(positives):
        neg = negatives[i] if i < len(negatives) else ()
        for group, w in ((pos, alpha), (neg, -gamma)):
            group = list(dict.fromkeys(group))
            for j in group:
                rows.append(i)
                cols.append(j)
                vals.append(w / len(group))
    return sparse.csr_matrix((np.asarray(vals, np.float32), (rows, cols)),
                             shape=(len(positives), n_seeds), dtype=np.float32)


def seed_paper_cosines(seed_vectors, paper_vectors, *, max_bytes: int = COSINE_BYTES,
                       slice_bytes: int = SLICE_BYTES) -> np.ndarray | None:
    """(n_seeds, n_papers) float32: the cosine of every seed with every paper (rows
    L2-normalized, sparse or dense, in one space), or None when that array would take more
    than `max_bytes` (4 bytes a cell). Sparse products are done in slices of seeds, each
    at most about `slice_bytes` while it is turned dense."""
    n_seeds, n_papers = seed_vectors.shape[0], paper_vectors.shape[0]
    if 4 * n_seeds * n_papers > max_bytes:
        return None
    out = np.empty((n_seeds, n_papers), np.float32)
    # slices of seeds: each fills whole rows of `out` (a quarter less CPU than slices of
    # papers at 20,000 seeds x 3,000 papers)
    step = max(1, slice_bytes // max(12 * n_papers, 1))
    papers_t = paper_vectors.T
    for s0 in range(0, n_seeds, step):
        out[s0:s0 + step] = _dense(seed_vectors[s0:s0 + step] @ papers_t)
    return out


def _csr_rows(m: sparse.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """The stored entries of `rows` of a CSR matrix as three flat arrays: (which of `rows`
    (0-based), column, value), without building a new matrix (scipy's fancy indexing costs
    tens of microseconds a call, far more than a few rows' entries)."""
    starts, ends = m.indptr[rows], m.indptr[rows + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    which = np.repeat(np.arange(len(rows)), lengths)
    # entry k of row r sits at starts[r] + (k - first[r]), first[r] its place in the output
    first = np.cumsum(lengths) - lengths
    at = np.arange(total) + np.repeat(starts - first, lengths)
    return which, m.indices[at], m.data[at]


def _is_csr(m) -> bool:
    return sparse.issparse(m) and m.format == "csr"


def row_cosines(seed_vectors, seed_rows: Sequence[int], paper_vectors,
                paper_rows: Sequence[int], *, scratch: np.ndarray | None = None) -> np.ndarray:
    """(len(seed_rows), len(paper_rows)) float32: the dot products (cosines, rows being
    L2-normalized) of a few seed rows with a few paper rows, sparse or dense.

    For CSR vectors the papers' entries are laid out densely by term and each seed entry
    of a term the papers use is multiplied with them (a term no paper has adds nothing), so
    a profile's "similar to" costs a few array operations instead of scipy's sparse
    indexing and product (1.5x less CPU for ~27 seeds x 17 papers, real TF-IDF rows).
    `scratch`: an int32 array of one entry per term (column), reused between calls (its
    contents do not matter); made here when not given."""
    seeds_at = np.asarray(seed_rows, dtype=np.intp)
    papers_at = np.asarray(paper_rows, dtype=np.intp)
    if not (_is_csr(seed_vectors) and _is_csr(paper_vectors)):
        sims = seed_vectors[seeds_at] @ paper_vectors[papers_at].T
        return _dense(sims).astype(np.float32, copy=False)
    p_which, p_terms, p_values = _csr_rows(paper_vectors, papers_at)
    s_which, s_terms, s_values = _csr_rows(seed_vectors, seeds_at)
    if scratch is None or len(scratch) < paper_vectors.shape[1]:
        scratch = np.zeros(paper_vectors.shape[1], np.int32)
    # each term the papers use gets a row of `papers` (the last of its entries' places):
    # what the scratch holds for other terms is left from earlier calls, so a seed's term is
    # the papers' only if the row it names holds that very term
    width = len(p_terms)
    scratch[p_terms] = np.arange(width, dtype=np.int32)
    papers = np.zeros((max(width, 1), len(papers_at)), np.float32)  # term x paper
    if paper_vectors.has_canonical_format:
        # each paper's row holds a term once, so each (term, paper) cell gets one entry: an
        # assignment (np.add.at costs ~10x more a cell; scipy checks the rows once)
        papers[scratch[p_terms], p_which] = p_values
    else:  # a row with a term twice: its entries add up
        np.add.at(papers, (scratch[p_terms], p_which), p_values)
    row = scratch[s_terms]
    shared = row < width
    shared[shared] = p_terms[row[shared]] == s_terms[shared]
    out = np.zeros((len(seeds_at), len(papers_at)), np.float32)
    which = s_which[shared]
    if len(which):
        # each shared entry of a seed times the papers' values of its term, summed by seed
        # (a seed's entries are contiguous, in seed order)
        products = papers[row[shared]] * s_values[shared][:, None]
        starts = np.flatnonzero(np.concatenate(([True], which[1:] != which[:-1])))
        out[which[starts]] = np.add.reduceat(products, starts, axis=0)
    return out


@dataclass(frozen=True)
class Background:
    """The day's background, which every profile's centroid has taken out (weight times the
    mean paper vector), and what scoring with it needs: `scores`, (n_papers,) float32, the
    mean's dot product with each paper; `norm2`, the mean's squared norm."""

    mean: np.ndarray
    scores: np.ndarray
    norm2: float
    weight: float

    @classmethod
    def of(cls, paper_vectors, weight: float = BACKGROUND) -> Background:
        n_papers = paper_vectors.shape[0]
        mean = np.asarray(paper_vectors.mean(axis=0), dtype=np.float32).ravel() if n_papers \
            else np.zeros(paper_vectors.shape[1], np.float32)
        scores = _dense(paper_vectors @ mean).ravel().astype(np.float32)
        return cls(mean, scores, float(mean @ mean), weight)

    def norms(self, cents, weights) -> np.ndarray:
        """(n_profiles,) float32: the norm of each profile's centroid (`cents`, (n_profiles,
        dim), weights @ seed_vectors) minus the background, by linearity; inf for a profile
        without seeds (a row of `weights` with no entry), so that it scores 0 everywhere
        rather than minus the background."""
        if sparse.issparse(cents):
            c_norm2 = np.asarray(cents.multiply(cents).sum(axis=1), np.float32).ravel()
        else:
            c_norm2 = np.einsum("ij,ij->i", cents, cents).astype(np.float32)
        c_bg = _dense(cents @ self.mean).ravel().astype(np.float32)
        b = self.weight
        norm = np.sqrt(np.maximum(c_norm2 - 2 * b * c_bg + b * b * self.norm2, 0.0))
        empty = np.diff(weights.indptr) == 0
        norm[empty | (norm < 1e-12)] = np.inf
        return norm


def profile_norms(weights: sparse.csr_matrix, seed_vectors, bg: Background, *,
                  chunk: int = CHUNK) -> np.ndarray:
    """(n_profiles,) float32: Background.norms of every profile, `chunk` centroids at a
    time."""
    out = np.empty(weights.shape[0], np.float32)
    for c0 in range(0, weights.shape[0], chunk):
        w = weights[c0:c0 + chunk]
        out[c0:c0 + chunk] = bg.norms(w @ seed_vectors, w)
    return out


def iter_scores(weights: sparse.csr_matrix, seed_vectors, paper_vectors, *,
                background: float = BACKGROUND, chunk: int = CHUNK,
                group_bytes: int = GROUP_BYTES, slice_bytes: int = SLICE_BYTES,
                cosines: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Cosine of every profile with every paper, in blocks of `chunk` profiles.

    `weights`: (n_profiles, n_seeds) from profile_weights; `seed_vectors`: (n_seeds, dim)
    and `paper_vectors`: (n_papers, dim), rows L2-normalized, sparse (TF-IDF) or dense
    (embeddings), in one space. Yields (first profile row, (rows, n_papers) float32 block)
    with scores in [-1, 1]; 0 for an empty profile. The day's background (the mean paper
    vector times `background`) is taken out of each profile by linearity.

    Sparse vectors: the seed x paper cosines are computed once per distinct seed used (a
    TF-IDF centroid of 30 seeds is as dense as 30 abstracts, and sparse-by-sparse products
    with a dense result are slow), in slices of papers, then mixed by `weights` (a sparse by
    dense product). Memory: about `group_bytes` for the scores of a group of profiles
    (n_profiles x n_papers x 4 bytes; more profiles are done in groups, each computing the
    cosines of the seeds it uses again) plus `slice_bytes` for one slice of cosines.

    `cosines`, seed_paper_cosines of these vectors, saves computing them: each block is then
    one sparse by dense product, and memory is that array plus one block.
    """
    n_prof, n_papers = weights.shape[0], paper_vectors.shape[0]
    bg = Background.of(paper_vectors, background)
    is_sparse = sparse.issparse(seed_vectors) and cosines is None
    group = max(chunk, (group_bytes // max(4 * n_papers, 1)) // chunk * chunk)
    for g0 in range(0, n_prof, group if is_sparse else chunk):
        w = weights[g0:g0 + (group if is_sparse else chunk)]
        if cosines is not None:
            w_used, s_used = w, seed_vectors
            raw_all = None
        elif is_sparse:
            used = np.unique(w.indices)
            w_used, s_used = w[:, used], seed_vectors[used]
            raw_all = np.empty((w.shape[0], n_papers), np.float32)
            # the product is nearly dense (common words): 8 bytes an entry as sparse, then 4
            step = max(1, slice_bytes // max(12 * len(used), 1))
            for p0 in range(0, n_papers, step):
                ds = (paper_vectors[p0:p0 + step] @ s_used.T).toarray()  # (slice, seeds)
                raw_all[:, p0:p0 + step] = w_used @ ds.T
                del ds
        else:
            w_used, s_used = w, seed_vectors
            raw_all = None
        for c0 in range(0, w.shape[0], chunk):
            cents = w_used[c0:c0 + chunk] @ s_used  # (rows, dim) centroids
            if cosines is not None:
                raw = np.asarray(w_used[c0:c0 + chunk] @ cosines, dtype=np.float32)
            elif raw_all is None:
                raw = np.asarray(cents @ paper_vectors.T, dtype=np.float32)
            else:
                raw = raw_all[c0:c0 + chunk]
            raw -= bg.weight * bg.scores[None, :]
            raw /= bg.norms(cents, w_used[c0:c0 + chunk])[:, None]
            yield g0 + c0, raw


def scores(weights: sparse.csr_matrix, seed_vectors, paper_vectors, *,
           background: float = BACKGROUND) -> np.ndarray:
    """All of iter_scores in one (n_profiles, n_papers) float32 array: for a few profiles
    (`digestd similar`, the bench); the daily build should consume iter_scores's blocks."""
    out = np.zeros((weights.shape[0], paper_vectors.shape[0]), np.float32)
    for start, block in iter_scores(weights, seed_vectors, paper_vectors,
                                    background=background):
        out[start:start + block.shape[0]] = block
    return out


@dataclass(frozen=True)
class Explanation:
    """Why a paper ranked where it did for one profile.

    `shares`: the terms that gave the most to its score (TF-IDF only; empty for embeddings);
    `similar_to`: the row of the positive seed most like it, and `similarity` its cosine."""

    shares: tuple[str, ...]
    similar_to: int | None
    similarity: float

    def text(self, titles: Sequence[str]) -> str:
        """'shares: diffusion, video, temporal · similar to: <title>' (`titles` of the seed
        rows)."""
        parts = []
        if self.shares:
            parts.append("shares: " + ", ".join(self.shares))
        if self.similar_to is not None:
            parts.append(f"similar to: {titles[self.similar_to]}")
        return " · ".join(parts)


def explain(paper_vector, seed_vectors, positives: Sequence[int],
            negatives: Sequence[int] = (), terms: np.ndarray | None = None, *,
            alpha: float = ALPHA, gamma: float = GAMMA,
            n_terms: int = SHARED_TERMS) -> Explanation:
    """The explanation of one paper (`paper_vector`: (1, dim) row) for one profile.

    `terms` (the TfidfSpace's column terms) turns on "shares": the `n_terms` columns with the
    largest positive product of the profile centroid and the paper, and a unigram already
    inside a chosen bigram is not repeated."""
    pos = list(positives)
    if not pos:
        return Explanation((), None, 0.0)
    sims = _dense(seed_vectors[pos] @ paper_vector.T).ravel()
    best = int(np.argmax(sims))
    shares: list[str] = []
    if terms is not None and sparse.issparse(paper_vector):
        w = profile_weights([pos], [list(negatives)], seed_vectors.shape[0],
                            alpha=alpha, gamma=gamma)
        contrib = (w @ seed_vectors).multiply(paper_vector).tocoo()
        order = np.argsort(-contrib.data, kind="stable")
        for k in order:
            if contrib.data[k] <= 0 or len(shares) >= n_terms:
                break
            term = str(terms[contrib.col[k]])
            if any(term in s.split() or s in term.split() for s in shares):
                continue
            shares.append(term)
    return Explanation(tuple(shares), pos[best], float(sims[best]))
