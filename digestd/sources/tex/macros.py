"""pylatexenc's contexts for digestd: the macros papers use that it does not know or renders
unhelpfully (URLs, references, operator names, fractions, roots, stacked signs, scripts,
symbols), their handlers and tables, and the converter built on them."""

from __future__ import annotations

import re
import unicodedata

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from ..mathml import root, script, unicode_script


def _href(node, l2tobj) -> str:
    args = [a for a in node.nodeargd.argnlist if a is not None] if node.nodeargd else []
    texts = [l2tobj.nodelist_to_text([a]).strip() for a in args]
    if len(texts) == 2 and texts[1] and texts[1] != texts[0]:
        return f"{texts[1]} ({texts[0]})"
    return texts[0] if texts else ""


# Letter styles that pylatexenc writes as Mathematical Alphanumeric Symbols (U+1D400...), which
# many mail fonts lack: a reader gets the plain letters.
_PLAIN_STYLES = ("mathcal", "mathscr", "mathfrak", "mathbf", "mathit", "mathsf", "mathtt",
                 "boldsymbol", "bm", "mathrm")


# Text-mode macros whose argument is plain text to keep (pylatexenc drops some of them).
_KEEP_TEXT = ("texttt", "textsc", "textsf", "textup", "textmd", "textrm", "textsl", "textnormal",
              "mbox", "hbox", "fbox", "text", "textit", "textbf", "emph", "underline")


# macros whose argument is text even in math: a "_" in it is no script
_TEXT_ARGS = frozenset(("url", "href", *_KEEP_TEXT))


# TeX's operator names (The TeXbook, chapter 18, and amsmath's \\injlim, \\projlim) print as
# words; pylatexenc drops half of them and glues the rest to the letter before ("nlog n").
_OPERATORS = {name: name for name in (
    "arccos", "arcsin", "arctan", "arg", "cos", "cosh", "cot", "coth", "csc", "deg", "det", "dim",
    "exp", "gcd", "hom", "inf", "ker", "lg", "lim", "ln", "log", "max", "min", "Pr", "sec", "sin",
    "sinh", "sup", "tan", "tanh")}
_OPERATORS.update(liminf="lim inf", limsup="lim sup", injlim="inj lim", projlim="proj lim")
# after an operator these print no letter of their own: "\\log\\left(n\\right)" is log(n)
_NOT_OPERAND = frozenset(("left", "right", "big", "Big", "bigg", "Bigg", "bigl", "Bigl", "biggl",
                          "Biggl", "limits", "nolimits"))
_NEXT_WORD = re.compile(r"\\([A-Za-z]+)")
# a control word that ends the text before a point: "\\alpha" in "\\alpha\\log", "\\sum" in
# "\\sum_{i=1}"
_ENDS_IN_WORD = re.compile(r"\\[A-Za-z]+$")


def _prints_word(name: str) -> bool:
    """Whether the control word `name` prints a letter or a word (\\alpha, \\log), not a
    relation or an operator sign (\\le, \\times)."""
    spec = _RENDER_CONTEXT.get_macro_spec(name)
    repl = spec.simplify_repl if spec is not None else None
    return name in _OPERATORS or isinstance(repl, str) and repl[-1:].isalnum()


def _letter_before(s: str, pos: int) -> bool:
    """Whether what TeX prints just before `pos` in `s` is a letter, a digit or a closing
    bracket: an operator name after it is a word of its own, as TeX spaces it ("n log n")."""
    end = pos
    while end and s[end - 1] in " \t\n":  # "\alpha \log n": the space after a control
        end -= 1                           # word is not printed
    word = _ENDS_IN_WORD.search(s, max(0, end - 40), end)
    if word is not None:
        return _prints_word(word[0][1:])
    before = s[end - 1:end]  # "^{N} \log p": the space before it is not printed either
    return before.isalnum() or before in ")]}"


def _operand_after(s: str, pos: int) -> bool:
    """Whether a letter, a digit, a bar or a control word that prints one comes at `pos` in
    `s` (spaces skipped): TeX puts a space between an operator name and it ("sin x",
    "det A"), not before "(", "_", "^" or punctuation."""
    rest = s[pos:pos + 40].lstrip()
    if rest[:1].isalnum():  # a letter or digit, not a script made of them ("argminₓ f")
        return unicodedata.category(rest[0]) not in ("Lm", "No")
    if rest[:1] == "|":  # "\\log|x|" is log |x|
        return True
    word = _NEXT_WORD.match(rest)
    return word is not None and word[1] not in _NOT_OPERAND


def _word_after(s: str, pos: int) -> bool:
    """Whether a letter, a digit, a control word that prints one or one that takes an
    argument (\\frac, \\mathbf) comes at `pos` in `s` (spaces skipped)."""
    rest = s[pos:pos + 40].lstrip()
    if rest[:1].isalnum():
        return unicodedata.category(rest[0]) not in ("Lm", "No")
    word = _NEXT_WORD.match(rest)
    if word is None or word[1] in _NOT_OPERAND:
        return False
    spec = _PARSE_CONTEXT.get_macro_spec(word[1])
    return _prints_word(word[1]) or spec is not None and "{" in getattr(
        spec.args_parser, "argspec", "")


def _operator(node, l2tobj) -> str:
    """An operator name (\\log, \\operatorname{tr}, \\operatorname*{argmin}) as its word,
    with a space on each side where TeX prints one."""
    s, start, end = node.parsing_state.s, node.pos, node.pos + node.len
    if node.macroname == "operatorname":
        word = l2tobj.node_arg_to_text(node, 1).strip()
    else:
        word = _OPERATORS[node.macroname]
    return (" " if _letter_before(s, start) else "") + word + (
        " " if _operand_after(s, end) else "")


_COMPOUND = re.compile(r"[\s+\-−*/·×=<>,±∓]")


def _fraction(node, l2tobj) -> str:
    """\\frac{a}{b} as "a/b", a part of more than one term in parentheses ("1/(1+z)"), and a
    denominator that is a number times more ("1/(2π)", "t²/(2σ²)", not "t²/2σ²")."""
    parts = []
    for i in (0, 1):
        text = l2tobj.node_arg_to_text(node, i).strip()
        product = i and text[:1].isdigit() and not text.replace(".", "").isdigit()
        parts.append(f"({text})" if product or _COMPOUND.search(text) else text)
    return "/".join(parts)


_TERM_MARKS = str.maketrans("", "", ".,'′″*")


def _continued(node, l2tobj) -> str:
    """\\cfrac[l]{a}{b}: a fraction as \\frac's (its optional argument places the numerator)."""
    parts = []
    for i in (1, 2):
        text = l2tobj.node_arg_to_text(node, i).strip()
        parts.append(f"({text})" if _COMPOUND.search(text) else text)
    return "/".join(parts)


def _one_term(text: str) -> bool:
    """Whether a script Unicode has no characters for reads as one term after its ^ or _:
    a word or a number ("x_max", "g_μν", "k^1.5", "W^1,p", "x_i,j"), or one in parentheses."""
    return len(text) <= 1 or text.translate(_TERM_MARKS).isalnum() or (
        text[0] == "(" and text[-1] == ")" and text.count("(") == 1)


def _script(node, l2tobj) -> str:
    """A script Unicode has no characters for (_group_scripts) as it reads after its ^ or _:
    more than one term in parentheses, "n^(1/3)", "E_(x∼p)", as a fraction's parts are;
    one term apart from a letter after it, "F_μν F^μν", "∇_θ L" (not "F_μνF^μν")."""
    text = l2tobj.nodelist_to_text(node.nodeargd.argnlist).strip()
    if not _one_term(text):
        return f"({text})"
    return text + " " if _word_after(node.parsing_state.s, node.pos + node.len) else text


def _root(node, l2tobj) -> str:
    """\\sqrt{x} as "√(x)"; with an index as MathML's <mroot> reads: "∛x", "∜(x+1)",
    "x^(1/n)"."""
    index = l2tobj.node_arg_to_text(node, 0).strip()
    radicand = l2tobj.node_arg_to_text(node, 1).strip()
    return f"√({radicand})" if index in ("", "2") else root(radicand, index)


def _accent(mark: str):
    """A macro's argument with the combining `mark` over each of its characters."""
    def spec(node, l2tobj) -> str:
        text = l2tobj.node_arg_to_text(node, 0)
        return unicodedata.normalize("NFC", "".join(c if c.isspace() else c + mark
                                                    for c in text))
    return spec


# A sign with another over it that Unicode has as one character: \\stackrel{\\text{def}}{=}
# is "≝", \\overset{?}{=} "≟"
_STACKED = {("def", "="): "≝", ("Δ", "="): "≜", ("△", "="): "≜", ("▵", "="): "≜",
            ("?", "="): "≟", ("⋆", "="): "≛", ("*", "="): "≛", ("∗", "="): "≛", ("m", "="): "≞",
            ("∘", "="): "≗", ("^", "="): "≙", ("∧", "="): "≙", (".", "="): "≐", ("⋅", "="): "≐",
            ("·", "="): "≐", ("def", "≡"): "≝"}
# a mark over one letter (\\overset{\\circ}{A}, \\overset{\\cdot}{x}) as its combining character
_OVER_MARKS = {"∘": "\u030a", "○": "\u030a", "⋅": "\u0307", ".": "\u0307", "·": "\u0307",
               "∼": "\u0303", "~": "\u0303", "-": "\u0304", "−": "\u0304", "→": "\u20d7",
               "^": "\u0302", "∧": "\u0302"}
# \\xrightarrow{f} and its kin: an arrow with a label over it (and one under it, optional)
_LABELLED_ARROWS = {"xrightarrow": "→", "xleftarrow": "←", "xRightarrow": "⇒",
                    "xLeftarrow": "⇐", "xleftrightarrow": "↔", "xLeftrightarrow": "⇔",
                    "xmapsto": "↦", "xlongequal": "="}


def _stacked(node, l2tobj) -> str:
    """\\stackrel{a}{b}, \\overset{a}{b}, \\underset{a}{b} and \\xrightarrow[b]{a}: the base with
    the other part as its script, as MathML's <mover> and <munder> read ("arg minₓ",
    "→ᶠ", "=^!"); a sign Unicode has with that mark as one character ("≝", "≟"), and a
    mark over one letter as its combining character ("Å")."""
    name = node.macroname
    if name in _LABELLED_ARROWS:
        base, over = _LABELLED_ARROWS[name], l2tobj.node_arg_to_text(node, 1).strip()
        under = l2tobj.node_arg_to_text(node, 0).strip()
    else:
        base = l2tobj.node_arg_to_text(node, 1).strip()
        mark = l2tobj.node_arg_to_text(node, 0).strip()
        over, under = (mark, "") if name != "underset" else ("", mark)
    if not over and not under:
        return base
    if not under and (over, base) in _STACKED:
        return _STACKED[over, base]
    if not under and over in _OVER_MARKS and len(base) == 1 and base.isalpha():
        return unicodedata.normalize("NFC", base + _OVER_MARKS[over])
    done = base + (script(under, up=False) if under else "") + (
        script(over, up=True) if over else "")
    # a script in TeX's form ends before a letter after it, as _script's does ("=^! B")
    if done[-1:].isalnum() and _word_after(node.parsing_state.s, node.pos + node.len) and (
            "^" in done or "_" in done):
        done += " "
    return done


def _braced(node, l2tobj) -> str:
    """\\underbrace{x+y}_n, \\overbrace{...}^k: the part under the brace, in parentheses when
    it is more than one term and a script follows, which applies to all of it ("(x+y)ₙ")."""
    text = l2tobj.node_arg_to_text(node, 0).strip()
    after = node.parsing_state.s[node.pos + node.len:node.pos + node.len + 8].lstrip()[:1]
    scripted = after in ("_", "^") or after != "" and unicodedata.category(after) in (
        "Lm", "No")  # (a script in Unicode already: _math_scripts)
    return f"({text})" if scripted and not _one_term(text) else text


def _tie_bar(node, l2tobj) -> str:
    """\\t{oo}: the tie over two letters, U+0361 between them ("o͡o")."""
    text = l2tobj.node_arg_to_text(node, 0)
    return text[:1] + "\u0361" + text[1:] if len(text) >= 2 else text


def _verbatim(node, l2tobj) -> str:
    """\\verb|x_y|: its text as written (pylatexenc printed nothing)."""
    return getattr(node.nodeargd, "verbatim_text", "") or ""


def _substack(node, l2tobj) -> str:
    """\\substack{i<j \\\\ k}: the lines of a script, one after another with a comma."""
    text = l2tobj.node_arg_to_text(node, 0)
    return ", ".join(line.strip() for line in text.splitlines() if line.strip())


# The shorthands of the conference styles (cvpr.sty, iccv.sty, and many papers' own
# preambles) that abstracts copied from a paper keep: "\\eg," is "e.g.,"
_SHORTHANDS = {"ie": "i.e.", "Ie": "I.e.", "eg": "e.g.", "Eg": "E.g.", "etal": "et al.",
               "wrt": "w.r.t.", "cf": "cf.", "Cf": "Cf.", "vs": "vs.", "etc": "etc.",
               "aka": "a.k.a.", "iid": "i.i.d.", "st": "s.t.", "dof": "d.o.f."}



def _shorthand(node, l2tobj) -> str:
    """A shorthand's words, its final period left out before a period of the text, as the
    styles' \\onedot does ("\\etal." is "et al.")."""
    text = _SHORTHANDS[node.macroname]
    after = node.parsing_state.s[node.pos + node.len:node.pos + node.len + 1]
    if after == "." and text.endswith("."):
        return text[:-1]
    # the space after a control word is TeX's; the styles' \\xspace puts one back before a
    # word ("\\eg images" is "e.g. images", "\\eg, images" "e.g., images")
    return text + " " if after.isalnum() or after in "($\\" else text


# siunitx's units and prefixes (its manual, "Units": the SI base and derived units, the
# units accepted for use with them, and the SI prefixes), as their symbols
_SI_UNITS = {
    "metre": "m", "meter": "m", "second": "s", "gram": "g", "kilogram": "kg", "kelvin": "K",
    "ampere": "A", "mole": "mol", "candela": "cd", "hertz": "Hz", "newton": "N",
    "pascal": "Pa", "joule": "J", "watt": "W", "volt": "V", "farad": "F", "coulomb": "C",
    "siemens": "S", "weber": "Wb", "tesla": "T", "henry": "H", "lumen": "lm", "lux": "lx",
    "becquerel": "Bq", "gray": "Gy", "sievert": "Sv", "katal": "kat", "radian": "rad",
    "steradian": "sr", "litre": "L", "liter": "L", "hour": "h", "minute": "min", "day": "d",
    "hectare": "ha", "tonne": "t", "electronvolt": "eV", "dalton": "Da",
    "astronomicalunit": "au", "bel": "B", "decibel": "dB", "neper": "Np", "bit": "bit",
    "byte": "B", "arcminute": "′", "arcsecond": "″", "percent": "%"}
_SI_PREFIXES = {
    "quecto": "q", "ronto": "r", "yocto": "y", "zepto": "z", "atto": "a", "femto": "f",
    "pico": "p", "nano": "n", "milli": "m", "centi": "c", "deci": "d", "deca": "da",
    "deka": "da", "hecto": "h", "kilo": "k", "mega": "M", "giga": "G", "tera": "T",
    "peta": "P", "exa": "E", "zetta": "Z", "yotta": "Y", "ronna": "R", "quetta": "Q"}
# siunitx's quantities: the places of the number(s) and of the unit among the macro's
# arguments (its optional ones counted: \\SI[opts]{1.5}[pre]{\\metre})
_SI_QUANTITIES = {"SI": ("[{[{", (1,), 3), "qty": ("[{{", (1,), 2),
                  "SIrange": ("[{{{", (1, 2), 3), "qtyrange": ("[{{{", (1, 2), 3),
                  "si": ("[{", (), 1), "unit": ("[{", (), 1), "num": ("[{", (1,), None),
                  "numrange": ("[{{", (1, 2), None), "ang": ("[{", (1,), None)}
# a unit after which siunitx sets no space: "5%", "30°"
_UNSPACED = ("%", "°", "′", "″")
_SI_POWER = re.compile(r"\\(square|cubic)\s*(\\[A-Za-z]+\s*)?(\\[A-Za-z]+)")


def _si_unit(node, l2tobj, index: int) -> str:
    """A siunitx unit argument as its symbols: `\\kilo\\gram\\per\\metre\\squared` is
    "kg/m²", `\\square\\metre` "m²"; a unit written as text ("GeV") stays."""
    arg = node.nodeargd.argnlist[index]
    if arg is None:
        return ""
    source = arg.latex_verbatim()
    if "\\square" in source or "\\cubic" in source:
        source = _SI_POWER.sub(lambda m: (m[2] or "") + m[3] + (
            "\\squared" if m[1] == "square" else "\\cubed"), source)
        return _L2T.latex_to_text(source).strip().replace(" ", "")
    return l2tobj.nodelist_to_text([arg]).strip().replace(" ", "")


def _si_quantity(node, l2tobj) -> str:
    """siunitx's \\SI{5}{\\milli\\second} (and \\qty, \\si, \\unit, \\num, \\ang and the
    ranges) as a reader sees it: "5 ms", "1–5 km", "30°"."""
    _, numbers, unit_at = _SI_QUANTITIES[node.macroname]
    values = [l2tobj.node_arg_to_text(node, i).strip() for i in numbers]
    number = "–".join(values)
    if node.macroname == "ang":
        return f"{number}°"
    unit = _si_unit(node, l2tobj, unit_at) if unit_at is not None else ""
    if not unit or not number:
        return number or unit
    return number + ("" if unit.startswith(_UNSPACED) else " ") + unit


# mhchem's \\ce{...}: a formula's counts are subscripts (H2O is "H₂O"), charges
# superscripts ("SO4^2-" is "SO₄²⁻"), and its arrows the signs
_CE_ARROWS = (("<=>", "⇌"), ("<->", "↔"), ("->", "→"), ("<-", "←"))
_CE_COUNT = re.compile(r"(?<=[A-Za-z)\]])(\d+)")
_CE_BARE_CHARGE = re.compile(r"(?<=[A-Za-z)\]\d])([+-])(?=\s|$)")  # "Na+", "Cl-"
_CE_CHARGE = re.compile(r"\^\{([0-9+-]+)\}|\^([0-9]+[+-]?|[+-])")  # also a mass: ^{13}C


def _chemistry(node, l2tobj) -> str:
    """mhchem's \\ce{SO4^2- + H2O -> ...}: counts as subscripts, charges as superscripts,
    arrows as signs; a number before a formula (a coefficient, "2H2O") stays."""
    arg = node.nodeargd.argnlist[-1] if node.nodeargd and node.nodeargd.argnlist else None
    if arg is None:
        return ""
    text = arg.latex_verbatim()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    for sign, arrow in _CE_ARROWS:
        text = text.replace(sign, arrow)
    # (digits, "+" and "-": each has Unicode's script, so unicode_script never says None)
    text = _CE_CHARGE.sub(lambda m: unicode_script(m[1] or m[2], up=True), text)
    text = _CE_BARE_CHARGE.sub(lambda m: unicode_script(m[1], up=True), text)
    return _CE_COUNT.sub(lambda m: unicode_script(m[1], up=False), text)


# Symbols pylatexenc prints nothing for: the characters TeX (amssymb, mathtools, upgreek,
# textcomp, gensymb, siunitx) prints
_MORE_SYMBOLS = {
    "coloneqq": "≔", "coloneq": "≔", "eqqcolon": "≕", "Coloneqq": "⩴", "lll": "⋘",
    "ggg": "⋙", "owns": "∋", "models": "⊨", "vDash": "⊨", "lhd": "⊲", "rhd": "⊳",
    "unlhd": "⊴", "unrhd": "⊵", "gets": "←", "leftharpoons": "↽", "leadsto": "⇝",
    "dashrightarrow": "⇢", "bot": "⊥", "imath": "ı", "jmath": "ȷ", "triangle": "△",
    "Diamond": "◇", "checkmark": "✓", "clubsuit": "♣", "diamondsuit": "♢",
    "heartsuit": "♡", "spadesuit": "♠", "bigodot": "⨀", "biguplus": "⨄", "bigsqcup": "⨆",
    "lbrack": "[", "rbrack": "]", "degree": "°", "celsius": "°C", "micro": "µ",
    "permil": "‰", "textperthousand": "‰", "textbar": "|", "textless": "<",
    "textgreater": ">", "textquotedbl": '"', "textunderscore": "_", "textminus": "−",
    "ohm": "Ω", "Angstrom": "Å", "angstrom": "Å", "bigstar": "★", "Finv": "Ⅎ", "Game": "⅁",
    "textasciicircum": "^", "textsterling": "£", "texteuro": "€", "textyen": "¥",
    "nexists": "∄", "lightning": "↯", "qed": "∎", "blacksquare": "■", ">": " ",
    **{"up" + g: c for g, c in (
        ("alpha", "α"), ("beta", "β"), ("gamma", "γ"), ("delta", "δ"), ("epsilon", "ϵ"),
        ("varepsilon", "ε"), ("zeta", "ζ"), ("eta", "η"), ("theta", "θ"), ("iota", "ι"),
        ("kappa", "κ"), ("lambda", "λ"), ("mu", "μ"), ("nu", "ν"), ("xi", "ξ"), ("pi", "π"),
        ("rho", "ρ"), ("sigma", "σ"), ("tau", "τ"), ("upsilon", "υ"), ("phi", "ϕ"),
        ("varphi", "φ"), ("chi", "χ"), ("psi", "ψ"), ("omega", "ω"), ("Gamma", "Γ"),
        ("Delta", "Δ"), ("Theta", "Θ"), ("Lambda", "Λ"), ("Xi", "Ξ"), ("Pi", "Π"),
        ("Sigma", "Σ"), ("Phi", "Φ"), ("Psi", "Ψ"), ("Omega", "Ω"))},
}
# macros that print nothing: references and citations mean nothing outside the paper. They
# print _GONE, so an "Eq. (\\ref{x})" does not leave "Eq. ()" behind (tex_to_text)
_REFERENCES = ("cite", "citep", "citet", "citealp", "citealt", "citeauthor", "citeyear",
               "citeyearpar", "Cite", "Citep", "Citet", "parencite", "textcite", "autocite",
               "footcite", "nocite", "ref", "eqref", "autoref", "cref", "Cref", "pageref",
               "label")
_GONE = "\x04"

# the macro _group_scripts puts a script in (no TeX source can name it: "@" ends a control
# word outside a package)
_SCRIPT = "digestd@script"


def _latex_contexts():
    # Macros that papers use and pylatexenc does not know or renders unhelpfully: URLs keep
    # their text, citations and references (which mean nothing outside the paper) vanish.
    parse = latexwalker.get_default_latex_context_db()
    parse.add_context_category("digestd", prepend=True, macros=[
        macrospec.MacroSpec("url", "{"), macrospec.MacroSpec("href", "{{"),
        *(macrospec.MacroSpec(m, "{") for m in _PLAIN_STYLES + _KEEP_TEXT),
        *(macrospec.MacroSpec(m, "{{") for m in ("tfrac", "dfrac", "binom", "tbinom", "dbinom")),
        macrospec.MacroSpec("textsuperscript", "{"), macrospec.MacroSpec("textsubscript", "{"),
        macrospec.MacroSpec("thanks", "{"), macrospec.MacroSpec("operatorname", "*{"),
        macrospec.MacroSpec("pmod", "{"),
        *(macrospec.MacroSpec(m, "{{") for m in ("stackrel", "overset", "underset", "sfrac")),
        *(macrospec.MacroSpec(m, "[{") for m in _LABELLED_ARROWS),
        macrospec.MacroSpec("cfrac", "[{{"), macrospec.MacroSpec("substack", "{"),
        *(macrospec.MacroSpec(m, "{") for m in ("mathring", "dddot", "t", "boxed", "mathds",
                                                "mathbbm", "smash", "cancel", "underbrace",
                                                "overbrace")),
        *(macrospec.MacroSpec(m, "*[[{") for m in _REFERENCES if m not in ("ref", "label")),
        *(macrospec.MacroSpec(m, spec) for m, (spec, _, _) in _SI_QUANTITIES.items()),
        macrospec.MacroSpec("ce", "{"), macrospec.MacroSpec("pu", "{"),
    ])
    render = get_default_latex_context_db()
    render.add_context_category("digestd", prepend=True, macros=[
        MacroTextSpec("url", "%(1)s"), MacroTextSpec("href", _href),
        *(MacroTextSpec(m, "%(1)s") for m in _KEEP_TEXT),
        MacroTextSpec("tfrac", "%(1)s/%(2)s"), MacroTextSpec("dfrac", "%(1)s/%(2)s"),
        *(MacroTextSpec(m, "(%(1)s choose %(2)s)") for m in ("binom", "tbinom", "dbinom")),
        MacroTextSpec("textsuperscript", "^%(1)s"), MacroTextSpec("textsubscript", "_%(1)s"),
        MacroTextSpec("LaTeX", "LaTeX"), MacroTextSpec("TeX", "TeX"),
        MacroTextSpec("|", "‖"), *(MacroTextSpec(m, _GONE) for m in _REFERENCES),
        MacroTextSpec("footnote", ""), MacroTextSpec("thanks", ""),
        *(MacroTextSpec(m, "%(1)s") for m in _PLAIN_STYLES),
        *(MacroTextSpec(m, _operator) for m in (*_OPERATORS, "operatorname")),
        MacroTextSpec("bmod", " mod "), MacroTextSpec("mod", " mod "),
        MacroTextSpec("pmod", " (mod %(1)s)"),
        # a prime is U+2032 (f′), not an apostrophe; pylatexenc lacks the double dagger
        MacroTextSpec("prime", "′"), MacroTextSpec("ddagger", "‡"), MacroTextSpec("ddag", "‡"),
        MacroTextSpec("colon", ": "),  # f\colon X -> Y: "f: X → Y"
        # a fraction whose part is more than one term keeps it together: 1/(1+z), (a+b)/c
        *(MacroTextSpec(m, _fraction) for m in ("frac", "tfrac", "dfrac")),
        # signs and symbols pylatexenc prints nothing for (\hbar: U+210F, not the letter ħ)
        *(MacroTextSpec(m, c) for m, c in (
            ("ne", "≠"), ("iff", "⟺"), ("implies", "⟹"), ("impliedby", "⟸"), ("land", "∧"),
            ("lor", "∨"), ("neg", "¬"), ("lnot", "¬"), ("Re", "ℜ"), ("Im", "ℑ"), ("S", "§"),
            ("P", "¶"), ("pounds", "£"), ("euro", "€"), ("copyright", "©"), ("Box", "□"),
            ("hbar", "ℏ"))),
        # wide accents over their letters, as \tilde and \bar already are: Õ(√(n)), M̅
        MacroTextSpec("widetilde", _accent("\u0303")), MacroTextSpec("widehat", _accent("\u0302")),
        MacroTextSpec("overline", _accent("\u0305")),
        MacroTextSpec("sqrt", _root), MacroTextSpec(_SCRIPT, _script),
        *(MacroTextSpec(m, _stacked) for m in ("stackrel", "overset", "underset",
                                                 *_LABELLED_ARROWS)),
        MacroTextSpec("sfrac", _fraction), MacroTextSpec("cfrac", _continued),
        MacroTextSpec("mathring", _accent("\u030a")), MacroTextSpec("dddot", _accent("\u20db")),
        MacroTextSpec("t", _tie_bar), MacroTextSpec("verb", _verbatim),
        MacroTextSpec("substack", _substack),
        *(MacroTextSpec(m, "%(1)s") for m in ("boxed", "mathds", "mathbbm", "smash", "cancel")),
        *(MacroTextSpec(m, _braced) for m in ("underbrace", "overbrace")),
        *(MacroTextSpec(m, c) for m, c in _MORE_SYMBOLS.items()),
        *(MacroTextSpec(m, _shorthand) for m in _SHORTHANDS),
        *(MacroTextSpec(m, c) for m, c in (*_SI_UNITS.items(), *_SI_PREFIXES.items())),
        MacroTextSpec("per", "/"), MacroTextSpec("squared", "²"), MacroTextSpec("cubed", "³"),
        *(MacroTextSpec(m, _si_quantity) for m in _SI_QUANTITIES),
        MacroTextSpec("ce", _chemistry), MacroTextSpec("pu", "%(1)s"),
    ])
    return parse, render


_PARSE_CONTEXT, _RENDER_CONTEXT = _latex_contexts()
_L2T = LatexNodes2Text(math_mode="text", strict_latex_spaces=False, latex_context=_RENDER_CONTEXT)
