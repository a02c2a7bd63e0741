"""Paper sources: one module per kind, all behind the `Source` interface of base.py."""

from __future__ import annotations

from ..config import SourceConfig
from .arxiv_api import ArxivApiSource
from .arxiv_rss import ArxivRssSource
from .base import USER_AGENT, Fetched, Http, PollResult, Source
from .biorxiv import BiorxivSource, MedrxivSource
from .feed import FeedSource
from .hf_daily import HfDailySource
from .sample import SampleSource

SOURCE_CLASSES: dict[str, type[Source]] = {cls.kind: cls for cls in (
    SampleSource, FeedSource, ArxivRssSource, ArxivApiSource, HfDailySource, BiorxivSource,
    MedrxivSource)}


def make_source(config: SourceConfig, http: Http) -> Source:
    try:
        cls = SOURCE_CLASSES[config.kind]
    except KeyError:
        raise NotImplementedError(f'source kind "{config.kind}" is not available yet') from None
    return cls(config, http)


def poll_every(config: SourceConfig) -> float:
    """Seconds between two polls of a source, as its Source.every says (no Http needed)."""
    return make_source(config, None).every  # type: ignore[arg-type]  (every reads no Http)


__all__ = [
    "SOURCE_CLASSES",
    "USER_AGENT",
    "Fetched",
    "Http",
    "PollResult",
    "Source",
    "make_source",
    "poll_every",
]
