"""TeX as a reader sees it (arXiv writes titles, abstracts and names in TeX): accents and
symbols in Unicode, math as readable text, TeX's typography as the characters it prints.
Converted with pylatexenc's latex2text, run only on the parts that hold TeX."""

from __future__ import annotations

from ...text import collapse
from .convert import _convert
from .defined import expand_definitions
from .macros import _GONE
from .spans import _TEX_HINT, _literal_braces, _tex_spans
from .typography import _ABOUT, _GONE_AROUND, _GONE_RUN, _TIE, _URL, _protect_money, _typography


def tex_to_text(text: str) -> str:
    """TeX as a reader sees it: accents and symbols in Unicode, math as readable text.

    `Bj\\"orn` -> `Björn`, `$\\Lambda$CDM` -> `ΛCDM`, `$\\sqrt{s} = 13$` -> `√(s) = 13`,
    `{\\it x}` -> `x`, `Fig.~3` -> `Fig. 3`; operator names are words (`$n\\log n$` ->
    `n log n`, `$x\\pmod{p}$` -> `x (mod p)`), scripts are Unicode's where it has them
    (`$e^+e^-$` -> `e⁺e⁻`, every transpose `$X^T$`, `$A^\\top$` -> `Xᵀ`, `Aᵀ`), else TeX's,
    of more than one term in parentheses (`$n^{1/3}$` -> `n^(1/3)`, and `n^{1/3}` without
    dollars too, while a plain `a_b` stays), a sign with another over it as MathML's
    <mover> reads (`$\\overset{d}{\\to}$` -> `→ᵈ`; `$\\stackrel{\\text{def}}{=}$` -> `≝`),
    norms hold their content (`$\\| x \\|$` -> `‖x‖`), roots with an index read as MathML's
    (`$\\sqrt[3]{x}$` -> `∛x`), and letters outside the Basic Multilingual
    Plane are plain (`$\\mathbb{E}$` -> `E`; `$\\mathbb{R}$` stays `ℝ`). Converted with
    pylatexenc's latex2text, run only on the parts that hold TeX; `%` and `&` stay literal,
    and dollars that read as money are not math; references and citations go with the
    brackets around them. Strings without `\\`, `$`, `{` or a tie are returned as they are
    (the common case costs one scan). Never raises, and never loses the text after broken
    TeX: a group or formula never closed ends with its word or its formula, and a fragment
    the converter cannot read is kept as written.
    """
    tilde = "~" in text
    if tilde:  # a "~" that is a character is held as \x03 while pylatexenc reads the text
        text = _URL.sub(lambda m: m[0].replace("~", "\x03"), text.replace("\\~{}", "\x03"))
        text = _ABOUT.sub("\x03", _TIE.sub(" ", text))
    text = _typography(text)
    if not _TEX_HINT.search(text):
        return text.replace("\x03", "~") if tilde else text
    # macros the text defines for itself, expanded first (their uses may be in any span)
    prepared = _literal_braces(_protect_money(expand_definitions(text)))
    out, last = [], 0
    for start, end in _tex_spans(prepared):
        out.append(prepared[last:start])
        out.append(_convert(prepared[start:end]))
        last = end
    out.append(prepared[last:])
    text = "".join(out).replace("\x02", "")
    if _GONE in text:
        text = _GONE_AROUND.sub("", _GONE_RUN.sub(_GONE, text))
    text = collapse(text)
    return text.replace("\x03", "~") if tilde else text
