"""Reading a feed document as a whole, where feedparser's reading of it falls short: the
items of a feed that is not well-formed read one by one (read_feed), every dc:identifier of
an item (feedparser keeps the last), one entry per Atom id (RFC 4287 4.1.1)."""

from __future__ import annotations

import bisect
import io
import re
import xml.etree.ElementTree as ET

import feedparser

from ..identity import title_key, titles_agree
from .arxiv_rss import parse_feed_bytes, xml_repaired
from .markup import is_element_name

_DC = ("{http://purl.org/dc/elements/1.1/}identifier", "{http://purl.org/dc/terms/}identifier")
_ITEMS = ("item", "{http://purl.org/rss/1.0/}item", "{http://www.w3.org/2005/Atom}entry")


def dc_identifiers(content: bytes, entries: int) -> list[list[str]] | None:
    """Every dc:identifier of each item, in document order, where an item has several
    (PubMed's "pmid:39999999" beside "doi:10.5555/x", in either order): feedparser keeps
    only the last. None when no item has two, or the feed is no well-formed XML with
    `entries` items, read as feedparser reads it (xml_repaired; else feedparser's one value
    stands)."""
    if content.count(b"identifier>") <= 2 * entries:  # an open and an end tag each
        return None
    found: list[list[str]] = []
    try:
        for _, element in ET.iterparse(io.BytesIO(xml_repaired(content))):
            if element.tag in _ITEMS:
                found.append([e.text.strip() for e in element.iter() if e.tag in _DC and e.text])
                element.clear()
    except ET.ParseError:
        return None
    return found if len(found) == entries else None


def _versions(title: str, other: str) -> bool:
    """Whether two entries under one atom:id can be one entry's versions: titles that agree,
    or a title that is no paper's ("Untitled" until the real one came)."""
    return (title_key(title) is None or title_key(other) is None
            or titles_agree(title, other))


def latest_of_each_id(entries: list) -> list:
    """An Atom feed's entries, one per atom:id: "If multiple atom:entry elements with the
    same atom:id value appear in an Atom Feed Document, they represent the same entry"
    (RFC 4287 4.1.1), kept in the version with the latest atom:updated (the first of
    equals), where the first of them stood. But entries under one id whose titles are
    papers' and do not agree (_versions) are other entries: a feed that gives all its
    entries one id (its own) lists as many papers, which that id then names none of."""
    best: dict[str, int] = {}
    order: list[str | int] = []  # an id where it first stood, or the index of one without
    for k, entry in enumerate(entries):
        key = (entry.get("id") or "").strip()
        if not key:
            order.append(k)
        elif key not in best:
            best[key] = k
            order.append(key)
        elif not _versions(str(entry.get("title") or ""),
                           str(entries[best[key]].get("title") or "")):
            order.append(k)
        elif (entry.get("updated_parsed") or ()) > (entries[best[key]].get("updated_parsed")
                                                     or ()):
            best[key] = k
    if len(order) == len(entries):
        return entries
    return [entries[best[key]] if isinstance(key, str) else entries[key] for key in order]


# A feed's tags, and what holds a "<" that is none (CDATA sections, comments, declarations):
# (end "/", name, attributes)
_XML_TAGS = re.compile(rb"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)|<[!?][^<>]*>"
                       rb"|<(/?)([A-Za-z_][\w.:-]*)([^<>]*)>", re.DOTALL)
# HTML's void elements left unescaped in a description ("Line one<br>Line two"), and the
# elements of a feed whose names HTML has too
_HTML_VOID = frozenset((b"br", b"hr", b"img", b"wbr"))
_FEED_ELEMENTS = frozenset((b"title", b"link", b"source", b"summary"))
# Reading items one by one reads the head again with each: at most this many bytes of it,
# and at most _MAX_REREAD times the feed's bytes in all
_MAX_HEAD = 16 * 1024
_MAX_REREAD = 8


def _balanced(piece: bytes) -> bytes:
    """One item's XML with its tags balanced as a forgiving XML parser does: an end tag that
    closes no open element closes the innermost one ("<title>A</titel>", a misspelling)
    unless it is HTML's (a stray "</b>" in a description's text goes); an element left open
    is closed where its parent closes ("<description>text</item>") or at the end, and one
    that holds text before elements that are no markup, before them ("<title>A<guid>1</guid>":
    the title was never closed, the guid is its sibling); an HTML void element (<br>)
    closes itself."""
    out: list[bytes] = []
    # the open elements: [name, holds text, where in `out` its first child that is no markup
    # starts (-1: none)]
    open_: list[list] = []
    at = 0

    def close(element: list) -> None:
        end = b"</" + element[0] + b">"
        if element[1] and element[2] >= 0:
            out.insert(element[2], end)
        else:
            out.append(end)

    for m in _XML_TAGS.finditer(piece):
        name = m[2]
        if not name:
            continue  # a CDATA section or comment: text, as what lies around it
        text, at = piece[at:m.start()], m.end()
        out.append(text)
        if open_ and text.strip():
            open_[-1][1] = True
        markup = name not in _FEED_ELEMENTS and is_element_name(name.decode("ascii", "replace"))
        if not m[1]:
            if open_ and open_[-1][2] < 0 and not markup:
                open_[-1][2] = len(out)
            if m[3].rstrip().endswith(b"/"):
                out.append(m[0])
            elif name.lower() in _HTML_VOID:
                out.append(m[0][:-1] + b"/>")
            else:
                out.append(m[0])
                open_.append([name, False, -1])
            continue
        names = [element[0] for element in open_]
        if name in names:
            while open_[-1][0] != name:
                close(open_.pop())
            open_.pop()
            out.append(m[0])
        elif open_ and not markup:
            out.append(b"</" + open_.pop()[0] + b">")
    out.append(piece[at:])
    while open_:
        close(open_.pop())
    return b"".join(out)


def _items_one_by_one(content: bytes, version: str, base_url: str, *, read: int
                      ) -> tuple[list, int] | None:
    """(entries, items that give none) of a feed that is not well-formed, each item read on
    its own: its text between the document's head (the XML declaration and the open root and
    channel start tags, with their namespaces and xml:base) and their end tags, balanced
    (_balanced) when it is not well-formed itself. One misspelled or missing end tag then
    costs at most its own item; feedparser's fallback parser loses every item after it, or
    the fields of the item it is in. None when the feed has no more items than the `read`
    ones, when its items cannot be told apart, or when their heads would cost too much
    (linear in the feed: each item is read once, with a head of at most _MAX_HEAD bytes, in
    all at most _MAX_REREAD times the feed's bytes)."""
    item = b"entry" if version.startswith("atom") else b"item"
    starts: list[int] = []
    ends: list[int] = []
    open_: list[tuple[bytes, int]] = []  # the elements open before the first item
    for m in _XML_TAGS.finditer(content):
        name = m[2]
        if not name:
            continue
        if name.rpartition(b":")[2] == item:
            if m[1]:
                ends.append(m.end())
            elif not m[3].rstrip().endswith(b"/"):
                starts.append(m.start())
        elif not starts and m[1]:
            names = [n for n, _ in open_]
            if name in names:
                del open_[len(names) - 1 - names[::-1].index(name):]
        elif not starts and not m[3].rstrip().endswith(b"/"):
            open_.append((name, m.end()))
    if len(starts) <= read or not open_ or open_[-1][1] > min(starts[0], _MAX_HEAD):
        return None
    head = content[:open_[-1][1]]
    tail = b"".join(b"</" + name + b">" for name, _ in reversed(open_))
    if len(starts) * (len(head) + len(tail)) > _MAX_REREAD * len(content):
        return None
    entries: list = []
    unreadable = 0
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else len(content)
        k = bisect.bisect_right(ends, stop) - 1
        if k >= 0 and ends[k] > start:
            stop = ends[k]  # after its end tag: not what lies between items
        elif i + 1 == len(starts):
            closing = content.rfind(b"</" + open_[-1][0], start, stop)
            stop = closing if closing >= 0 else stop  # an item never closed: not the feed's end
        piece = content[start:stop]
        parsed = parse_feed_bytes(head + piece + tail, base_url=base_url)
        if parsed.get("bozo"):
            balanced = _balanced(piece)
            if balanced != piece:
                parsed = parse_feed_bytes(head + balanced + tail, base_url=base_url)
        entries += parsed.entries
        unreadable += not parsed.entries
    return entries, unreadable


def read_feed(content: bytes, *, base_url: str = ""
              ) -> tuple[feedparser.FeedParserDict, int, int]:
    """(feedparser's reading of a feed, items read one by one, items that could not be read).

    A feed that is not well-formed is read by feedparser's fallback parser, which loses
    every item after one misspelled or missing end tag (or that item's fields); when it
    gives fewer entries with a title than the feed has items, the items are read one by one
    (_items_one_by_one), and their entries replace its if more of them have one."""
    parsed = parse_feed_bytes(content, base_url=base_url)
    if not parsed.get("bozo") or not parsed.get("version"):
        return parsed, 0, 0
    read = _titled(parsed.entries)
    got = _items_one_by_one(content, parsed.get("version") or "", base_url, read=read)
    if got is None or _titled(got[0]) <= read:
        return parsed, 0, 0
    parsed["entries"] = got[0]
    return parsed, len(got[0]) + got[1], got[1]


def _titled(entries: list) -> int:
    return sum(1 for entry in entries if entry.get("title"))
