"""Paper sources: one module per kind, all behind the `Source` interface of base.py."""

from __future__ import annotations

from ..config import SourceConfig
from .base import Http, PollResult, Source
from .sample import SampleSource

SOURCE_CLASSES: dict[str, type[Source]] = {cls.kind: cls for cls in (SampleSource,)}


def make_source(config: SourceConfig, http: Http) -> Source:
    try:
        cls = SOURCE_CLASSES[config.kind]
    except KeyError:
        raise NotImplementedError(f'source kind "{config.kind}" is not available yet') from None
    return cls(config, http)


__all__ = ["Http", "PollResult", "Source", "SOURCE_CLASSES", "make_source"]
