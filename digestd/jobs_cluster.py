"""Units of work of several `digestd run` on one PostgreSQL store: the leader's build round,
and the shards of it that every instance claims, builds and sends.

The leader (the one instance that holds the "leader" lease, see daemon.py) opens a round:
the time the digests are due as of, cut into shards (subscribers whose id is k modulo n).
Every instance claims shards one at a time with a lease, builds each in a child process as
of the round's time, and sends the outbox meanwhile (claims of their own, SKIP LOCKED). A
shard whose instance died is claimed again once its lease ran out; building it twice is
harmless, since a subscriber has at most one digest per period (the store refuses a second
one, and the slot marks commit with the digest).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from .config import Config
from .deliver import DeliveryReport, send_smtp
from .jobs import _build_in_child, _warn_once, build_workers
from .jobs_build import BuildReport, return_path
from .schedule import iso, parse_iso
from .store import BaseStore

log = logging.getLogger("digestd.jobs")

SUBSCRIBERS_PER_SHARD = 2000  # a round has one shard per this many subscribers (at least 1)
MAX_SHARDS = 64


def open_round(store: BaseStore, now: datetime) -> bool:
    """The leader's part: queue a build round as of `now` (see BaseStore.open_build_round,
    which says no while a round is open or nothing can be due yet). True when queued."""
    shards = max(1, min(MAX_SHARDS, store.count_subscribers() // SUBSCRIBERS_PER_SHARD))
    opened = store.open_build_round(iso(now), shards)
    if opened:
        log.info("event=build_round_opened round=%s shards=%d", iso(now), shards)
    return opened


async def build_shards_and_send(config: Config, store: BaseStore, owner: str, *,
                                progress=None, stop: asyncio.Event | None = None,
                                heartbeat: Callable[[], None] | None = None
                                ) -> tuple[BuildReport, DeliveryReport]:
    """Every instance's part: claim the open round's shards one at a time (as `owner`, for
    store.claim_lease seconds, renewed every third of it), build each in a child process,
    up to digest.build_workers at once, and send the outbox meanwhile. Returns what was
    built (over all shards this instance built) and sent. `stop` (a shutdown) ends the
    builds at their next batch (their shards are handed back) and the sender as
    send_smtp does."""
    assert config.smtp is not None
    _warn_once(config)
    building = asyncio.ensure_future(_build_claimed(config, store, owner, stop, heartbeat))
    try:
        report = await send_smtp(store, config.smtp, config.delivery.from_,
                                 max_attempts=config.delivery.max_attempts,
                                 bounce_threshold=config.delivery.bounce_threshold,
                                 progress=progress, follow=building, stop=stop,
                                 claim_lease=config.store.claim_lease, **return_path(config))
    except BaseException:
        building.cancel()
        await asyncio.gather(building, return_exceptions=True)
        raise
    return await building, report


async def _build_claimed(config: Config, store: BaseStore, owner: str,
                         stop: asyncio.Event | None,
                         heartbeat: Callable[[], None] | None) -> BuildReport:
    """Up to build_workers loops, each claiming and building one shard after another."""
    built = BuildReport()

    async def worker() -> None:
        while stop is None or not stop.is_set():
            claim = store.claim_build_shard(owner, config.store.claim_lease)
            if claim is None:
                return
            built.add(await _build_shard(config, store, owner, claim, stop, heartbeat))

    await asyncio.gather(*(worker() for _ in range(build_workers(config))))
    return built


async def _build_shard(config: Config, store: BaseStore, owner: str,
                       claim: tuple[str, int, int], stop: asyncio.Event | None,
                       heartbeat: Callable[[], None] | None) -> BuildReport:
    round_at, k, n = claim
    lease = config.store.claim_lease
    began = time.monotonic()
    log.info("event=build_shard_claimed round=%s shard=%d of=%d", round_at, k, n)

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            if heartbeat is not None:
                heartbeat()
            if not store.renew_build_shard(round_at, k, owner, lease):
                # taken over (this instance stalled past its lease): the other build of it
                # queues nothing twice; this one goes on and ends as usual
                log.warning("event=build_shard_lost round=%s shard=%d", round_at, k)
                return

    renewing = asyncio.ensure_future(renew())
    try:
        built, _ = await _build_in_child(config, store.target, False, parse_iso(round_at),
                                         stop, (k, n))
    except BaseException:
        renewing.cancel()
        store.finish_build_shard(round_at, k, done=False)  # for another instance, at once
        raise
    finally:
        renewing.cancel()
    store.finish_build_shard(round_at, k, done=not built.stopped, next_due=built.next_due)
    log.info("event=build_shard_done round=%s shard=%d of=%d digests=%d stopped=%s "
             "took_ms=%d", round_at, k, n, built.digests, built.stopped,
             (time.monotonic() - began) * 1000)
    return built


__all__ = ["build_shards_and_send", "open_round"]
