"""One formula's TeX made ready for the converter: its braces balanced, bars and norms
around what they hold, a transpose in one spelling, TeX's old font switches out, and its
scripts in Unicode where Unicode has every character of them."""

from __future__ import annotations

import re

from ..mathml import unicode_script
from .macros import _ENDS_IN_WORD, _RENDER_CONTEXT


def _math(piece: str) -> str:
    """One formula's TeX made ready for the converter: its braces balanced, so an unclosed
    group ends with the formula and not with the abstract ("$\\frac{1}{2$ of runs"); a
    double prime, f''(x), no quote; bars and norms close around what they hold ("‖x‖");
    a transpose's superscript in one spelling ("ᵀ"), and scripts in Unicode where it has
    them (_math_scripts)."""
    if "{" in piece or "}" in piece:
        piece = _balanced(piece)
    if "''" in piece:
        piece = piece.replace("''", "″")  # a double prime, f''(x), not a quote
    if "|" in piece or "Vert" in piece:
        piece = _tight_bars(piece)
    if "_" in piece or "^" in piece:
        if "\\" in piece:
            piece = _FONT_SWITCH.sub("", piece)
        if "^" in piece and ("T" in piece or "\\top" in piece or "\\intercal" in piece):
            piece = _TRANSPOSED.sub(lambda m: "^{" + (m[1] or "") + "\\top}", piece)
        piece = _math_scripts(piece)
    return piece


_UNESCAPED_BRACE = re.compile(r"(?<!\\)(?:\\\\)*[{}]")


def _balanced(piece: str) -> str:
    """`piece` with a "}" that closes no group dropped and a group left open closed at its
    end."""
    depth, out, last = 0, [], 0
    for m in _UNESCAPED_BRACE.finditer(piece):
        if m[0][-1] == "{":
            depth += 1
        elif depth:
            depth -= 1
        else:  # a "}" that closes nothing
            out.append(piece[last:m.end() - 1])
            last = m.end()
    out.append(piece[last:])
    return "".join(out) + "}" * depth


# A transpose written as a superscript: X^T, W^{T}, A^{\\top}, X^\\intercal, X^{\\mathsf{T}},
# X^{\\rm T}, A^{-T}, A^{\\mkern-1.5mu\\mathsf{T}}: all "ᵀ" (a capital T has a Unicode
# superscript only as this modifier letter, U+1D40, which \\top already printed)
_T_STYLE = (r"(?:\\(?:mathsf|mathrm|mathbf|mathit|mathnormal|textsf|textrm|textnormal|text|rm|"
            r"sf|bf|it|scriptscriptstyle|scriptstyle|displaystyle|textstyle|mathstrut|!|,)"
            r"(?![A-Za-z])\s*|\\mkern\s*-?[\d.]+\s*mu\s*)")
_T_MARK = r"(?:T|\\top(?![A-Za-z])|\\intercal(?![A-Za-z]))"
_TRANSPOSED = re.compile(
    rf"(?<!\\)\^\s*(?:\{{\s*(-|−)?\s*{_T_STYLE}*(?:{_T_MARK}|\{{\s*{_T_STYLE}*{_T_MARK}\s*\}})"
    rf"\s*\}}|\\(?:mathsf|mathrm|textsf|text)\s*\{{\s*{_T_MARK}\s*\}}|{_T_MARK})")

# a bar or a norm's double bar, not a control word's end (\\left| and \\right| are bars too)
_BARS = re.compile(r"\\\||(?<!\\)\|")


def _pairs_balanced(text: str) -> bool:
    """Whether every bracket in `text` closes one opened in it."""
    depth = 0
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _tight_bars(piece: str) -> str:
    """Bars and double bars that pair up in a formula hold their content without spaces:
    "$\\| x \\|$" and "$| x |$" are "‖x‖" and "|x|", as TeX prints them. Two bars pair when
    what is between them is balanced, so a conditional's bar, "p(a | b) p(c | d)", keeps its
    spaces. \\Vert is written \\| for it."""
    piece = re.sub(r"\\Vert(?![A-Za-z])", r"\\|", piece)
    found = list(_BARS.finditer(piece))
    if len(found) < 2:
        return piece
    out, last, k = [], 0, 0
    while k + 1 < len(found):
        one, two = found[k], found[k + 1]
        inside = piece[one.end():two.start()]
        if one[0] != two[0] or len(inside) > 300 or not inside.strip() or not _pairs_balanced(
                inside):
            k += 1
            continue
        before = piece[last:one.start()]
        if one[0] == "\\|" and before[-1:].isspace():
            # the author's space before a norm, which pylatexenc drops between two macros
            # ("\\mathbb{E}_{x} \\|f\\|" is "E_x ‖f‖"): a control space, which it prints
            before = before.rstrip() + "\\ "
        out += [before, one[0], inside.strip()]
        last = two.start()
        k += 2
    out.append(piece[last:])
    return "".join(out)


# TeX's old font switches, which style what follows in their group and print nothing: in a
# script, "T_{\rm c}" is T_c ("T_ c" before), "E_{\rm F}" E_F, "x_{\rm max}" x_max.
_FONT_SWITCH = re.compile(r"\\(?:rm|it|bf|sf|tt|sl|cal|mit|bm|boldmath)(?![A-Za-z])\s*")

# In math, a sub- or superscript whose every character Unicode has as one: "H_2O", "^{12}C",
# "x^{2n+1}", "2^{n-1}", "e^+e^-", "\\mu^{\\pm}" are printed H₂O, ¹²C, x²ⁿ⁺¹, 2ⁿ⁻¹, e⁺e⁻, μ± (what
# a journal's MathML gives too, so both spell the title alike); "W^{1,p}" and "T_{\\rm c}"
# (T_c) stay TeX's. A control word in a script is the character pylatexenc prints for it.
_MATH_SCRIPT = re.compile(r"(?<!\\)([_^])(?:\{((?:[^{}\\$^_]|\\[A-Za-z]+){1,24})\}"
                          r"|([A-Za-z0-9+*-]|\\[A-Za-z]+))")
_SYMBOL = re.compile(r"\\([A-Za-z]+)")
# Marks that print high already stay as they are in a superscript: x^* is x*, f^\\prime f′,
# U^\\dagger U†, A^\\top Aᵀ, K^{*0} K*⁰. A charge has no superscript in Unicode: W^\\pm is W±
# alone, but x^{n\\pm 1} stays TeX's.
_RAISED = frozenset("*∗⋆′″†‡ᵀ")
_CHARGES = frozenset("±∓")
_TRANSPOSE = {"top": "ᵀ", "intercal": "ᵀ"}


def _symbol(m: re.Match) -> str:
    """The one character pylatexenc prints for a control word, or NUL if it prints no
    single character of its own (\\text, \\frac, an unknown macro)."""
    if m[1] in _TRANSPOSE:
        return _TRANSPOSE[m[1]]
    spec = _RENDER_CONTEXT.get_macro_spec(m[1])
    repl = spec.simplify_repl if spec is not None else None
    return repl if isinstance(repl, str) and len(repl) == 1 and repl != "%" else "\x00"


def _superscript(body: str) -> str | None:
    """`body` as a superscript in Unicode (marks that print high kept as they are), or
    None when one of its characters has none."""
    if not _CHARGES.isdisjoint(body):
        return body if set(body) <= _CHARGES | _RAISED else None
    done = [c if c in _RAISED else unicode_script(c, up=True) for c in body]
    return None if None in done else "".join(done)


def _math_scripts(math: str) -> str:
    """The scripts of one formula in Unicode where it has every character of them."""
    def one(m: re.Match) -> str:
        body = (m[2] if m[2] is not None else m[3]).replace(" ", "")
        if "\\" in body:
            body = _SYMBOL.sub(_symbol, body)
        if not body:
            done = ""
        else:
            done = _superscript(body) if m[1] == "^" else unicode_script(body, up=False)
        if done is None:
            # one letter or digit without braces is its script all the same: "V^HV" is
            # V^H V, as "V^{H}V" is (_group_scripts)
            return f"{m[1]}{{{m[3]}}}" if m[3] is not None and m[3].isalnum() else m[0]
        # after a control word ("\\sum_{i=1}") an empty group ends its name
        return "{}" + done if _ENDS_IN_WORD.search(math, 0, m.start()) else done
    return _MATH_SCRIPT.sub(one, math)
