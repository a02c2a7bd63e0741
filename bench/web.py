"""Measure the web app's hot paths on a store of N papers (default 30,000 in the last 30 days).

    python bench/web.py [N]

Prints: loading the last 30 days of papers, one "test this rule" (3 rules) on them, and
requests per second through the real ASGI app for GET /, POST / (subscribe), GET /rules/test
(cache warm) and GET /metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
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


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 30_000))
