"""TeX as a reader sees it (arXiv writes titles, abstracts and names in TeX): accents and
symbols in Unicode, math as readable text, TeX's typography as the characters it prints.
Converted with pylatexenc's latex2text, run only on the parts that hold TeX."""

from __future__ import annotations

import re
import unicodedata

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from ..text import collapse, normalize
from .mathml import root, script, unicode_script


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
    ])
    return parse, render


_PARSE_CONTEXT, _RENDER_CONTEXT = _latex_contexts()
_L2T = LatexNodes2Text(math_mode="text", strict_latex_spaces=False, latex_context=_RENDER_CONTEXT)
_TEX_HINT = re.compile(r"[\\${]")
# In running text these are ordinary characters, not TeX's comment and alignment marks:
# "50% of" and "R&D" must stay. `#`, `^`, `_` and `~` are handled by the converter.
# (after a line break too: "a\\\\%" is a break and a percent sign, no comment)
_LITERAL = re.compile(r"(?<!\\)((?:\\\\)*)([%&])")
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
# A brace group outside math, after a space (no macro's argument), with no TeX in it and
# a set's or a map's punctuation: "{0,1}^n", "{a|b}" are braces a reader sees; "{GPU}s",
# "{C++}", "{\\em x}" and "\\url{...}" are TeX's.
_LITERAL_BRACES = re.compile(r"(?<![^\s(\[,;:])\{([^{}\\$]*[,|;:=][^{}\\$]*)\}")
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

_TOKEN = re.compile(r"\S+")
# A token that ends in a control sequence takes the next token as its argument: "\\frac {1}{2}",
# "Fran\\c cois", "Mu\\~ noz".
_OPEN_MACRO = re.compile(r"\\(?:[A-Za-z]+|[^A-Za-z\s])$")
_ESCAPES = re.compile(r"\\[\\{}$]")
# TeX's tie (a space that does not break) inside a phrase, "Fig.~3"; "~100" (about 100) stays.
# (after a digit only before a letter: "10~K"; "3~5%" is a range)
_TIE = re.compile(r"(?<=[A-Za-z.])~(?=[A-Za-z0-9(\[])|(?<=\d)~(?=[A-Za-z])")
# ... and stays in TeX too ("(~10\\%)", "3~5\\%"), where pylatexenc would print a space
_ABOUT = re.compile(r"(?:(?<![^\s(\[])|(?<=\d))~(?=\d)")


# A URL, bare or a \\url's or \\href's: its "~" is a character ("https://x.org/~user"), not
# TeX's tie, which pylatexenc prints as a space
_URL = re.compile(r"(?:https?|ftp)://[^\s{}]+|\\(?:url|href)\{[^{}\s]+\}|\bwww\.[^\s{}]+"
                  r"|(?<![^\s{(\[])~/")  # and a path in a home directory, "~/.config"


_MATH_OPEN_CLOSE = re.compile(rf"(?<!\\)\\([()\[\]])|({_MATH_ENVIRONMENT})")
_OPTIONAL_OPEN = re.compile(r"\\[A-Za-z]+\*?\[[^\]]*$")


def _tex_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the runs of `text` that hold TeX: whitespace-separated tokens with
    `\\`, `$` or `{`, extended while a brace group, a math span ($, \\(, \\[ or a math
    environment) or a macro's optional argument ("\\citep[p.~3]{x}") is open. The rest is
    plain text that the converter never needs to see (most of an abstract)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    depth, math, optional = 0, False, 0
    for m in _TOKEN.finditer(text):
        token = m[0]
        if start is None:
            if not _TEX_HINT.search(token):
                continue
            start = m.start()
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


# Mathematical Alphanumeric Symbols (U+1D400-U+1D7FF, outside the Basic Multilingual Plane,
# which many mail fonts lack) as their plain letters and digits: pylatexenc writes \\mathbb{E}
# as U+1D53C; \\mathbb{R} stays ℝ (U+211D).
_PLAIN_LETTERS = {c: unicodedata.normalize("NFKC", chr(c)) for c in range(0x1D400, 0x1D800)}
# brackets are no signs: "\langle x\rangle" is "⟨x⟩"
_DELIMITERS = frozenset(("langle", "rangle", "lceil", "rceil", "lfloor", "rfloor", "lvert",
                         "rvert", "lVert", "rVert", "vert", "Vert", "lbrack", "rbrack"))
# signs that stand before their operand as a letter does: "\\partial f" is ∂f, "\\nabla f" ∇f
_PREFIXES = frozenset(("partial", "nabla"))
# a sign after these has a space on its left as the author wrote it: "$\\sim 100$" is ∼ 100
_SPACED = frozenset(" \t\n$_^{(")


def _space_signs(nodes: list, math: bool = False) -> None:
    """In math, a relation or an operator sign (\\le, \\sim, \\times) is spaced alike on both
    sides, as the author spaced its left: "a \\le b" is "a ≤ b", "a\\le b" "a≤b" (pylatexenc
    printed "a≤ b") and "x \\in \\mathbb{R}" "x ∈ ℝ" (it printed "x ∈ℝ"). An operator name
    spaces itself (_operator); a letter (\\sigma v) keeps the author's space, and a sign before
    its operand none after it ("\\partial f" is "∂f")."""
    out = []
    quiet = set()  # (ids of) delimiters whose space after them is not printed: "\rangle \le"
    for node in nodes:
        out.append(node)
        if node is None:
            continue
        if not node.isNodeType(latexwalker.LatexMacroNode):
            if getattr(node, "nodelist", None):
                _space_signs(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))
        elif node.nodeargd is not None and getattr(node.nodeargd, "argnlist", None):
            # a script is math, written with dollars or not ("R^{n \\times d}")
            _space_signs(node.nodeargd.argnlist, math or node.macroname == _SCRIPT)
            last = node.nodeargd.argnlist[-1]
            if math and last is not None and last.isNodeType(latexwalker.LatexMacroNode) and (
                    last.macro_post_space and _prints_word(last.macroname)):
                # the author's space after an argument without braces, "\\hat\\theta - x",
                # which pylatexenc drops with the argument's: "θ̂ - x"
                out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                      pos=node.pos + node.len, len=0))
        elif math and node.macro_post_space:
            if node.macroname in _OPERATORS or node.macroname in _DELIMITERS:
                node.macro_post_space = ""
                quiet.add(id(node))
            elif not _prints_word(node.macroname) and node.macroname != "colon":
                before = out[-2] if len(out) > 1 else None
                if node.pos and node.parsing_state.s[node.pos - 1].isspace() and \
                        before is not None and (
                            before.isNodeType(latexwalker.LatexMacroNode)
                            and (before.macro_post_space or id(before) in quiet)
                            or before.isNodeType(latexwalker.LatexCharsNode)
                            and before.chars.isspace()):
                    # "\mu \to": the space after \mu is not printed, nor "} \approx"'s
                    # alone between two nodes; the one before \to is
                    out.insert(len(out) - 1, latexwalker.LatexMacroNode(
                        " ", parsing_state=node.parsing_state, pos=node.pos, len=0))
                prefix = node.macroname in _PREFIXES and _word_after(node.parsing_state.s,
                                                                     node.pos + node.len)
                if not prefix and (not node.pos or node.parsing_state.s[node.pos - 1] in _SPACED):
                    # pylatexenc prints the space only before plain characters; "\\ " always
                    out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                          pos=node.pos + node.len, len=0))
                node.macro_post_space = ""
        elif not math and node.macro_post_space and _text_symbol(node.macroname):
            # in running text a sign keeps the space after it that TeX eats: "Smith\\dag and
            # Jones" is "Smith† and Jones", "\\copyright 2024" "© 2024"; a letter does not
            # ("S\\o rensen" is Sørensen)
            out.append(latexwalker.LatexMacroNode(" ", parsing_state=node.parsing_state,
                                                  pos=node.pos + node.len, len=0))
    nodes[:] = out


# what a control word prints that joins the word after it in running text, as TeX has it:
# dashes, quotes and a section's sign ("1\\textendash 2" is 1–2, "\\S 3" §3)
_JOINING = frozenset("–—‘’“”'\"-§¶")


def _text_symbol(name: str) -> bool:
    """Whether the control word `name` prints a sign, not a letter, a word, a dash or
    nothing (\\dag, \\S, \\copyright, \\textbullet)."""
    spec = _RENDER_CONTEXT.get_macro_spec(name)
    repl = spec.simplify_repl if spec is not None else None
    return isinstance(repl, str) and repl.strip() != "" and "%" not in repl and not (
        repl[-1].isalnum() or repl[-1] in _JOINING)


# \\left( and \\bigl(, \\right) and \\bigr) (and closing brackets): in math TeX prints no space
# just inside them
_OPENERS = frozenset(("left", "bigl", "Bigl", "biggl", "Biggl"))
_CLOSERS = frozenset(("right", "bigr", "Bigr", "biggr", "Biggr", "rangle", "rceil", "rfloor",
                      "rvert", "rVert", "}", "rbrack"))
# ... nor just inside a set's braces: "\{ x : x > 0 \}" is {x : x > 0}
_OPEN_BRACKETS = frozenset(("{", "langle", "lceil", "lfloor", "lvert", "lVert", "lbrack"))


def _macro(nodes: list, i: int, names: frozenset = frozenset()) -> bool:
    """Whether nodes[i] is a macro (one of `names`, if given)."""
    node = nodes[i] if 0 <= i < len(nodes) else None
    return node is not None and node.isNodeType(latexwalker.LatexMacroNode) and (
        not names or node.macroname in names)


def _script_node(after):
    """The node `after` a ^ or _ in a _SCRIPT macro, which prints it as a script (_script)."""
    return latexwalker.LatexMacroNode(
        _SCRIPT, nodeargd=macrospec.ParsedMacroArgs(argspec="{", argnlist=[after]),
        # (its control word's space, which _space_signs looks at: "\\mu \\to")
        macro_post_space=getattr(after, "macro_post_space", ""),
        parsing_state=after.parsing_state, pos=after.pos, len=after.len)


def _text_script(nodes: list, i: int) -> bool:
    """Whether the characters nodes[i], outside math, end in a ^ or _ written right after
    a letter, a digit or a bracket and right before a brace group: TeX's script, written
    without the dollars ("n^{1/3}", "T_{c}"), not a "_" in running text ("a_b", "my_var")."""
    node, after = nodes[i], nodes[i + 1] if i + 1 < len(nodes) else None
    if after is None or node.chars[-1:] not in ("^", "_") or not (
            after.isNodeType(latexwalker.LatexGroupNode) and after.delimiters[0] == "{"):
        return False
    caret = node.pos + len(node.chars) - 1
    s = node.parsing_state.s
    # (a group never closed runs to the end of the text: that is no script)
    return after.pos == caret + 1 and caret > 0 and not s[caret - 1].isspace() and s[
        after.pos + after.len - 1:after.pos + after.len] == "}"


def _group_scripts(nodes: list, math: bool = False) -> None:
    """In math, a script that is a group or a control word ("n^{1/3}", "\\nabla_\\theta") is
    put in a _SCRIPT macro, which keeps it together (pylatexenc printed "n^1/3"), and so is
    a group after a ^ or _ in running text (_text_script: "n^{1/3}" without dollars); and the
    author's spaces just inside \\left( ... \\right) go on both sides (it printed "( a/b)")."""
    for i, node in enumerate(nodes):
        if node is None:
            continue
        if node.isNodeType(latexwalker.LatexCharsNode):
            if not math:
                if _text_script(nodes, i):
                    nodes[i + 1] = _script_node(nodes[i + 1])
                continue
            if _macro(nodes, i - 1, _OPENERS):  # "\\left( x"
                node.chars = node.chars[:1] + node.chars[1:].lstrip()
            elif _macro(nodes, i - 2, _OPENERS) and _macro(nodes, i - 1) or _macro(
                    nodes, i - 1, _OPEN_BRACKETS):  # "\\left\\{ x", "\\{ x"
                node.chars = node.chars.lstrip()
            after = nodes[i + 1] if i + 1 < len(nodes) else None
            if after is None:
                continue
            if _macro(nodes, i + 1, _CLOSERS):
                node.chars = node.chars.rstrip()
            elif node.chars.rstrip()[-1:] in ("^", "_") and (
                    after.isNodeType(latexwalker.LatexGroupNode) and after.delimiters[0] == "{"
                    or after.isNodeType(latexwalker.LatexMacroNode)):
                node.chars = node.chars.rstrip()  # "x^ {a+b}" is x^(a+b)
                nodes[i + 1] = _script_node(after)
        elif node.isNodeType(latexwalker.LatexMacroNode):
            if node.nodeargd is not None and getattr(node.nodeargd, "argnlist", None):
                _group_scripts(node.nodeargd.argnlist, math and node.macroname not in _TEXT_ARGS)
        elif getattr(node, "nodelist", None):
            _group_scripts(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))


# where a reference or a citation was (_GONE): with the brackets around it, and the space
# before it when punctuation follows ("Eq. (\\ref{x})", "as in~\\cite{y}, we")
# (each starts where a run of spaces does, and runs of them are one first: no scan twice)
_GONE_RUN = re.compile(r"\x04(?:\s*\x04)+")
_GONE_AROUND = re.compile(r"(?<!\s)\s*[(\[]\s*(?:\x04[\s,;~]*)+[)\]]"
                          r"|(?<!\s)\s*\x04(?=\s*[,.;:!?)\]])|\x04")


# a macro's optional argument: "\\citep[", "\\sqrt[", "\\\\[" (a line break's space)
_OPTIONAL = re.compile(r"\\(?:[A-Za-z]+\*?|\\)\s*\[")
# \\verb and its delimiter, when it is one that can close it (no TeX's own character)
_VERB = re.compile(r"\\verb\*?(?:([^\sA-Za-z*\\{}%$&#^_~])|(?![A-Za-z]))")


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
    prepared = _LITERAL.sub(r"\1\\\2", fragment)
    try:
        nodes = latexwalker.LatexWalker(prepared, latex_context=_PARSE_CONTEXT,
                                        tolerant_parsing=True).get_latex_nodes()[0]
        _group_scripts(nodes)
        _space_signs(nodes)
        return _L2T.nodelist_to_text(nodes).translate(_PLAIN_LETTERS)
    except Exception:  # noqa: BLE001 (a third-party parser on hostile text: keep the original)
        return None


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


def _tail_words(fragment: str) -> list[str]:
    """The words of plain text that end `fragment`, after its last control word, brace or
    dollar (normalized): a conversion that keeps the text keeps them."""
    cut = max(fragment.rfind("\\"), fragment.rfind("{"), fragment.rfind("}"),
              fragment.rfind("$"))
    rest = fragment[cut + 1:]
    if cut >= 0 and fragment[cut] == "\\":
        rest = _CONTROL_WORD_START.sub("", rest, count=1)  # the control word's own letters
    return [normalize(w) for w in _TAIL_WORD.findall(rest)]


# In math, a sub- or superscript whose every character Unicode has as one: "H_2O", "^{12}C",
# "x^{2n+1}", "2^{n-1}", "e^+e^-", "\\mu^{\\pm}" are printed H₂O, ¹²C, x²ⁿ⁺¹, 2ⁿ⁻¹, e⁺e⁻, μ± (what
# a journal's MathML gives too, so both spell the title alike); "W^{1,p}" and "T_{\\rm c}"
# (T_c) stay TeX's. A control word in a script is the character pylatexenc prints for it.
_ENDS_IN_WORD = re.compile(r"\\[A-Za-z]+$")
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
    prepared = _literal_braces(_protect_money(text))
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
