"""The atom index: every atom of every rule, keyed by field, so one pass over a paper's
words finds all of them; and what one paper's scan found."""

from __future__ import annotations

from .. import rules as R
from ..models import Hit
from .plan import _TEXT_FIELDS


class _FieldIndex:
    """Every atom that searches one word field, keyed so one pass over the words finds them."""

    __slots__ = ("heads", "pairs", "prefix_lens", "prefixes", "words")

    def __init__(self) -> None:
        self.words: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.prefix_lens: list[int] = []
        # Phrases keyed by their first two words (all phrases have >= 2 words); a two-word
        # phrase ending in a prefix ("self-sup*") can only be keyed by its first word.
        self.pairs: dict[tuple[str, str], list[tuple[int, tuple[str, ...], bool]]] = {}
        self.heads: dict[str, list[tuple[int, tuple[str, ...], bool]]] = {}

    def add(self, atom: R.Atom, aid: int) -> None:
        if isinstance(atom, R.Word):
            self.words.setdefault(atom.word, []).append(aid)
        elif isinstance(atom, R.Prefix):
            self.prefixes.setdefault(atom.prefix, []).append(aid)
        elif isinstance(atom, R.Phrase):
            entry = (aid, atom.words, atom.prefix)
            if len(atom.words) == 2 and atom.prefix:
                self.heads.setdefault(atom.words[0], []).append(entry)
            else:
                self.pairs.setdefault(atom.words[:2], []).append(entry)

    def finish(self) -> None:
        self.prefix_lens = sorted({len(p) for p in self.prefixes})

    def scan(self, seqs: list[list[str]], vocab: dict[str, None], found: _Found, name: str) -> None:
        present = found.present
        words, prefixes, lens = self.words, self.prefixes, self.prefix_lens
        if lens:
            # `vocab` is in order of first occurrence, so the first word recorded for a prefix
            # is the one rules.explain reports.
            first = found.prefix_words[name]
            for w in vocab:
                ids = words.get(w)
                if ids:
                    present.update(ids)
                for n in lens:
                    if n > len(w):
                        break
                    ids = prefixes.get(w[:n])
                    if ids:
                        present.update(ids)
                        first.setdefault(w[:n], w)
        else:
            for w in vocab:
                ids = words.get(w)
                if ids:
                    present.update(ids)
        pairs, heads = self.pairs, self.heads
        if not (pairs or heads):
            return
        seen = found.phrase_texts[name]
        for seq in seqs:  # each title, abstract, author name alone: phrases never span two
            for i in range(len(seq) - 1):
                for candidates in (pairs.get((seq[i], seq[i + 1])), heads.get(seq[i])):
                    if candidates:
                        for aid, phrase, is_prefix in candidates:
                            if aid not in seen and _phrase_at(seq, i, phrase, is_prefix):
                                seen[aid] = '"' + " ".join(seq[i:i + len(phrase)]) + '"'
                                present.add(aid)


def _phrase_at(seq: list[str], i: int, phrase: tuple[str, ...], is_prefix: bool) -> bool:
    n = len(phrase)
    if i + n > len(seq):
        return False
    for k in range(2, n - 1):  # the first two words were the lookup key
        if seq[i + k] != phrase[k]:
            return False
    last = seq[i + n - 1]
    return last == phrase[-1] or is_prefix and last.startswith(phrase[-1])


class _ValueIndex:
    """Category or source atoms: whole normalized values and value prefixes."""

    __slots__ = ("prefix_lens", "prefixes", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.prefix_lens: list[int] = []

    def add(self, atom: R.Value, aid: int) -> None:
        (self.prefixes if atom.prefix else self.values).setdefault(atom.value, []).append(aid)

    def finish(self) -> None:
        self.prefix_lens = sorted({len(p) for p in self.prefixes})

    def scan(self, raw: list[str], values: list[str], found: _Found, name: str) -> None:
        present, first = found.present, found.value_raw[name]
        for v, original in zip(values, raw):
            ids = self.values.get(v)
            if ids:
                present.update(ids)
                first.setdefault((v, False), original)
            for n in self.prefix_lens:
                if n > len(v):
                    break
                ids = self.prefixes.get(v[:n])
                if ids:
                    present.update(ids)
                    first.setdefault((v[:n], True), original)


class _Found:
    """What one paper contains: the atoms present, and for explanations the text each was
    first found as, per field (a prefix's word, a phrase's words, a category as written)."""

    __slots__ = ("hits", "interned", "joined", "phrase_texts", "prefix_words", "present",
                 "value_raw", "vocab")

    def __init__(self, fields: R.Fields, interned: dict, joined: dict) -> None:
        # Shared by the batch: evidence -> one tuple of Hits; ids of parts -> their join.
        self.interned, self.joined = interned, joined
        # Only the distinct words are kept, not the word lists: a weekly digest matches
        # tens of thousands of papers in one batch.
        self.vocab = fields.vocab
        self.present: set[int] = set()
        self.hits: dict[int, tuple[Hit, ...]] = {}  # atom -> its hits, once asked
        self.prefix_words: dict[str, dict[str, str]] = {n: {} for n in _TEXT_FIELDS}
        self.phrase_texts: dict[str, dict[int, str]] = {n: {} for n in _TEXT_FIELDS}
        self.value_raw: dict[str, dict[tuple[str, bool], str]] = {
            n: {} for n in R.VALUE_FIELDS}
