"""Formulas in feed markup as a reader writes them in plain text: MathML (journal feeds put
it in titles and abstracts, often as `mml:` elements) and HTML's <sup>/<sub>.

    math_to_text('<math><mfrac><mn>1</mn><mn>2</mn></mfrac></math>')   -> '1/2'
    math_to_text('<math><msup><mi>x</mi><mn>2</mn></msup></math>')     -> 'x²'
    script('-3', up=True)                                               -> '⁻³'
    script('max', up=False)                                             -> '_max'

Unicode super- and subscripts are used where every character has one (they read like the
printed formula and compare as plain digits and letters: NFKD folds "x²" to "x2", so rules
match them, RULES.md "Words"); otherwise TeX's ^ and _, with parentheses around more than
one token. MathML is read with the standard library's tolerant HTML parser (entities
decoded, prefixes such as `mml:` ignored); a fragment it cannot read comes back as its text.
Elements as in MathML 3 (W3C Recommendation, 2014), chapter 3 (presentation markup).
"""

from __future__ import annotations

from html.parser import HTMLParser

_UP = dict(zip("0123456789+-−=()abcdefghijklmnoprstuvwxyz",
               "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ", strict=True))
_DOWN = dict(zip("0123456789+-−=()aehijklmnoprstuvx",
                 "₀₁₂₃₄₅₆₇₈₉₊₋₋₌₍₎ₐₑₕᵢⱼₖₗₘₙₒₚᵣₛₜᵤᵥₓ", strict=True))
# MathML elements whose content is not shown (annotations repeat the formula as TeX)
_HIDDEN = frozenset({"annotation", "annotation-xml", "mphantom", "none", "mprescripts"})
# function application, invisible times, separator and plus (U+2061-2064): nothing to show
_INVISIBLE_OPS = dict.fromkeys(range(0x2061, 0x2065))
MAX_MATH = 5000  # characters of one formula read; longer ones keep their text


def _group(text: str) -> str:
    """`text` as one operand: in parentheses when it holds more than one token."""
    text = text.strip()
    plain = text.replace(".", "").replace(",", "")
    return text if plain.isalnum() or len(text) <= 1 or text.startswith("(") else f"({text})"


def unicode_script(text: str, *, up: bool) -> str | None:
    """`text` in Unicode's superscripts (`up`) or subscripts, or None when one of its
    characters has none ("-3" gives "⁻³"; "max" down gives "ₘₐₓ"; "k*" gives None)."""
    table = _UP if up else _DOWN
    if all(c in table for c in text):
        return "".join(table[c] for c in text)
    return None


# a transpose's mark as a superscript (T, ⊤, ⊺; -T the inverse's): the modifier letter
# capital T, U+1D40, which is how TeX's A^T, A^\\top and A^{\\mathsf{T}} read too
_TRANSPOSES = frozenset("T⊤⊺ᵀ")


def script(text: str, *, up: bool) -> str:
    """A superscript (`up`) or subscript in plain text: Unicode's where every character has
    one, else ^ or _ before the operand ("x^(n+1)", "E_max" as "E_max"); a transpose is
    "ᵀ" ("Aᵀ", "A⁻ᵀ")."""
    text = text.strip()
    if not text:
        return ""
    if up and text.lstrip("-−") in _TRANSPOSES and len(text) <= 2:
        return ("⁻" if len(text) == 2 else "") + "ᵀ"
    done = unicode_script(text, up=up)
    return done if done is not None else ("^" if up else "_") + _group(text)


def root(radicand: str, index: str) -> str:
    """A root with an index in plain text: the cube and fourth roots as their signs ("∛x",
    "∜(x+1)"), another as a power ("x^(1/n)", "(2x)^(1/(k+1))"); the operand in parentheses
    unless it is one character or a number."""
    radicand = radicand.strip()
    if not (len(radicand) <= 1 or radicand.replace(".", "").isdigit()):
        radicand = f"({radicand})"
    if index in ("3", "4"):
        return ("∛" if index == "3" else "∜") + radicand
    return f"{radicand}^(1/{_group(index)})"


class _Node:
    __slots__ = ("attrs", "children", "tag")

    def __init__(self, tag: str, attrs: list | None = None) -> None:
        self.tag = tag
        self.attrs = dict(attrs or ())
        self.children: list[_Node | str] = []


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("")
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs) -> None:
        node = _Node(tag.rpartition(":")[2], attrs)
        self.stack[-1].children.append(node)
        self.stack.append(node)

    def handle_startendtag(self, tag, attrs) -> None:
        self.stack[-1].children.append(_Node(tag.rpartition(":")[2], attrs))

    def handle_endtag(self, tag) -> None:
        name = tag.rpartition(":")[2]
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == name:
                del self.stack[i:]
                return

    def handle_data(self, data) -> None:
        self.stack[-1].children.append(data)


def _join(parts: list[str]) -> str:
    """Operands side by side: "x+1", "2x"; two words ("sin", "x"; "for all", "x") keep a
    space between them."""
    out = ""
    for part in parts:
        if not part:
            continue
        if out and out[-1].isalnum() and part[0].isalnum() and (
                len(part) > 1 and part.isalpha() or len(out.split()[-1]) > 1
                and out.split()[-1].isalpha()):
            out += " "
        out += part
    return out


def _text(node: _Node | str) -> str:
    if isinstance(node, str):
        return node.strip()
    if node.tag in _HIDDEN:
        return ""
    if node.tag == "mtext":  # words, spaces and all
        raw = "".join(k if isinstance(k, str) else _text(k) for k in node.children)
        return " ".join(raw.split())
    kids = [k for k in node.children if not (isinstance(k, str) and not k.strip())]
    tag = node.tag
    if tag == "mmultiscripts":
        return _multiscripts(kids)
    parts = [_text(k) for k in kids]
    if tag == "semantics":  # the presentation, not its annotations
        return parts[0] if parts else ""
    if tag == "mo" and parts and parts[0].isalpha() and len(parts[0]) > 1:
        return f" {parts[0]} "  # an operator that is a word: "and", "mod"
    if tag in ("msup", "msub", "msubsup", "mfrac", "mroot", "mover", "munder",
               "munderover") and len(parts) >= 2:
        base = parts[0].strip()
        if tag in ("msup", "mover") and not (tag == "mover" and len(parts[1]) == 1
                                             and not parts[1].isalnum()):
            return base + script(parts[1], up=True)
        if tag in ("msub", "munder"):
            return base + script(parts[1], up=False)
        if tag in ("msubsup", "munderover") and len(parts) >= 3:
            return base + script(parts[1], up=False) + script(parts[2], up=True)
        if tag == "mfrac":
            return f"{_group(parts[0])}/{_group(parts[1])}"
        if tag == "mroot":
            return root(base, parts[1].strip())
        return "".join(parts)  # mover with an accent: x¯
    if tag == "msqrt":
        return "√" + _group(_join(parts))
    if tag == "mfenced":
        sep = node.attrs.get("separators", ",").strip()[:1] or ","
        return (node.attrs.get("open", "(") + f"{sep} ".join(p for p in parts if p)
                + node.attrs.get("close", ")"))
    if tag in ("mtable", "mtr", "mtd"):
        return " ".join(p for p in parts if p)
    return _join(parts)


def _multiscripts(kids: list) -> str:
    """<mmultiscripts>: base, (sub, sup) pairs after it, <mprescripts/>, pairs before it
    (¹⁴C)."""
    nodes = [k for k in kids if not isinstance(k, str)]
    if not nodes:
        return ""
    base, rest = _text(nodes[0]), nodes[1:]
    split = next((i for i, k in enumerate(rest) if k.tag == "mprescripts"), len(rest))

    def pairs(items) -> str:
        out = ""
        for i in range(0, len(items) - 1, 2):
            out += script(_text(items[i]), up=False) + script(_text(items[i + 1]), up=True)
        return out

    return pairs(rest[split + 1:]) + base + pairs(rest[:split])


def math_to_text(fragment: str) -> str:
    """One MathML `<math>` element (with or without a prefix such as `mml:`) as plain
    text: 1/2, x², √(x+1), E_max, (a, b). Never raises."""
    if len(fragment) > MAX_MATH:
        fragment = fragment[:MAX_MATH]
    tree = _Tree()
    try:
        tree.feed(fragment)
        tree.close()
        return " ".join(_text(tree.root).translate(_INVISIBLE_OPS).split())
    except Exception:  # noqa: BLE001 (hostile markup: its text, nothing more)
        return " ".join("".join(c for c in fragment if c not in "<>").split())
