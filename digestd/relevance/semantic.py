"""Optional dense embeddings (`pip install 'digestd[semantic]'`): WordLlama, whose weights and
tokenizer ship inside its wheel, loaded so that nothing is ever fetched from a model hub."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DigestdError

MODEL = "l2_supercat"  # the configuration whose files are in the wheel (wordllama/weights/)
DIM = 256
MODEL_KEY = f"wordllama/{MODEL}/{DIM}"  # what a stored vector was made with (seed_vectors)


def available() -> bool:
    """Whether the semantic extra is installed."""
    try:
        import wordllama  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _model():
    # Set before the import: huggingface_hub and tokenizers read these when loaded, and
    # tokenizers' from_pretrained (wordllama's fallback for a missing tokenizer file) would
    # otherwise go to the hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError:
        raise DigestdError("semantic ranking needs the extra: pip install 'digestd[semantic]'"
                           ) from None
    try:
        # The files must be the wheel's own. wordllama 0.4 looks for them in its package
        # directory, then in cache_dir (~/.cache/wordllama), then downloads them with
        # `requests` (which HF_HUB_OFFLINE does not stop); its package-directory lookup
        # misses the tokenizer (it looks in tokenizer/, the wheel has tokenizers/), so the
        # default load downloads it. Naming the package directory as the cache finds both
        # files, and disable_download turns any miss into an error instead of a fetch.
        package = Path(wordllama.__file__).resolve().parent
        return WordLlama.load(MODEL, dim=DIM, cache_dir=package, disable_download=True)
    except FileNotFoundError as e:
        raise DigestdError(f"the semantic model's files are missing from the wordllama "
                           f"package ({e}); reinstall digestd[semantic]") from None


@dataclass(frozen=True)
class SemanticSpace:
    """WordLlama embeddings: (n, DIM) float32 rows, L2-normalized, so dot = cosine.

    Nothing is fitted: the same text gives the same vector on every day."""

    @classmethod
    def load(cls) -> SemanticSpace:
        """Load the model from the installed wheel (about 0.1 s, once per process); raises
        DigestdError when the extra is not installed."""
        _model()
        return cls()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), DIM) float32, rows L2-normalized (zero rows for empty texts)."""
        if not texts:
            return np.zeros((0, DIM), np.float32)
        emb = np.asarray(_model().embed(list(texts), norm=True), dtype=np.float32)
        return emb
