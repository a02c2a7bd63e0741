"""Cleaning at the edge: feed fields to the plain text the store keeps (markup, TeX, authors,
dates, links), each read as its source means it."""

from __future__ import annotations

import email.utils
import html
import re
from datetime import date, datetime, timedelta, timezone
from email._parseaddr import _timezones as _RFC5322_ZONES  # EST -> -500, as RFC 5322 4.3
from urllib.parse import urljoin, urlsplit

from ..text import collapse
from .mathml import math_to_text, unicode_script
from .tex import tex_to_text

MAX_TITLE = 500  # characters; longer titles are cut with an ellipsis
MAX_ABSTRACT = 10_000
MAX_AUTHOR = 200
ELLIPSIS = "…"

# Control characters (C0 but tab/newline, DEL, C1): they break headers and terminals and carry
# nothing a reader needs. A NUL from a broken feed must not reach the store.
# Also the invisible format characters that can reorder or hide text (bidi overrides and
# isolates, zero-width space, BOM); joiners that scripts and emoji need stay.
# Lone UTF-16 surrogates (from a broken JSON "\\ud800") can be neither stored nor mailed.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\u202a-\u202e"
                      "\u2066-\u2069\ufeff\ud800-\udfff]")
_unescape = html.unescape  # (clean_text's `html` is a flag)
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
                    "header", "footer", "dd", "dt", "dl", "figure", "figcaption", "math",
                    # JATS (journal abstracts, often as jats:sec, jats:title, jats:p)
                    "sec", "title", "abstract", "list", "list-item", "caption", "label"})
# Elements whose content a reader never sees (MathML's annotation repeats the formula as TeX).
# A <title> is JATS's heading of a section here (an HTML page's is inside <head>).
_INVISIBLE = re.compile(r"<(script|style|template|noscript|head|annotation|"
                        r"annotation-xml)(?=[\s/>])", re.IGNORECASE)
# A tag starts with a letter (or "/" and a letter) right after "<", as in HTML 5 (section
# 13.2.5.6): "<65" and "p < 0.05" are text. `[^<>]*` keeps every attempt linear.
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*>|<[!?][^<>]*>")


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


def _tag(m: re.Match) -> str:
    return " " if m[2] and m[2].rpartition(":")[2].lower() in _BLOCK else ""


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


# An inline element around text, as journals put them into fields they call text:
# <i>BRCA1</i>, <scp>CD4</scp>, <jats:italic>TP53</jats:italic>
_INLINE = re.compile(
    r"<((?:[A-Za-z][\w.-]*:)?)(i|b|u|em|strong|small|span|font|tt|code|sc|scp|italic|bold|"
    r"underline|monospace|named-content|inline-formula)\b[^<>]*>([^<>]{0,300}?)</\1\2\s*>",
    re.IGNORECASE)
_INNER_TAG = re.compile(r"</?(?:[A-Za-z][\w.-]*:)?(?:i|b|em|strong|span|italic|bold)\b[^<>]*>",
                        re.IGNORECASE)
_BR = re.compile(r"<br\s*/>", re.IGNORECASE)  # "<br/>" only: "<br>" may be a tag named in text


def inline_markup_to_text(text: str) -> str:
    """Text that holds inline markup all the same, without it: each element that encloses
    text (clean._INLINE's: <i>, <b>, <em>, <sup>, <scp>, JATS and MathML) gives its text,
    <br/> a space; everything else stays as written ("n<k", "List<String>", "</b> and <em>
    tags", "<br>", a <script> mentioned)."""
    text = _formulas(text, escape=False)
    for _ in range(5):  # nested elements, innermost first
        text, n = _INLINE.subn(r"\3", text)
        if not n:
            break
    return _BR.sub(" ", text) if "<br" in text or "<BR" in text else text


def html_to_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment: tags gone, entities decoded once.

    Tags are recognized as HTML 5 does (section 13.2.5: `<` then a letter, or `</`, `<!`,
    `<?`), so "aged <65 versus >80" survives; comments, scripts, styles and MathML
    annotations are dropped, block elements leave a space. Linear in the input, whatever
    it holds (a million "<a " costs what a million letters do).
    """
    if "<" not in fragment and "&" not in fragment:
        return fragment
    if "<" in fragment:
        fragment = _drop_between(fragment, "<!--", "-->")
        fragment = _formulas(fragment)
        fragment = _drop_invisible(fragment)
        fragment = _TAG.sub(_tag, fragment)
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
    feedparser then calls it text when "<65" is there too)."""
    return isinstance(value, str) and "<" in value and bool(_MARKUP_END.search(value))


def is_html(detail: object) -> bool:
    """True when feedparser's `*_detail` says the field is HTML (its `type`)."""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    return kind in HTML_TYPES


# -- fields --------------------------------------------------------------------------------------

def clean_text(value: object, *, html: bool = False, tex: bool = False,
               limit: int = MAX_ABSTRACT) -> str:
    """One feed field as plain text, on one line.

    `html`: the field is HTML (strip markup, decode entities once); otherwise it is text and
    left as written, `<` and `&` included. Either way an entity still there afterwards was
    escaped twice and is decoded (and markup it held removed). `tex`: the source writes TeX
    (arXiv kinds).
    Control characters are dropped and the result is cut to `limit` characters.
    """
    if not isinstance(value, str) or not value:
        return ""
    if len(value) > 2 * limit + 1000:  # markup and TeX shrink text, never by half
        value = value[:2 * limit + 1000]
    text = html_to_text(value) if html else value
    if "<" in text and has_markup(text):
        # markup in a field said to be text, or escaped twice in HTML
        # ("&lt;i&gt;E. coli&lt;/i&gt;"): a reader never wants to see it
        text = inline_markup_to_text(text)
    if "&" in text and _ENTITY.search(text):
        # an entity left after decoding (or in text) was escaped twice: "&amp;amp;",
        # "&amp;#8211;", "&amp;lt;i&amp;gt;" are "&", "–" and markup to anyone reading them
        text = _unescape(text)
        if "<" in text and has_markup(text):
            text = inline_markup_to_text(text)
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
# Affiliation marks after a name: "Jane Doe1", "Doe^{1,2}", "Roe*", "Lee†".
_MARKS = re.compile(r"(?<=[^\W\d_.])\s?\^?[\d,*†‡§¶#⁰¹²³⁴⁵⁶⁷⁸⁹⁺˒]+$")
_MARK_ENDS = frozenset("0123456789,*†‡§¶#⁰¹²³⁴⁵⁶⁷⁸⁹⁺")
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
MAX_AUTHORS_TEXT = 30_000  # characters of one author list kept (about 1,000 names)


# In a list of names a superscript is an affiliation mark ("Doe<sup>1,2</sup>",
# "Roe<sup>a</sup>"), written as markup or escaped once
_MARK_SUP = re.compile(r"<sup\b[^<>]*>.{0,40}?</sup\s*>|&lt;sup&gt;.{0,40}?&lt;/sup&gt;",
                       re.IGNORECASE)


def _without_marks(value: object) -> object:
    if isinstance(value, str) and ("sup" in value or "SUP" in value):
        return _MARK_SUP.sub("", value)
    return value


def _has_entities(value: object) -> bool:
    """Whether a name field carries HTML entities, so it is read as HTML (decoded once)."""
    return isinstance(value, str) and "&" in value and bool(_ENTITY.search(value))


# the particles of a surname ("van der Berg, Jan", "de la Cruz, María")
_PARTICLES = frozenset("van von der den de del della di da dos das du la le ter ten zu al el "
                       "bin ibn".split())
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, kanji/hanzi, hangul
_INITIALS = re.compile(r"(?:[A-Z]\.?[\s-]?){1,4}")


def is_no_author(name: str) -> bool:
    """"et al.", "others", "...": in a list of names, no person."""
    return len(name) <= 14 and bool(_NOT_AUTHOR.match(name))


def _surname(text: str) -> bool:
    """Whether `text` can be a surname before ", given names": one word, after lower-case
    particles ("van der Berg"; "Di Wu" and "Van Nguyen" are given name and surname)."""
    found = text.split()
    return 0 < len(found) <= 4 and all(w in _PARTICLES for w in found[:-1])


def _surname_initials(pieces: list[str]) -> list[str]:
    """"Li, M., Wang, Q." split at every comma, paired again: ["Li, M.", "Wang, Q."]. With
    initials at every other place, a surname may have up to three words of its own
    ("García Márquez, G., López, A.")."""
    kept = [p.strip() for p in pieces if p.strip() and not _NOT_AUTHOR.match(p.strip())]
    if len(kept) < 2 or len(kept) % 2 or not all(
            _INITIALS.fullmatch(p) for p in kept[1::2]) or any(
            _INITIALS.fullmatch(p) for p in kept[0::2]) or not all(
            len(p.split()) <= 3 or _surname(p) for p in kept[0::2]):
        return pieces
    return [f"{kept[k]}, {kept[k + 1]}" for k in range(0, len(kept), 2)]


def _name(piece: str) -> str:
    name = piece.strip(" ,;:")
    if "al" in name:
        name = _ET_AL.sub("", name)
    if name and name[-1] in _MARK_ENDS and not name.isdigit():
        name = _MARKS.sub("", name).strip(" ,;:")
    return name


def split_authors(value: object, *, html: bool = False, tex: bool = False,
                  sep: str | None = None) -> tuple[str, ...]:
    """Names from one author string, as people write lists of names.

    "A, B and C", "A; B", "A and B", "A & B" split into people; "Doe, Jane" (one word,
    a comma, given names) is one person; parenthesized (or bracketed) affiliations and
    affiliation marks ("Doe1", "Roe*") are dropped and never split a name list; "Jr."
    stays with its name; "et al." is no author. With `sep` only that separator (and
    "and") splits. `html`: the string is HTML (dc:creator with links); entities are
    decoded either way; `tex`: TeX accents are converted.
    """
    html = html or _has_entities(value)  # "M&#252;ller": its ";" must not split the list
    if isinstance(value, str) and "\n" in value and "," not in value and ";" not in value \
            and not html and "\n" in value.strip():
        lines = [line.strip() for line in value.splitlines() if line.strip()]
        if len(lines) > 1 and all(len(line.split()) > 1 and not line.endswith(" and")
                                  for line in lines):
            value = "; ".join(lines)  # one name a line (not "Jane Q.\n Doe", a wrapped one)
    text = clean_text(_without_marks(value), html=html, tex=tex, limit=MAX_AUTHORS_TEXT)
    if not text:
        return ()
    if not text.isascii() and ("、" in text or "，" in text or "；" in text):  # CJK lists
        text = text.replace("、", ",").replace("，", ",").replace("；", ";")
    cut = len(text) >= MAX_AUTHORS_TEXT - 1 and text.endswith(ELLIPSIS)
    while True:  # innermost groups first, so nested parentheses go too
        text, n = _PARENS.subn(" ", text)
        if not n:
            break
    text = text.replace("(", " ").replace(")", " ")
    if sep is None:
        sep = ";" if ";" in text else ","
    parts = [text] if sep != "," else _AND.split(text) if ("and" in text or "&" in text) \
        else [text]
    names: list[str] = []
    for part in parts:
        if sep == ",":
            pieces = part.split(",")
            # "Doe, Jane": one person, surname first (arXiv, which writes TeX, never does)
            if not tex and len(pieces) == 2 and _surname(_name(pieces[0])) \
                    and 0 < len(pieces[1].split()) <= 4 and not _SUFFIX.match(pieces[1].strip()) \
                    and not _CJK.search(part):
                pieces = [part]
            elif not tex:
                pieces = _surname_initials(pieces)
        else:
            pieces = [p for chunk in part.split(sep)
                      for p in (_AND.split(chunk) if ("and" in chunk or "&" in chunk)
                                else (chunk,))]
        for piece in pieces:
            name = _name(piece) if piece else ""
            if not name:
                continue
            if len(name) <= 14 and (_NOT_AUTHOR.match(name)
                                    or not any(c.isalpha() for c in name)):
                continue
            if len(name) <= 4 and names and _SUFFIX.match(name):
                names[-1] = f"{names[-1]}, {name}"
                continue
            names.append(name if len(name) <= MAX_AUTHOR else cap(name, MAX_AUTHOR))
    if cut and names:
        names.pop()  # the name the cut went through
    return tuple(dict.fromkeys(names))


def clean_name(value: object, *, html: bool = False, tex: bool = False) -> str:
    """One person's name (a feed that gives each author apart): affiliations in
    parentheses and affiliation marks dropped, entities decoded."""
    html = html or _has_entities(value)
    text = clean_text(_without_marks(value), html=html, tex=tex, limit=MAX_AUTHOR * 2)
    while True:
        text, n = _PARENS.subn(" ", text)
        if not n:
            break
    return cap(collapse(_name(text.replace("(", " ").replace(")", " "))), MAX_AUTHOR)


# -- links ---------------------------------------------------------------------------------------

def absolute_link(link: object, base: str = "") -> str:
    """`link` resolved against `base` (xml:base or the URL the feed came from); '' unless
    the result is an http(s) URL with a host (no `javascript:`, `data:` or relative link
    reaches an email)."""
    if not isinstance(link, str):
        return ""
    # as a browser reads a URL (WHATWG URL standard, basic URL parser): tabs and line
    # breaks inside are dropped, spaces in the path are percent-encoded
    link = _CONTROL.sub("", link).strip().replace("\t", "").replace("\r", "").replace("\n", "")
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
    if any(c.isspace() for c in parts.netloc):
        return ""
    return link.replace(" ", "%20") if " " in link else link


# -- dates ---------------------------------------------------------------------------------------

_DATE_ONLY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:?\d{2})?$")  # XSD dates may carry a zone
_HAS_TIME = re.compile(r"\d{1,2}:\d{2}")
_ZONE_NAME = re.compile(r"\s+([A-Za-z]{2,5})$")
_AMPM = re.compile(r"\d\s*[AaPp]\.?[Mm]\.?(?:\s|$)")
_FORMATS_DAY = ("%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y",
                "%Y/%m/%d", "%Y%m%d")
_FORMATS_TIME = ("%B %d, %Y %I:%M %p", "%b %d, %Y %I:%M %p", "%B %d, %Y %I:%M:%S %p",
                 "%b %d, %Y %I:%M:%S %p", "%d %B %Y %H:%M", "%d %b %Y %H:%M",
                 "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S %z")


def _plausible(when: date) -> bool:
    return 1900 <= when.year <= datetime.now(timezone.utc).year + 1


def iso_datetime(value: object) -> str:
    """A feed's date as ISO 8601 in the source's own zone, as precise as it says; '' when
    it cannot be read with confidence.

    RFC 5322 dates (RSS 2.0, section 3.3) and ISO 8601 / RFC 3339 (Atom) keep their
    offset; a date without a time stays a date ("2026-11-27", no invented midnight); a
    zone name that RFC 5322 knows (EST, PDT, ...) gives its offset, another one keeps the
    local date and time without an offset. Impossible dates (31 November), impossible
    offsets and years outside 1900..next year are not believed. feedparser's own UTC
    reading (`*_parsed`) is not used: it rolls impossible dates over onto the next month.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return ""
    m = _DATE_ONLY.match(text)
    if m:
        try:
            return m[1] if _plausible(date.fromisoformat(m[1])) else ""
        except ValueError:
            return ""
    when = _parse_text_date(text)
    if when is None:
        return ""
    if isinstance(when, str):
        return when
    if not _plausible(when):
        return ""
    if not _HAS_TIME.search(text):
        return when.date().isoformat()  # "27 Nov 2026": a day, not midnight
    return when.isoformat()


def _parse_text_date(text: str) -> datetime | str | None:
    when = None
    ampm = _AMPM.search(text)
    if not ampm:  # email.utils would read "11:30 PM" as 11:30 in a zone called PM
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
    if when is not None:
        offset = when.utcoffset()
        if offset is not None and abs(offset.total_seconds()) >= 86400:
            return None  # "+2400" is no offset
        return when
    zone = _ZONE_NAME.search(text)
    if zone and ampm and zone.start() < ampm.start():
        zone = None
    base, offset = text, None
    if zone and zone[1].upper() in _RFC5322_ZONES:
        base, offset = text[:zone.start()], _RFC5322_ZONES[zone[1].upper()]
    elif zone and zone[1].upper() not in ("AM", "PM"):
        base = text[:zone.start()]  # an unknown zone name: local time, no offset
    when = None
    try:
        when = datetime.fromisoformat(base.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        for fmt in _FORMATS_TIME:
            try:
                when = datetime.strptime(base, fmt)
                break
            except ValueError:
                continue
        else:
            for fmt in _FORMATS_DAY:
                try:
                    day = datetime.strptime(base, fmt).date()
                except ValueError:
                    continue
                return day.isoformat() if _plausible(day) else ""
            return None
    if offset is not None and when.tzinfo is None:
        when = when.replace(tzinfo=timezone(timedelta(hours=offset / 100)))
    return when


def entry_date(entry: dict) -> str:
    """A feedparser entry's publication date (else its last update, else dc:date) by
    iso_datetime; the first of them that can be read."""
    # dict.get: feedparser maps a missing `updated*` to `published*` with a warning.
    for key in ("published", "updated", "created", "dc_date"):
        found = iso_datetime(dict.get(entry, key))
        if found:
            return found
    return ""
