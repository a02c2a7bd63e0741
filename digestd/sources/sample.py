"""The bundled sample papers: an offline source for the demo and for trying rules."""

from __future__ import annotations

import json
from importlib import resources

from ..models import Paper
from ..store import SourceState
from .base import PollResult, Source


def sample_papers(source: str = "sample") -> list[Paper]:
    """The papers shipped in digestd/data/sample_papers.json (rebuilt by bench/make_sample.py)."""
    raw = json.loads(resources.files("digestd.data").joinpath("sample_papers.json")
                     .read_text(encoding="utf-8"))
    return [Paper(id=r["id"], title=r["title"], abstract=r["abstract"],
                  authors=tuple(r.get("authors", ())), categories=tuple(r.get("categories", ())),
                  source=source, url=r.get("url", ""), pdf_url=r.get("pdf_url", ""),
                  published=r.get("published") or "",
                  upvotes=r.get("upvotes"))
            for r in raw]


class SampleSource(Source):
    kind = "sample"
    default_every = 86400.0

    async def poll(self, state: SourceState) -> PollResult:
        return PollResult(papers=sample_papers(self.name))
