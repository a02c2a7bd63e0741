"""What every source shares: the Source interface, its poll result, polite HTTP fetching, and edge cleaning."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

import httpx

from .. import PROJECT_URL, __version__
from ..config import SourceConfig
from ..errors import SourceError
from ..models import Paper
from ..store import SourceState

log = logging.getLogger("digestd.sources")

USER_AGENT = f"digestd/{__version__} (+{PROJECT_URL})"
MAX_BYTES = 20 * 1024 * 1024
# Seconds between two requests to one host. arXiv asks for at most one request every
# 3 seconds on its API (https://info.arxiv.org/help/api/tou.html); others get a gentle 1 s.
HOST_DELAYS: Mapping[str, float] = {"export.arxiv.org": 3.0, "rss.arxiv.org": 3.0,
                                    "arxiv.org": 3.0}
DEFAULT_HOST_DELAY = 1.0


@dataclass(frozen=True)
class PollResult:
    """What one poll of one source found. The validators/cursor are saved only after the
    papers are stored, so a crash in between repeats the poll instead of losing papers."""

    papers: list[Paper] = field(default_factory=list)
    skipped: int = 0  # entries dropped on purpose (replacements, older versions, unusable)
    not_modified: bool = False  # the server answered 304
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None

    @property
    def fetched(self) -> int:
        """Entries the source returned, kept or not."""
        return len(self.papers) + self.skipped


@dataclass(frozen=True)
class Fetched:
    """A successful answer: the body (empty for 304) and the validators to send next time."""

    url: str
    status: int
    content: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = ""

    @property
    def not_modified(self) -> bool:
        return self.status == 304


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _is_local(url: str) -> bool:
    return url.startswith("file:") or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url)


class Http:
    """Fetches for every source through one shared httpx.AsyncClient.

    Conditional GET, retries with exponential backoff and jitter (network errors,
    timeouts, 429, 5xx), Retry-After honoured up to `retry_after_max` seconds, a
    minimum interval between two requests to one host, and a cap on the body size.
    `sleep`, `clock` and `rand` are injectable and `delay_scale` shrinks every politeness
    delay, so tests neither wait nor guess.
    """

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 2.0, backoff_max: float = 120.0,
                 retry_after_max: float = 300.0, max_bytes: int = MAX_BYTES,
                 host_delays: Mapping[str, float] | None = None,
                 default_host_delay: float = DEFAULT_HOST_DELAY, delay_scale: float = 1.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True, max_redirects=5, verify=verify)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.max_bytes = max_bytes
        self.host_delays = dict(HOST_DELAYS if host_delays is None else host_delays)
        self.default_host_delay = default_host_delay
        self.delay_scale = delay_scale  # 0 turns politeness off (tests), never for real hosts
        self.sleep = sleep
        self.clock = clock
        self.rand = rand
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}  # host -> when its last request started
        self._not_before: dict[str, float] = {}  # host -> Retry-After deadline

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> Http:  # noqa: PYI034 (Http is not meant to be subclassed)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- politeness ----------------------------------------------------------------------------

    async def _wait_turn(self, host: str, min_interval: float) -> None:
        """Sleep until `host` may get another request, then claim the slot.

        The lock makes concurrent sources on one host queue up instead of all
        seeing the same free slot.
        """
        interval = self.delay_scale * max(self.host_delays.get(host, self.default_host_delay),
                                          min_interval)
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            ready = max(self._last.get(host, float("-inf")) + interval,
                        self._not_before.get(host, float("-inf")))
            wait = ready - self.clock()
            if wait > 0:
                await self.sleep(wait)
            self._last[host] = self.clock()

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": half fixed, half random, so retries of many sources spread out
        # but none retries almost immediately.
        base = min(self.backoff_max, self.backoff * 2 ** attempt)
        return base / 2 + self.rand() * base / 2

    # -- fetching ------------------------------------------------------------------------------

    async def get(self, url: str, *, source: str, params: Mapping[str, str | int] | None = None,
                  etag: str | None = None, last_modified: str | None = None,
                  min_interval: float = 0.0) -> Fetched:
        """GET `url` politely; a local path or file:// URL is read from disk.

        Returns a 304 as `Fetched(not_modified=True)` carrying the validators sent.
        Raises SourceError naming `source` with a short reason on every failure.
        """
        if _is_local(url):
            return await self._read_file(url, source=source, last_modified=last_modified)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = urlsplit(url).hostname or url
        attempt = 0
        while True:
            await self._wait_turn(host, min_interval)
            retry_after: float | None = None
            try:
                async with self.client.stream("GET", url, params=params,
                                              headers=headers) as resp:
                    status = resp.status_code
                    if status == 304:
                        return Fetched(str(resp.url), 304, b"",
                                       resp.headers.get("ETag") or etag,
                                       resp.headers.get("Last-Modified") or last_modified)
                    if status < 400:
                        body = await self._read_capped(resp, source)
                        return Fetched(str(resp.url), status, body, resp.headers.get("ETag"),
                                       resp.headers.get("Last-Modified"),
                                       resp.headers.get("Content-Type", ""))
                    failure = SourceError(f"{source}: {host} answered HTTP {status} "
                                          f"for {url}", reason=f"http-{status}")
                    if status != 429 and status < 500:
                        raise failure  # a 404 or 403 will not get better by asking again
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except httpx.TimeoutException:
                failure = SourceError(f"{source}: no answer from {host} within "
                                      f"{self.timeout:g}s", reason="timeout")
            except httpx.TooManyRedirects:
                raise SourceError(f"{source}: too many redirects from {url}",
                                  reason="redirects") from None
            except httpx.DecodingError as e:
                raise SourceError(f"{source}: cannot decode the body from {host}: {e}",
                                  reason="bad-encoding") from None
            except httpx.UnsupportedProtocol:
                raise SourceError(f"{source}: unsupported URL scheme in {url}",
                                  reason="bad-url") from None
            except httpx.TransportError as e:
                detail = str(e) or type(e).__name__
                failure = SourceError(f"{source}: cannot fetch from {host}: {detail}",
                                      reason="network")
            except httpx.InvalidURL as e:
                raise SourceError(f"{source}: invalid URL {url!r}: {e}", reason="bad-url") from None
            if attempt >= self.retries:
                raise failure
            delay = self._backoff(attempt)
            if retry_after is not None:
                if retry_after > self.retry_after_max:
                    # Waiting that long inside one poll would hold up the job; the next
                    # scheduled poll is the retry.
                    raise SourceError(f"{failure} (asks to retry after {retry_after:.0f}s)",
                                      reason=failure.reason)
                delay = max(delay, retry_after)
                # Every source on this host waits, not only the one that was told.
                self._not_before[host] = self.clock() + delay
            attempt += 1
            log.info("source=%s retry=%d reason=%s wait_s=%.2f", source, attempt,
                     failure.reason, delay)
            await self.sleep(delay)

    async def _read_capped(self, resp: httpx.Response, source: str) -> bytes:
        """The body, aborting as soon as it passes max_bytes (decompressed bytes count)."""
        too_large = SourceError(f"{source}: the answer from {resp.url.host} is larger than "
                                f"{self.max_bytes // 1024} KiB", reason="too-large")
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large
        chunks, size = [], 0
        async for chunk in resp.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_file(self, url: str, *, source: str, last_modified: str | None) -> Fetched:
        """A local feed file; its mtime plays Last-Modified so unchanged files cost a stat."""
        path = Path(unquote(urlsplit(url).path)) if url.startswith("file:") else Path(url)
        path = Path(os.path.expanduser(path))
        try:
            stat = path.stat()
            mtime = email.utils.formatdate(stat.st_mtime, usegmt=True)
            if last_modified and last_modified == mtime:
                return Fetched(url, 304, b"", None, mtime)
            if stat.st_size > self.max_bytes:
                raise SourceError(f"{source}: {path} is larger than {self.max_bytes // 1024} "
                                  "KiB", reason="too-large")
            content = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise SourceError(f"{source}: no such file {path}", reason="not-found") from None
        except OSError as e:
            raise SourceError(f"{source}: cannot read {path}: {e.strerror}",
                              reason="file-error") from None
        return Fetched(url, 200, content, None, mtime)


class Source:
    """One configured source. Subclasses set `kind` and implement `poll`."""

    kind: ClassVar[str] = ""
    default_every: ClassVar[float] = 3600.0  # seconds between polls when `every` is not set
    default_url: ClassVar[str] = ""

    def __init__(self, config: SourceConfig, http: Http) -> None:
        self.config = config
        self.http = http
        # Date-window sources ask for "today"; tests replace this to pin the day.
        self.today: Callable[[], date] = lambda: datetime.now(timezone.utc).date()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def every(self) -> float:
        return self.config.every or self.default_every

    @property
    def endpoint(self) -> str:
        """The configured `url` (a mirror or a test server) or the kind's default endpoint."""
        return (self.config.url or self.default_url).rstrip("/")

    def error(self, message: str, reason: str) -> SourceError:
        """A SourceError whose message starts with this source's name."""
        return SourceError(f"{self.name}: {message}", reason=reason)

    async def fetch(self, url: str, state: SourceState | None, *,
                    params: Mapping[str, str | int] | None = None,
                    min_interval: float = 0.0) -> Fetched:
        """GET with this source's stored validators (none when `state` is None)."""
        return await self.http.get(url, source=self.name, params=params,
                                   etag=state.etag if state else None,
                                   last_modified=state.last_modified if state else None,
                                   min_interval=min_interval)

    async def poll(self, state: SourceState) -> PollResult:
        """Fetch and parse; raise SourceError (with a short `reason`) on any failure."""
        raise NotImplementedError
