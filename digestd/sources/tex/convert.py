"""One run of TeX as text: pylatexenc parses it, the node passes run, latex2text prints it;
TeX broken so that it would take the rest of the text is read again closed, or kept as
written."""

from __future__ import annotations

import functools
import re
import unicodedata

from pylatexenc import latexwalker

from ...text import normalize
from .formula import _UNESCAPED_BRACE
from .macros import _L2T, _PARSE_CONTEXT
from .nodes import _group_scripts, _space_signs


# In running text these are ordinary characters, not TeX's comment and alignment marks:
# "50% of" and "R&D" must stay. `#`, `^`, `_` and `~` are handled by the converter.
# (after a line break too: "a\\\\%" is a break and a percent sign, no comment)
_LITERAL = re.compile(r"(?<!\\)((?:\\\\)*)([%&])")

# Mathematical Alphanumeric Symbols (U+1D400-U+1D7FF, outside the Basic Multilingual Plane,
# which many mail fonts lack) as their plain letters and digits: pylatexenc writes \\mathbb{E}
# as U+1D53C; \\mathbb{R} stays ℝ (U+211D).
_PLAIN_LETTERS = {c: unicodedata.normalize("NFKC", chr(c)) for c in range(0x1D400, 0x1D800)}

# a macro's optional argument: "\\citep[", "\\sqrt[", "\\\\[" (a line break's space)
_OPTIONAL = re.compile(r"\\(?:[A-Za-z]+\*?|\\)\s*\[")
# \\verb and its delimiter, when it is one that can close it (no TeX's own character)
_VERB = re.compile(r"\\verb\*?(?:([^\sA-Za-z*\\{}%$&#^_~])|(?![A-Za-z]))")


# environments whose "&" aligns columns and whose "\\\\" ends a row (amsmath's, array's)
_ALIGNED = re.compile(
    r"(\\begin\s*\{(?:align|alignat|aligned|alignedat|eqnarray|flalign|array|subarray|split|"
    r"gathered|cases|dcases|rcases|matrix|pmatrix|bmatrix|Bmatrix|vmatrix|Vmatrix|smallmatrix)"
    r"\*?\})(.*?)(\\end\s*\{)", re.S)
_CELL = re.compile(r"(?<!\\)((?:\\\\)*)&")
_ROW_END = re.compile(r"(?<!\\)\\\\(?:\s*\[[^\]]*\])?")


def _rows(m: re.Match) -> str:
    """An aligned environment's body with its cells apart ("a &= b" is "a = b") and its rows
    one after another with "; " (a matrix "1 & 0 \\\\ 0 & 1" is "1 0; 0 1")."""
    rows = [_CELL.sub(r"\1 ", row).strip() for row in _ROW_END.split(m[2])]
    return m[1] + " " + "; ".join(row for row in rows if row) + " " + m[3]


# a macro's optional argument before its braced one; for a macro the converter does not know,
# it says how, not what: the text of "\\mycmd[opt]{arg}" is "arg" (no "\\" inside, so a
# "\\left[ x \\right]{" is no such argument)
_UNKNOWN_OPTIONAL = re.compile(r"\\([A-Za-z]+\*?)\s*\[[^\[\]{}$\\]*\](?=\s*\{)")
_NOT_OPTIONAL = frozenset(("left", "right", "middle", "big", "Big", "bigg", "Bigg", "bigl",
                           "Bigl", "biggl", "Biggl", "bigr", "Bigr", "biggr", "Biggr", "bigm",
                           "Bigm"))


def _known_options(fragment: str) -> str:
    """`fragment` without the optional arguments of macros the converter does not know."""
    def drop(m: re.Match) -> str:
        name = m[1].rstrip("*")
        if name in _NOT_OPTIONAL or _PARSE_CONTEXT.get_macro_spec(name) is not None:
            return m[0]
        return "\\" + name  # (its star too: a form of it, not text)
    return _UNKNOWN_OPTIONAL.sub(drop, fragment)


def _unopened(fragment: str) -> str:
    """`fragment` with a macro's "[" that is never closed as a bracket after it ("a\\\\[b" is
    a line break and "[b", not a line break whose space is the rest of the text), as is a
    \\verb's delimiter that never comes again."""
    if "[" in fragment:
        closing = fragment.rfind("]")  # (the "{}" go in after it: it stays where it is)
        for m in reversed(list(_OPTIONAL.finditer(fragment))):
            if closing < m.end():
                fragment = fragment[:m.end() - 1] + "{}" + fragment[m.end() - 1:]
    if "\\verb" in fragment:
        fragment = _VERB.sub(lambda m: m[0] if m[1] and fragment.find(m[1], m.end()) >= 0
                             else m[1] or "", fragment)
    return fragment


_WORD_END = re.compile(r"[\s$]")


def _closed_at_word_ends(fragment: str) -> str:
    """`fragment` with each "{" that is never closed closed where its word ends: "\\cite{x and
    the rest" is "\\cite{x} and the rest", not a citation of the whole abstract."""
    opened = []
    for m in _UNESCAPED_BRACE.finditer(fragment):
        if m[0][-1] == "{":
            opened.append(m.end())
        elif opened:
            opened.pop()
    cuts = []
    for at in opened:
        end = _WORD_END.search(fragment, at)
        cut = end.start() if end is not None else len(fragment)
        while cut > at and fragment[cut - 1] == "\\":  # not inside "\\$" or "\\ "
            cut -= 1
        cuts.append(cut)
    cuts.sort()
    return "".join(fragment[a:b] + "}" for a, b in zip([0, *cuts], cuts)) + fragment[
        cuts[-1] if cuts else 0:]


def _converted(fragment: str) -> str | None:
    """pylatexenc's text of `fragment`, or None where it fails."""
    if "&" in fragment and "\\begin" in fragment:
        fragment = _ALIGNED.sub(_rows, fragment)
    if "[" in fragment:
        fragment = _known_options(fragment)
    prepared = _LITERAL.sub(r"\1\\\2", fragment)
    try:
        nodes = latexwalker.LatexWalker(prepared, latex_context=_PARSE_CONTEXT,
                                        tolerant_parsing=True).get_latex_nodes()[0]
        _group_scripts(nodes)
        _space_signs(nodes)
        return _L2T.nodelist_to_text(nodes).translate(_PLAIN_LETTERS)
    except Exception:  # noqa: BLE001 (a third-party parser on hostile text: keep the original)
        return None


@functools.lru_cache(maxsize=8192)  # a feed repeats its TeX: names, units, symbols
def _convert(fragment: str) -> str:
    """One run of TeX (_tex_spans) as text. TeX broken so that the converter reads it as
    taking the rest of the text (an argument, a comment, a formula never closed) is read
    again with its groups closed at their words' ends, and else kept as written: the words
    that end the run are in what it gives."""
    fragment = _unopened(fragment)
    text = _converted(fragment)
    if text is not None and _keeps(text, _tail_words(fragment)):
        return text
    if fragment.count("{") > fragment.count("}"):
        closed = _closed_at_word_ends(fragment)
        text = _converted(closed)
        if text is not None and _keeps(text, _tail_words(closed)):
            return text
    return fragment


def _keeps(text: str, words: list[str]) -> bool:
    """Whether `text` holds every one of the (normalized) `words`."""
    if not words:
        return True
    seen = normalize(text)
    return all(word in seen for word in words)


_TAIL_WORD = re.compile(r"[A-Za-z]+")
_CONTROL_WORD_START = re.compile(r"[A-Za-z]+")
_OPTIONAL_AFTER = re.compile(r"^\*?\s*\[[^\]]*\]")


def _tail_words(fragment: str) -> list[str]:
    """The words of plain text that end `fragment`, after its last control word, brace or
    dollar (normalized): a conversion that keeps the text keeps them."""
    cut = max(fragment.rfind("\\"), fragment.rfind("{"), fragment.rfind("}"),
              fragment.rfind("$"))
    rest = fragment[cut + 1:]
    if cut >= 0 and fragment[cut] == "\\":
        # the control word's own letters, and the optional argument it takes ("\\foo[x]")
        rest = _CONTROL_WORD_START.sub("", rest, count=1)
        rest = _OPTIONAL_AFTER.sub("", rest, count=1)
    return [normalize(w) for w in _TAIL_WORD.findall(rest)]
