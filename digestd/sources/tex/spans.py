"""Where the TeX is in a text: the runs the converter needs to see (_tex_spans), and which
parts of them are math, whose formulas are made ready (formula) while the rest keeps the
braces a reader sees."""

from __future__ import annotations

import re

from .formula import _math


_TEX_HINT = re.compile(r"[\\${]")

# A brace group outside math, after a space (no macro's argument), with no TeX in it and
# a set's or a map's punctuation: "{0,1}^n", "{a|b}" are braces a reader sees; "{GPU}s",
# "{C++}", "{\\em x}" and "\\url{...}" are TeX's.
_LITERAL_BRACES = re.compile(r"(?<![^\s(\[,;:])\{([^{}\\$]*[,|;:=][^{}\\$]*)\}")

# what opens and closes math: a dollar or two (unescaped), \\( \\), \\[ \\] and a math
# environment's \\begin and \\end
_MATH_ENVIRONMENT = (r"\\(?:begin|end)\s*\{(?:equation|align|gather|multline|displaymath|math|"
                     r"eqnarray|flalign|alignat)\*?\}")
_MATH_DELIMITER = re.compile(rf"((?<!\\)\$\$?|(?<!\\)\\[()\[\]]|{_MATH_ENVIRONMENT})")
_MATH_CLOSES = {"$": "$", "(": ")", "[": "]", "b": "e"}


def _kind(delimiter: str) -> str:
    """A math delimiter (_MATH_DELIMITER) as one character: $ ( ) [ ], b(egin) or e(nd)."""
    return "$" if delimiter[0] == "$" else delimiter[1]


def _literal_braces(prepared: str) -> str:
    """Outside math (between unescaped dollars, \\( and \\), \\[ and \\], or in no math
    environment), brace groups a reader sees as braces are escaped for the converter, which
    keeps them: "{0,1}^n" stays, "{GPU}s" is "GPUs". Math is made ready for it (_math)."""
    if "{" not in prepared and "}" not in prepared and "_" not in prepared and (
            "^" not in prepared and "|" not in prepared and "''" not in prepared
            and "Vert" not in prepared and "\\(" not in prepared and "\\[" not in prepared):
        return prepared
    pieces = _MATH_DELIMITER.split(prepared)
    last = {_kind(d): i for i, d in enumerate(pieces) if i % 2}  # where each kind is last
    math = ""  # the delimiter that opened the math we are in
    for i, piece in enumerate(pieces):
        if i % 2:
            kind = _kind(piece)
            if not math and kind in "$([b":
                if kind != "$" and last.get(_MATH_CLOSES[kind], -1) < i:
                    # a \\( or \\[ that nothing closes is a bracket, as a lone $ is a dollar
                    pieces[i] = piece[1] if kind != "b" else ""
                    continue
                math = kind
            elif math and kind == _MATH_CLOSES[math]:  # (only the one that closes it)
                math = ""
        elif not math and "{" in piece:
            pieces[i] = _LITERAL_BRACES.sub(r"\\{\1\\}", piece)
        elif math:
            pieces[i] = _math(piece)
    return "".join(pieces)


_TOKEN = re.compile(r"\S+")
# A token that ends in a control sequence takes the next token as its argument: "\\frac {1}{2}",
# "Fran\\c cois", "Mu\\~ noz".
_OPEN_MACRO = re.compile(r"\\(?:[A-Za-z]+|[^A-Za-z\s])$")
_ESCAPES = re.compile(r"\\[\\{}$]")

_MATH_OPEN_CLOSE = re.compile(rf"(?<!\\)\\([()\[\]])|({_MATH_ENVIRONMENT})")
_OPTIONAL_OPEN = re.compile(r"\\[A-Za-z]+\*?\[[^\]]*$")
# \verb and its delimiter: "\verb|a b|" is one run of TeX although it holds a space
_VERB_OPEN = re.compile(r"\\verb\*?([^\sA-Za-z*])")


def _verb_left_open(token: str, verb: str) -> str:
    """The delimiter of a \\verb that `token` leaves open ("" for none), `verb` the one
    open before it."""
    at = 0
    if verb:
        close = token.find(verb)
        if close < 0:
            return verb
        at = close + 1
    while (m := _VERB_OPEN.search(token, at)) is not None:
        close = token.find(m[1], m.end())
        if close < 0:
            return m[1]
        at = close + 1
    return ""


def _tex_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the runs of `text` that hold TeX: whitespace-separated tokens with
    `\\`, `$` or `{`, extended while a brace group, a math span ($, \\(, \\[ or a math
    environment) or a macro's optional argument ("\\citep[p.~3]{x}") is open. The rest is
    plain text that the converter never needs to see (most of an abstract); a \\verb's text
    is in its run."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    depth, math, optional, verb = 0, False, 0, ""
    for m in _TOKEN.finditer(text):
        token = m[0]
        if start is None:
            if not _TEX_HINT.search(token):
                continue
            start = m.start()
        if verb or "\\verb" in token:
            verb = _verb_left_open(token, verb)
            if verb:
                continue
        bare = _ESCAPES.sub("", token)
        depth += bare.count("{") - bare.count("}")
        if bare.count("$") % 2:
            math = not math
        if "\\" in bare and ("\\(" in bare or "\\[" in bare or "\\)" in bare or "\\]" in bare
                             or "\\begin" in bare or "\\end" in bare):
            for d in _MATH_OPEN_CLOSE.finditer(bare):  # \\( ... \\), \\[ ... \\], environments
                math = d[1] in "([" if d[1] else d[0].startswith("\\b")
        # a macro's optional argument, "\\citep[p.~3]{x}", "\\sqrt[n + 1]{x}", to its "]"
        if optional or _OPTIONAL_OPEN.search(bare):
            optional = max(0, optional + bare.count("[") - bare.count("]"))
        if depth <= 0 and not math and not optional and not _OPEN_MACRO.search(bare):
            spans.append((start, m.end()))
            start, depth = None, 0
    if start is not None:
        spans.append((start, len(text)))
    return spans
