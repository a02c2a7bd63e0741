"""bioRxiv and medRxiv via the details API: a date interval, paged with the cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ..errors import SourceError
from ..models import Paper
from ..store import SourceState
from .base import PollResult, Source, parse_off_loop
from .clean import clean_abstract, clean_title, iso_datetime, split_authors
from .hf_daily import load_json
from .ids import canonical, doi_id

# A daemon that was down for a while catches up from its last interval, but not forever.
MAX_CATCH_UP_DAYS = 30
# What the API says, inside a 200, for an interval without papers: an empty day.
_EMPTY_STATUSES = ("no posts found",)


def _int(value: Any) -> int | None:
    # Counts arrive as numbers or as strings ("count_new_papers": "522").
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _version(value: Any) -> int:
    return _int(value) or 1


@dataclass(frozen=True)
class DetailsPage:
    papers: list[Paper]
    count: int  # records in this page as the API counts them: the cursor moves by this
    total: int | None  # records in the whole interval
    unusable: int = 0  # records without a DOI or a title


def parse_details(content: bytes, *, source: str, server: str = "biorxiv") -> DetailsPage:
    """One page of the details API.

    Raises SourceError bad-json, or biorxiv-error for an error reported inside a 200.
    Versions are not merged here; see `keep_latest`.
    """
    data = load_json(content, source)
    if not isinstance(data, dict):
        raise SourceError(f"{source}: expected a JSON object from the details API",
                          reason="bad-json")
    messages = data.get("messages") or [{}]
    message = messages[0] if isinstance(messages[0], dict) else {}
    status = str(message.get("status", "ok")).strip()
    collection = data.get("collection") or []
    if status.lower() != "ok":
        if status.lower() in _EMPTY_STATUSES:
            return DetailsPage([], 0, 0)
        raise SourceError(f"{source}: the {server} API answered: {status}",
                          reason="biorxiv-error")
    if not isinstance(collection, list):
        raise SourceError(f"{source}: the details API sent no collection list",
                          reason="bad-json")
    host = "www.medrxiv.org" if server == "medrxiv" else "www.biorxiv.org"
    papers = []
    unusable = 0
    for rec in collection:
        doi = doi_id(rec.get("doi")) if isinstance(rec, dict) else None
        title = clean_title(rec.get("title"), html=True) if doi else ""
        if doi is None or not title:
            unusable += 1
            continue
        version = _version(rec.get("version"))
        # "published" is the journal DOI once the preprint is out, else "NA": an alias, so
        # the journal's own feed later meets the same row.
        journal = doi_id(rec.get("published")) if rec.get("published") != "NA" else None
        ids = canonical(doi, journal)
        assert ids is not None
        bare = doi.partition(":")[2]
        page = f"https://{host}/content/{bare}v{version}"
        category = clean_title(rec.get("category"))
        papers.append(Paper(
            id=ids[0],
            title=title,
            abstract=clean_abstract(rec.get("abstract"), html=True),
            authors=split_authors(rec.get("authors"), sep=";"),
            categories=(category,) if category else (),
            source=source,
            url=page,
            pdf_url=f"{page}.full.pdf",
            published=iso_datetime(rec.get("date")),
            version=version,
            aliases=ids[1],
        ))
    count = _int(message.get("count"))
    return DetailsPage(papers, len(collection) if count is None else count,
                       _int(message.get("total")), unusable)


def keep_latest(papers: list[Paper]) -> tuple[list[Paper], int]:
    """One paper per id, the highest version, in first-seen order; and how many dropped."""
    best: dict[str, Paper] = {}
    for p in papers:
        old = best.get(p.id)
        if old is None or (p.version or 0) > (old.version or 0):
            best[p.id] = p
    return list(best.values()), len(papers) - len(best)


class BiorxivSource(Source):
    kind = "biorxiv"
    default_url = "https://api.biorxiv.org/details"

    @property
    def server(self) -> str:
        return self.kind

    def interval(self, state: SourceState) -> tuple[date, date]:
        """From `days` ago (or the end of the last polled interval, if older) to today."""
        today = self.today()
        start = today - timedelta(days=self.config.days)
        if state.cursor:
            try:
                last = date.fromisoformat(state.cursor)
            except ValueError:
                last = start
            start = max(min(start, last), today - timedelta(days=MAX_CATCH_UP_DAYS))
        return start, today

    async def poll(self, state: SourceState) -> PollResult:
        start, end = self.interval(state)
        base = f"{self.endpoint}/{self.server}/{start.isoformat()}/{end.isoformat()}"
        found: list[Paper] = []
        unusable = 0
        cursor = 0
        while len(found) < self.config.max_results:
            # No validators: the URL changes with the day, and the API sends none.
            got = await self.fetch(f"{base}/{cursor}", None)
            page = await parse_off_loop(parse_details, got.content, source=self.name,
                                        server=self.server)
            found.extend(page.papers)
            unusable += page.unusable
            cursor += page.count
            if page.count <= 0 or page.total is None or cursor >= page.total:
                break
        papers, older = keep_latest(found)
        extra = max(0, len(papers) - self.config.max_results)
        return PollResult(papers=papers[:self.config.max_results],
                          skipped=older + unusable + extra, cursor=end.isoformat())


class MedrxivSource(BiorxivSource):
    kind = "medrxiv"
