"""HTML in feed fields as the text a reader sees: tags recognized as HTML 5 does and only
where they name an element (HTML 5's, JATS's, MathML's), comments, scripts and MathML
annotations dropped, formulas (MathML, <sup>/<sub>, JATS <tex-math>) as plain text, entities
decoded once. Used by clean.py, which cleans whole fields."""

from __future__ import annotations

import html
import re

from .mathml import math_to_text, unicode_script
from .tex import tex_to_text

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})

_BLOCK = frozenset({"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2",
                    "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
                    "header", "footer", "dd", "dt", "dl", "figure", "figcaption", "math",
                    # JATS (journal abstracts, often as jats:sec, jats:title, jats:p)
                    "sec", "title", "abstract", "list", "list-item", "caption", "label"})
# Elements whose content a reader never sees (MathML's annotation repeats the formula as TeX;
# an inline <svg> is a drawing).
# A <title> is JATS's heading of a section here (an HTML page's is inside <head>).
_INVISIBLE = re.compile(r"<(script|style|template|noscript|head|annotation|"
                        r"annotation-xml|svg)(?=[\s/>])", re.IGNORECASE)
# A tag starts with a letter (or "/" and a letter) right after "<", as in HTML 5 (section
# 13.2.5.6): "<65" and "p < 0.05" are text. `[^<>]*` keeps every attempt linear.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)([^<>]*)>|<[!?][^<>]*>")
_END_NAMES = re.compile(r"</([A-Za-z][A-Za-z0-9:-]*)")
_START_NAMES = re.compile(r"<([A-Za-z][A-Za-z0-9:-]*)")
# The elements a feed's HTML is made of: HTML 5's (WHATWG HTML, section 4, and the obsolete
# ones feeds still use), JATS's (the journals' XML) and MathML's. "For all k<n and n>m",
# "<LOD were set to LOD/2; n>" and "List<Integer>" name none of them and are text.
_ELEMENT_NAMES = """
a abbr acronym address area article aside audio b base basefont bdi bdo big blink blockquote
body br button canvas caption center cite code col colgroup data datalist dd del details dfn
dialog dir div dl dt em embed fieldset figcaption figure font footer form frame frameset h1 h2
h3 h4 h5 h6 head header hgroup hr html i iframe img input ins kbd label legend li link main map
mark marquee menu meta meter nav nobr noscript object ol optgroup option output p param picture
pre progress q rp rt ruby s samp script search section select slot small source span strike
strong style sub summary sup svg table tbody td template textarea tfoot th thead time title tr
track tt u ul var video wbr
abstract alternatives attrib bold boxed-text break chem-struct def def-item def-list
disp-formula disp-quote email ext-link fig fn graphic inline-formula inline-graphic italic list
list-item monospace named-content overline roman sans-serif sc scp sec sig statement
styled-content tex-math trans-abstract underline uri xref
annotation annotation-xml maction maligngroup malignmark math menclose merror mfenced mfrac
mglyph mi mlabeledtr mmultiscripts mn mo mover mpadded mphantom mprescripts mroot mrow ms
mspace msqrt mstyle msub msubsup msup mtable mtd mtext mtr munder munderover none semantics
"""
_ELEMENTS = frozenset(_ELEMENT_NAMES.split())
# Elements that are tags whatever follows their name: void elements (HTML 5 section 13.1.2,
# and the obsolete ones), and those whose end tag may be left out (section 13.1.2.4):
# "<br clear>", "<hr noshade>", "<td nowrap>a<td nowrap>b"
_ALWAYS_NAMES = """
area base basefont bgsound br col embed frame hr image img input isindex keygen link menuitem
meta param source spacer track wbr
caption colgroup dd dt li optgroup option p rp rt tbody td tfoot th thead tr
"""
_ALWAYS = frozenset(_ALWAYS_NAMES.split())
# an attribute with a quoted value: `<foo bar="1">` is markup whatever its name
_QUOTED_ATTRIBUTE = re.compile(r"""\s[A-Za-z_:][\w:.-]*\s*=\s*["']""")
# The attributes written without a value (HTML 5's boolean attributes, the obsolete
# presentational ones, "<br clear>"): other words after an element's name, none with a
# value, are text around a "<" and a ">" ("for k<p and p>q", "if n<i or i>0")
_BARE_ATTRIBUTE_NAMES = """
allowfullscreen async autofocus autoplay border checked clear compact contenteditable controls
declare default defer disabled download formnovalidate hidden inert ismap itemscope loop
multiple muted nohref nomodule noresize noshade novalidate nowrap open playsinline readonly
required reversed selected
"""
_BARE_ATTRIBUTES = frozenset(_BARE_ATTRIBUTE_NAMES.split())


def _words_not_attributes(attributes: str) -> bool:
    """Whether what follows an element's name in a `<...>` is words rather than attributes:
    no value anywhere (no "=") and a word that is no attribute written without one."""
    words = attributes.strip().rstrip("/").split()
    return bool(words) and "=" not in attributes and not all(
        w.lower() in _BARE_ATTRIBUTES for w in words)


def _is_tag(m: re.Match, ends: set[str], starts: set[str]) -> bool:
    """Whether a `<...>` that HTML 5 would read as a tag is markup, not text: a comment or
    declaration; a self-closing tag (`<rect .../>`, `<target id="t1"/>`); an element with a
    namespace prefix (jats:, mml:) or a custom element's hyphen (`<x-foo>`); a void element
    or one whose end tag may be left out, whatever follows its name (`<br clear>`); one a
    browser knows, with nothing after its name but attributes that have values (`<b and c>`
    is text), or closed in the same fragment; any element with a quoted attribute, or
    opened and closed there (`<foo>x</foo>`)."""
    if not m[2]:
        return True  # <!-- -->, <!DOCTYPE>, <?xml ?>
    name = m[2].lower()
    if ":" in name or "-" in name:
        return True
    known = name in _ELEMENTS
    if m[1]:  # an end tag
        return known or name in starts
    if m[3].endswith("/"):
        return True
    if _words_not_attributes(m[3]):
        return False  # "for k<p and p>q": whatever closes later, no element opens here
    if name in _ALWAYS:
        return True
    rest = m[3].strip()
    if known and (not rest or "=" in rest):
        return True
    return name in ends or bool(rest and _QUOTED_ATTRIBUTE.search(m[3]))


def _drop_between(text: str, start: str, end: str) -> str:
    """`text` without each `start`...`end` run (to the end when `end` never comes)."""
    out, i = [], 0
    while True:
        j = text.find(start, i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        k = text.find(end, j + len(start))
        if k < 0:
            return "".join(out)
        i = k + len(end)


def _drop_invisible(text: str) -> str:
    lower = text.lower()
    out, i = [], 0
    while True:
        m = _INVISIBLE.search(text, i)
        if m is None:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        close = lower.find(f"</{m[1].lower()}", m.end())
        if close < 0:
            return "".join(out)
        gt = text.find(">", close)
        i = len(text) if gt < 0 else gt + 1


def _tags_out(fragment: str) -> str:
    """`fragment` without its tags (_is_tag), a space for a block element's."""
    ends = {n.lower() for n in _END_NAMES.findall(fragment)} if "</" in fragment else set()
    starts = {n.lower() for n in _START_NAMES.findall(fragment)} if ends else set()

    def out(m: re.Match) -> str:
        if not _is_tag(m, ends, starts):
            return m[0]
        return " " if m[2] and m[2].rpartition(":")[2].lower() in _BLOCK else ""

    return _TAG.sub(out, fragment)


# MathML (<math>, <mml:math>) and HTML/JATS super- and subscripts with plain text inside
_MATH = re.compile(r"<((?:[A-Za-z][\w.-]*:)?)math\b.*?</\1math\s*>", re.IGNORECASE | re.DOTALL)
_ALTERNATIVES = re.compile(r"<((?:[A-Za-z][\w.-]*:)?)alternatives\b.*?</\1alternatives\s*>",
                           re.IGNORECASE | re.DOTALL)
_TEX_MATH = re.compile(r"<((?:[A-Za-z][\w.-]*:)?)tex-math\b[^<>]*>(.*?)</\1tex-math\s*>",
                       re.IGNORECASE | re.DOTALL)
_SCRIPT = re.compile(r"<((?:[A-Za-z][\w.-]*:)?)(sup|sub)\b[^<>]*>((?:[^<]|</?(?:[A-Za-z][\w.-]*:)?"
                     r"(?:i|b|em|strong|span|italic|bold)\b[^<>]*>){0,120})</\1\2\s*>",
                     re.IGNORECASE)


def _as_text(text: str) -> str:
    """Plain text to put back into markup that is read as HTML afterwards."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _formulas(fragment: str, *, escape: bool = True) -> str:
    """MathML formulas and <sup>/<sub> as plain text (sources/mathml.py): 1/2, x², 10⁻³,
    not the "12", "x2" and "10-3" that dropping their tags would leave. `escape`: the
    result is read as HTML afterwards (its "<" and "&" escaped)."""
    put = _as_text if escape else (lambda text: text)
    if "tex-math" in fragment:
        # JATS: a formula as TeX, alone or beside its MathML in <alternatives>: the MathML
        # is read where it is there, else the TeX
        fragment = _ALTERNATIVES.sub(lambda m: _TEX_MATH.sub("", m[0]) if _MATH.search(
            _TEX_MATH.sub("", m[0])) else m[0], fragment)
        fragment = _TEX_MATH.sub(lambda m: put(tex_to_text(
            m[2] if "$" in m[2] else f"${m[2]}$")), fragment)
    if "math" in fragment or "MATH" in fragment:
        fragment = _MATH.sub(lambda m: put(math_to_text(m[0])), fragment)
    if "<s" in fragment or "<S" in fragment or ":s" in fragment:
        fragment = _SCRIPT.sub(lambda m: put(_html_script(
            _INNER_TAG.sub("", html.unescape(m[3])), up=m[2].lower() == "sup")), fragment)
    return fragment


def _html_script(text: str, *, up: bool) -> str:
    """<sup>/<sub> in Unicode's super- or subscripts where it has all of them (10⁻³, CD4⁺,
    H₂O), else as it reads inline (Tp53-/-, studies3–5): no ^( ) in running text."""
    text = text.strip()
    done = unicode_script(text, up=up) if text else ""
    return text if done is None else done


# The text an element encloses: anything but a tag ("ages <65" and "n>30" are text, HTML 5
# section 13.2.5.6)
_ENCLOSED = r"(?:[^<]|<(?![A-Za-z/!?]))"
# An inline element around text, as journals put them into fields they call text:
# <i>BRCA1</i>, <scp>CD4</scp>, <jats:italic>TP53</jats:italic>, <a href="...">a link</a>
_INLINE = re.compile(
    r"<((?:[A-Za-z][\w.-]*:)?)(i|b|u|a|em|strong|small|span|font|tt|code|sc|scp|italic|bold|"
    r"underline|monospace|named-content|inline-formula)\b([^<>]*)>(" + _ENCLOSED
    + r"{0,300}?)</\1\2\s*>", re.IGNORECASE)
# ... and a paragraph or a division around it (a title wrapped in <p>), of any length
_PARAGRAPH = re.compile(r"<((?:[A-Za-z][\w.-]*:)?)(p|div)\b([^<>]*)>(" + _ENCLOSED
                        + r"*?)</\1\2\s*>", re.IGNORECASE)
_INNER_TAG = re.compile(r"</?(?:[A-Za-z][\w.-]*:)?(?:i|b|em|strong|span|italic|bold)\b[^<>]*>",
                        re.IGNORECASE)
# A void element (HTML 5 section 13.1.2: no content, no end tag), a tag on its own
_VOID = re.compile(r"<(br|hr|wbr|img)\b([^<>]*)>", re.IGNORECASE)
_QUOTES = frozenset("\"'`([<‘“«")
_UNQUOTES = frozenset("\"'`)]>’”»")


def _void_tag(m: re.Match) -> bool:
    """Whether a void element in text (_VOID) is markup: closed as XML closes it ("<br/>",
    "<hr />", `<img src="f.gif"/>`), with a quoted attribute (`<img src="f.gif">`), or
    between two words with no space ("Part one:<br>a subtitle"); "Using <br> tags" and
    "the `<br>` element" name one."""
    if m[2].rstrip().endswith("/") or _QUOTED_ATTRIBUTE.search(m[2]):
        return True
    text, start, end = m.string, m.start(), m.end()
    return 0 < start and end < len(text) and not (
        text[start - 1].isspace() or text[end].isspace()
        or text[start - 1] in _QUOTES or text[end] in _UNQUOTES)


def _void_out(m: re.Match) -> str:
    if not _void_tag(m):
        return m[0]
    return " " if m[1].lower() in ("br", "hr") else ""


def _enclosed(m: re.Match) -> str:
    """An inline element's text (_INLINE), a paragraph's between spaces (_PARAGRAPH)."""
    return m[4] if m[2].lower() not in ("p", "div") else f" {m[4]} "


# a "<" before a name and words that are no attributes ("k<p and p>q"), which
# inline_markup_to_text keeps apart as text (a NUL, which no cleaned text holds, for its "<")
_WORDS_TAG = re.compile(r"<(?=[A-Za-z][\w:-]*(\s[^<>]*)>)")


def inline_markup_to_text(text: str) -> str:
    """Text that holds inline markup all the same, without it: each element that encloses
    text (clean._INLINE's: <i>, <b>, <em>, <a>, <sup>, <scp>, JATS and MathML) gives its
    text, a <p> or <div> its text between spaces, a line break or rule written as a tag
    (_void_tag: "<br/>", "one:<br>two") a space, an image nothing; everything else stays as
    written ("n<k", "List<String>", "</b> and <em> tags", "Using <br> tags", a <script>
    mentioned)."""
    text = _formulas(text, escape=False)
    kept = "\x00" not in text and " " in text
    if kept:
        text = _WORDS_TAG.sub(lambda m: "\x00" if _words_not_attributes(m[1]) else "<", text)
    for _ in range(5):  # nested elements, innermost first
        text, n = _INLINE.subn(_enclosed, text)
        text, k = _PARAGRAPH.subn(_enclosed, text)
        if not n and not k:
            break
    if kept and "\x00" in text:
        text = text.replace("\x00", "<")
    return _VOID.sub(_void_out, text) if _VOID.search(text) else text


_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|$)", re.DOTALL)


def html_to_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment: tags gone, entities decoded once.

    Tags are recognized as HTML 5 does (section 13.2.5: `<` then a letter, or `</`, `<!`,
    `<?`), so "aged <65 versus >80" survives, and of those only the ones that name an
    element (_is_tag), so "for all k<n and n>m" and "List<Integer>" survive too;
    comments, scripts, styles and MathML annotations are dropped, block elements leave a
    space, and a CDATA section left in the field (a feed that wrapped it twice) is text.
    Linear in the input, whatever it holds (a million "<a " costs what a million letters
    do).
    """
    if "<" not in fragment and "&" not in fragment:
        return fragment
    if "<" in fragment:
        if "<![CDATA[" in fragment:
            fragment = _CDATA.sub(lambda m: _as_text(m[1]), fragment)
        fragment = _drop_between(fragment, "<!--", "-->")
        fragment = _formulas(fragment)
        fragment = _drop_invisible(fragment)
        fragment = _tags_out(fragment)
    return html.unescape(fragment) if "&" in fragment else fragment


# The end of an element that text means as markup: inline HTML, JATS (<jats:italic>, <sc>,
# Wiley's <scp>) and MathML, with or without a prefix. A lone "<b>", a "<br>" or
# "List<String>" is no such end.
_MARKUP_END = re.compile(
    r"</(?:[A-Za-z][\w.-]*:)?(?:i|b|u|s|em|strong|sup|sub|small|span|font|tt|code|a|p|div|"
    r"sc|scp|italic|bold|underline|monospace|inline-formula|named-content|math)\s*>",
    re.IGNORECASE)


def has_markup(value: object) -> bool:
    """Whether a field that says it is text holds markup all the same: the end tag of an
    inline HTML, JATS or MathML element (feeds escape "<i>BRCA1</i>" into a plain title;
    feedparser then calls it text when "<65" is there too), or a void element written as a
    tag (_void_tag: "Part one:<br/>a subtitle" in a CDATA title)."""
    if not isinstance(value, str) or "<" not in value:
        return False
    return bool(_MARKUP_END.search(value)) or any(_void_tag(m) for m in _VOID.finditer(value))


def is_html(detail: object) -> bool:
    """True when feedparser's `*_detail` says the field is HTML (its `type`)."""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    return kind in HTML_TYPES


def is_element_name(name: str) -> bool:
    """Whether `name` (with or without a prefix, any case) names an element of HTML 5, JATS
    or MathML: markup a feed may leave unescaped in a field."""
    return name.rpartition(":")[2].lower() in _ELEMENTS
