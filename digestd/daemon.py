"""The long-running service: poll sources on their intervals, build and send digests when due.

A first, plain asyncio loop; the scheduling issue replaces it with APScheduler, sd_notify,
catch-up after downtime and the web server in the same event loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from .config import Config
from .jobs import build_digests, poll_sources, send_outbox
from .sources import Http, make_source
from .store import Store

log = logging.getLogger("digestd.daemon")

TICK = 60.0  # seconds between checks for due digests


async def serve(config: Config, stop: asyncio.Event) -> None:
    http = Http()
    next_poll = {s.name: 0.0 for s in config.sources if s.enabled}
    every = {s.name: make_source(s, http).every for s in config.sources if s.enabled}
    with Store(config.store.path) as store:
        log.info("event=started sources=%d store=%s", len(next_poll), store.path)
        try:
            while not stop.is_set():
                now = time.monotonic()
                due = {name for name, at in next_poll.items() if at <= now}
                if due:
                    await poll_sources(config.sources, store, http=http, names=due)
                    for name in due:
                        next_poll[name] = now + every[name]
                built = build_digests(config, store)
                if built.digests:
                    log.info("event=built digests=%d", built.digests)
                report = await send_outbox(config, store)
                if report.sent or report.deferred or report.failed:
                    log.info("event=delivered sent=%d deferred=%d failed=%d", report.sent,
                             report.deferred, report.failed)
                try:
                    await asyncio.wait_for(stop.wait(), TICK)
                except asyncio.TimeoutError:
                    pass
        finally:
            await http.aclose()
            log.info("event=stopped")


def run(config: Config) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(config, stop)

    asyncio.run(main())
    return 0
