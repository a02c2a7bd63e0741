"""The arXiv export API (Atom): custom queries and backfill, paged politely with `start`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..errors import SourceError
from ..models import Paper
from ..store import SourceState
from ..text import collapse
from .base import PollResult, Source, parse_off_loop
from .clean import clean_abstract, clean_name, clean_title, iso_datetime
from .ids import arxiv_urls, canonical, doi_id, parse_arxiv

# Elements are matched by namespace URI, never by prefix: the old API declared the
# prefixes on each element, the 2025 one on the root, and either may change again.
ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
# https://info.arxiv.org/help/api/tou.html: "no more than one request every three seconds".
REQUEST_INTERVAL = 3.0
PAGE_SIZE = 200


@dataclass(frozen=True)
class ApiEntry:
    """One API entry: the paper plus what `Paper` has no field for."""

    paper: Paper
    doi: str | None = None
    journal_ref: str = ""
    comment: str = ""
    primary_category: str = ""


@dataclass(frozen=True)
class ApiPage:
    entries: list[ApiEntry]
    total: int | None  # opensearch:totalResults
    start: int
    skipped: int = 0  # entries in the page without a usable id or title


def _text(el: ET.Element | None) -> str:
    return collapse(el.text or "") if el is not None else ""


def parse_api_feed(content: bytes, *, source: str) -> ApiPage:
    """Parse one page of the export API. Raises SourceError bad-xml or arxiv-error."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as e:
        raise SourceError(f"{source}: the API answer is not well-formed XML: {e}",
                          reason="bad-xml") from None
    if root.tag != f"{ATOM}feed":
        raise SourceError(f"{source}: the API answer is not an Atom feed (root <{root.tag}>)",
                          reason="bad-xml")

    def number(tag: str) -> int | None:
        value = _text(root.find(f"{OPENSEARCH}{tag}"))
        return int(value) if value.isdigit() else None

    entries: list[ApiEntry] = []
    skipped = 0
    for el in root.iterfind(f"{ATOM}entry"):
        raw_id = _text(el.find(f"{ATOM}id"))
        if "/api/errors" in raw_id:
            # A bad query is answered 200 with one entry titled "Error" explaining it.
            why = _text(el.find(f"{ATOM}summary")) or raw_id
            raise SourceError(f"{source}: arXiv API error: {why}", reason="arxiv-error")
        found = parse_arxiv(raw_id)
        title = _text(el.find(f"{ATOM}title"))
        if found is None or not title:
            skipped += 1
            continue
        bare, version = found
        primary_el = el.find(f"{ARXIV}primary_category")
        primary = primary_el.get("term", "") if primary_el is not None else ""
        cats = [primary] if primary else []
        cats += [c.get("term", "") for c in el.iterfind(f"{ATOM}category")]
        doi_text = _text(el.find(f"{ARXIV}doi"))
        # An entry may list several DOIs separated by spaces; the first is the article.
        doi = doi_id(doi_text.split()[0]) if doi_text else None
        # The unversioned pages, like every arXiv source: the digest links the latest version.
        url, pdf_url = arxiv_urls(bare)
        ids = canonical(f"arxiv:{bare}", doi)
        assert ids is not None
        paper = Paper(
            id=ids[0],
            # The XML parser decoded the entities already; only whitespace and LaTeX remain:
            # the API writes plain text, never HTML ("tags <code>x</code>" is a paper's text).
            title=clean_title(title, tex=True, plain=True),
            abstract=clean_abstract(_text(el.find(f"{ATOM}summary")), tex=True, plain=True),
            # (a name written with an affiliation mark, "Doe$^{1}$", loses it as in RSS)
            authors=tuple(n for n in (clean_name(_text(a.find(f"{ATOM}name")), tex=True,
                                                 plain=True)
                                      for a in el.iterfind(f"{ATOM}author")) if n),
            categories=tuple(dict.fromkeys(c for c in cats if c)),
            url=url,
            pdf_url=pdf_url,
            published=iso_datetime(_text(el.find(f"{ATOM}published"))),
            version=version,
            aliases=ids[1],
            source=source,
        )
        entries.append(ApiEntry(paper, doi=doi.partition(":")[2] if doi else None,
                                journal_ref=_text(el.find(f"{ARXIV}journal_ref")),
                                comment=_text(el.find(f"{ARXIV}comment")),
                                primary_category=primary))
    return ApiPage(entries, number("totalResults"), number("startIndex") or 0, skipped)


class ArxivApiSource(Source):
    kind = "arxiv-api"
    default_every = 6 * 3600.0
    default_url = "https://export.arxiv.org/api/query"
    page_size = PAGE_SIZE

    async def poll(self, state: SourceState) -> PollResult:
        wanted = self.config.max_results
        papers: list[Paper] = []
        seen: set[str] = set()
        skipped = repeated = 0
        start = 0
        etag = last_modified = None
        while len(papers) + skipped + repeated < wanted:
            params = {"search_query": self.config.query, "start": start,
                      "max_results": min(self.page_size,
                                         wanted - len(papers) - skipped - repeated),
                      "sortBy": "submittedDate", "sortOrder": "descending"}
            # Validators belong to the first page only: later pages are other URLs.
            got = await self.fetch(self.endpoint, state if start == 0 else None, params=params,
                                   min_interval=REQUEST_INTERVAL)
            if got.not_modified:
                return PollResult(not_modified=True, etag=got.etag,
                                  last_modified=got.last_modified)
            if start == 0:
                etag, last_modified = got.etag, got.last_modified
            page = await parse_off_loop(parse_api_feed, got.content, source=self.name)
            for entry in page.entries:
                # New submissions push results down while we page, so a page may
                # repeat the end of the previous one.
                if entry.paper.id in seen:  # seen (on the page before), not skipped
                    repeated += 1
                else:
                    seen.add(entry.paper.id)
                    papers.append(entry.paper)
            skipped += page.skipped
            got_here = len(page.entries) + page.skipped
            start += got_here
            if got_here == 0 or (page.total is not None and start >= page.total):
                break
        return PollResult(papers=papers, skipped=skipped, repeated=repeated, etag=etag,
                          last_modified=last_modified)
