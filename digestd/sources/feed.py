"""Any RSS 1.0/2.0 or Atom feed (journal tables of contents), from a URL or a local file."""

from __future__ import annotations

from ..models import Paper
from ..store import SourceState
from .arxiv_rss import check_feed, parse_feed_bytes
from .base import PollResult, Source, clean_abstract, clean_title, iso_datetime, split_authors
from .ids import arxiv_urls, canonical, doi_id, parse_arxiv, url_id

# Where journals put the DOI: dc:identifier ("doi:10...." or a doi.org URL), prism:doi.
_DOI_KEYS = ("prism_doi", "dc_identifier", "doi")


def _doi(entry: dict) -> str | None:
    for key in _DOI_KEYS:
        value = entry.get(key)
        found = doi_id(value) if isinstance(value, str) else None
        if found:
            return found
    return None


def _authors(entry: dict) -> tuple[str, ...]:
    names = [a.get("name", "") for a in entry.get("authors", ()) if isinstance(a, dict)]
    if len(names) == 1:
        # Many feeds put all authors in one dc:creator / <author>: "A, B and C".
        return split_authors(names[0])
    return tuple(n for n in (clean_title(n) for n in names) if n)


def parse_feed(content: bytes, *, source: str) -> tuple[list[Paper], int, bool]:
    """(papers, entries skipped, well-formed) from any feed feedparser understands.

    Real journal feeds are often slightly broken (an undefined entity, a stray &), so
    a feed that still parses is accepted; `well-formed` False tells the caller not to
    keep its validators, so the next poll reads the feed again in full.
    """
    parsed = parse_feed_bytes(content)
    check_feed(parsed, source, strict=False)
    well_formed = not parsed.get("bozo")
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        link = entry.get("link") or ""
        title = clean_title(entry.get("title"), html=True)
        ids = canonical(_doi(entry), url_id(link) if link else None,
                        url_id(entry.get("id")) if entry.get("id") else None)
        if ids is None or not title:
            skipped += 1
            continue
        url, pdf_url = link, ""
        found = parse_arxiv(ids[0]) if ids[0].startswith("arxiv:") else None
        if found:
            url, pdf_url = arxiv_urls(found[0])
        summary = entry.get("summary") or ""
        if not summary and entry.get("content"):
            summary = entry.content[0].get("value", "")
        published = iso_datetime(entry.get("published") or entry.get("updated"),
                                 entry.get("published_parsed") or entry.get("updated_parsed"))
        papers.append(Paper(
            id=ids[0],
            title=title,
            abstract=clean_abstract(summary, html=True),
            authors=_authors(entry),
            categories=tuple(dict.fromkeys(t.get("term") for t in entry.get("tags", ())
                                           if t.get("term"))),
            source=source,
            url=url,
            pdf_url=pdf_url,
            published=published,
            aliases=ids[1],
        ))
    return papers, skipped, well_formed


class FeedSource(Source):
    kind = "feed"

    async def poll(self, state: SourceState) -> PollResult:
        got = await self.fetch(self.config.url, state)
        if got.not_modified:
            return PollResult(not_modified=True, etag=got.etag, last_modified=got.last_modified)
        papers, skipped, well_formed = parse_feed(got.content, source=self.name)
        if not well_formed:
            return PollResult(papers=papers, skipped=skipped)
        return PollResult(papers=papers, skipped=skipped, etag=got.etag,
                          last_modified=got.last_modified)
