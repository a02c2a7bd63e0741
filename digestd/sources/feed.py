"""Any RSS 1.0/2.0 or Atom feed (journal tables of contents), from a URL or a local file."""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

from ..errors import SourceError
from ..identity import conflicting, title_key, titles_agree
from ..models import Paper
from ..store import SourceState
from ..text import collapse, words
from .arxiv_api import parse_api_feed
from .arxiv_rss import arxiv_entry, check_error_feed, check_feed, is_arxiv_feed
from .base import PollResult, Source, parse_off_loop, xml_error
from .clean import (
    NAME_PARTICLES,
    absolute_link,
    clean_abstract,
    clean_name,
    clean_text,
    clean_title,
    entry_date,
    is_no_author,
    split_authors,
)
from .feeddoc import dc_identifiers, latest_of_each_id, read_feed
from .ids import arxiv_urls, canonical, doi_id, parse_arxiv, untracked, url_id
from .markup import html_to_text, is_html

log = logging.getLogger("digestd.sources")

# The id of an answer of arXiv's export API ("http://arxiv.org/api/VQIAl76...")
_ARXIV_API = re.compile(r"^https?://(?:export\.)?arxiv\.org/api/", re.IGNORECASE)
# Where journals put the DOI: dc:identifier ("doi:10...." or a doi.org URL), prism:doi.
_DOI_KEYS = ("prism_doi", "dc_identifier", "doi")


def _doi(entry: dict, identifiers: Collection[str] = ()) -> str | None:
    """The item's DOI: prism:doi, dc:identifier (`identifiers`: each of the item's
    dc:identifier values, where it has several), a doi field, or a DOI as its guid."""
    for key in _DOI_KEYS:
        values = identifiers if key == "dc_identifier" and identifiers else (entry.get(key),)
        for value in values:
            found = doi_id(value) if isinstance(value, str) else None
            if found:
                return found
    guid = entry.get("id")
    if isinstance(guid, str) and guid.lower().startswith(("info:doi/", "doi:")):
        return doi_id(guid)  # PLOS's Atom id "info:doi/10.1371/journal.pone.0300000"
    return None


def _authors(entry: dict, tex: bool) -> tuple[str, ...]:
    people = [a for a in entry.get("authors", ()) if isinstance(a, dict) and a.get("name")]
    if len(people) == 1:
        # Many feeds put all authors in one dc:creator / <author>: "A, B and C", sometimes as
        # HTML links.
        name = people[0]["name"]
        raw = entry.get("author")
        if people[0].get("email") and isinstance(raw, str) and people[0]["email"] in raw:
            # feedparser took the first address out of the string, and its parentheses with
            # it ("a@x.org (Ann Roe), b@x.org (Bo Sample)" gave "Ann Roe), b@x.org (Bo
            # Sample"): the string as the feed wrote it, whose addresses split_authors drops
            name = raw
        return split_authors(name, html="<" in name, tex=tex)
    # one name each, as a rule; but a list in one of them ("A, B and C" beside a feed-wide
    # <author>) is split too, and "et al." in one of its own is no author
    names = (n for a in people for n in _creator(a["name"], tex))
    return tuple(dict.fromkeys(n for n in names if n and not is_no_author(n)))


def _creator(name: str, tex: bool) -> tuple[str, ...]:
    """One of several author elements: one person ("García Márquez, Gabriel", "Jane Doe, MD,
    MPH", "King, Martin Luther, Jr."), unless it lists three or more ("Alice Doe, Bob Roe,
    Carol Poe" beside a feed-wide <author>)."""
    html = "<" in name
    if "," in name:
        listed = split_authors(name, html=html, tex=tex)
        if sum(" " in n for n in listed) >= 3:  # people, not "Jane Doe, MD, MPH, FACS"
            return listed
    return (clean_name(name, html=html, tex=tex),)


def _markup(value: object, detail: object) -> bool:
    """Whether a field is HTML: feedparser's `*_detail` type, or MathML that feedparser
    does not take for HTML in a title. (Inline markup in a text field, "<i>BRCA1</i> ...
    <65", is taken out by clean.clean_text.)"""
    return is_html(detail) or (isinstance(value, str) and "</math>" in value)


# ScienceDirect's description: the item's metadata, one field a paragraph or a line ("<p>
# Publication date: ...</p>", or "Publication date: ...<br/><b>Source:</b> ...<br/>"), and
# in older feeds the abstract after them
_LINES = re.compile(r"<br\s*/?>|</?(?:p|div)\b[^>]*>|\n", re.IGNORECASE)
_META = re.compile(r"^\s*(?:<(?:b|strong)>\s*)?(Publication date|Source|Author\(s\))\s*:"
                   r"\s*(?:</(?:b|strong)>)?\s*(.*?)\s*$", re.DOTALL | re.IGNORECASE)
# Nature: "Nature, Published online: 02 January 2026; <a href=...>doi:10.1038/...</a>"
_ONLINE = re.compile(r"^\s*[^<>;]{2,150}?,\s*Published online:\s*[^;<>]{1,60};\s*(?:<a\b[^<>]*>)?"
                     r"\s*doi:\s*[^\s<>]+\s*(?:</a>)?\s*$", re.IGNORECASE)
# APS: "[Phys. Rev. Lett. 136, 010001] Published Fri Jan 02, 2026"
_PUBLISHED = re.compile(r"^\s*\[[^\[\]<>]{3,120}\]\s*Published\b[^<>]{0,60}$")
# PLOS: "by Ann Roe, Bo Sample"
_BY = re.compile(r"^\s*(?:<(?:i|em)>\s*)?[Bb]y\s+([^<>]{2,2000}?)\s*(?:</(?:i|em)>)?\s*$")
# words of a title, never of a name: "By The Numbers", "By Combining Monte Carlo Methods With"
_FUNCTION_WORDS = frozenset(("the", "a", "an", "any", "other", "with", "without", "of", "for",
                             "in", "on", "to", "from", "into", "via", "using", "how", "what",
                             "why", "when", "is", "are", "we", "our", "this", "that", "new",
                             "all", "one", "its", "their", "your", "my", "not", "no", "more"))
# a description that is the item's citation, not its abstract (Wiley: "Angewandte Chemie
# International Edition, Volume 65, Issue 1, e202600001, January 2, 2026.")
_CITATION = re.compile(r"\bVolume \d+, (?:Issue|Page)|, EarlyView\.?\s*$")
# ... and one with nothing else: a journal's name (in title case), then its volume and issue
# up to the year, or "EarlyView", or (ACS) the DOI (a description that only cites the item is
# no abstract, even alone)
_TITLE_WORD = r"(?:[A-Z][\w&.'-]*|of|the|and|for|in|on|&)"
_JOURNAL = rf"{_TITLE_WORD}(?:\s+{_TITLE_WORD}){{0,15}}"
_CITATION_ONLY = re.compile(rf"^{_JOURNAL}(?:, (?:Volume \d+, (?:Issue|Page)[^<>]{{0,120}}?"
                            r"\b(?:19|20)\d\d|EarlyView)\s*\.?"
                            r"|\s+DOI:\s*10\.\d{4,9}/\S+)\s*$")
# a heading "Abstract" the content starts with ("Abstract We invent", "ABSTRACT: We"); not
# "Abstract interpretation gives", "Summary statistics"
_ABSTRACT_HEAD = re.compile(r"^(?:Abstract\s*[:.]\s*|ABSTRACT\s*[:.]?\s+)")
_HEADING_LINE = re.compile(r"^\s*(?:<(?:b|strong|h[1-6])>)?\s*Abstract\s*:?\s*"
                           r"(?:</(?:b|strong|h[1-6])>)?\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^\s*<(h[1-6]|p|div)\b[^>]*>\s*(?:<(?:b|strong)>)?\s*Abstract\s*:?\s*"
                      r"(?:</(?:b|strong)>)?\s*</\1\s*>", re.IGNORECASE)


def _metadata(summary: str) -> tuple[str, str]:
    """(the description without the publisher's lines about the item, the authors they list,
    as HTML). No abstract, whether the fields are paragraphs or lines (<br/>):
    ScienceDirect's "Publication date: ... Source: ... Author(s): ..."; APS's first line
    "Author(s): ..." and last "[Phys. Rev. Lett. 136, 010001] Published Fri Jan 02, 2026";
    Nature's first line "Nature, Published online: 02 January 2026; doi:..."; PLOS's "by A,
    B". What else the description holds (the abstract) stays."""
    lead = summary[:300]
    if not ("Author(s)" in lead or "Published" in summary or "by " in lead
            or "By " in lead):
        return summary, ""
    lines = [line for line in _LINES.split(summary) if line.strip()]
    listed, kept = "", []
    full = "Publication date:" in summary and "Author(s):" in summary
    for i, line in enumerate(lines):
        m = _META.match(line) if full or i == 0 else None
        if m is not None and (full or m[1].lower().startswith("author")):
            if m[1].lower().startswith("author"):
                listed = m[2]
            continue
        if i == 0 and _ONLINE.match(line):
            continue
        if i == 0 and (by := _BY.match(line)) and _names_only(by[1]):
            listed = by[1]
            continue
        if i == len(lines) - 1 and i and _PUBLISHED.match(line):
            continue
        kept.append(line)
    if len(kept) == len(lines):
        return summary, ""
    if kept and _HEADING_LINE.match(kept[0]):
        kept.pop(0)  # "<b>Abstract</b>" on a line of its own, after the lines taken out
    return "\n".join(kept), listed


def _names_only(text: str) -> bool:
    """Whether `text` is a list of names ("Ann Roe, Bo Sample and Cy Test"), not a sentence
    ("combining A and B, we show ...")."""
    names = split_authors(text, html=True)
    return bool(names) and not text.rstrip().endswith(".") and all(
        1 < len(n.split()) <= 5 and all((w[:1].isupper() or w in NAME_PARTICLES)
                                        and w.lower() not in _FUNCTION_WORDS
                                        for w in n.split()) for n in names)


def guid_ids(guid: str, source: str) -> tuple[str, ...]:
    """The identities of a feed item's guid/Atom id: always `guid:SOURCE|GUID`, which names
    the item within its feed (two guids of one feed are two items); an absolute http(s)
    URL also names the same thing everywhere (`url:`, or the arXiv id or DOI it holds).
    `IJ-2026-0101`, `tag:...` and `urn:uuid:...` stay within their feed."""
    scoped = f"guid:{source}|{guid.strip()}"
    if absolute_link(guid) == guid.strip():
        found = url_id(guid)
        if found and not (found.startswith("url:") and urlsplit(guid).fragment):
            return (found, scoped)  # (a fragment's page, "toc#art2", is no item's address)
    return (scoped,)


def _item_id(source: str, link: str, title: str) -> str:
    # An item with no identity of its own (no DOI, no guid, a link shared with other items):
    # it is the same item only with the same link and title in the same feed (a link's
    # tracking tags, which change from poll to poll, are no part of it).
    digest = hashlib.sha256(f"{untracked(link)}\n{title}".encode()).hexdigest()[:20]
    return f"item:{source}|{digest}"


def _item_base(entry: dict, base_url: str) -> str:
    """What the item's relative URIs resolve against: the xml:base in force inside it (which
    feedparser keeps with each of its fields), itself resolved against the URL the feed was
    fetched from, else that URL."""
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key)
        base = detail.get("base") if isinstance(detail, dict) else None
        if isinstance(base, str) and base.strip():
            try:
                return urljoin(base_url, base.strip()) if base_url else base.strip()
            except ValueError:
                break
    return base_url


# RFC 4287 4.2.7.2: a relation written as its IANA URI is the registered one of that name
_IANA_ALTERNATE = "http://www.iana.org/assignments/relation/alternate"


def _iana_alternate(entry: dict) -> str:
    """The href of an Atom link whose rel is "alternate" written as its IANA URI, which
    feedparser does not take for the entry's link; '' when there is none."""
    for link in entry.get("links") or ():
        if isinstance(link, dict) and isinstance(link.get("href"), str) and str(
                link.get("rel") or "").strip().lower() == _IANA_ALTERNATE:
            return link["href"]
    return ""


def _pdf_link(entry: dict, base: str, url: str) -> str:
    """The item's PDF: an RSS <enclosure> or an Atom link of type application/pdf (or an
    enclosure whose path ends in .pdf), resolved against `base`; '' when there is none, or
    it is the item's link itself."""
    for link in entry.get("links") or ():
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            continue
        kind = str(link.get("type") or "").lower()
        rel = str(link.get("rel") or "")
        if rel == "self" or not (kind == "application/pdf" or (
                rel == "enclosure" and not kind and urlsplit(link["href"]).path.lower()
                .endswith(".pdf"))):
            continue
        found = untracked(absolute_link(link["href"], base))
        if found and found != url:
            return found
    return ""


_RELISTINGS = 3  # listings of one item under one guid that _relisted looks at


def _strong(paper: Paper) -> list[str]:
    return [i for i in paper.ids if i.startswith(("doi:", "arxiv:"))]


def _same_listing(first: Paper, second: Paper) -> bool:
    """Whether two items of one feed document with one link and one title are one listing
    of one article (a journal lists it under "Research" and "Most read"): nothing a reader
    could tell them apart by. Two abstracts or two author lists that differ, or two DOIs or
    arXiv ids, make two items (a recurring column at one address, "What is your
    diagnosis?", with this week's case and last week's), and so does a generic title
    (identity.title_key: "Erratum", "Editorial"), which many items share."""
    return (title_key(first.title) is not None  # "Erratum" and "Erratum": say nothing
            and _same_text(first.abstract, second.abstract)
            and not (first.authors and second.authors and first.authors != second.authors)
            and conflicting(_strong(first), _strong(second)) is None)


# how a listing cuts an abstract short: "…", "...", "[...]", "[…]"
_CUT_SHORT = re.compile(r"\s*(?:\[\s*(?:…|\.\.\.)\s*\]|…|\.\.\.)\s*$")
_MIN_CUT = 40  # characters of an abstract cut short that still tell it


def _same_text(one: str, other: str) -> bool:
    """Whether two listings' abstracts can be one article's: the same, either missing, or
    one the other's beginning cut short ("We invent a catalyst that …" in "Most read")."""
    if not one or not other or one == other:
        return True
    short, long = sorted((one, other), key=len)
    cut = _CUT_SHORT.sub("", short)
    return cut != short and len(cut) >= _MIN_CUT and long.startswith(cut)


def _same_item(first: Paper, second: Paper) -> bool:
    """Whether two items of one feed document under one guid are one item listed again as
    it was updated (a typo in its title fixed, its abstract added): titles that agree
    (identity.titles_agree) and are a paper's (a feed that gives every item one guid, its
    own name, lists "Editorial" and "Editorial"), no two DOIs or arXiv ids."""
    return (title_key(first.title) is not None and title_key(second.title) is not None
            and titles_agree(first.title, second.title)
            and conflicting(_strong(first), _strong(second)) is None)


def _relisted(papers: list[Paper], link_ids: list[str | None], guids: list[str | None],
              source: str) -> list[Paper]:
    """`papers` with each article listed twice in the feed once (_same_listing at a shared
    link, _same_item under a shared guid), in the first listing's place, known by every id
    of either: its guids, so that either one alone is met again later."""
    kept: list[Paper] = []
    first: dict[tuple, int] = {}
    under: dict[str, list[int]] = {}  # a shared guid's papers kept so far
    for paper, link_id, guid in zip(papers, link_ids, guids):
        key = (link_id, tuple(words(paper.title))) if link_id else None
        at = first.get(key) if key else None
        if at is not None and not _same_listing(kept[at], paper):
            at = None
        if at is None and guid:
            at = next((k for k in under.get(guid, ()) if _same_item(kept[k], paper)), None)
        if at is not None:
            held = kept[at]
            kept[at] = replace(held, aliases=tuple(dict.fromkeys(
                i for i in (*held.aliases, *paper.ids) if i != held.id)),
                abstract=max(held.abstract, paper.abstract, key=len))  # (not one cut short)
            log.debug("source=%s relisted=%s as=%s", source, paper.id, held.id)
            continue
        if key and key not in first:
            first[key] = len(kept)
        if guid:
            under.setdefault(guid, []).append(len(kept))
        kept.append(paper)
    return kept


def parse_feed(content: bytes, *, source: str, base_url: str = "",
               announce_types: Collection[str] = (), tex: bool = False
               ) -> tuple[list[Paper], int, bool]:
    """(papers, entries skipped, well-formed) from any feed feedparser understands.

    Identity (see the README, "Paper identity"): a DOI, an arXiv id, the guid/Atom id
    (scoped to this feed unless it is an absolute URL), and the item's link only when no
    other item of this feed has the same link (at a shared link, the link and title as an
    `item:` id beside the guid); items at one shared link under one title that nothing
    else tells apart are one article listed twice (_relisted). Relative links (an RSS 1.0
    rdf:about where there is no link, a PDF enclosure) are resolved against xml:base, else
    `base_url` (the URL the feed was fetched from, after redirects); links that are not
    http(s) then are dropped, and tracking tags leave them. Titles and abstracts lose
    markup only where the feed says they are HTML. An arXiv feed read here is read as
    arXiv writes it (TeX, the old RSS 1.0 title suffix); `announce_types` filters its
    items (default: keep all); an answer of arXiv's export API, as the arxiv-api source
    reads it.
    Other feeds' text is converted from TeX only with `tex` (the source's setting).

    Real journal feeds are often slightly broken (an undefined entity, a stray &), so
    a feed that still parses is accepted, its items read one by one where feedparser's
    reading lost some (read_feed; items that give nothing are counted as skipped);
    `well-formed` False tells the caller not to keep its validators, so the next poll
    reads the feed again in full.
    """
    parsed, one_by_one, unreadable = read_feed(content)
    check_feed(parsed, source, strict=False)
    check_error_feed(parsed, source)  # arXiv's answer to a bad query is no empty day
    well_formed = not parsed.get("bozo")
    if one_by_one:
        log.warning("source=%s not_well_formed=%r items=%d read_one_by_one=true unreadable=%d",
                    source, xml_error(parsed.get("bozo_exception")), one_by_one, unreadable)
    entries = parsed.entries
    atom = str(parsed.get("version") or "").startswith("atom")
    if atom and _ARXIV_API.match(str(parsed.feed.get("id") or "")):
        # arXiv's export API read as a feed (a query's URL): its entries as the arxiv-api
        # source reads them, TeX and plain text, versions and DOIs
        try:
            page = parse_api_feed(content, source=source)
        except SourceError as e:
            if e.reason != "bad-xml":
                raise
        else:
            return [found.paper for found in page.entries], page.skipped, well_formed
    if atom:
        entries = latest_of_each_id(entries)
    arxiv = is_arxiv_feed(parsed)
    old_format = parsed.get("version") == "rss10"
    keep = set(announce_types)

    # a relative xml:base ("../jb/") resolves against the feed's URL, which only a second
    # reading with that URL knows (the guids are taken from the first: feedparser would make
    # a permalink guid such as "IJ-2026-0101" a URL too)
    based = None
    if base_url and b"xml:base" in content:
        based = read_feed(content, base_url=base_url)[0].entries
        if atom:
            based = latest_of_each_id(based)
        if len(based) != len(entries):
            based = None
    links: list[str] = []
    guids: list[str] = []
    bases: list[str] = []
    for i, entry in enumerate(entries):
        guid = (entry.get("id") or "").strip()
        link = entry.get("link") or ""
        base = _item_base(based[i] if based is not None else entry, base_url)
        alternate = _iana_alternate(entry) if not link or entry.get("guidislink") else ""
        origin = entry.get("feedburner_origlink")
        if isinstance(origin, str) and absolute_link(origin, base):
            # FeedBurner put its own redirect (feedproxy.google.com, gone since 2022) in the
            # link and the article's address in feedburner:origLink
            link = alternate = origin
        elif alternate:
            link = alternate  # (feedparser gave the entry its id for a link)
        elif entry.get("guidislink") and link == guid and not absolute_link(guid):
            # a permalink guid that is no URL ("IJ-2026-0101") is not a link; a path
            # ("article/6") is one, relative to the feed
            link = guid if "/" in guid and " " not in guid else ""
        if based is not None and link and not alternate:
            link = based[i].get("link") or link
        if not link.strip() and absolute_link(guid):
            link = guid  # <link/> left empty beside a guid that is a URL
        elif not link.strip() and old_format and guid and " " not in guid:
            # RSS 1.0's rdf:about is the item's URI (its <link>, "if possible"), a reference
            # that RDF resolves against xml:base or the document's URL as any other
            link = guid
        elif link.strip().lower().startswith("doi:") and doi_id(link):
            link = "https://doi.org/" + link.strip()[4:].strip()
        links.append(untracked(absolute_link(link, base)))
        guids.append(guid)
        bases.append(base)
    # counted as the store compares them (no fragment, host in lower case): links that differ
    # only there ("toc#art1", "toc#art2") name one page
    link_ids = [url_id(link) if link else None for link in links]
    link_count = Counter(i for i in link_ids if i)
    guid_count = Counter(guid for guid in guids if guid)

    identifiers = dc_identifiers(content, len(parsed.entries)) if not atom or len(
        entries) == len(parsed.entries) else None
    papers: list[Paper] = []
    paper_links: list[str | None] = []  # each paper's shared link_id, for _relisted
    paper_guids: list[str | None] = []  # ... and its shared guid
    skipped = unreadable
    for k, (entry, link, link_id, guid) in enumerate(zip(entries, links, link_ids, guids)):
        if arxiv:
            got = arxiv_entry(entry, source=source, old_format=old_format)
            if got is not None:
                if keep and got[1] not in keep:
                    skipped += 1
                    log.debug("source=%s skipped=%s announce_type=%s", source, got[0].id, got[1])
                    continue
                papers.append(got[0])
                paper_links.append(None)
                paper_guids.append(None)
                continue
        title = clean_title(entry.get("title"), html=_markup(entry.get("title"),
                                                             entry.get("title_detail")), tex=tex)
        if not title:
            skipped += 1
            continue
        # A link or guid that several items of this feed share (a journal's "upcoming" page)
        # names none of them.
        shared = bool(link_id) and link_count[link_id] > 1
        shared_guid = bool(guid) and guid_count[guid] > 1
        if shared or shared_guid:
            log.debug("source=%s shared_link=%s shared_guid=%s: not an identity", source,
                      link if shared else "", guid if shared_guid else "")
        # a guid that is the item's own link, at a page rather than an article (no number
        # in its path: "/latest", "/upcoming"), says no more than the link: the item behind
        # such a page changes, and titles must agree for it to be the same paper
        page = bool(link_id) and absolute_link(guid) == guid and url_id(guid) == link_id \
            and not any(c.isdigit() for c in urlsplit(link).path) \
            and urlsplit(guid).fragment == urlsplit(link).fragment  # ("upcoming/#2": an item's)
        held = guid_ids(guid, source) if guid and not shared_guid and not page else ()
        ids = canonical(_doi(entry, identifiers[k] if identifiers else ()),
                        link_id if link_id and not shared else None, *held)
        if ids is not None and ids[0].startswith("url:") and not any(
                i.startswith(("arxiv:", "doi:", "guid:")) for i in (ids[0], *ids[1])):
            # known by its link alone: its feed, link and title too, so that it is found
            # again when its link is shared with other items later (or was before)
            ids = (ids[0], (*ids[1], _item_id(source, link, title)))
        elif ids is not None and shared:
            # at a link it shares with other items, under a guid: its feed, link and title
            # too, by which the store finds it again when the feed renumbers its guids
            ids = (ids[0], (*ids[1], _item_id(source, link, title)))
        if ids is None:
            ids = (_item_id(source, link, title), ())
        url, pdf_url = link, _pdf_link(entry, bases[k], link)
        found = parse_arxiv(ids[0]) if ids[0].startswith("arxiv:") else None
        if found:
            url, pdf_url = arxiv_urls(found[0])
        summary, detail = entry.get("summary") or "", entry.get("summary_detail")
        content = (entry.get("content") or [{}])[0].get("value", "") or ""
        if content and (not summary or detail is None or (
                len(summary) < 400 and _CITATION.search(summary) is not None)):
            # only full content (Atom <content>, content:encoded): feedparser copies it into
            # `summary` without saying what it is; the content says. And a short description
            # beside a long content is a citation line ("Angewandte Chemie, Volume 65, ..."):
            # the abstract is in the content
            summary, detail = content, entry.content[0]
        elif len(summary) < 400 and _CITATION_ONLY.match(collapse(html_to_text(summary))):
            summary = ""  # "Advanced Materials, EarlyView." with no content beside it
        summary, listed = _metadata(summary)
        if "bstract" in summary[:200] or "BSTRACT" in summary[:200]:
            summary = _HEADING.sub("", summary, count=1)  # <h3>Abstract</h3><p>We ...
        published = entry_date(entry)
        papers.append(Paper(
            id=ids[0],
            title=title,
            abstract=_ABSTRACT_HEAD.sub("", clean_abstract(summary, html=_markup(summary, detail),
                                                          tex=tex), count=1),
            authors=_authors(entry, tex) or (split_authors(listed, html=True) if listed
                                             else ()),
            categories=tuple(dict.fromkeys(clean_text(t.get("term"), limit=100)
                                           for t in entry.get("tags", ()) if t.get("term"))),
            source=source,
            url=url,
            pdf_url=pdf_url,
            published=published,
            aliases=ids[1],
        ))
        paper_links.append(link_id if shared else None)
        # a guid a few items share: one item listed again as it was updated; one that many
        # share names the feed, not an item (and comparing all their titles would cost)
        paper_guids.append(guid if shared_guid and guid_count[guid] <= _RELISTINGS else None)
    if any(paper_links) or any(paper_guids):
        papers = _relisted(papers, paper_links, paper_guids, source)
    return papers, skipped, well_formed


class FeedSource(Source):
    kind = "feed"

    async def poll(self, state: SourceState) -> PollResult:
        got = await self.fetch(self.config.url, state)
        if got.not_modified:
            return PollResult(not_modified=True, etag=got.etag, last_modified=got.last_modified)
        papers, skipped, well_formed = await parse_off_loop(
            parse_feed, got.content, source=self.name, base_url=got.url,
            announce_types=self.config.announce_types, tex=self.config.tex)
        if not well_formed:
            return PollResult(papers=papers, skipped=skipped)
        return PollResult(papers=papers, skipped=skipped, etag=got.etag,
                          last_modified=got.last_modified)
