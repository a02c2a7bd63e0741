"""The poll job: poll sources concurrently, store only what is new, record every outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .config import SourceConfig
from .errors import NotFound, SourceError
from .sources import Http, make_source
from .sources.base import PollResult
from .store import Store

log = logging.getLogger("digestd.poll")


@dataclass(frozen=True)
class PollReport:
    """The outcome of polling one source, as `digestd poll` prints it."""

    source: str
    fetched: int = 0
    new: int = 0
    skipped: int = 0
    not_modified: bool = False
    duration_s: float = 0.0  # the poll's own time: fetching, parsing, storing
    waited_s: float = 0.0  # its waits for a turn at a host other sources poll too
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def seen(self) -> int:
        """Entries fetched that the store already had (under any of their ids)."""
        return max(0, self.fetched - self.skipped - self.new)


def select_sources(sources: Sequence[SourceConfig], names: Collection[str] | None = None
                   ) -> list[SourceConfig]:
    """The enabled sources, or exactly the named ones (disabled or not).

    Raises NotFound for a name that is not configured, so a typo is not a silent no-op.
    """
    if names is None:
        return [s for s in sources if s.enabled]
    if isinstance(names, str):
        names = [names]  # one name, not its letters
    known = {s.name for s in sources}
    unknown = sorted(set(names) - known)
    if unknown:
        raise NotFound(f"no source named {', '.join(unknown)} "
                       f"(configured: {', '.join(sorted(known)) or 'none'})")
    return [s for s in sources if s.name in names]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


async def poll_source(config: SourceConfig, store: Store, http: Http) -> PollReport:
    """Poll one source and store its new papers; a failure is recorded, never raised.

    The poll gets `config.timeout` seconds, retries included; one cut off saves nothing,
    so its validators and cursor stay as they were. Store errors do propagate: a broken
    database is not one source's problem.
    """
    started = time.monotonic()
    result: PollResult | None = None
    error: str | None = None
    reason: str | None = None
    state = store.source_state(config.name)
    try:
        source = make_source(config, http)
        result = await http.within(config.timeout, source.poll(state), source=config.name)
    except SourceError as e:
        error, reason = str(e), e.reason
    except NotImplementedError as e:
        error, reason = f"{config.name}: {e}", "unsupported"
    except Exception as e:  # a parser bug must not stop the other sources
        error, reason = f"{config.name}: {type(e).__name__}: {e}", "internal"
        log.debug("source=%s traceback", config.name, exc_info=True)
    # the waits for a turn at a host shared with other sources are not this source's time
    waited = http.waited.pop(config.name, 0.0)
    took = time.monotonic() - started - waited
    if result is None:
        assert error is not None
        store.record_poll(config.name, ok=False, error=error)
        log.warning("source=%s reason=%s error=%s took_ms=%d waited_ms=%d", config.name,
                    reason, _quoted(error), took * 1000, waited * 1000)
        return PollReport(config.name, duration_s=took, waited_s=waited, error=error,
                          reason=reason)
    new = store.add_papers(result.papers) if result.papers else []
    # Validators and cursor are saved only now, after the papers: a crash in between
    # repeats the poll rather than skipping papers.
    store.record_poll(config.name, ok=True, new=len(new), etag=result.etag,
                      last_modified=result.last_modified, cursor=result.cursor)
    took = time.monotonic() - started - waited
    if result.not_modified:
        log.info("source=%s not_modified=true took_ms=%d waited_ms=%d", config.name,
                 took * 1000, waited * 1000)
    else:
        log.info("source=%s fetched=%d new=%d skipped=%d took_ms=%d waited_ms=%d",
                 config.name, result.fetched, len(new), result.skipped, took * 1000,
                 waited * 1000)
    return PollReport(config.name, fetched=result.fetched, new=len(new),
                      skipped=result.skipped, not_modified=result.not_modified,
                      duration_s=took, waited_s=waited)


async def poll_sources(sources: Sequence[SourceConfig], store: Store, *, http: Http | None = None,
                       names: Collection[str] | None = None) -> list[PollReport]:
    """Poll the enabled (or the named) sources concurrently; one report each, in order.

    One Http (one connection pool, one politeness schedule per host) serves them all;
    it is created and closed here unless the caller passes its own.
    """
    selected = select_sources(sources, names)
    own = http is None
    http = http or Http()
    try:
        return list(await asyncio.gather(*(poll_source(s, store, http) for s in selected)))
    finally:
        if own:
            await http.aclose()
