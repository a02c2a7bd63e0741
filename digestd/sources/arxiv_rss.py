"""The arXiv announcement feeds (rss.arxiv.org): one combined request for all categories."""

from __future__ import annotations

import io
import re
from collections.abc import Collection

import feedparser

from ..errors import SourceError
from ..models import Paper
from ..store import SourceState
from .base import PollResult, Source, clean_abstract, clean_title, iso_datetime, split_authors
from .ids import arxiv_urls, parse_arxiv

ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
# "arXiv:2604.22002v1 Announce Type: new \nAbstract: ..." in front of every description.
_PREAMBLE = re.compile(r"^\s*arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.IGNORECASE)
_ERROR_TITLE = "feed error for query"


def parse_feed_bytes(content: bytes) -> feedparser.FeedParserDict:
    """feedparser on bytes, never on a str or bytes it could take for a path or URL.

    Sanitizing and URI resolution are off: sources strip all tags themselves, and
    they are a large part of feedparser's time.
    """
    return feedparser.parse(io.BytesIO(content), sanitize_html=False,
                            resolve_relative_uris=False)


def check_feed(parsed: feedparser.FeedParserDict, source: str, *, strict: bool) -> None:
    """Raise bad-xml for something that is not a feed, or (strict) not well-formed.

    Strict matters for arXiv: a truncated announcement feed still yields its first
    items, and accepting it would store the ETag and lose the rest for good.
    """
    exc = parsed.get("bozo_exception")
    if not parsed.get("version"):
        detail = f" ({exc})" if exc else ""
        raise SourceError(f"{source}: the answer is not an RSS or Atom feed{detail}",
                          reason="bad-xml")
    if strict and parsed.get("bozo") and not isinstance(
            exc, (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)):
        raise SourceError(f"{source}: the feed is not well-formed XML: {exc}", reason="bad-xml")


def parse_arxiv_rss(content: bytes, *, source: str,
                    announce_types: Collection[str] = ("new", "cross"),
                    categories: Collection[str] = ()) -> tuple[list[Paper], int]:
    """(papers kept, entries skipped) from an rss.arxiv.org feed.

    Raises SourceError: bad-xml, or arxiv-error for the feed arXiv sends for a bad
    category (a well-formed feed titled "Feed error for query: ...").
    """
    parsed = parse_feed_bytes(content)
    check_feed(parsed, source, strict=True)
    channel = parsed.feed
    title = channel.get("title", "")
    if title.lower().startswith(_ERROR_TITLE):
        asked = "+".join(categories) or title.partition(":")[2].strip()
        why = clean_abstract(channel.get("description", "")) or title
        raise SourceError(f"{source}: arXiv rejected the categories {asked}: {why}",
                          reason="arxiv-error")
    keep = set(announce_types)
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        kind = (entry.get("arxiv_announce_type") or "new").strip().lower()
        found = parse_arxiv(entry.get("id")) or parse_arxiv(entry.get("link"))
        if kind not in keep or found is None or not entry.get("title"):
            skipped += 1
            continue
        bare, version = found
        description = entry.get("summary", "")
        if version is None:
            in_text = parse_arxiv(description[:60])
            version = in_text[1] if in_text else None
        url, pdf_url = arxiv_urls(bare)
        papers.append(Paper(
            id=f"arxiv:{bare}",
            title=clean_title(entry.title),
            # Plain text, not HTML: stripping "tags" would eat "p<0.05 ... q>1".
            abstract=clean_abstract(_PREAMBLE.sub("", description, count=1)),
            # One dc:creator holding "A, B, C" (feedparser keeps it as one author).
            authors=split_authors(entry.get("author")),
            categories=tuple(dict.fromkeys(t.term for t in entry.get("tags", ()) if t.term)),
            source=source,
            url=url,
            pdf_url=pdf_url,
            published=iso_datetime(entry.get("published"), entry.get("published_parsed")),
            version=version,
        ))
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
        papers, skipped = parse_arxiv_rss(got.content, source=self.name,
                                          announce_types=self.config.announce_types,
                                          categories=self.config.categories)
        return PollResult(papers=papers, skipped=skipped, etag=got.etag,
                          last_modified=got.last_modified)
