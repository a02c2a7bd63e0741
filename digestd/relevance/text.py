"""The default text representation: sublinear TF-IDF over title and abstract, fitted per day."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

# Measured on bench/relevance.py (docs/relevance.md): word bigrams gave no better ranking
# (lift 2.03 against 2.04 for words alone) at 3-4 times the cost; the title counted twice
# helps a little (2.05).
NGRAMS = (1, 1)
TITLE_WEIGHT = 2
MAX_DF = 1.0
# A token is a word of two or more letters or digits, with inner hyphens (state-of-the-art
# stays one term, as a reader would name it); scikit-learn's default drops the hyphens.
TOKEN_PATTERN = r"(?u)\b\w[\w-]*\w\b"


def paper_text(title: str, abstract: str = "") -> str:
    """The text a paper is represented by: its title TITLE_WEIGHT times, then its abstract."""
    return " . ".join([title] * TITLE_WEIGHT + [abstract])


@dataclass(frozen=True)
class TfidfSpace:
    """A TF-IDF vocabulary and idf fitted on one day's texts (its papers plus the profiles'
    seed texts), so a term's weight says how rare it is among what is compared today.

    Deterministic: the same texts give the same vectors, whatever their order.
    """

    vectorizer: TfidfVectorizer

    @classmethod
    def fit(cls, texts: Iterable[str], *, ngrams: tuple[int, int] = NGRAMS,
            min_df: int = 1, max_df: float = MAX_DF) -> TfidfSpace:
        """Fit on `texts` (e.g. paper_text of each paper and seed). English stop words
        removed, lowercased, sublinear tf (1 + log tf), smoothed idf; terms in more than
        `max_df` of the texts dropped."""
        return cls.fit_vectors(list(texts), ngrams=ngrams, min_df=min_df, max_df=max_df)[0]

    @classmethod
    def fit_vectors(cls, texts: Sequence[str], *, ngrams: tuple[int, int] = NGRAMS,
                    min_df: int = 1, max_df: float = MAX_DF
                    ) -> tuple[TfidfSpace, sparse.csr_matrix]:
        """fit() and vectors() of the same texts, each text read once: (space,
        (len(texts), n_terms) float32 CSR, rows L2-normalized)."""
        vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", ngram_range=ngrams,
                              min_df=min_df, max_df=max_df, token_pattern=TOKEN_PATTERN,
                              dtype=np.float32)
        # sorted and unique: the vocabulary, the idf and thus every vector do not depend on
        # the order of the texts or on a text given twice
        unique = sorted(set(texts))
        row = {t: i for i, t in enumerate(unique)}
        m = vec.fit_transform(unique).tocsr()
        return cls(vec), m[[row[t] for t in texts]] if texts else m

    def vectors(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """(len(texts), n_terms) float32 CSR, each row L2-normalized (a zero row for a text
        with no known term), so a dot product of two rows is their cosine."""
        return self.vectorizer.transform(texts).tocsr()

    @property
    def terms(self) -> np.ndarray:
        """The term of each column: (n_terms,) array of str."""
        return self.vectorizer.get_feature_names_out()
