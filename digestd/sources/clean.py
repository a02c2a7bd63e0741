"""Cleaning at the edge: feed fields to the plain text the store keeps (markup, TeX, authors,
dates, links), each read as its source means it."""

from __future__ import annotations

import email.utils
import html
import re
from datetime import date, datetime, timedelta, timezone
from email._parseaddr import _timezones as _RFC5322_ZONES  # EST -> -500, as RFC 5322 4.3
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

from ..text import collapse
from .markup import has_markup, html_to_text, inline_markup_to_text
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


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, at a word boundary, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + ELLIPSIS


# -- fields --------------------------------------------------------------------------------------

# UTF-8 read as Windows-1252 somewhere upstream, and stored so ("MuÃ±oz", "SchrÃ¶dinger",
# "â€“"): a lead byte's character, then the characters of its continuation bytes
_CONTINUATION = ("\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
                 "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a"
                 "\u20ac\u2122")
# (the lead of a two-byte character but "×", which "5×°C" puts before a sign, and "Ü Ý Þ ß",
# the leads of U+0700-U+07FF (Syriac, Thaana, NKo), scripts no paper feed carries, while
# "Gauß–Seidel" and "Gauß’s law" are correct text; of the three-byte leads only "â", the
# punctuation's (U+2000-U+2FFF: – — “ ” …): "é", "à" ... are letters that can stand before
# "»" or "–" in correct text; four-byte leads, emoji)
_MOJIBAKE = re.compile(f"(?:[\u00c2-\u00d6\u00d8-\u00db][{_CONTINUATION}]"
                       f"|\u00e2[{_CONTINUATION}]{{2}}|\u00f0[{_CONTINUATION}]{{3}})")
# Correct text puts a sign right after a letter: a power or a note (5 Å², 1200 Å³), a unit's
# ° ± · µ, a dash (2.1 Å–3.5 Å). Where the lead is a letter of the Latin alphabets (Ä-Í: the
# pair would be Latin Extended, IPA or a combining mark) and such a sign follows, the pair is
# mojibake only inside a word: a letter (or another pair) right before it ("mokslÅ³" mokslų,
# "SzÅ±cs" Szűcs, "JurgaitienÄ—" Jurgaitienė), or right after it ("Ä°stanbul" İstanbul) but
# for the signs that join two words ("Å·s", "2 Å—the best"). Greek and Cyrillic leads stay
# as they were: their letters stand alone in text ("5 Î± decays" is 5 α decays).
_LATIN_LEADS = frozenset("\u00c4\u00c5\u00c6\u00c7\u00c8\u00c9\u00ca\u00cb\u00cc\u00cd")
_SIGNS = frozenset("¹²³°±·µ–—")
_JOINING = frozenset("·–—")


def _in_a_word(m: re.Match) -> bool:
    """Whether a two-byte mojibake candidate made of a Latin letter and a sign stands inside
    a word (see _SIGNS)."""
    text, start, end = m.string, m.start(), m.end()
    if start and (text[start - 1].isalpha() or (
            start >= 2 and _MOJIBAKE.fullmatch(text, start - 2, start))):
        return True
    return m[0][1] not in _JOINING and end < len(text) and text[end].isalpha()


def _unmojibake(m: re.Match) -> str:
    """One character's UTF-8 bytes, read as Windows-1252 (Latin-1 where 1252 has no
    character), as the character; anything that does not decode, and a sign after a letter
    outside a word (_SIGNS), stays as written."""
    if len(m[0]) == 2 and m[0][0] in _LATIN_LEADS and m[0][1] in _SIGNS and not _in_a_word(m):
        return m[0]
    try:
        raw = bytes(ord(c) if ord(c) < 256 else c.encode("cp1252")[0] for c in m[0])
        return raw.decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return m[0]


def clean_text(value: object, *, html: bool = False, tex: bool = False, plain: bool = False,
               limit: int = MAX_ABSTRACT) -> str:
    """One feed field as plain text, on one line.

    `html`: the field is HTML (strip markup, decode entities once); otherwise it is text and
    left as written, `<` and `&` included. Either way an entity still there afterwards was
    escaped twice and is decoded (and markup it held removed), unless `plain`: the source
    writes plain text and never HTML (arXiv's announcement feeds and API), so "<code>" and
    "&amp;" in it are what its authors wrote. `tex`: the source writes TeX (arXiv kinds).
    Control characters are dropped, UTF-8 read as Windows-1252 upstream ("MuÃ±oz") is
    read again, and the result is cut to `limit` characters.
    """
    if not isinstance(value, str) or not value:
        return ""
    if len(value) > 2 * limit + 1000:  # markup and TeX shrink text, never by half
        value = value[:2 * limit + 1000]
    text = html_to_text(value) if html else value
    markup = html or not plain  # what plain text mentions is text ("we parse <i> tokens")
    if markup and "<" in text and has_markup(text):
        # markup in a field said to be text, or escaped twice in HTML
        # ("&lt;i&gt;E. coli&lt;/i&gt;"): a reader never wants to see it
        text = inline_markup_to_text(text)
    if markup and "&" in text and _ENTITY.search(text):
        # an entity left after decoding (or in text) was escaped twice: "&amp;amp;",
        # "&amp;#8211;", "&amp;lt;i&amp;gt;" are "&", "–" and markup to anyone reading them
        text = _unescape(text)
        if "<" in text and has_markup(text):
            text = inline_markup_to_text(text)
    if not text.isascii() and _MOJIBAKE.search(text):  # (before its C1 bytes are dropped)
        text = _MOJIBAKE.sub(_unmojibake, text)
    if _CONTROL.search(text):
        text = _CONTROL.sub("", text)
    if tex:
        text = tex_to_text(text)
    if "\xad" in text:
        # a soft hyphen (&shy;, TeX's \-) only says where a word may break: "pro&#173;tein"
        # is "protein" to a reader, and to a rule
        text = text.replace("\xad", "")
    return cap(collapse(text), limit)


def clean_title(value: object, *, html: bool = False, tex: bool = False,
                plain: bool = False) -> str:
    """A title as plain text (see clean_text), at most MAX_TITLE characters."""
    return clean_text(value, html=html, tex=tex, plain=plain, limit=MAX_TITLE)


def clean_abstract(value: object, *, html: bool = False, tex: bool = False,
                   plain: bool = False) -> str:
    """An abstract as plain text (see clean_text), at most MAX_ABSTRACT characters."""
    return clean_text(value, html=html, tex=tex, plain=plain, limit=MAX_ABSTRACT)


_PARENS = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_UNCLOSED = re.compile(r"(?<=\w)\s*\((?:(?!\s(?:and|&)\s)[^,;()\n])*")
_AND = re.compile(r"\s+(?:and|&)\s+|^\s*and\s+", re.IGNORECASE)
# Pieces that continue the previous name ("King, Jr.") or are no author at all.
_SUFFIX = re.compile(r"^(?:jr|sr|ii|iii|iv|v|phd|md|msc|bsc)\.?$", re.IGNORECASE)
_ET_AL = re.compile(r"\s+et\.?\s*al\.?$", re.IGNORECASE)
_NOT_AUTHOR = re.compile(r"^(?:et\.?\s*al\.?|others|and others|\.+|(?:and\s+)?\d+\s+(?:others|more"
                         r"(?:\s+authors)?|(?:additional|other)\s+authors?(?:\s+not\s+shown)?))$",
                         re.IGNORECASE)
# Affiliation marks after a name: "Jane Doe1", "Doe^{1,2}", "Roe*", "Lee†".
_MARKS = re.compile(r"(?<=[^\W\d_.])\s?\^?[\d,*†‡§¶#⁰¹²³⁴⁵⁶⁷⁸⁹⁺˒]+$")
_MARK_ENDS = frozenset("0123456789,*†‡§¶#⁰¹²³⁴⁵⁶⁷⁸⁹⁺")
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]{1,31});")
MAX_AUTHORS_TEXT = 30_000  # characters of one author list kept (about 1,000 names)


# In a list of names a superscript is an affiliation mark ("Doe<sup>1,2</sup>",
# "Roe<sup>a</sup>"), written as markup or escaped once
_MARK_SUP = re.compile(r"<sup\b[^<>]*>.{0,40}?</sup\s*>|&lt;sup&gt;.{0,40}?&lt;/sup&gt;",
                       re.IGNORECASE)


# an affiliation mark written in TeX after a name: "Wei Zhang$^{a}$", "Li Na$^{b,c}$",
# "$^{(1)}$", "$^\ast$", "$^{\star}$", "$^{\S}$", "${}^{1}$" (a superscript alone in its
# math), "\textsuperscript{1,2}"
_TEX_MARK = re.compile(r"\$\s*(?:\{\s*\})?\s*\^\s*(?:\{[^{}$]{0,40}\}|\\?[A-Za-z0-9*]+)\s*\$"
                       r"|\\textsuperscript\s*\{[^{}$]{0,40}\}")


# LNCS's (llncs.cls) marks after a name, "Jane Doe\\inst{1,2}\\orcidID{0000-...}", go; its
# \\and (and \\And, \\AND of other classes) stands between two names, as "and" does (which
# splits a list whatever its separator: "A; B \\and C")
_TEX_INST = re.compile(r"\\(?:inst|orcidID|orcid)\s*\{[^{}]{0,80}\}")
_TEX_AND = re.compile(r"\\(?:and|And|AND)(?![A-Za-z])")


def _without_marks(value: object) -> object:
    if isinstance(value, str) and ("sup" in value or "SUP" in value):
        value = _MARK_SUP.sub("", value)
    if isinstance(value, str) and ("$" in value or "textsuperscript" in value):
        value = _TEX_MARK.sub("", value)
    if isinstance(value, str) and "\\" in value:
        value = _TEX_AND.sub(" and ", _TEX_INST.sub("", value))
    return value


# What an author string carries beside the names, which no reader wants in one (and no
# `author:` rule should find): an address, the RSS 2.0 way ("jane@example.org (Jane Doe)",
# the name in the parentheses) or another ("Jane Doe <jane@example.org>", "mailto:..."), an
# ORCID iD ("ORCID: 0000-0002-1825-0097", "https://orcid.org/..."), a label before the list
# ("By Jane Doe and Bob Roe", "Authors: ...")
_EMAIL = r"(?:mailto:)?[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
_NAMED_EMAIL = re.compile(rf"(?:^|(?<=[,;]))\s*<?{_EMAIL}>?\s*\(([^()@]+)\)")
_CONTACT = re.compile(rf"<\s*{_EMAIL}\s*>|{_EMAIL}|(?:\bORCID(?:\s+iD)?\s*:?\s*)?(?:https?://"
                      r"(?:www\.)?orcid\.org/)?\b\d{4}-\d{4}-\d{4}-\d{3}[\dX]\b", re.IGNORECASE)
_LABEL = re.compile(r"^\s*(?:(?:(?:written|authored)\s+)?by\b\s*:?|authors?\s*:)\s*(?=[^\W\d_])",
                    re.IGNORECASE)
# names set apart by a middle dot, a bullet or a bar ("Ann Roe · Bo Sample | Cy Test")
_BULLETS = re.compile(r"\s+[·•|]\s+")
_BEFORE_COMMA = re.compile(r"\s+(?=[,;])")


def _without_contacts(text: str) -> str:
    """An author string without the addresses, ORCID iDs and label it carries beside the
    names (_CONTACT), its bullets made separators."""
    named = contacts = 0
    if "@" in text:
        text, named = _NAMED_EMAIL.subn(r" \1 ", text)
    if "@" in text or "-" in text:
        text, contacts = _CONTACT.subn(" ", text)
    if named or contacts:
        text = _BEFORE_COMMA.sub("", text)  # "Jane Doe <jane@example.org>, Bob Roe"
    if text[:12].lstrip()[:1] in ("b", "B", "a", "A", "w", "W"):
        text = _LABEL.sub("", text, count=1)
    if "·" in text or "•" in text or "|" in text:
        text = _BULLETS.sub("; ", text)
    return text


# markup between two names in an HTML list of names: a line break or rule, the end of a
# block (a list item, a paragraph, a division, a table cell), two links or spans with nothing
# between them (a span each for given names and surname, "<span>Ann</span> <span>Roe</span>",
# has a space between)
_BETWEEN_NAMES = re.compile(r"<(?:br|hr)\b[^<>]*>|</(?:li|p|div|td|th|tr|dd|dt)\s*>"
                            r"|</a\s*>\s*(?=<a\b)|</(?:a|span)\s*>(?=<(?:a|span)\b)",
                            re.IGNORECASE)


def _has_entities(value: object) -> bool:
    """Whether a name field carries HTML entities, so it is read as HTML (decoded once)."""
    return isinstance(value, str) and "&" in value and bool(_ENTITY.search(value))


# the particles of a surname ("van der Berg, Jan", "de la Cruz, María")
NAME_PARTICLES = frozenset("van von der den de del della di da dos das du la le ter ten zu al "
                           "el bin ibn".split())
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")  # kana, kanji/hanzi, hangul
_INITIALS = re.compile(r"(?:[A-Z]\.?[\s-]?){1,4}")


def is_no_author(name: str) -> bool:
    """"et al.", "others", "...": in a list of names, no person."""
    return len(name) <= 14 and bool(_NOT_AUTHOR.match(name))


def _surname(text: str) -> bool:
    """Whether `text` can be a surname before ", given names": one word, after lower-case
    particles ("van der Berg"; "Di Wu" and "Van Nguyen" are given name and surname)."""
    found = text.split()
    return 0 < len(found) <= 4 and all(w in NAME_PARTICLES for w in found[:-1])


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


def _surname_given(pieces: list[str], surname_first: bool = False) -> list[str]:
    """"Doe, Jane Q., Roe, John" split at every comma, paired again: ["Doe, Jane Q.", "Roe,
    John"]. Only where every other piece can be a surname (one capitalized word, after
    particles) and every piece between is one to three capitalized words, and something
    says the list is surname first: a given name of two or three words, a surname with a
    particle, or (`surname_first`) another part of the list that is one "Surname, Given"
    ("Doe, Jane, Roe, John and Poe, Carol"). "Alice Doe, Bob Roe" stays two people, and so
    do "Smith, Jones, Brown, Taylor", where nothing tells surnames from given names."""
    kept = [p.strip() for p in pieces if p.strip() and not _NOT_AUTHOR.match(p.strip())]
    evidence = surname_first or any(len(p.split()) > 1 for p in kept)
    if not evidence or len(kept) < 4 or len(kept) % 2 or not all(
            _surname(p) and p.split()[-1][:1].isupper() for p in kept[0::2]) or not all(
            len(p.split()) <= 3 and p[:1].isupper() and not _SUFFIX.match(p)
            for p in kept[1::2]):
        return pieces
    return [f"{kept[k]}, {kept[k + 1]}" for k in range(0, len(kept), 2)]


def _one_surname_first(part: str) -> bool:
    """"Doe, Jane": one person, surname first (arXiv, which writes TeX, never does)."""
    pieces = part.split(",")
    return len(pieces) == 2 and _surname(_name(pieces[0])) and 0 < len(
        pieces[1].split()) <= 4 and not _SUFFIX.match(pieces[1].strip()) and not _CJK.search(
        part)


def _name(piece: str) -> str:
    name = " ".join(piece.split()).strip(" ,;:")
    if "al" in name:
        name = _ET_AL.sub("", name)
    if name and name[-1] in _MARK_ENDS and not name.isdigit():
        name = _MARKS.sub("", name).strip(" ,;:")
    return name


# a collaboration that signs with its members, as arXiv lists them: "..., for the ATLAS
# Collaboration", "on behalf of the X Consortium", "The ATLAS Collaboration: A. Roe, B. Lee"
_ON_BEHALF = re.compile(r"^(?:and\s+)?(?:for|on\s+behalf\s+of)\s+(?:the\s+)?(?=\S)",
                        re.IGNORECASE)
_GROUP_HEAD = re.compile(r"^(.{2,100}?\b(?:Collaborations?|Consortium|Group|Team|Network|"
                         r"Investigators|Collaborators))\s*:\s*(?=\S)", re.IGNORECASE)


def _group_name(name: str, names: list[str]) -> str:
    """A name piece without the "for the" before a collaboration's name; a collaboration
    heading the list ("The ATLAS Collaboration: A. Roe") goes into `names` on its own."""
    if ":" in name and (head := _GROUP_HEAD.match(name)):
        names.append(head[1])
        name = name[head.end():]
    return _ON_BEHALF.sub("", name, count=1)


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
    if html and isinstance(value, str) and "<" in value and _BETWEEN_NAMES.search(value):
        # names a line or an element each ("Ann Roe<br/>Bo Lee", "<li>Ann Roe</li><li>...",
        # "<a>Ann Roe</a> <a>Bo Lee</a>"): markup that separates them as a comma would, which
        # the text, without it, no longer shows ("Ann Roe Bo Lee"); each part is a list
        parts = _BETWEEN_NAMES.split(value[:MAX_AUTHORS_TEXT])
        if len(parts) > 1:
            return tuple(dict.fromkeys(name for part in parts if part.strip()
                                       for name in split_authors(part, html=True, tex=tex,
                                                                 sep=sep)))
    if isinstance(value, str) and "\n" in value and "," not in value and ";" not in value \
            and not html and "\n" in value.strip():
        lines = [line.strip() for line in value.splitlines() if line.strip()]
        if len(lines) > 1 and all(len(line.split()) > 1 and not line.endswith(" and")
                                  for line in lines):
            value = "; ".join(lines)  # one name a line (not "Jane Q.\n Doe", a wrapped one)
    text = clean_text(_without_marks(value), html=html, tex=tex, limit=MAX_AUTHORS_TEXT)
    if not text:
        return ()
    text = _without_contacts(text)
    if not text.isascii() and ("、" in text or "，" in text or "；" in text):  # CJK lists
        text = text.replace("、", ",").replace("，", ",").replace("；", ";")
    cut = len(text) >= MAX_AUTHORS_TEXT - 1 and text.endswith(ELLIPSIS)
    while True:  # innermost groups first, so nested parentheses go too
        text, n = _PARENS.subn(" ", text)
        if not n:
            break
    if "(" in text:  # an affiliation never closed ("Roe (Invented University, Bo Poe"): to
        text = _UNCLOSED.sub(" ", text)  # the next separator
    text = text.replace("(", " ").replace(")", " ").strip(" ;")
    if sep is None:
        sep = ";" if ";" in text else ","
    parts = [text] if sep != "," else _AND.split(text) if ("and" in text or "&" in text) \
        else [text]
    names: list[str] = []
    # one part "Doe, Jane" beside others ("Doe, Jane, Roe, John and Poe, Carol"): surname first
    surname_first = sep == "," and len(parts) > 1 and any(_one_surname_first(p) for p in parts)
    for part in parts:
        if sep == ",":
            pieces = part.split(",")
            # "Doe, Jane": one person, surname first (arXiv, which writes TeX, never does)
            if not tex and _one_surname_first(part):
                pieces = [part]
            else:
                # "Li, M., Wang, Q.": initials alone are no person, whatever the source
                paired = _surname_initials(pieces)
                pieces = paired if paired is not pieces or tex else _surname_given(
                    pieces, surname_first)
        else:
            pieces = [p for chunk in part.split(sep)
                      for p in (_AND.split(chunk) if ("and" in chunk or "&" in chunk)
                                else (chunk,))]
        for piece in pieces:
            name = _name(piece) if piece else ""
            if name and (name[0] in "fFoOaA" or ":" in name):
                name = _group_name(name, names)
            if not name:
                continue
            if len(name) <= 40 and (_NOT_AUTHOR.match(name)
                                    or not any(c.isalpha() for c in name)):
                continue
            if len(name) <= 4 and names and _SUFFIX.match(name):
                names[-1] = f"{names[-1]}, {name}"
                continue
            names.append(name if len(name) <= MAX_AUTHOR else cap(name, MAX_AUTHOR))
    if cut and names:
        names.pop()  # the name the cut went through
    return tuple(dict.fromkeys(names))


def clean_name(value: object, *, html: bool = False, tex: bool = False,
               plain: bool = False) -> str:
    """One person's name (a feed that gives each author apart): affiliations in
    parentheses and affiliation marks dropped, entities decoded (`plain` as clean_text's)."""
    html = html or _has_entities(value)
    text = _without_contacts(clean_text(_without_marks(value), html=html, tex=tex, plain=plain,
                                        limit=MAX_AUTHOR * 2))
    while True:
        text, n = _PARENS.subn(" ", text)
        if not n:
            break
    name = collapse(_name(text.replace("(", " ").replace(")", " ")))
    return cap(_ON_BEHALF.sub("", name, count=1) if name[:1] in "fFoO" else name, MAX_AUTHOR)


# -- links ---------------------------------------------------------------------------------------

_WRAPPED = re.compile(r"[\r\n][\r\n ]*")


def absolute_link(link: object, base: str = "") -> str:
    """`link` resolved against `base` (xml:base or the URL the feed came from); '' unless
    the result is an http(s) URL with a host (no `javascript:`, `data:` or relative link
    reaches an email)."""
    if not isinstance(link, str):
        return ""
    # as a browser reads a URL (WHATWG URL standard, basic URL parser): tabs and line
    # breaks inside are dropped, spaces in the path are percent-encoded; but the spaces
    # after a line break are the indentation of a link wrapped in the feed's XML
    link = _CONTROL.sub("", link).strip().replace("\t", "")
    if "\n" in link or "\r" in link:
        link = _WRAPPED.sub("", link)
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
    if not _URL_CHARS.fullmatch(link) or "@" in parts.netloc:
        link = _as_a_browser_reads(parts)
    return link


# what a URL holds as written (RFC 3986's characters, and any beyond ASCII, which mail
# clients link as they are); anything else is read as a browser reads it (_as_a_browser_reads)
_URL_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%\u0080-\U0010ffff]*")
_HOST_CHARS = re.compile(r"[A-Za-z0-9_\-.\[\]:\u0080-\U0010ffff]*")
_UNSAFE = re.compile(r'[\x00-\x20"<>\\^`{|}\x7f]')


def _as_a_browser_reads(parts: SplitResult) -> str:
    """An http(s) URL the way a browser reads and shows it (WHATWG URL standard): "\\" in
    the path is "/", the characters that may not stand in a URL (space, '"', "<", ">", "{",
    "|", ...) are percent-encoded, so that a mail client links the whole of it; no user name
    or password, which only make a link look like another host's ("https://arxiv.org@x.example/"),
    and no default port."""
    host = parts.hostname or ""
    if not _HOST_CHARS.fullmatch(host):
        return ""
    try:
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != (443 if scheme == "https" else 80):
        host = f"{host}:{port}"

    def encode(text: str) -> str:
        return _UNSAFE.sub(lambda m: f"%{ord(m[0]):02X}", text)

    return urlunsplit((scheme, host, encode(parts.path.replace("\\", "/")) or "/",
                       encode(parts.query), encode(parts.fragment)))


# -- dates ---------------------------------------------------------------------------------------

_DATE_ONLY = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:?\d{2})?$")  # XSD dates may carry a zone
_HAS_TIME = re.compile(r"\d{1,2}:\d{2}")
_ZONE_NAME = re.compile(r"\s+([A-Za-z]{2,5})$")
_AMPM = re.compile(r"\d\s*[AaPp]\.?[Mm]\.?(?:\s|$)")
# RFC 5322 3.3: "-0000" is UTC, said by a system that does not know its own zone
_MINUS_ZERO = re.compile(r"\s-0000$")
# What people write around the forms below: a weekday ("Fri, 27 Nov 2026", "Friday, November
# 27, 2026"; the date says which day it is), a month abbreviated with a full stop or as
# "Sept" ("Nov. 27, 2026"), a day as an ordinal ("November 27th, 2026")
_WEEKDAY = re.compile(r"^(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?,?\s+", re.IGNORECASE)
_MONTH_STOP = re.compile(r"\b(?:(sep)t\.?|(jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec)\.)(?=\s)",
                         re.IGNORECASE)
_ORDINAL = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b", re.IGNORECASE)
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
        if offset is None and _MINUS_ZERO.search(text):
            when = when.replace(tzinfo=timezone.utc)  # (email.utils leaves it without one)
        return when
    text = _WEEKDAY.sub("", text, count=1)
    text = _ORDINAL.sub(r"\1", _MONTH_STOP.sub(lambda m: m[1] or m[2], text))
    ampm = _AMPM.search(text)
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


# Where feeds date an item, the publication first: pubDate / Atom published, PRISM's
# publicationDate (journals' feeds, some with no other date), then the last update, creation,
# dc:date. Not PRISM's coverDate: the date printed on the issue the article is (or will be)
# in, often months after (or before) it appeared, which a digest would show as its
# publication and rank by.
_DATE_KEYS = ("published", "prism_publicationdate", "updated", "created", "dc_date")


def entry_date(entry: dict) -> str:
    """A feedparser entry's publication date (else its last update, else dc:date) by
    iso_datetime; the first of them that can be read (_DATE_KEYS)."""
    # dict.get: feedparser maps a missing `updated*` to `published*` with a warning.
    for key in _DATE_KEYS:
        found = iso_datetime(dict.get(entry, key))
        if found:
            return found
    return ""
