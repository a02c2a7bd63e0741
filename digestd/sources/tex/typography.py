"""The plain text around TeX, before and after the converter reads it: dollars that are
money and not math, TeX's typography in running text (dashes, quotes, a degree sign, the
word macros), ties and the "~" that is a character, and where a reference or a citation was."""

from __future__ import annotations

import re


# A pair of dollars is math unless it reads as money: "$5 and $10" (content starts with a digit
# and ends with a space, or the closing dollar runs into a digit).
_ADJACENT = re.compile(r"(?<=[^\s$])\$\$(?=[^\s$])")
_CONTROL_WORD = re.compile(r"\\[A-Za-z]")
_DOLLARS = re.compile(r"\$\$?([^$]{0,1000}?)\$\$?")


def _protect_money(text: str) -> str:
    text = text.replace("\\$", "\x00")  # an escaped dollar is no delimiter
    if "$$" in text:  # "$\\alpha$$\\beta$": two formulas side by side, not display math
        text = _ADJACENT.sub("$\x02$", text)
    out, last, at = [], 0, 0
    while (m := _DOLLARS.search(text, at)) is not None:
        body = m[1]
        after = text[m.end():m.end() + 1]
        # "$\\sim$100" is math before a number; a control symbol ("50\\%", "R\\&D", "i.e.\\ ")
        # is no sign of math in "$10 (a 50\\% cut) for $n$"
        texish = any(c in body for c in "^_{}") or _CONTROL_WORD.search(body) is not None
        # money starts with a number ("$5 and $10"); "$>$5" and "$-$0.5" are math
        money = not body.strip() or (not texish and body[:1].isdigit() and (
            after.isdigit() or body[-1:].isspace()))
        if money:
            # only this dollar is money: the one that seemed to close it may open math
            # ("costs $5 per unit, where $c$ is the cost")
            at = m.start() + 1
            continue
        out.append(text[last:m.start()].replace("$", r"\$"))
        out.append(m[0])
        last = at = m.end()
    out.append(text[last:].replace("$", r"\$"))
    return "".join(out).replace("\x00", r"\$")


# TeX's typography in running text: quotes, dashes, a degree sign written as math
# "--" and "---" between words or numbers; an option ("--help", " --no-cache") stays
_DASHES = re.compile(r"(?<!-)-{2,3}(?!-)")
_BEFORE_OPTION = frozenset(" \t\n`'\"(“‘[")
# not every '': f''(x) is a second derivative; not \` either: that is a grave accent (\`a)
_QUOTES = re.compile(r"(?<!\\)``(.{0,300}?)''")
_SINGLE_QUOTES = re.compile(r"(?<![`\w\\])`([^`'\n\\]{1,80})'(?!\w)")
_DEGREE = re.compile(r"\$\^\{?\\circ\}?\$|\^\{?\\circ\}?|\\textdegree(?:\{\})?")

# A control word that writes a word ("\\TeX and"): TeX eats the space after it, a reader
# does not
_WORD_MACRO = re.compile(r"\\(TeX|LaTeX|LaTeXe|BibTeX|ldots|dots|etc)\b(?:\{\})?(?=\s)")


def _dash(m: re.Match) -> str:
    text, start, end = m.string, m.start(), m.end()
    before, after = text[start - 1:start], text[end:end + 1]
    if (not before or before in _BEFORE_OPTION) and after.isalpha():
        return m[0]  # a command-line option
    if not (before.isalnum() and after.isalnum() or before.isspace() and after.isspace()
            or before.isalnum() and after == "$" or before == "$"):
        return m[0]  # "i--", "--)": code, not a dash
    space = text.find(" ", end)
    word = text[text.rfind(" ", 0, start) + 1:space if space >= 0 else len(text)]
    if "/" in word or "@" in word or word.startswith("xn--"):
        return m[0]  # in a URL, an address, a host: github.com/foo/bar--baz, user@x--y.org
    return "—" if end - start == 3 else "–"


def _typography(text: str) -> str:
    # one-character tests first: memchr, where a "--" or "circ" search scans the text slower
    if "-" in text and "--" in text:
        text = _DASHES.sub(_dash, text)
    if "`" in text:
        text = _SINGLE_QUOTES.sub(r"‘\1’", _QUOTES.sub(r"“\1”", text))
    if "\\" in text:
        if "circ" in text or "textdegree" in text:
            text = _DEGREE.sub("°", text)
        if "TeX" in text or "dots" in text or "etc" in text:
            text = _WORD_MACRO.sub(lambda m: {"ldots": "…", "dots": "…", "LaTeXe": "LaTeX2e"}
                                   .get(m[1], m[1]), text)
    return text


# TeX's tie (a space that does not break) inside a phrase, "Fig.~3"; "~100" (about 100) stays.
# (after a digit only before a letter: "10~K"; "3~5%" is a range)
_TIE = re.compile(r"(?<=[A-Za-z.])~(?=[A-Za-z0-9(\[])|(?<=\d)~(?=[A-Za-z])")
# ... and stays in TeX too ("(~10\\%)", "3~5\\%"), where pylatexenc would print a space
_ABOUT = re.compile(r"(?:(?<![^\s(\[])|(?<=\d))~(?=\d)")


# A URL, bare or a \\url's or \\href's: its "~" is a character ("https://x.org/~user"), not
# TeX's tie, which pylatexenc prints as a space
_URL = re.compile(r"(?:https?|ftp)://[^\s{}]+|\\(?:url|href)\{[^{}\s]+\}|\bwww\.[^\s{}]+"
                  r"|(?<![^\s{(\[])~/")  # and a path in a home directory, "~/.config"

# where a reference or a citation was (_GONE): with the brackets around it, and the space
# before it when punctuation follows ("Eq. (\\ref{x})", "as in~\\cite{y}, we")
# (each starts where a run of spaces does, and runs of them are one first: no scan twice)
_GONE_RUN = re.compile(r"\x04(?:\s*\x04)+")
_GONE_AROUND = re.compile(r"(?<!\s)\s*[(\[]\s*(?:\x04[\s,;~]*)+[)\]]"
                          r"|(?<!\s)\s*\x04(?=\s*[,.;:!?)\]])|\x04")
