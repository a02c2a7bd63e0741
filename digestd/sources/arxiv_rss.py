"""The arXiv announcement feeds (rss.arxiv.org): one combined request for all categories."""

from __future__ import annotations

import codecs
import html.entities
import io
import logging
import re
from collections.abc import Collection

import feedparser

from ..errors import SourceError
from ..models import Paper
from ..store import SourceState
from .base import PollResult, Source, parse_off_loop, xml_error
from .clean import clean_abstract, clean_title, entry_date, split_authors
from .ids import arxiv_urls, parse_arxiv

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
# "arXiv:2604.22002v1 Announce Type: new \nAbstract: ..." in front of every description.
_PREAMBLE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*(\S+)\s*(?:Abstract:\s*)?",
                       re.IGNORECASE)
_ERROR_TITLE = "feed error for query"

log = logging.getLogger("digestd.sources")


def parse_feed_bytes(content: bytes, *, base_url: str = "") -> feedparser.FeedParserDict:
    """feedparser on bytes, never on a str or bytes it could take for a path or URL.

    Sanitizing and URI resolution in content are off: sources strip all tags themselves,
    and they are a large part of feedparser's time. `base_url` (the URL the feed came
    from) is what a relative xml:base ("../jb/") is resolved against; feedparser then
    makes links and permalink guids absolute.
    """
    headers = {"content-location": base_url} if base_url else None
    return feedparser.parse(io.BytesIO(xml_repaired(utf8_repaired(content))),
                            sanitize_html=False, resolve_relative_uris=False,
                            response_headers=headers)


_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)""")


def _windows_1252(error: UnicodeDecodeError) -> tuple[str, int]:
    """A byte that is not UTF-8 read as Windows-1252 (Latin-1 where 1252 has no character)."""
    byte = error.object[error.start:error.start + 1]
    try:
        return byte.decode("cp1252"), error.start + 1
    except UnicodeDecodeError:
        return byte.decode("latin-1"), error.start + 1


codecs.register_error("digestd-cp1252", _windows_1252)


def utf8_repaired(content: bytes) -> bytes:
    """A feed in UTF-8 (as it declares, or by XML's default) that holds a few bytes that are
    not: a title pasted from Windows (the bytes 0x92 for an apostrophe, 0x96 for a dash).
    feedparser would read the whole feed as Windows-1252 then, and every correct "–" would
    become "â€“"; here only the stray bytes are read as Windows-1252 (WHATWG Encoding's
    windows-1252, which browsers use for the same mistake). Feeds that declare another encoding,
    UTF-16 ones and correct UTF-8 are returned as they are."""
    if content.isascii() or content[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return content
    declared = _DECLARED.match(content[:200])
    if declared and declared[1].lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        return content
    try:
        content.decode("utf-8")
        return content
    except UnicodeDecodeError:
        return content.decode("utf-8", "digestd-cp1252").encode("utf-8")


# What XML never holds outside a CDATA section, but feeds do: a bare "&" ("R&D", "?a=1&b=2"),
# a "<" that starts no tag ("aged <65"), HTML's named entities ("&nbsp;", "&eacute;"), and
# character references to no character XML allows ("&#0;", a UTF-16 surrogate
# "&#xD83D;&#xDE00;", "&#99999999;"). _SUSPECT finds where one may be; only such a stretch
# is read token by token (_XML_TOKENS).
_REF = rb"&#(?:[0-9]+|[xX][0-9a-fA-F]+);"
# the names HTML 5 reads without their ";" too ("&nbsp", "&copy"), the longest first
_LEGACY = b"|".join(sorted((name.encode() for name in html.entities.html5 if not name.endswith(
    ";")), key=len, reverse=True))
# (three searches, each with a fixed first byte, cost a quarter of one alternation: a poll
# reads every byte of a clean feed once with each)
_SUSPECT = (re.compile(rb"<[^A-Za-z_:/!?\x80-\xff]"),
            re.compile(rb"&(?!amp;|lt;|gt;|quot;|apos;|#)"),
            re.compile(rb"&#(?:0*(?:[0-8]|1[124-9]|2[0-9]|3[01])|5[5-7][0-9]{3}|[0-9]{7,}|[xX]0*"
                       rb"(?:[0-8bBcCeEfF]|1[0-9a-fA-F]|[dD][89a-fA-F][0-9a-fA-F]{2}"
                       rb"|[fF]{3}[eEfF]|[0-9a-fA-F]{7,}));"))
_XML_TOKENS = re.compile(rb"(?=[<&])(?:(" + _REF + rb"(?:" + _REF + rb")?)"
                         rb"|&([A-Za-z][A-Za-z0-9]{1,31});|&(" + _LEGACY + rb")(?![A-Za-z0-9=])"
                         rb"|(&)|(<)(?![A-Za-z_:/!?]))")
_REF_VALUE = re.compile(rb"&#([xX]?)([0-9a-fA-F]+);")
_XML_NAMED = frozenset((b"amp", b"lt", b"gt", b"quot", b"apos"))
_CDATA_START, _CDATA_END = b"<![CDATA[", b"]]>"


def _xml_char(code: int) -> bool:
    """Whether XML 1.0 allows the character (section 2.2, Char)."""
    return (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF)


def _references(refs: bytes) -> bytes:
    """One or two character references as XML takes them: a UTF-16 surrogate pair as the one
    character it encodes, and a reference to no character XML allows left out."""
    codes = [int(digits, 16 if x else 10) if len(digits) <= 8 else -1
             for x, digits in _REF_VALUE.findall(refs)]
    if len(codes) == 2 and 0xD800 <= codes[0] <= 0xDBFF and 0xDC00 <= codes[1] <= 0xDFFF:
        return b"&#%d;" % (0x10000 + ((codes[0] - 0xD800) << 10) + codes[1] - 0xDC00)
    return b"".join(b"&#%d;" % code for code in codes if _xml_char(code))


def _characters(text: str) -> bytes:
    return b"".join(b"&#%d;" % ord(c) for c in text)


def _xml_token(m: re.Match) -> bytes:
    if m[1]:
        return _references(m[1])
    if m[2]:
        if m[2] in _XML_NAMED:
            return m[0]
        # HTML's named entities (HTML 5's table), which XML does not know without a doctype
        found = html.entities.html5.get(m[2].decode("ascii") + ";")
        return _characters(found) if found else b"&amp;" + m[0][1:]
    if m[3]:  # "&nbsp" with no ";", before what cannot continue a name, as HTML 5 reads it
        return _characters(html.entities.html5[m[3].decode("ascii")])
    return b"&amp;" if m[4] else b"&lt;"


def _suspect(text: bytes) -> bool:
    return any(pattern.search(text) for pattern in _SUSPECT)


def _repaired_text(text: bytes) -> bytes:
    return _XML_TOKENS.sub(_xml_token, text) if _suspect(text) else text


def xml_repaired(content: bytes) -> bytes:
    """A feed with what XML forbids but feeds hold, read as a forgiving reader reads it (as
    HTML 5 does): a bare "&" is an ampersand ("R&D", which feedparser's fallback parser made
    "R&D;"), a "<" before no name a less-than sign, "&nbsp;" and "&eacute;" their characters
    ("&nbsp" without its ";" too, where HTML 5 reads it so), a UTF-16 surrogate pair written
    as two references ("&#xD83D;&#xDE00;") its one character, and a reference to a character
    XML has not ("&#0;", a lone surrogate, "&#99999999;", which stopped feedparser with an
    exception) is left out. An undefined name stays as written ("&foo;" is text). CDATA
    sections are not touched, nor is a document whose doctype declares entities of its own;
    a well-formed document comes back as it was. Only ASCII-compatible encodings (UTF-8,
    Latin-1, ...) are read: UTF-16 is returned as it is."""
    if content[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in content[:4]:
        return content
    if not _suspect(content) or b"<!ENTITY" in content:
        return content
    if _CDATA_START not in content:
        return _repaired_text(content)
    pieces = content.split(_CDATA_START)
    out = [_repaired_text(pieces[0])]
    for piece in pieces[1:]:
        end = piece.find(_CDATA_END)
        if end < 0:  # never closed: as written
            out.append(_CDATA_START + piece)
            continue
        end += len(_CDATA_END)
        out.append(_CDATA_START + piece[:end] + _repaired_text(piece[end:]))
    return b"".join(out)


def check_feed(parsed: feedparser.FeedParserDict, source: str, *, strict: bool) -> None:
    """Raise bad-xml for something that is not a feed, or (strict) not well-formed.

    Strict matters for arXiv: a truncated announcement feed still yields its first
    items, and accepting it would store the ETag and lose the rest for good.
    """
    exc = parsed.get("bozo_exception")
    if not parsed.get("version"):
        detail = f" ({xml_error(exc)})" if exc else ""
        raise SourceError(f"{source}: the answer is not an RSS or Atom feed{detail}",
                          reason="bad-xml")
    if strict and parsed.get("bozo") and not isinstance(
            exc, (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)):
        raise SourceError(f"{source}: the feed is not well-formed XML: {xml_error(exc)}",
                          reason="bad-xml")


# The pre-2024 RSS 1.0 feeds (export.arxiv.org/rss/...) put the id, the primary category and
# the kind of announcement at the end of the title: "Title. (arXiv:2312.00101v1 [cs.LG])",
# "... [cs.CV] UPDATED)" for a new version, "... CROSS LISTED)" for a cross-list.
_OLD_SUFFIX = re.compile(r"\.?\s*\(arXiv:(?P<id>[^\s()\[\]]+)\s*\[(?P<cat>[^\]]*)\]\s*"
                         r"(?P<kind>[A-Za-z][A-Za-z ]*?)?\s*\)\s*$", re.IGNORECASE)
DEFAULT_ANNOUNCE_TYPES = ("new", "cross")


def check_error_feed(parsed: feedparser.FeedParserDict, source: str,
                     categories: Collection[str] = ()) -> None:
    """Raise SourceError arxiv-error for the feed arXiv sends instead of a day's
    announcements when it rejects the query (a bad archive or category): well-formed, no
    items, titled "Feed error for query: URL", the reason in its description. Whatever
    source kind reads it, that is no empty day."""
    channel = parsed.feed
    title = channel.get("title", "") or ""
    if title.lower().startswith(_ERROR_TITLE):
        asked = (f"the categories {'+'.join(categories)}" if categories else
                 f"the query {title.partition(':')[2].strip()}")
        why = clean_abstract(channel.get("description", "")) or title
        raise SourceError(f"{source}: arXiv rejected {asked}: {why}", reason="arxiv-error")


_ARXIV_HOST = re.compile(r"^https?://([a-z]+\.)*arxiv\.org(/|$)", re.IGNORECASE)


def is_arxiv_feed(parsed: feedparser.FeedParserDict) -> bool:
    """True for a feed that arXiv itself publishes (either format), whatever source kind
    reads it: its channel links to arxiv.org and its items are arXiv announcements (the
    announce_type element, or the old format's "(arXiv:ID [cat])" title suffix on an
    arxiv.org item link, or rdf:about where the item has no link); or, wherever it is
    served from, its items are written as only arXiv writes them (_announced; the old
    format's suffix on every item). A blog post titled "... (arXiv:2401.01234)" is not
    one."""
    entries = parsed.entries[:5]
    if entries and (any(_announced(e) for e in entries) or all(map(_old_announced, entries))):
        return True
    if not _ARXIV_HOST.match(parsed.feed.get("link", "") or ""):
        return False
    return any(e.get("arxiv_announce_type") or _old_announced(e) for e in entries)


def _old_announced(entry: dict) -> bool:
    """An item of the old format: the "(arXiv:ID [cat])" title suffix on an arxiv.org item
    link (or rdf:about where the item has no link)."""
    return bool(_OLD_SUFFIX.search(entry.get("title", "") or "")
                and _ARXIV_HOST.match(entry.get("link") or entry.get("id") or ""))


def _announced(entry: dict) -> bool:
    """Whether an item is written as only rss.arxiv.org writes one, whatever the channel
    around it says and whether it has its announce_type element: the guid
    "oai:arXiv.org:ID" and a description that opens "arXiv:ID Announce Type: ..."."""
    return str(entry.get("id") or "").lower().startswith("oai:arxiv.org:") and bool(
        _PREAMBLE.match(str(entry.get("summary") or "")))


def _old_kind(words: str) -> str:
    """The announce type of the old format's suffix word(s): "UPDATED" (also "CROSS LISTED
    UPDATED") a replacement, "CROSS LISTED" a cross-list, none a new paper."""
    words = words.upper()
    return "replace" if "UPDATED" in words else "cross" if "CROSS" in words else "new"


def _creators(entry: dict, html: bool) -> tuple[str, ...]:
    """The authors of every dc:creator (feedparser's `authors`; the old format wrote one per
    author, or all in one as rss.arxiv.org does: "A, B (Affiliation), C")."""
    held = [a["name"] for a in entry.get("authors", ()) if isinstance(a, dict) and a.get("name")]
    if len(held) <= 1:
        return split_authors(held[0] if held else entry.get("author"), html=html, tex=True)
    names = [n for one in held for n in split_authors(one, html=html, tex=True)]
    return tuple(dict.fromkeys(names))


def arxiv_entry(entry: dict, *, source: str, old_format: bool) -> tuple[Paper, str] | None:
    """(paper, announce type) from one item of an arXiv feed, or None if it names no paper.

    Titles, abstracts and names are TeX (converted), and titles and descriptions plain text
    (what looks like a tag is text); in the old format (RSS 1.0, or the RSS 2.0 arXiv served
    beside it: `old_format` for the feed, or an item whose title has the old suffix) the
    title suffix is removed and read, and the description and dc:creator are HTML.
    """
    title = entry.get("title") or ""
    suffix = _OLD_SUFFIX.search(title)
    kind = (entry.get("arxiv_announce_type") or "").strip().lower()
    found = parse_arxiv(entry.get("id")) or parse_arxiv(entry.get("link"))
    categories = [t.term for t in entry.get("tags", ()) if t.get("term")]
    old_format = old_format or suffix is not None
    if suffix:
        title = title[:suffix.start()]
        found = found or parse_arxiv(suffix["id"])
        kind = kind or _old_kind(suffix["kind"] or "")
        # "[cs.LG]", and cross-lists as "[cs.LG, stat.ML]" or "[cs.LG stat.ML]"
        categories[:0] = [c for c in re.split(r"[,;\s]+", suffix["cat"]) if c]
    # rss.arxiv.org writes titles and descriptions as plain text (escaped once for XML), never
    # HTML: stripping "tags" would eat "p<0.05 ... q>1" and the "<code>" a paper is about.
    # The old format sent HTML.
    title = clean_title(title, tex=True, plain=not old_format)
    if found is None or not title:
        return None
    bare, version = found
    description = entry.get("summary", "")
    if version is None:
        in_text = parse_arxiv(description[:60])
        version = in_text[1] if in_text else None
    if version is None and suffix:
        in_suffix = parse_arxiv(suffix["id"])
        version = in_suffix[1] if in_suffix else None
    if not kind and (announced := _PREAMBLE.match(description)):
        kind = announced[1].lower()  # "Announce Type: replace-cross", without the element
    url, pdf_url = arxiv_urls(bare)
    paper = Paper(
        id=f"arxiv:{bare}",
        title=title,
        abstract=clean_abstract(_PREAMBLE.sub("", description, count=1), html=old_format,
                                tex=True, plain=not old_format),
        # One dc:creator holding "A, B (Affiliation, City), C" (feedparser keeps it whole), or
        # one dc:creator per author
        authors=_creators(entry, old_format),
        categories=tuple(dict.fromkeys(categories)),
        source=source,
        url=url,
        pdf_url=pdf_url,
        published=entry_date(entry),
        version=version,
    )
    return paper, kind or "new"


def parse_arxiv_rss(content: bytes, *, source: str,
                    announce_types: Collection[str] = (),
                    categories: Collection[str] = ()) -> tuple[list[Paper], int]:
    """(papers kept, entries skipped) from an rss.arxiv.org feed (or the older RSS 1.0 one).

    Raises SourceError: bad-xml, or arxiv-error for the feed arXiv sends for a bad
    category (a well-formed feed titled "Feed error for query: ...").
    """
    parsed = parse_feed_bytes(content)
    check_feed(parsed, source, strict=True)
    check_error_feed(parsed, source, categories)
    keep = set(announce_types or DEFAULT_ANNOUNCE_TYPES)
    old_format = parsed.get("version") == "rss10"
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        got = arxiv_entry(entry, source=source, old_format=old_format)
        if got is None or got[1] not in keep:
            skipped += 1
            if got is not None:
                log.debug("source=%s skipped=%s announce_type=%s", source, got[0].id, got[1])
            continue
        papers.append(got[0])
    return papers, skipped


class ArxivRssSource(Source):
    kind = "arxiv-rss"
    default_every = 6 * 3600.0  # arXiv announces once a day, on weekdays
    default_url = "https://rss.arxiv.org/rss"

    @property
    def feed_url(self) -> str:
        return f"{self.endpoint}/{'+'.join(self.config.categories)}"

    async def poll(self, state: SourceState) -> PollResult:
        got = await self.fetch(self.feed_url, state)
        if got.not_modified:
            return PollResult(not_modified=True, etag=got.etag, last_modified=got.last_modified)
        papers, skipped = await parse_off_loop(
            parse_arxiv_rss, got.content, source=self.name,
            announce_types=self.config.announce_types, categories=self.config.categories)
        return PollResult(papers=papers, skipped=skipped, etag=got.etag,
                          last_modified=got.last_modified)
