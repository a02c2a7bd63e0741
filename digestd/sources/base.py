"""What every source shares: the Source interface, its poll result, polite HTTP fetching, and edge cleaning."""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import ipaddress
import logging
import os
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

import httpx

from .. import PROJECT_URL, __version__
from ..config import SourceConfig
from ..errors import SourceError
from ..models import Paper
from ..store import SourceState

log = logging.getLogger("digestd.sources")

USER_AGENT = f"digestd/{__version__} (+{PROJECT_URL})"
MAX_BYTES = 20 * 1024 * 1024  # of the body as digestd sees it, i.e. after decompression
MAX_REDIRECTS = 5
# Only what _Inflater undoes a block at a time (httpx would also take br and zstd when their
# packages are installed, but it decompresses a whole network read in one call).
ACCEPT_ENCODING = "gzip, deflate"
_INFLATE_BLOCK = 64 * 1024  # bytes of decompressed output per step
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
    # entries that repeat a paper this poll already has (listed on two days, or again on
    # the next page): seen, as a paper the store has is, not skipped
    repeated: int = 0
    not_modified: bool = False  # the server answered 304
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None

    @property
    def fetched(self) -> int:
        """Entries the source returned, kept or not."""
        return len(self.papers) + self.skipped + self.repeated


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


# NAT64 gateways (RFC 6052) reach the IPv4 address in the last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_internal_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an IP address is inside a network rather than on the public internet:
    loopback, private, link-local, CGNAT, reserved, multicast, unspecified, and the same
    behind an IPv6 wrapping (IPv4-mapped, 6to4, Teredo, NAT64).

    Raises ValueError for a string that is not an IP address.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # these two are only ever the IPv4 address they carry
        if ip.ipv4_mapped:
            return is_internal_address(ip.ipv4_mapped)
        if ip in _NAT64:
            return is_internal_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        # a 6to4 or Teredo address is where the IPv4 address it carries is: that decides
        # (Python's own flags for 2002::/16 and 2001::/32 differ between 3.11 releases)
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if tunnelled is not None:
            return is_internal_address(tunnelled)
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            or ip.is_multicast or ip.is_unspecified or not ip.is_global
            or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local))


def _inside_or_odd(address: str) -> bool:
    try:
        return is_internal_address(address)
    except ValueError:
        return True  # not an address digestd understands: not one to connect to either


async def resolve_host(host: str) -> list[str]:
    """The IP addresses `host` resolves to, as the system resolver gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


class _Deadline:
    """The time left for one poll of one source.

    Waiting for this process's own turn at a host (the politeness interval, or another
    source's Retry-After) is paused out: twenty arXiv sources polled at the same minute
    queue for minutes, and that is not the server being slow.
    """

    def __init__(self, seconds: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.seconds = seconds
        self.ends = self.loop.time() + seconds
        self.paused_at = 0.0
        self.pauses = 0  # nesting depth; the clock runs again when it is back at 0
        self.waited = 0.0  # seconds paused out in all: the poll's waits for its turn
        self.host = ""  # where the poll was waiting when time ran out, for the message

    def remaining(self) -> float:
        return self.ends - (self.paused_at if self.pauses else self.loop.time())

    def pause(self) -> None:
        if not self.pauses:
            self.paused_at = self.loop.time()
        self.pauses += 1

    def resume(self) -> None:
        self.pauses -= 1
        if not self.pauses:
            paused = self.loop.time() - self.paused_at
            self.ends += paused
            self.waited += paused


# The deadline of the poll running in this task (Http.within sets it; every Http.get in it
# reads it).
_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar(
    "digestd_poll_deadline", default=None)

T = TypeVar("T")


class _Deflate:
    """Content-Encoding: deflate is zlib-wrapped by the RFC but raw in some servers; like
    httpx, try the former and fall back to the latter on the first block."""

    def __init__(self) -> None:
        self.inner = zlib.decompressobj()
        self.first = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        try:
            return self.inner.decompress(data, max_length)
        except zlib.error:
            if not self.first:
                raise
            self.inner = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.inner.decompress(data, max_length)
        finally:
            self.first = False

    @property
    def unconsumed_tail(self) -> bytes:
        return self.inner.unconsumed_tail

    def flush(self) -> bytes:
        return self.inner.flush()


class _Inflater:
    """Undoes a Content-Encoding (gzip, deflate, or several in a row) at most
    _INFLATE_BLOCK bytes of output at a time, so the caller can stop at its size cap: a
    64 KiB network read of a gzip bomb would otherwise become 64 MB in one call.

    Raises ValueError for an encoding it does not know, zlib.error for a corrupt body.
    """

    def __init__(self, content_encoding: str) -> None:
        self.layers: list = []
        # Listed in the order they were applied; undone from the last.
        for name in reversed(content_encoding.lower().split(",")):
            name = name.strip()
            if name in ("", "identity"):
                continue
            if name in ("gzip", "x-gzip"):
                self.layers.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif name == "deflate":
                self.layers.append(_Deflate())
            else:
                raise ValueError(f"unsupported Content-Encoding {name!r}")

    def feed(self, data: bytes, depth: int = 0) -> Iterator[bytes]:
        if depth == len(self.layers):
            if data:
                yield data
            return
        layer = self.layers[depth]
        while True:
            block = layer.decompress(data, _INFLATE_BLOCK)
            if block:
                yield from self.feed(block, depth + 1)
            data = layer.unconsumed_tail
            # a full block may leave output pending inside zlib: ask again until it is short
            if not data and len(block) < _INFLATE_BLOCK:
                return

    def finish(self) -> Iterator[bytes]:
        for depth, layer in enumerate(self.layers):
            yield from self.feed(layer.flush(), depth + 1)


class Http:
    """Fetches for every source through one shared httpx.AsyncClient.

    Conditional GET, retries with exponential backoff and jitter (network errors,
    timeouts, 429, 5xx), Retry-After honoured up to `retry_after_max` seconds, a
    minimum interval between two requests to one host, and a cap on the body size
    (after decompression). `within` gives a whole poll a deadline. Redirects are
    followed here, hop by hop, so that a public feed cannot send digestd to an
    address inside the network. `sleep`, `clock`, `rand` and `resolve` are injectable
    and `delay_scale` shrinks every politeness delay, so tests neither wait nor guess.
    """

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 2.0, backoff_max: float = 120.0,
                 retry_after_max: float = 300.0, max_bytes: int = MAX_BYTES,
                 host_delays: Mapping[str, float] | None = None,
                 default_host_delay: float = DEFAULT_HOST_DELAY, delay_scale: float = 1.0,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 resolve: Callable[[str], Awaitable[list[str]]] = resolve_host,
                 verify: ssl.SSLContext | bool = True) -> None:
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False, verify=verify)
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
        self.resolve = resolve
        self._locks: dict[str, asyncio.Lock] = {}
        self._last: dict[str, float] = {}  # host -> when its last request started
        # source -> seconds its last poll (within) waited for its turns at a host: not
        # the source's own time, which `digestd poll` and the logs say apart from it
        self.waited: dict[str, float] = {}
        self._not_before: dict[str, float] = {}  # host -> Retry-After deadline

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> Http:  # noqa: PYI034 (Http is not meant to be subclassed)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the deadline of a poll ----------------------------------------------------------------

    async def within(self, seconds: float, work: Awaitable[T], *, source: str) -> T:
        """Await `work`, one whole poll of `source`, for at most `seconds`.

        The deadline covers every request of the poll, its retries and backoff sleeps:
        the per-read timeout alone lets a server that drips a byte every few seconds
        hold a poll forever. Waiting for this process's own turn at a host does not
        count. When time runs out the poll is cancelled (so it saves nothing: validators
        and cursor stay as they were) and SourceError(reason="timeout") is raised.
        """
        deadline = _Deadline(seconds)
        token = _DEADLINE.set(deadline)
        try:
            task = asyncio.ensure_future(work)  # the task runs in a copy of this context
        finally:
            _DEADLINE.reset(token)
        try:
            while not task.done():
                left = deadline.remaining()
                if left <= 0:
                    task.cancel()
                    await asyncio.wait({task})  # let it close its response
                    if task.cancelled():
                        where = f" (waiting on {deadline.host})" if deadline.host else ""
                        raise SourceError(f"{source}: poll not finished within the source's "
                                          f"timeout of {seconds:g}s{where}", reason="timeout")
                    break
                await asyncio.wait({task}, timeout=left)
        except asyncio.CancelledError:
            # the caller was cancelled (the daemon stops): so is the poll, and it is over
            # before the caller goes on to close the client it uses
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            self.waited[source] = deadline.waited
        return task.result()

    # -- politeness ----------------------------------------------------------------------------

    async def _wait_turn(self, host: str, min_interval: float) -> None:
        """Sleep until `host` may get another request, then claim the slot.

        The lock makes concurrent sources on one host queue up instead of all
        seeing the same free slot. The poll's deadline is paused meanwhile.
        """
        interval = self.delay_scale * max(self.host_delays.get(host, self.default_host_delay),
                                          min_interval)
        lock = self._locks.setdefault(host, asyncio.Lock())
        deadline = _DEADLINE.get()
        if deadline:
            deadline.pause()
        try:
            async with lock:
                ready = max(self._last.get(host, float("-inf")) + interval,
                            self._not_before.get(host, float("-inf")))
                wait = ready - self.clock()
                if wait > 0:
                    await self.sleep(wait)
                self._last[host] = self.clock()
        finally:
            if deadline:
                deadline.resume()

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
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        host = urlsplit(url).hostname or url
        deadline = _DEADLINE.get()
        attempt = 0
        while True:
            await self._wait_turn(host, min_interval)
            retry_after: float | None = None
            try:
                resp = await self._open(url, params=params, headers=headers, source=source)
                try:
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
                    failure = SourceError(f"{source}: {resp.url.host} answered HTTP {status} "
                                          f"for {url}", reason=f"http-{status}")
                    if status != 429 and status < 500:
                        raise failure  # a 404 or 403 will not get better by asking again
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                finally:
                    await resp.aclose()
            except httpx.TimeoutException:
                failure = SourceError(f"{source}: no answer from {host} within "
                                      f"{self.timeout:g}s", reason="timeout")
            except httpx.DecodingError as e:
                raise SourceError(f"{source}: cannot decode the body from {host}: {e}",
                                  reason="bad-encoding") from None
            except httpx.UnsupportedProtocol:
                raise SourceError(f"{source}: unsupported URL scheme in {url}",
                                  reason="bad-url") from None
            except httpx.TransportError as e:
                failure = SourceError(f"{source}: cannot fetch {url}: {_network_detail(e)}",
                                      reason="network")
            except httpx.InvalidURL as e:
                raise SourceError(f"{source}: invalid URL {url!r}: {e}", reason="bad-url") from None
            if attempt >= self.retries:
                raise failure
            delay = self._backoff(attempt)
            left = deadline.remaining() if deadline else float("inf")
            if retry_after is not None:
                if retry_after > min(self.retry_after_max, left):
                    # Waiting that long inside one poll would hold up the job (or outlast
                    # the poll's deadline); the next scheduled poll is the retry.
                    raise SourceError(f"{failure} (asks to retry after {retry_after:.0f}s)",
                                      reason=failure.reason)
                delay = max(delay, retry_after)
                # Every source on this host waits, not only the one that was told.
                self._not_before[host] = self.clock() + delay
            if delay >= left:
                # the deadline would strike during the sleep: say what went wrong instead
                raise SourceError(f"{failure} (no time left to try again within the "
                                  f"source's timeout of {deadline.seconds:g}s)",
                                  reason=failure.reason)
            attempt += 1
            log.info("source=%s retry=%d reason=%s wait_s=%.2f", source, attempt,
                     failure.reason, delay)
            await self.sleep(delay)

    async def _open(self, url: str, *, params: Mapping[str, str | int] | None,
                    headers: Mapping[str, str], source: str) -> httpx.Response:
        """Send the GET and follow redirects, checking each hop before it is requested.

        Returns the final response, streaming: the caller closes it.
        """
        request = self.client.build_request("GET", url, params=params, headers=headers)
        deadline = _DEADLINE.get()
        own_url = request.url
        inside: bool | None = None  # is the source's own URL inside the network? (asked once)
        for hop in range(MAX_REDIRECTS + 1):
            if deadline:
                deadline.host = request.url.host
            resp = await self.client.send(request, stream=True, follow_redirects=False)
            if resp.next_request is None:
                return resp
            await resp.aclose()
            target = resp.next_request.url
            if hop == MAX_REDIRECTS:
                raise SourceError(f"{source}: more than {MAX_REDIRECTS} redirects from {url}",
                                  reason="redirects")
            if target.scheme not in ("http", "https"):
                raise SourceError(f"{source}: {request.url.host} redirects to a "
                                  f"{target.scheme}: URL, refused (only http and https)",
                                  reason="redirect-blocked")
            if target.host != own_url.host:  # (back) to the source's own host needs no check
                if inside is None:
                    inside = await self._inside(own_url, source, own=True)
                if not inside and await self._inside(target, source):
                    raise SourceError(f"{source}: {request.url.host} redirects to "
                                      f"{target.host}, an address inside the network, refused "
                                      "(a source on the internet may only redirect to the "
                                      "internet)", reason="redirect-blocked")
            request = resp.next_request
        raise AssertionError("unreachable")  # pragma: no cover

    async def _inside(self, url: httpx.URL, source: str, *, own: bool = False) -> bool:
        """Whether the host of `url` is, or resolves to any address, inside the network.

        A source's `own` host that does not resolve here (it was reached through a proxy)
        counts as on the internet, the stricter choice.
        """
        host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS wants it
        try:
            return is_internal_address(host)
        except ValueError:
            pass  # a name, not an IP address
        try:
            addresses = await self.resolve(host)
        except OSError as e:
            if own:
                return False
            raise SourceError(f"{source}: cannot resolve {host} (a redirect points there): "
                              f"{e.strerror or e}", reason="network") from None
        return any(_inside_or_odd(a) for a in addresses)

    async def _read_capped(self, resp: httpx.Response, source: str) -> bytes:
        """The body, aborting as soon as it passes max_bytes after decompression.

        The raw bytes are decompressed here, a block at a time, rather than by httpx,
        which inflates a whole network read in one call: memory stays near the cap
        even for a gzip bomb.
        """
        host = resp.url.host
        too_large = SourceError(f"{source}: the answer from {host} is larger than "
                                f"{self.max_bytes // 1024} KiB", reason="too-large")
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise too_large
        try:
            inflater = _Inflater(resp.headers.get("Content-Encoding", ""))
        except ValueError as e:
            raise SourceError(f"{source}: cannot decode the body from {host}: {e}",
                              reason="bad-encoding") from None
        chunks: list[bytes] = []
        size = 0

        def keep(blocks: Iterator[bytes]) -> None:
            nonlocal size
            for block in blocks:
                size += len(block)
                if size > self.max_bytes:
                    raise too_large
                chunks.append(block)
        try:
            async for raw in resp.aiter_raw():
                keep(inflater.feed(raw))
            keep(inflater.finish())
        except zlib.error as e:
            raise SourceError(f"{source}: cannot decode the body from {host}: {e}",
                              reason="bad-encoding") from None
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


async def parse_off_loop(parse: Callable[..., T], content: bytes, **kw: object) -> T:
    """`parse(content, **kw)` in a worker thread: a big or hostile answer takes the CPU
    for a while, but never the event loop (the web app, the watchdog, the poll deadline)."""
    return await asyncio.to_thread(parse, content, **kw)


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


def xml_error(exc: BaseException | None) -> str:
    """A parser's complaint as an operator reads it: SAX (feedparser's parser) puts
    "<unknown>:" where a file name would be ("<unknown>:2:0: not well-formed (invalid
    token)"); written here as ElementTree writes its own ("not well-formed (invalid token):
    line 2, column 0")."""
    text = str(exc) if exc is not None else ""
    m = re.fullmatch(r"<unknown>:(\d+):(\d+):\s*(.*)", text, re.DOTALL)
    return f"{m[3]}: line {m[1]}, column {m[2]}" if m else text


def _network_detail(e: BaseException) -> str:
    """What a transport error says to an operator: "connection refused (nothing listens
    on that port)" and the like, read from the OSError under httpx's words ("All connection
    attempts failed"), else httpx's own words."""
    seen, cause = set(), e
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens on that port?)"
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, OSError) and cause.strerror:
            return f"cannot connect: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    return str(e) or type(e).__name__

