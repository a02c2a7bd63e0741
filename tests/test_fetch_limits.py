"""Fetching limits: a deadline for each whole poll, redirects checked hop by hop, and the
size cap applied after decompression, against the real local HTTP server."""

from __future__ import annotations

import asyncio
import gzip
import textwrap
import time
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest

from digestd.cli import main
from digestd.config import SourceConfig
from digestd.daemon import Daemon
from digestd.errors import ConfigError, SourceError
from digestd.jobs_poll import poll_sources
from digestd.sources import Http, make_source
from digestd.sources.base import _INFLATE_BLOCK, ACCEPT_ENCODING, _Inflater, is_internal_address
from digestd.store import SourceState, Store

from .http_fixtures import FixtureServer, Reply, fixture_bytes, server_fixture  # noqa: F401
from .test_sources import fast_http as sources_fast_http

RSS = "arxiv-rss-cs.CL-2026-04-27-trimmed.xml"
RSS_TYPE = "application/rss+xml"
PUBLIC = "93.184.216.34"  # any address on the internet: the fake resolver's answer

def fast_http(**overrides) -> Http:
    """test_sources' quick Http, without retries unless a test asks for them."""
    return sources_fast_http(**{"timeout": 5.0, "retries": 0, **overrides})


def rss_cfg(url: str, name: str = "arxiv-cl", **kw) -> SourceConfig:
    kw.setdefault("categories", ("cs.CL",))
    return SourceConfig(name=name, kind="arxiv-rss", url=url, **kw)


async def poll(config: SourceConfig, http: Http, state: SourceState | None = None):
    source = make_source(config, http)
    return await http.within(config.timeout, source.poll(state or SourceState(config.name)),
                             source=config.name)


def drip(server: FixtureServer, every: float = 1.0):
    """A body that never ends: one byte every `every` seconds, each soon enough for any
    per-read timeout."""
    def body():
        yield b"<"
        while not server.stopping.wait(every):
            yield b"x"
    return body()


def fake_resolver(table: dict[str, list[str]]):
    async def resolve(host: str) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]
    return resolve


class Rehost(httpx.AsyncBaseTransport):
    """Connects made-up public names to the local server, as DNS would to a real host."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host in self.names:
            request = httpx.Request(request.method, request.url.copy_with(host="127.0.0.1"),
                                    headers=request.headers, stream=request.stream,
                                    extensions=request.extensions)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


# -- the deadline of a whole poll ----------------------------------------------------------------

async def test_a_server_that_drips_is_cut_off_and_nothing_is_lost(server, store):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    source = rss_cfg(server.url("/rss"), timeout=2.0)
    async with fast_http() as http:
        (first,) = await poll_sources([source], store, http=http)
        before = store.source_state("arxiv-cl")
        assert first.new == 3 and before.etag
        server.route("/rss/cs.CL", lambda req: Reply(200, drip(server), {"Content-Type": RSS_TYPE}))
        began = time.monotonic()
        (report,) = await poll_sources([source], store, http=http)
        took = time.monotonic() - began
    # the per-read timeout (5 s) never fires: only the deadline stops it
    assert report.reason == "timeout" and 1.9 < took < 4
    assert report.error.startswith("arxiv-cl: poll not finished within the source's timeout "
                                   "of 2s (waiting on 127.0.0.1)")
    after = store.source_state("arxiv-cl")
    assert (after.etag, after.last_modified, after.cursor, after.last_success) == (
        before.etag, before.last_modified, before.cursor, before.last_success)
    assert after.consecutive_errors == 1 and "timeout of 2s" in after.last_error
    assert store.count_papers() == 3


async def test_the_deadline_covers_retries(server):
    # each try waits out the per-read timeout (0.5 s); 10 retries would take 5.5 s
    server.replies("/rss/cs.CL", Reply(200, fixture_bytes(RSS), delay=30))
    async with fast_http(timeout=0.5, retries=10) as http:
        began = time.monotonic()
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server.url("/rss"), timeout=1.2), http)
    assert err.value.reason == "timeout" and "timeout of 1.2s" in str(err.value)
    assert time.monotonic() - began < 2.5
    assert 2 <= len(server.requests) <= 3


async def test_a_retry_that_cannot_fit_in_the_deadline_reports_the_real_error(server):
    server.replies("/rss/cs.CL", Reply(503, b"busy"))
    async with fast_http(retries=3, backoff=20.0, backoff_max=60.0) as http:
        began = time.monotonic()
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server.url("/rss"), timeout=5.0), http)
    assert err.value.reason == "http-503" and "no time left to try again" in str(err.value)
    assert time.monotonic() - began < 2 and len(server.requests) == 1


async def test_retry_after_beyond_the_deadline_gives_up_at_once(server):
    server.replies("/rss/cs.CL", Reply(429, b"", {"Retry-After": "30"}))
    async with fast_http(retries=3) as http:  # retry_after_max is 300 s
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server.url("/rss"), timeout=5.0), http)
    assert err.value.reason == "http-429" and "retry after 30s" in str(err.value)
    assert len(server.requests) == 1


async def test_waiting_for_a_turn_at_the_host_does_not_count(server, store):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    server.file("/rss/cs.AI", RSS, RSS_TYPE)
    sources = [rss_cfg(server.url("/rss"), timeout=1.0),
               rss_cfg(server.url("/rss"), name="arxiv-ai", categories=("cs.AI",), timeout=1.0)]
    # the second source waits 1.5 s for its turn, longer than its whole deadline
    async with fast_http(host_delays={"127.0.0.1": 1.5}, delay_scale=1.0) as http:
        reports = await poll_sources(sources, store, http=http)
    assert [(r.error, r.new) for r in reports] == [(None, 3), (None, 0)]
    # the wait is said apart from the source's own time (`digestd poll`: waited, took)
    assert max(r.waited_s for r in reports) > 1.4
    assert all(r.duration_s < 1.0 for r in reports)


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_digestd_poll_reports_the_cut_off_source_in_its_summary(server, tmp_path, capsys):
    server.route("/slow/rss/cs.CL", lambda req: Reply(200, drip(server, 0.25)))
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    cfg = _write(tmp_path / "digestd.toml", f"""
        [store]
        path = "{tmp_path / 'd.sqlite3'}"
        [[sources]]
        name = "slow"
        kind = "arxiv-rss"
        categories = ["cs.CL"]
        url = "{server.url('/slow/rss')}"
        timeout = "1s"
        [[sources]]
        name = "quick"
        kind = "arxiv-rss"
        categories = ["cs.CL"]
        url = "{server.url('/rss')}"
    """)
    began = time.monotonic()
    assert main(["-c", str(cfg), "poll"]) == 1
    assert time.monotonic() - began < 4
    out = capsys.readouterr().out
    (slow,) = [line for line in out.splitlines() if line.startswith("slow ")]
    # the row names the source once
    assert "error (timeout): poll not finished within the source's timeout of 1s" in slow
    assert "2 sources polled, 3 new papers, 1 failed" in out


async def test_the_daemon_polls_with_the_same_deadline(server, tmp_path, write_config):
    server.route("/rss/cs.CL", lambda req: Reply(200, drip(server, 0.25)))
    config = write_config(f"""
        [store]
        path = "{tmp_path / 'd.sqlite3'}"
        [web]
        enabled = false
        [[sources]]
        name = "slow"
        kind = "arxiv-rss"
        categories = ["cs.CL"]
        url = "{server.url('/rss')}"
        timeout = 1
    """)
    daemon = Daemon(config)
    with Store(config.store.path) as store:
        daemon.store = store
        async with fast_http() as daemon.http:
            began = time.monotonic()
            await daemon._poll("slow")
        assert time.monotonic() - began < 3
        state = store.source_state("slow")
    assert state.consecutive_errors == 1 and "timeout of 1s" in state.last_error


def test_timeout_setting_defaults_parses_durations_and_is_documented(write_config):
    (default, minutes) = write_config("""
        [[sources]]
        name = "a"
        kind = "sample"
        [[sources]]
        name = "b"
        kind = "sample"
        timeout = "5m"
    """).sources
    assert (default.timeout, minutes.timeout) == (120.0, 300.0)
    docs = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text(
        encoding="utf-8")
    assert "| `timeout` | `120.0` |" in docs


@pytest.mark.parametrize("value, message", [
    ("0", "sources.timeout must be more than 0, got 0"),
    ('"0s"', 'sources.timeout must be more than 0, got "0s"'),
    ("-5", "sources.timeout must be more than 0, got -5"),
    ("inf", "sources.timeout must be a finite number, got inf"),
    ("nan", "sources.timeout must be a finite number, got nan"),
    ('"soon"', 'sources.timeout must be a duration: a number with s, m, h or d, e.g. "90s" or '
               '"30m"; got "soon"'),
    ("true", "sources.timeout must be a duration"),
])
def test_timeout_must_be_positive_and_finite(write_config, tmp_path, value, message):
    with pytest.raises(ConfigError) as err:
        write_config(f"""
            [[sources]]
            name = "a"
            kind = "sample"
            timeout = {value}
        """)
    assert str(err.value).startswith(f"{tmp_path / 'digestd.toml'}:5: {message}")


# -- redirects -----------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 around 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 to 10.0.0.1
])
def test_addresses_inside_the_network(address):
    assert is_internal_address(address)


@pytest.mark.parametrize("address", [
    "8.8.8.8", PUBLIC, "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::",
])
def test_addresses_on_the_internet(address):
    assert not is_internal_address(address)


def test_a_name_is_not_an_address():
    with pytest.raises(ValueError):
        is_internal_address("localhost")


async def test_a_public_feed_cannot_redirect_into_the_local_server(server):
    server.replies("/feed", Reply(302, b"", {"Location": server.url("/secret")}))
    server.replies("/secret", Reply(200, b"<rss/>"))
    client = httpx.AsyncClient(transport=Rehost({"feeds.example.org"}))
    resolve = fake_resolver({"feeds.example.org": [PUBLIC]})
    async with fast_http(client=client, resolve=resolve) as http:
        with pytest.raises(SourceError) as err:
            await http.get(f"http://feeds.example.org:{server.port}/feed", source="journal")
    await client.aclose()
    assert err.value.reason == "redirect-blocked"
    assert str(err.value).startswith("journal: feeds.example.org redirects to 127.0.0.1, an "
                                     "address inside the network, refused")
    assert [r.path for r in server.requests] == ["/feed"]  # /secret was never asked for


@pytest.mark.parametrize("target, addresses", [
    ("intranet.example", ["10.0.0.7"]),
    ("localhost", ["127.0.0.1", "::1"]),
    ("split.example", [PUBLIC, "192.168.0.2"]),  # one inside is one too many
    ("metadata.example", ["169.254.169.254"]),
    ("[::1]", None),
    ("[::ffff:127.0.0.1]", None),
    ("0.0.0.0", None),
])
async def test_public_to_inside_is_refused_for_every_spelling(target, addresses):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        return httpx.Response(301, headers={"Location": f"http://{target}/feed"})
    table = {"feeds.example.org": [PUBLIC]}
    if addresses:
        table[target] = addresses
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with fast_http(client=client, resolve=fake_resolver(table)) as http:
        with pytest.raises(SourceError) as err:
            await http.get("http://feeds.example.org/feed", source="j")
    await client.aclose()
    assert err.value.reason == "redirect-blocked"
    assert target.strip("[]") in str(err.value) and seen == ["feeds.example.org"]


async def test_an_international_name_is_resolved_as_dns_spells_it():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://xn--bcher-kva.example/feed"})
    table = {"feeds.example.org": [PUBLIC], "xn--bcher-kva.example": ["10.9.8.7"]}
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with fast_http(client=client, resolve=fake_resolver(table)) as http:
        with pytest.raises(SourceError) as err:
            await http.get("http://feeds.example.org/feed", source="j")
    await client.aclose()
    assert err.value.reason == "redirect-blocked" and "to bücher.example," in str(err.value)


async def test_public_to_public_redirects_are_followed(server):
    server.replies("/old", Reply(301, b"", {"Location": f"http://mirror.example.org:{server.port}"
                                                         "/rss/cs.CL"}))
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    client = httpx.AsyncClient(transport=Rehost({"feeds.example.org", "mirror.example.org"}))
    resolve = fake_resolver({"feeds.example.org": [PUBLIC], "mirror.example.org": ["8.8.8.8"]})
    async with fast_http(client=client, resolve=resolve) as http:
        got = await http.get(f"http://feeds.example.org:{server.port}/old", source="j")
    await client.aclose()
    assert got.status == 200 and got.content == fixture_bytes(RSS)
    assert got.url == f"http://mirror.example.org:{server.port}/rss/cs.CL"


async def test_a_source_inside_the_network_may_redirect_inside_it(server):
    server.replies("/a", Reply(302, b"", {"Location": "/b"}))
    server.replies("/b", Reply(307, b"", {"Location": f"http://localhost:{server.port}/rss"}))
    server.replies("/rss", Reply(308, b"", {"Location": server.url("/rss/cs.CL")}))
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    async with fast_http() as http:  # the real resolver: localhost is 127.0.0.1 (and ::1)
        got = await http.get(server.url("/a"), source="local")
    assert got.status == 200 and got.content == fixture_bytes(RSS)
    assert [r.path for r in server.requests] == ["/a", "/b", "/rss", "/rss/cs.CL"]


async def test_redirect_hops_are_limited(server):
    server.route("/loop/*", lambda req: Reply(302, b"", {
        "Location": f"/loop/{int(req.path.rsplit('/', 1)[1]) + 1}"}))
    async with fast_http(retries=2) as http:
        with pytest.raises(SourceError) as err:
            await http.get(server.url("/loop/0"), source="loop")
    assert err.value.reason == "redirects" and "more than 5 redirects" in str(err.value)
    assert len(server.requests) == 6  # the first request and 5 hops, not retried


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://feeds.example.org/feed",
                                      "gopher://127.0.0.1:70/"])
async def test_redirects_only_to_http_and_https(server, location):
    server.replies("/feed", Reply(302, b"", {"Location": location}))
    async with fast_http() as http:
        with pytest.raises(SourceError) as err:
            await http.get(server.url("/feed"), source="f")
    assert err.value.reason == "redirect-blocked" and "only http and https" in str(err.value)


async def test_an_unresolvable_redirect_target_is_a_network_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "http://nowhere.invalid/"})
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    resolve = fake_resolver({"feeds.example.org": [PUBLIC]})
    async with fast_http(client=client, resolve=resolve) as http:
        with pytest.raises(SourceError) as err:
            await http.get("http://feeds.example.org/feed", source="j")
    await client.aclose()
    assert err.value.reason == "network" and "cannot resolve nowhere.invalid" in str(err.value)


# -- the size cap after decompression ------------------------------------------------------------

@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of zeros in about 200 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    return b"".join([*(packer.compress(zeros) for _ in range(200)), packer.flush()])


async def test_a_gzip_bomb_stops_at_the_cap_with_memory_near_it(server, gzip_bomb):
    assert len(gzip_bomb) < 300_000
    server.replies("/rss/cs.CL", Reply(200, gzip_bomb, {"Content-Type": RSS_TYPE,
                                                       "Content-Encoding": "gzip"}))
    cap = 4 * 1024 * 1024
    async with fast_http(max_bytes=cap) as http:
        tracemalloc.start()
        try:
            with pytest.raises(SourceError) as err:
                await poll(rss_cfg(server.url("/rss")), http)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert err.value.reason == "too-large" and "4096 KiB" in str(err.value)
    # httpx's own decoder turns one 64 KiB read of this into 64 MB at once
    assert peak < 1.5 * cap, f"peak {peak / 2**20:.1f} MiB for a cap of 4 MiB"


def test_inflating_never_hands_out_more_than_a_block(gzip_bomb):
    inflater = _Inflater("gzip")
    blocks = [len(b) for b in inflater.feed(gzip_bomb[:65536])]
    assert max(blocks) <= _INFLATE_BLOCK and sum(blocks) > 50 * 2**20


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("encoding, pack", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
    ("deflate", _raw_deflate),  # raw, as some servers send it
    ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
    ("identity", lambda b: b),
])
async def test_compressed_answers_are_decoded(server, encoding, pack):
    body = fixture_bytes(RSS) * 40  # several blocks once inflated
    server.replies("/feed", Reply(200, pack(body), {"Content-Encoding": encoding}))
    async with fast_http() as http:
        got = await http.get(server.url("/feed"), source="z")
    assert got.content == body
    assert server.requests[0].headers["accept-encoding"] == ACCEPT_ENCODING == "gzip, deflate"


async def test_compressed_and_chunked_answers_are_decoded_and_capped(server):
    body = fixture_bytes(RSS) * 40
    packed = gzip.compress(body)
    pieces = [packed[i:i + 1000] for i in range(0, len(packed), 1000)]
    server.replies("/feed", Reply(200, iter(pieces), {"Content-Encoding": "gzip"}))
    async with fast_http() as http:
        assert (await http.get(server.url("/feed"), source="z")).content == body
    server.replies("/feed", Reply(200, iter(pieces), {"Content-Encoding": "gzip"}))
    async with fast_http(max_bytes=len(body) - 1) as http:
        with pytest.raises(SourceError) as err:
            await http.get(server.url("/feed"), source="z")
    assert err.value.reason == "too-large"


@pytest.mark.parametrize("encoding, body, detail", [
    ("br", b"\x1b\x00", "unsupported Content-Encoding 'br'"),
    ("zstd", b"(\xb5/\xfd", "unsupported Content-Encoding 'zstd'"),
    ("gzip", b"<rss>not gzip at all</rss>", "incorrect header check"),
    ("deflate", b"\xff\xfe garbage", "invalid"),
])
async def test_bodies_that_do_not_decode(server, encoding, body, detail):
    server.replies("/feed", Reply(200, body, {"Content-Encoding": encoding}))
    async with fast_http() as http:
        with pytest.raises(SourceError) as err:
            await http.get(server.url("/feed"), source="z")
    assert err.value.reason == "bad-encoding" and detail in str(err.value)
    assert str(err.value).startswith("z: cannot decode the body from 127.0.0.1")


async def test_a_cancelled_caller_cancels_the_poll(server):
    server.route("/rss/cs.CL", lambda req: Reply(200, drip(server)))
    before = asyncio.all_tasks()
    async with fast_http() as http:
        task = asyncio.ensure_future(poll(rss_cfg(server.url("/rss"), timeout=60.0), http))
        while not server.requests:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == before  # the poll inside is over too
