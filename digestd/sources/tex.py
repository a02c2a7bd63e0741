"""TeX as a reader sees it (arXiv writes titles, abstracts and names in TeX): accents and
symbols in Unicode, math as readable text, TeX's typography as the characters it prints.
Converted with pylatexenc's latex2text, run only on the parts that hold TeX."""

from __future__ import annotations

import re
import unicodedata

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from ..text import collapse
from .mathml import root, unicode_script


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
    ])
    render = get_default_latex_context_db()
    render.add_context_category("digestd", prepend=True, macros=[
        MacroTextSpec("url", "%(1)s"), MacroTextSpec("href", _href),
        *(MacroTextSpec(m, "%(1)s") for m in _KEEP_TEXT),
        MacroTextSpec("tfrac", "%(1)s/%(2)s"), MacroTextSpec("dfrac", "%(1)s/%(2)s"),
        *(MacroTextSpec(m, "(%(1)s choose %(2)s)") for m in ("binom", "tbinom", "dbinom")),
        MacroTextSpec("textsuperscript", "^%(1)s"), MacroTextSpec("textsubscript", "_%(1)s"),
        MacroTextSpec("LaTeX", "LaTeX"), MacroTextSpec("TeX", "TeX"),
        MacroTextSpec("|", "‖"), MacroTextSpec("cite", ""), MacroTextSpec("citep", ""), MacroTextSpec("citet", ""),
        MacroTextSpec("ref", ""), MacroTextSpec("eqref", ""), MacroTextSpec("label", ""),
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
    ])
    return parse, render


_PARSE_CONTEXT, _RENDER_CONTEXT = _latex_contexts()
_L2T = LatexNodes2Text(math_mode="text", strict_latex_spaces=False, latex_context=_RENDER_CONTEXT)
_TEX_HINT = re.compile(r"[\\${]")
# In running text these are ordinary characters, not TeX's comment and alignment marks:
# "50% of" and "R&D" must stay. `#`, `^`, `_` and `~` are handled by the converter.
_LITERAL = re.compile(r"(?<!\\)([%&])")
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


def _literal_braces(prepared: str) -> str:
    """Outside math (between unescaped dollars), brace groups a reader sees as braces are
    escaped for the converter, which keeps them: "{0,1}^n" stays, "{GPU}s" is "GPUs". In
    math, f''(x) keeps a double prime."""
    if "''" not in prepared and "_" not in prepared and "^" not in prepared and (
            "{" not in prepared or _LITERAL_BRACES.search(prepared) is None):
        return prepared
    pieces = re.split(r"((?<!\\)\$\$?)", prepared)
    math = False
    for i, piece in enumerate(pieces):
        if i % 2:
            math = not math
        elif not math and "{" in piece:
            pieces[i] = _LITERAL_BRACES.sub(r"\\{\1\\}", piece)
        elif math:
            if "''" in piece:
                piece = piece.replace("''", "″")  # a double prime, f''(x), not a quote
            if "_" in piece or "^" in piece:
                if "\\" in piece:
                    piece = _FONT_SWITCH.sub("", piece)
                piece = _math_scripts(piece)
            pieces[i] = piece
    return "".join(pieces)


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


def _tex_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the runs of `text` that hold TeX: whitespace-separated tokens with
    `\\`, `$` or `{`, extended while a brace group or a math span is open. The rest is
    plain text that the converter never needs to see (most of an abstract)."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    depth, math = 0, False
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
        if depth <= 0 and not math and not _OPEN_MACRO.search(bare):
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
                         "rvert", "lVert", "rVert", "vert", "Vert"))
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
    for node in nodes:
        out.append(node)
        if node is None:
            continue
        if not node.isNodeType(latexwalker.LatexMacroNode):
            if getattr(node, "nodelist", None):
                _space_signs(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))
        elif node.nodeargd is not None and node.nodeargd.argnlist:
            _space_signs(node.nodeargd.argnlist, math)
        elif math and node.macro_post_space:
            if node.macroname in _OPERATORS or node.macroname in _DELIMITERS:
                node.macro_post_space = ""
            elif not _prints_word(node.macroname) and node.macroname != "colon":
                before = out[-2] if len(out) > 1 else None
                if node.pos and node.parsing_state.s[node.pos - 1].isspace() and \
                        before is not None and (
                            before.isNodeType(latexwalker.LatexMacroNode)
                            and before.macro_post_space
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
    nodes[:] = out


# \\left( and \\bigl(, \\right) and \\bigr) (and closing brackets): in math TeX prints no space
# just inside them
_OPENERS = frozenset(("left", "bigl", "Bigl", "biggl", "Biggl"))
_CLOSERS = frozenset(("right", "bigr", "Bigr", "biggr", "Biggr", "rangle", "rceil", "rfloor",
                      "rvert", "rVert"))


def _macro(nodes: list, i: int, names: frozenset = frozenset()) -> bool:
    """Whether nodes[i] is a macro (one of `names`, if given)."""
    node = nodes[i] if 0 <= i < len(nodes) else None
    return node is not None and node.isNodeType(latexwalker.LatexMacroNode) and (
        not names or node.macroname in names)


def _group_scripts(nodes: list, math: bool = False) -> None:
    """In math, a script that is a group or a control word ("n^{1/3}", "\\nabla_\\theta") is
    put in a _SCRIPT macro, which keeps it together (pylatexenc printed "n^1/3"); and the
    author's spaces just inside \\left( ... \\right) go on both sides (it printed "( a/b)")."""
    for i, node in enumerate(nodes):
        if node is None:
            continue
        if node.isNodeType(latexwalker.LatexCharsNode):
            if not math:
                continue
            if _macro(nodes, i - 1, _OPENERS):  # "\\left( x"
                node.chars = node.chars[:1] + node.chars[1:].lstrip()
            elif _macro(nodes, i - 2, _OPENERS) and _macro(nodes, i - 1):  # "\\left\\{ x"
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
                nodes[i + 1] = latexwalker.LatexMacroNode(
                    _SCRIPT, nodeargd=macrospec.ParsedMacroArgs(argspec="{", argnlist=[after]),
                    # (its control word's space, which _space_signs looks at: "\\mu \\to")
                    macro_post_space=getattr(after, "macro_post_space", ""),
                    parsing_state=after.parsing_state, pos=after.pos, len=after.len)
        elif node.isNodeType(latexwalker.LatexMacroNode):
            if node.nodeargd is not None and node.nodeargd.argnlist:
                _group_scripts(node.nodeargd.argnlist, math and node.macroname not in _TEXT_ARGS)
        elif getattr(node, "nodelist", None):
            _group_scripts(node.nodelist, math or node.isNodeType(latexwalker.LatexMathNode))


def _convert(fragment: str) -> str:
    prepared = _LITERAL.sub(r"\\\1", fragment)
    try:
        nodes = latexwalker.LatexWalker(prepared, latex_context=_PARSE_CONTEXT,
                                        tolerant_parsing=True).get_latex_nodes()[0]
        _group_scripts(nodes)
        _space_signs(nodes)
        return _L2T.nodelist_to_text(nodes).translate(_PLAIN_LETTERS)
    except Exception:  # noqa: BLE001 (a third-party parser on hostile text: keep the original)
        return fragment


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
    def one(m: re.Match) -> str:
        body = (m[2] if m[2] is not None else m[3]).replace(" ", "")
        if "\\" in body:
            body = _SYMBOL.sub(_symbol, body)
        if not body:
            done = ""
        else:
            done = _superscript(body) if m[1] == "^" else unicode_script(body, up=False)
        if done is None:
            return m[0]
        # after a control word ("\\sum_{i=1}") an empty group ends its name
        return "{}" + done if _ENDS_IN_WORD.search(math, 0, m.start()) else done
    return _MATH_SCRIPT.sub(one, math)


def tex_to_text(text: str) -> str:
    """TeX as a reader sees it: accents and symbols in Unicode, math as readable text.

    `Bj\\"orn` -> `Björn`, `$\\Lambda$CDM` -> `ΛCDM`, `$\\sqrt{s} = 13$` -> `√(s) = 13`,
    `{\\it x}` -> `x`, `Fig.~3` -> `Fig. 3`; operator names are words (`$n\\log n$` ->
    `n log n`, `$x\\pmod{p}$` -> `x (mod p)`), scripts are Unicode's where it has them
    (`$e^+e^-$` -> `e⁺e⁻`, `$A^\\top$` -> `Aᵀ`), else TeX's, of more than one term in
    parentheses (`$n^{1/3}$` -> `n^(1/3)`), roots with an index read as MathML's
    (`$\\sqrt[3]{x}$` -> `∛x`), and letters outside the Basic Multilingual
    Plane are plain (`$\\mathbb{E}$` -> `E`; `$\\mathbb{R}$` stays `ℝ`). Converted with
    pylatexenc's latex2text, run only on the parts that hold TeX; `%` and `&` stay literal,
    and dollars that read as money are not math. Strings without `\\`, `$`, `{` or a tie
    are returned as they are (the common case costs one scan). Never raises: a fragment the
    converter cannot read is kept as written.
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
    text = collapse("".join(out).replace("\x02", ""))
    return text.replace("\x03", "~") if tilde else text
