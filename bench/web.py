"""Measure the web app's hot paths on a store of N papers (default 30,000 in the last 30 days).

    python bench/web.py [N]
    python bench/web.py --feed [--subscribers 100000] [--seconds 10] [--connections 8]

Prints: loading the last 30 days of papers, one "test this rule" (3 rules) on them, and
requests per second through the real ASGI app for GET /, POST / (subscribe), GET /rules/test
(cache warm) and GET /metrics.

With --feed: what feed readers polling the private Atom feeds cost. A store with S
subscribers (100,000), each with a delivered digest, and 1,000 of them with 30 days of
digests of 10 papers; then conditional GETs of those 1,000 feeds (If-None-Match with the
ETag they were last given, as a reader polling every 5 minutes sends), answered 304:
requests per second through the ASGI app in this process, and over HTTP against a real
`digestd web` (uvicorn, its own process) with C keep-alive connections, plus the
milliseconds one full (200) feed takes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from digestd.config import DeliveryConfig, StoreConfig, WebConfig, load_config
from digestd.sources.sample import sample_papers
from digestd.store import Store
from digestd.web import _recent_papers, create_app, try_rules

RULES = ["diffusion", '"language models" reasoning', "title:(prun* OR sparsit*) -survey"]


def corpus(n: int) -> list:
    base = sample_papers()
    out = []
    for i in range(n):
        p = base[i % len(base)]
        out.append(dataclasses.replace(p, id=f"bench:{i}", title=f"{p.title} ({i})",
                                       aliases=()))
    return out


async def rate(client: httpx.AsyncClient, n: int, method: str, url: str, **kw) -> float:
    started = time.perf_counter()
    for i in range(n):
        r = await client.request(method, url, **(kw["data"](i) if callable(kw.get("data")) else kw))
        assert r.status_code < 500, r.status_code
    return n / (time.perf_counter() - started)


async def main(n: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-web-"))
    config = dataclasses.replace(
        load_config(None), store=StoreConfig(path=str(folder / "digestd.sqlite3")),
        delivery=DeliveryConfig(method="outbox", outbox_dir=str(folder / "outbox")),
        web=WebConfig(base_url="http://bench", subscribe_per_ip=10**9,
                      mails_per_address=10**9))
    with Store(config.store.path) as store:
        t = time.perf_counter()
        store.add_papers(corpus(n))
        print(f"papers stored       {n} in {time.perf_counter() - t:.1f}s")
        loads = []
        for _ in range(3):
            t = time.perf_counter()
            recent = _recent_papers(store.path, "0000")
            loads.append(time.perf_counter() - t)
        print(f"load 30 days        {statistics.median(loads) * 1000:.0f} ms (median of 3, "
              "in a worker thread, at most every 5 minutes)")
        tests = []
        for _ in range(5):
            t = time.perf_counter()
            result = try_rules(RULES, recent.papers, recent.texts)
            tests.append(time.perf_counter() - t)
        print(f"test 3 rules        {statistics.median(tests) * 1000:.0f} ms (median of 5, "
              f"in a worker thread; {result.together} matches)")

        async def nomail() -> None:
            return None

        app = create_app(config, store, mailer=nomail)
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get("/rules/test", params={"rule": RULES[0]})  # warm the cache
            print(f"GET /               {await rate(client, 300, 'GET', '/'):.0f} req/s")
            form = {"email": "", "rule": ["diffusion"], "send_at": "07:00", "timezone": "UTC",
                    "frequency": "daily", "weekday": "0", "action": "subscribe"}
            sub = await rate(client, 300, "POST", "/", data=lambda i: {
                "data": {**form, "email": f"user{i}@example.org"}})
            print(f"POST / (subscribe)  {sub:.0f} req/s (each queues a confirmation email)")
            test = await rate(client, 20, "GET", "/rules/test", params={"rule": RULES})
            print(f"GET /rules/test     {test:.1f} req/s (3 rules over {n} papers)")
            print(f"GET /metrics        {await rate(client, 300, 'GET', '/metrics'):.0f} req/s")


# -- the feed: conditional requests ---------------------------------------------------------------

POLLED = 1_000  # the feeds polled (each with 30 days of digests)


def feed_store(folder: Path, subscribers: int) -> tuple[Path, list[int]]:
    """A config and a store: `subscribers` subscribers with a delivered digest each, POLLED
    of them with 30 days of digests of 10 papers. Returns the config path and those ids."""
    port = free_port()
    cfg = folder / "digestd.toml"
    cfg.write_text(f"""
[store]
path = "digestd.sqlite3"

[delivery]
method = "outbox"

[web]
listen = "127.0.0.1:{port}"
base_url = "http://127.0.0.1:{port}"
""")
    config = load_config(cfg)
    rng = random.Random(5)
    started = time.perf_counter()
    with Store(config.store.path) as store:
        base = sample_papers()
        papers = [dataclasses.replace(base[i % len(base)], id=f"bench:{i}", aliases=(),
                                      title=f"{base[i % len(base)].title} ({i})")
                  for i in range(subscribers + POLLED * 300)]
        store.add_papers(papers, now="2026-01-01T00:00:00+00:00")
        pks = list(store.paper_pks(p.id for p in papers).values())
        polled = sorted(rng.sample(range(1, subscribers + 1), POLLED))
        with store.transaction():
            for i in range(subscribers):
                store.add_subscriber(f"reader{i}@example.org", ["diffusion"], feed_only=True)
        with store.transaction():
            for sid in range(1, subscribers + 1):
                store.queue_digest(sid, "2026-01-01", recipient="x@example.org", message_id="",
                                   message=b"", paper_pks=[pks[sid - 1]], whys=["title x"],
                                   deliver=False, now="2026-01-01T07:00:00+00:00")
        nxt = subscribers
        with store.transaction():
            for sid in polled:
                for day in range(30):
                    when = time.strftime("%Y-%m-%d", time.gmtime(time.time() - day * 86400))
                    store.queue_digest(sid, when, recipient="x@example.org", message_id="",
                                       message=b"", paper_pks=pks[nxt:nxt + 10],
                                       whys=['abstract "diffusion"'] * 10, deliver=False,
                                       now=f"{when}T07:00:00+00:00")
                    nxt += 10
    print(f"setup               {subscribers:,} subscribers, {POLLED:,} of them with 30 days "
          f"of digests, in {time.perf_counter() - started:.0f}s")
    return cfg, polled


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def conditional(client: httpx.AsyncClient, urls: list[str], etags: dict[str, str],
                      seconds: float, concurrency: int) -> tuple[int, int, float]:
    """(requests, of them 304, seconds) of conditional GETs over `urls` for `seconds`."""
    done = [0, 0]
    deadline = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            url = urls[i % len(urls)]
            i += concurrency
            r = await client.get(url, headers={"If-None-Match": etags[url]})
            done[0] += 1
            done[1] += r.status_code == 304

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done[0], done[1], time.perf_counter() - started


async def conditional_http(host: str, port: int, paths: list[str], etags: dict[str, str],
                           seconds: float, connections: int) -> tuple[int, int, float]:
    """The same over HTTP/1.1 keep-alive connections, with a client of a few lines (asyncio
    streams): httpx would spend more CPU per request than the server does, on the same two
    cores, and measure itself."""
    done = [0, 0]
    deadline = time.perf_counter() + seconds

    async def connection(k: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = k
        try:
            while time.perf_counter() < deadline:
                path = paths[i % len(paths)]
                i += connections
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench\r\n"
                             f"If-None-Match: {etags[path]}\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                done[0] += 1
                done[1] += status == 304
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(k) for k in range(connections)))
    return done[0], done[1], time.perf_counter() - started


async def feed_main(subscribers: int, seconds: float, connections: int) -> None:
    from digestd.config import web_secret
    from digestd.render import Links

    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-feed-"))
    cfg, polled = feed_store(folder, subscribers)
    config = load_config(cfg)
    links = Links(config.web.base_url, web_secret(config))
    urls = [links.feed(sid) for sid in polled]
    paths = [httpx.URL(u).raw_path.decode() for u in urls]

    # in this process, through the ASGI app
    with Store(config.store.path) as store:
        app = create_app(config, store)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=config.web.base_url) as client:
            etags, fulls = {}, []
            for path in paths:
                t = time.perf_counter()
                r = await client.get(path)
                fulls.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.content.count(b"<entry>") == 300, r.status_code
                etags[path] = r.headers["etag"]
            print(f"GET /f/ (full)      {statistics.median(fulls) * 1000:.1f} ms median "
                  f"({len(r.content) // 1024} KB, 300 entries)")
            n, not_modified, took = await conditional(client, paths, etags, seconds, 1)
            print(f"GET /f/ -> 304      {n / took:,.0f} req/s in-process (ASGI, one client), "
                  f"{not_modified / n:.0%} answered 304")

    # over HTTP against `digestd web` in its own process
    log = (folder / "web.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "digestd.cli", "-c", str(cfg), "web", stdout=log,
        stderr=subprocess.STDOUT, env=env)
    try:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (await client.get(f"{config.web.base_url}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and proc.returncode is None, \
                    "web did not start"
                await asyncio.sleep(0.1)
            url = httpx.URL(config.web.base_url)
            cpu = _cpu(proc.pid)
            n, not_modified, took = await conditional_http(url.host, url.port, paths, etags,
                                                           seconds, connections)
            server_cpu = _cpu(proc.pid) - cpu
        print(f"GET /f/ -> 304      {n / took:,.0f} req/s over HTTP (digestd web: uvicorn in "
              f"its own process, {connections} keep-alive connections), {not_modified / n:.0%} "
              f"answered 304; the server spent {server_cpu / n * 1000:.2f} ms of CPU per "
              "request")
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
        log.close()


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("papers", nargs="?", type=int, default=30_000)
    ap.add_argument("--feed", action="store_true", help="measure the feed's conditional GETs")
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    if args.feed:
        asyncio.run(feed_main(args.subscribers, args.seconds, args.connections))
    else:
        asyncio.run(main(args.papers))
