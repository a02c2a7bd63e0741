"""Text normalization shared by every side: sources clean with it, rules and matching compare with it."""

from __future__ import annotations

import html
import re
import unicodedata

_WS = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]{0,2000}>")
# A word is a maximal run of Unicode letters and digits (RULES.md, "Words").
_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """NFKD, drop combining marks, casefold: the form in which all text is compared."""
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed.casefold()
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold()


def words(text: str) -> list[str]:
    """The normalized words of `text`, in order."""
    return _WORD.findall(normalize(text))


def title_key(title: str) -> str:
    """The last-resort identity of a paper across sources: its normalized title words."""
    return "title:" + " ".join(words(title))


def collapse(text: str) -> str:
    """Collapse runs of whitespace (line breaks included) into one space and strip."""
    return _WS.sub(" ", text).strip()


def clean(text: str | None, *, strip_tags: bool = False) -> str:
    """Clean text at the edge: optional tag stripping, entities decoded, whitespace collapsed."""
    if not text:
        return ""
    if strip_tags and "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return collapse(text)
