"""Hugging Face daily papers (/api/daily_papers): arXiv papers with community upvotes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from ..errors import SourceError
from ..models import Paper
from ..store import SourceState
from .base import PollResult, Source, parse_off_loop
from .clean import clean_abstract, clean_title, iso_datetime
from .ids import arxiv_urls, parse_arxiv

LIMIT_MAX = 100  # the API refuses larger pages


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _author(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, dict) or raw.get("hidden") is True:
        return ""
    user = raw.get("user") if isinstance(raw.get("user"), dict) else {}
    return raw.get("name") or user.get("fullname") or ""


def load_json(content: bytes, source: str) -> Any:
    """json.loads with bad-json as the SourceError reason."""
    try:
        return json.loads(content)
    except (UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"{source}: the answer is not valid JSON: {e}", reason="bad-json") \
            from None


def parse_hf_daily(content: bytes, *, source: str) -> tuple[list[Paper], int]:
    """(papers, entries skipped) from a daily_papers answer.

    The schema drifts between years: fields come and go (ai_summary, organization,
    mediaUrls), the paper sits under "paper" or at the top, titles carry line breaks,
    authors have a name or only a nested user. Only an id and a title are required.
    """
    data = load_json(content, source)
    if isinstance(data, dict):
        if "error" in data:
            raise SourceError(f"{source}: Hugging Face answered: {data['error']}",
                              reason="hf-error")
        data = next((v for k, v in data.items()
                     if k in ("dailyPapers", "papers", "items", "data") and isinstance(v, list)),
                    None)
    if not isinstance(data, list):
        raise SourceError(f"{source}: expected a JSON list of daily papers",
                          reason="bad-json")
    papers: list[Paper] = []
    skipped = 0
    for item in data:
        if not isinstance(item, dict):
            skipped += 1
            continue
        paper = item.get("paper") if isinstance(item.get("paper"), dict) else item
        hf_id = str(paper.get("id") or item.get("id") or "").strip()
        # Hugging Face shows arXiv papers with arXiv's own text: plain text with TeX, never
        # HTML (a paper about tags keeps them)
        title = clean_title(paper.get("title") or item.get("title"), tex=True, plain=True)
        if not hf_id or not title:
            skipped += 1
            continue
        found = parse_arxiv(hf_id)
        if found:
            # The HF paper id is the arXiv id: that is what makes one row of a paper
            # seen on both.
            pid = f"arxiv:{found[0]}"
            url, pdf_url = arxiv_urls(found[0])
        else:
            pid, url, pdf_url = f"hf:{hf_id}", f"https://huggingface.co/papers/{hf_id}", ""
        authors = paper.get("authors") or item.get("authors") or []
        papers.append(Paper(
            id=pid,
            title=title,
            abstract=clean_abstract(paper.get("summary") or item.get("summary") or "", tex=True,
                                    plain=True),
            authors=tuple(a for a in (clean_title(_author(x), tex=True) for x in authors
                                      if x is not None) if a),
            source=source,
            url=url,
            pdf_url=pdf_url,
            published=iso_datetime(paper.get("publishedAt") or item.get("publishedAt")),
            upvotes=_as_int(paper.get("upvotes", item.get("upvotes"))),
            version=found[1] if found else None,
        ))
    return papers, skipped


class HfDailySource(Source):
    kind = "hf-daily"
    default_url = "https://huggingface.co/api/daily_papers"

    async def poll(self, state: SourceState) -> PollResult:
        today = self.today()
        papers: list[Paper] = []
        seen: set[str] = set()
        skipped = repeated = 0
        etag = last_modified = None
        for back in range(self.config.days):
            if len(papers) >= self.config.max_results:
                break
            day = today - timedelta(days=back)
            params = {"date": day.isoformat(), "limit": min(LIMIT_MAX, self.config.max_results)}
            # Today's list is the one that changes; if it did not, neither did older days,
            # so its validators stand for the whole poll.
            got = await self.fetch(self.endpoint, state if back == 0 else None, params=params)
            if got.not_modified:
                return PollResult(not_modified=True, etag=got.etag,
                                  last_modified=got.last_modified)
            if back == 0:
                etag, last_modified = got.etag, got.last_modified
            found, dropped = await parse_off_loop(parse_hf_daily, got.content, source=self.name)
            skipped += dropped
            for paper in found:
                if paper.id in seen:  # on an earlier day's list too: seen, not skipped
                    repeated += 1
                    continue
                if len(papers) >= self.config.max_results:
                    skipped += 1
                    continue
                seen.add(paper.id)
                papers.append(paper)
        return PollResult(papers=papers, skipped=skipped, repeated=repeated, etag=etag,
                          last_modified=last_modified)
