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
from .jobs import BuildProcess, _warn_once, build_workers
from .jobs_build import BuildReport, return_path
from .schedule import iso, parse_iso
from .store import BaseStore
from .store.cluster import RUNNING_LEASE

log = logging.getLogger("digestd.jobs")

# A round has one shard per SUBSCRIBERS_PER_SHARD subscribers, at most MAX_SHARDS, and at
# least two from TWO_SHARDS_FROM on (so two instances share even a modest build). Each shard
# pays fixed costs, whatever its size: the day's papers read, and above all the ranking's
# space: TF-IDF fitted on the day's papers and the seeds of the shard's profiles, and every
# seed against every paper (at 3,000 papers and 20,000 distinct seeds, ~10 s of CPU a shard
# in a py-spy profile of bench/cycle.py --store postgresql --instances 2, as much as for all
# readers at once). 2,000 per shard made the fixed costs 40% of the build's CPU; 10,000
# still gave 10 shards at 100,000 subscribers; 25,000 gives 4. A leader with many build
# processes cuts at least two shards per process, down to MIN_PER_SHARD subscribers a
# shard, so that its own cores are kept busy to the end.
SUBSCRIBERS_PER_SHARD = 25_000
MIN_PER_SHARD = 2000
TWO_SHARDS_FROM = 4000
MAX_SHARDS = 64


def shard_count(subscribers: int, workers: int = 1) -> int:
    """How many shards a build round over `subscribers` subscribers is cut into, for a
    leader that runs `workers` build processes at once."""
    wanted = max(subscribers // SUBSCRIBERS_PER_SHARD,
                 min(2 * workers, subscribers // MIN_PER_SHARD))
    return max(2 if subscribers >= TWO_SHARDS_FROM else 1, min(MAX_SHARDS, wanted))


def open_round(store: BaseStore, now: datetime, workers: int = 1) -> bool:
    """The leader's part: queue a build round as of `now` (see BaseStore.open_build_round,
    which says no while a round is open or nothing can be due yet), cut for a leader with
    `workers` build processes (shard_count). True when queued."""
    shards = shard_count(store.count_subscribers(), workers)
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
    """Up to build_workers loops, each claiming and building one shard after another in a
    build process of its own (started once, for its first shard)."""
    built = BuildReport()

    async def worker() -> None:
        child = BuildProcess()
        try:
            while stop is None or not stop.is_set():
                claim = store.claim_build_shard(owner, config.store.claim_lease)
                if claim is None:
                    return
                built.add(await _build_shard(config, store, owner, claim, stop, heartbeat,
                                             child))
        finally:
            await child.close()

    await asyncio.gather(*(worker() for _ in range(build_workers(config))))
    return built


async def _build_shard(config: Config, store: BaseStore, owner: str,
                       claim: tuple[str, int, int], stop: asyncio.Event | None,
                       heartbeat: Callable[[], None] | None, child: BuildProcess
                       ) -> BuildReport:
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
        built, _ = await child.build(config, store.target, False, parse_iso(round_at), stop,
                                     (k, n))
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


LEADER_LEASE = "leader"  # the name of the leader's lease in the store


class Leadership:
    """One instance's hold on the leader's lease (store.leader_lease seconds, by the
    store's clock): `take` once, then `keep` renews it (the leader) or tries to take it
    (the others) every third of the lease, and says when the role changed."""

    def __init__(self, store: BaseStore, instance: str, lease_s: float) -> None:
        self.store = store
        self.instance = instance
        self.lease_s = lease_s
        self.leads = False

    def take(self) -> bool:
        """Take or renew the lease; whether this instance leads now. A store that cannot
        be reached makes nobody here the leader (logged)."""
        try:
            self.leads = self.store.take_lease(LEADER_LEASE, self.instance, self.lease_s)
        except Exception as e:
            log.error("event=leader_lease_failed error=%r", f"{type(e).__name__}: {e}")
            self.leads = False
        return self.leads

    async def keep(self, changed: Callable[[bool], None]) -> None:
        """Forever (until cancelled): every third of the lease, take() again; `changed(leads)`
        is called when this instance became the leader or stopped being it."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            before = self.leads
            if self.take() == before:
                continue
            if self.leads:
                log.info("event=leader_elected instance=%s", self.instance)
            else:
                try:
                    found = self.store.lease_holder(LEADER_LEASE)
                except Exception:
                    found = None
                log.warning("event=leader_lost instance=%s leader=%s", self.instance,
                            found[0] if found else "-")
            changed(self.leads)

    def give_up(self) -> None:
        """A clean stop: drop the lease, so another instance leads at its next try rather
        than a lease later. A store gone already lets the lease run out by itself."""
        if not self.leads:
            return
        try:
            self.store.drop_lease(LEADER_LEASE, self.instance)
        except Exception as e:
            log.warning("event=leader_lease_not_dropped error=%r", str(e))
        self.leads = False


class Presence:
    """A `digestd run`'s mark on a SQLite store: the lease `running` (store.leader_lease
    seconds), taken at start, renewed every third of it, dropped at a clean stop. `digestd
    store copy` refuses to copy a store while it is held. A second run on the same file is
    refused when the holder is a live digestd process on this host (the daemon's
    _refuse_a_second_run), else only logged: the holder may be a run killed with kill -9
    whose lease has not run out yet."""

    def __init__(self, store: BaseStore, instance: str, lease_s: float) -> None:
        self.store = store
        self.instance = instance
        self.lease_s = lease_s
        self.warned = False

    def take(self) -> bool:
        """Take or renew the lease; whether this run holds it (logged, once, when not)."""
        try:
            held = self.store.take_lease(RUNNING_LEASE, self.instance, self.lease_s)
            if not held and not self.warned:
                self.warned = True
                found = self.store.lease_holder(RUNNING_LEASE)
                log.warning("event=store_used_by_another_run holder=%s lease_left_s=%d "
                            "hint=%r", found[0] if found else "-", found[1] if found else 0,
                            "two `digestd run` on one SQLite store each poll and build")
            return held
        except Exception as e:
            log.error("event=running_lease_failed error=%r", f"{type(e).__name__}: {e}")
            return False

    async def keep(self) -> None:
        """Forever (until cancelled): take() every third of the lease."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            self.take()

    def give_up(self) -> None:
        """A clean stop: drop the lease (a store gone already lets it run out)."""
        try:
            self.store.drop_lease(RUNNING_LEASE, self.instance)
        except Exception as e:
            log.warning("event=running_lease_not_dropped error=%r", str(e))


__all__ = ["LEADER_LEASE", "RUNNING_LEASE", "Leadership", "Presence", "build_shards_and_send",
           "open_round"]
