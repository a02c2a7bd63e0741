"""Cleaning at the edge: feed fields to the plain text the store keeps (markup, TeX, authors,
dates, links), each read as its source means it."""

from __future__ import annotations

import email.utils
import re
import time
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from pylatexenc import latexwalker, macrospec
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

from ..text import collapse

MAX_TITLE = 500  # characters; longer titles are cut with an ellipsis
MAX_ABSTRACT = 10_000
MAX_AUTHOR = 200
ELLIPSIS = "…"

# Control characters (C0 but tab/newline, DEL, C1): they break headers and terminals and carry
# nothing a reader needs. A NUL from a broken feed must not reach the store.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + ELLIPSIS


# -- HTML ----------------------------------------------------------------------------------------

_BLOCK = frozenset({"p", "br", "div", "li", "ul", "ol", "tr", "td", "th", "table", "h1", "h2",
                    "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "section", "article",
                    "header", "footer", "dd", "dt", "dl", "figure", "figcaption"})
_INVISIBLE = frozenset({"script", "style", "template", "noscript", "head", "title"})


class _Text(HTMLParser):
    """The visible text of an HTML fragment, as a browser would show it, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _INVISIBLE:
            self.hidden += 1
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag in _BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment: tags gone, entities decoded once.

    Uses the standard library's HTML parser, which (like a browser, HTML 5 section 13.2.5)
    reads `<` not followed by a letter as text: "aged <65 versus >80" survives.
    """
    if "<" not in fragment and "&" not in fragment:
        return fragment
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return "".join(parser.parts)


def is_html(detail: object) -> bool:
    """True when feedparser's `*_detail` says the field is HTML (its `type`)."""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    return kind in HTML_TYPES


# -- TeX -----------------------------------------------------------------------------------------

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


def _latex_contexts():
    # Macros that papers use and pylatexenc does not know or renders unhelpfully: URLs keep
    # their text, citations and references (which mean nothing outside the paper) vanish.
    parse = latexwalker.get_default_latex_context_db()
    parse.add_context_category("digestd", prepend=True, macros=[
        macrospec.MacroSpec("url", "{"), macrospec.MacroSpec("href", "{{"),
        macrospec.MacroSpec("texttt", "{"), macrospec.MacroSpec("textsc", "{"),
        *(macrospec.MacroSpec(m, "{") for m in _PLAIN_STYLES),
    ])
    render = get_default_latex_context_db()
    render.add_context_category("digestd", prepend=True, macros=[
        MacroTextSpec("url", "%(1)s"), MacroTextSpec("href", _href),
        MacroTextSpec("texttt", "%(1)s"), MacroTextSpec("textsc", "%(1)s"),
        MacroTextSpec("cite", ""), MacroTextSpec("citep", ""), MacroTextSpec("citet", ""),
        MacroTextSpec("ref", ""), MacroTextSpec("eqref", ""), MacroTextSpec("label", ""),
        MacroTextSpec("footnote", ""),
        *(MacroTextSpec(m, "%(1)s") for m in _PLAIN_STYLES),
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
_DOLLARS = re.compile(r"\$\$?([^$]{0,1000}?)\$\$?")


def _protect_money(text: str) -> str:
    text = text.replace("\\$", "\x00")  # an escaped dollar is no delimiter
    out, last = [], 0
    for m in _DOLLARS.finditer(text):
        body = m[1]
        after = text[m.end():m.end() + 1]
        texish = any(c in body for c in "\\^_{}")  # "$\\sim$100" is math before a number
        money = not body.strip() or (not texish and (
            after.isdigit() or (body[:1].isdigit() and body[-1:].isspace())))
        if money:
            continue
        out.append(text[last:m.start()].replace("$", r"\$"))
        out.append(m[0])
        last = m.end()
    out.append(text[last:].replace("$", r"\$"))
    return "".join(out).replace("\x00", r"\$")


_TOKEN = re.compile(r"\S+")
_ESCAPES = re.compile(r"\\[\\{}$]")
# TeX's tie (a space that does not break) inside a phrase, "Fig.~3"; "~100" (about 100) stays.
_TIE = re.compile(r"(?<=[A-Za-z.])~(?=[A-Za-z0-9(\[])")


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
        if depth <= 0 and not math:
            spans.append((start, m.end()))
            start, depth = None, 0
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _convert(fragment: str) -> str:
    prepared = _LITERAL.sub(r"\\\1", fragment)
    try:
        nodes = latexwalker.LatexWalker(prepared, latex_context=_PARSE_CONTEXT,
                                        tolerant_parsing=True).get_latex_nodes()[0]
        return _L2T.nodelist_to_text(nodes)
    except Exception:  # noqa: BLE001 (a third-party parser on hostile text: keep the original)
        return fragment


def tex_to_text(text: str) -> str:
    """TeX as a reader sees it: accents and symbols in Unicode, math as readable text.

    `Bj\\"orn` -> `Björn`, `$\\Lambda$CDM` -> `ΛCDM`, `$\\sqrt{s} = 13$` -> `√(s) = 13`,
    `{\\it x}` -> `x`, `Fig.~3` -> `Fig. 3`. Converted with pylatexenc's latex2text, run
    only on the parts that hold TeX; `%` and `&` stay literal, and dollars that read as
    money are not math. Strings without `\\`, `$`, `{` or a tie are returned as they are
    (the common case costs one scan). Never raises: a fragment the converter cannot read is
    kept as written.
    """
    if "~" in text:
        text = _TIE.sub(" ", text)
    if not _TEX_HINT.search(text):
        return text
    prepared = _protect_money(text)
    out, last = [], 0
    for start, end in _tex_spans(prepared):
        out.append(prepared[last:start])
        out.append(_convert(prepared[start:end]))
        last = end
    out.append(prepared[last:])
    return collapse("".join(out))


# -- fields --------------------------------------------------------------------------------------

def clean_text(value: object, *, html: bool = False, tex: bool = False,
               limit: int = MAX_ABSTRACT) -> str:
    """One feed field as plain text, on one line.

    `html`: the field is HTML (strip markup, decode entities once); otherwise it is text and
    left as written, `<` and `&` included. `tex`: the source writes TeX (arXiv kinds).
    Control characters are dropped and the result is cut to `limit` characters.
    """
    if not isinstance(value, str) or not value:
        return ""
    text = html_to_text(value) if html else value
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    if tex:
        text = tex_to_text(text)
    return cap(collapse(text), limit)


def clean_title(value: object, *, html: bool = False, tex: bool = False) -> str:
    """A title as plain text (see clean_text), at most MAX_TITLE characters."""
    return clean_text(value, html=html, tex=tex, limit=MAX_TITLE)


def clean_abstract(value: object, *, html: bool = False, tex: bool = False) -> str:
    """An abstract as plain text (see clean_text), at most MAX_ABSTRACT characters."""
    return clean_text(value, html=html, tex=tex, limit=MAX_ABSTRACT)


_PARENS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_AND = re.compile(r"\s+(?:and|&)\s+|^\s*and\s+", re.IGNORECASE)
# Pieces that continue the previous name ("King, Jr.") or are no author at all.
_SUFFIX = re.compile(r"^(?:jr|sr|ii|iii|iv|v|phd|md|msc|bsc)\.?$", re.IGNORECASE)
_ET_AL = re.compile(r"\s+et\.?\s*al\.?$", re.IGNORECASE)
_NOT_AUTHOR = re.compile(r"^(?:et\.?\s*al\.?|others|and others|\.+)$", re.IGNORECASE)


def split_authors(value: object, *, html: bool = False, tex: bool = False,
                  sep: str | None = None) -> tuple[str, ...]:
    """Names from one author string, as people write lists of names.

    "A, B and C", "A; B", "A and B", "A & B" split into people; parenthesized (or
    bracketed) affiliations are dropped and never split a name list; "Jr." stays with its
    name; "et al." is no author. With `sep` only that separator (and "and") splits.
    `html`: the string is HTML (dc:creator with links); `tex`: TeX accents are converted.
    """
    text = clean_text(value, html=html, tex=tex, limit=20_000)
    if not text:
        return ()
    while True:  # innermost groups first, so nested parentheses go too
        text, n = _PARENS.subn(" ", text)
        if not n:
            break
    text = text.replace("(", " ").replace(")", " ")
    if sep is None:
        sep = ";" if ";" in text else ","
    names: list[str] = []
    for piece in text.split(sep):
        # most pieces are one plain name: the checks below run only where they can apply
        pieces = _AND.split(piece) if ("and" in piece or "&" in piece) else (piece,)
        for name in pieces:
            name = name.strip(" ,;:") if name else ""
            if "al" in name:
                name = _ET_AL.sub("", name)
            if not name:
                continue
            if len(name) <= 14 and (_NOT_AUTHOR.match(name)
                                    or not any(c.isalpha() for c in name)):
                continue
            if len(name) <= 4 and names and _SUFFIX.match(name):
                names[-1] = f"{names[-1]}, {name}"
                continue
            names.append(name if len(name) <= MAX_AUTHOR else cap(name, MAX_AUTHOR))
    return tuple(dict.fromkeys(names))


# -- links ---------------------------------------------------------------------------------------

def absolute_link(link: object, base: str = "") -> str:
    """`link` resolved against `base` (xml:base or the URL the feed came from); '' unless
    the result is an http(s) URL with a host (no `javascript:`, `data:` or relative link
    reaches an email)."""
    if not isinstance(link, str):
        return ""
    link = _CONTROL.sub("", link).strip()
    if not link:
        return ""
    if base and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", link):
        try:
            link = urljoin(base, link)
        except ValueError:
            return ""
    try:
        parts = urlsplit(link)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return link


# -- dates ---------------------------------------------------------------------------------------

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HAS_TIME = re.compile(r"\d{1,2}:\d{2}")
_FORMATS_DAY = ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y",
                "%Y/%m/%d", "%d.%m.%Y", "%Y%m%d")


def _plausible(when: date) -> bool:
    return 1900 <= when.year <= datetime.now(timezone.utc).year + 1


def iso_datetime(value: object, parsed: time.struct_time | None = None) -> str:
    """A feed's date as ISO 8601 in the source's own zone, as precise as it says; '' when
    it cannot be read with confidence.

    RFC 822/5322 dates (RSS 2.0) and ISO 8601 (Atom, RFC 3339) keep their offset; a date
    without a time stays a date ("2026-11-27", no invented midnight); a zone that cannot be
    read keeps the local date and time without an offset. `parsed` (feedparser's UTC
    reading) is used only when the text is none of these and has a time of day. Years
    outside 1900..next year are not believed.
    """
    text = value.strip() if isinstance(value, str) else ""
    if text:
        if _DATE_ONLY.match(text):
            try:
                return text if _plausible(date.fromisoformat(text)) else ""
            except ValueError:
                return ""
        found = _parse_text_date(text)
        if found is not None:
            return found
    if parsed and (not text or _HAS_TIME.search(text)):
        try:
            when = datetime(*parsed[:6], tzinfo=timezone.utc)
        except (TypeError, ValueError):
            return ""
        return when.isoformat() if _plausible(when) else ""
    return ""


def _parse_text_date(text: str) -> str | None:
    when: datetime | None = None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            for fmt in _FORMATS_DAY:
                try:
                    day = datetime.strptime(text, fmt).date()
                except ValueError:
                    continue
                return day.isoformat() if _plausible(day) else ""
            return None
    if when is None or not _plausible(when):
        return ""
    if not _HAS_TIME.search(text):
        return when.date().isoformat()  # "27 Nov 2026": a day, not midnight
    return when.isoformat()


def entry_date(entry: dict) -> str:
    """A feedparser entry's publication date (else its last update) by iso_datetime."""
    # dict.get: feedparser maps a missing `updated*` to `published*` with a warning.
    for text_key, parsed_key in (("published", "published_parsed"),
                                 ("updated", "updated_parsed")):
        text, parsed = dict.get(entry, text_key), dict.get(entry, parsed_key)
        if text or parsed:
            return iso_datetime(text, parsed)
    return ""
