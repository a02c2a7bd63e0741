"""Units of work: poll sources, build the digests that are due, send the outbox.

The scheduler and the CLI both call these, so each is testable alone. Polling lives in
jobs_poll.py and building in jobs_build.py (both re-exported here); this module sends the
outbox and runs a build beside the sender (in a thread, or in child processes by shard).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import BinaryIO

from . import forked
from .config import (
    Config,
    example_sender_warning,
    unsubscribe_mail_warning,
    unsubscribe_warning,
)
from .deliver import DeliveryReport, send_smtp, write_outbox
from .jobs_build import (  # noqa: F401  (re-exported: units of work)
    BuildReport,
    build_digests,
    make_dkim,
    make_renderer,
    next_digests,
    return_path,
)
from .jobs_poll import PollReport, poll_sources  # noqa: F401  (re-exported: units of work)
from .logs import setup_logging
from .schedule import iso
from .store import BaseStore, open_store

log = logging.getLogger("digestd.jobs")

# below this many active subscribers per extra build process, one process builds alone
SUBSCRIBERS_PER_WORKER = 2000
# A build process holds at most this many subscribers' build at once (their rules, matches,
# schedule marks, and the profiles of those ranked, in the ranking's own process); more are
# built in turns, shard after shard in the same process. At 1,000,000 subscribers in one
# turn the build process held 2.3 GB and its ranking process 3.4 GB; each turn costs its
# fixed part again (the day's papers read, the ranking's fit: ~1-2 s).
SUBSCRIBERS_PER_TURN = 250_000
# A build process that is done helps send (its share of the connections)
BUILD_HELPS_SEND = True


# -- poll: see jobs_poll.py; build: see jobs_build.py -------------------------------------------


# -- send ----------------------------------------------------------------------------------------

_warned: set[str] = set()  # config warnings logged by this process (each once, not per send)


def _warn_once(config: Config) -> None:
    """Log each of the config's warnings about mail (`config check` says them too) once a
    process, with the setting it is about."""
    for about, warning in ((f"base_url={config.web.base_url}", unsubscribe_warning(config)),
                           ("key=delivery.from", example_sender_warning(config)),
                           ("key=delivery.return_path", unsubscribe_mail_warning(config))):
        if warning and warning not in _warned:
            _warned.add(warning)
            log.warning("event=config_warning %s warning=%r", about, warning)


async def send_outbox(config: Config, store: BaseStore, *, progress=None,
                      limit: int | None = None, stop: asyncio.Event | None = None
                      ) -> DeliveryReport:
    """Deliver every queued digest that is due (at most `limit`), by the configured method.

    Once `stop` is set (a shutdown) no new message starts; what is left stays queued."""
    if config.delivery_method == "outbox":
        return write_outbox(store, config.delivery.outbox_dir,
                            rows=store.outbox(limit=limit) if limit else None,
                            stop=stop.is_set if stop is not None else None,
                            **return_path(config))
    assert config.smtp is not None
    _warn_once(config)
    return await send_smtp(store, config.smtp, config.delivery.from_,
                           max_attempts=config.delivery.max_attempts,
                           bounce_threshold=config.delivery.bounce_threshold, limit=limit,
                           progress=progress, stop=stop, claim_lease=config.store.claim_lease,
                           **return_path(config))


# seconds a stopped build process gets to end after SIGTERM before it is killed
BUILD_STOP_GRACE = 2.0
HEARTBEAT_S = 1.0  # how often build_and_send's `heartbeat` is called while the build runs


async def build_and_send(config: Config, store: BaseStore, *, force: bool = False,
                         now: datetime | None = None, progress=None,
                         stop: asyncio.Event | None = None,
                         heartbeat: Callable[[], None] | None = None
                         ) -> tuple[BuildReport, DeliveryReport]:
    """Build the due digests and deliver the outbox at the same time.

    The build runs in a child Python process with its own store connection (rendering is
    CPU work; a thread would fight the sender for the GIL); the sender starts on the first
    digest the build commits and follows it to the end. A digest is sent only once its row
    is committed, so crash safety is the same as building first and sending after. With
    the outbox method the build and then the .eml files run in a worker thread with its
    own store connection: either way the caller's event loop stays free.

    Once `stop` is set (a shutdown) the sender starts nothing new and the build ends at
    once: the child gets SIGTERM (SIGKILL after BUILD_STOP_GRACE), the thread stops at its
    next batch. That is safe: digests commit in batches together with their sent and
    schedule marks, and a batch not committed is rolled back and built by the next run.
    `heartbeat` is called every HEARTBEAT_S while the build runs (the daemon's watchdog:
    a long build is alive, not stalled).
    """
    if store.path == ":memory:":  # no second connection can see this store
        built = build_digests(config, store, force=force, now=now)
        return built, await send_outbox(config, store, progress=progress, stop=stop)
    if config.delivery_method != "smtp":
        working = asyncio.ensure_future(
            _build_and_write_in_thread(config, store.target, force, now, stop))
        with _beating(working, heartbeat):
            return await working
    assert config.smtp is not None
    _warn_once(config)
    if not force and _nothing_due(store, now):
        # an idle tick: no build process (its start costs ~0.3 s of CPU); the outbox still
        # goes out (retries, confirmation mails)
        return BuildReport(), await send_outbox(config, store, progress=progress, stop=stop)
    # a second build process pays off only for a big build: a start costs ~0.3 s of CPU
    subscribers = store.count_subscribers()
    workers = min(build_workers(config), max(1, subscribers // SUBSCRIBERS_PER_WORKER))
    turns = build_turns(subscribers, workers)
    smtp = config.smtp
    helpers = 0
    if BUILD_HELPS_SEND and not smtp.max_per_second and smtp.max_connections > 1:
        # sending is CPU work too: a build process that is done sends alongside this one,
        # and the connections are shared out (a rate limit could not be, so none help then)
        helpers = min(workers, smtp.max_connections - 1)
        smtp = replace(smtp, max_connections=smtp.max_connections - helpers * (
            smtp.max_connections // (helpers + 1)))
    building = asyncio.ensure_future(_build_in_children(
        config, store.target, force, now, stop, workers, helpers, turns=turns))
    with _beating(building, heartbeat):
        try:
            report = await send_smtp(store, smtp, config.delivery.from_,
                                     max_attempts=config.delivery.max_attempts,
                                     bounce_threshold=config.delivery.bounce_threshold,
                                     progress=progress, follow=building, stop=stop,
                                     claim_lease=config.store.claim_lease,
                                     **return_path(config))
        except BaseException:
            # the sender failed or was cancelled: the build must not outlive it
            building.cancel()
            await asyncio.gather(building, return_exceptions=True)
            raise
        built, helped = await building  # a build error is raised here, after the sender stopped
    if not force and not built.stopped and built.next_due is not None:
        _IDLE[store.path] = (store.schedule_fingerprint(), built.next_due)
    report.add(helped)
    if progress is not None and helped.done:
        progress(report)  # the bar ends at what every sender did
    return built, report


# store path -> (schedule fingerprint, next due time) after the last scheduled build: until
# that time, and as long as no subscriber, schedule or rule changed, nothing can be due
_IDLE: dict[str, tuple[str, str]] = {}


def _nothing_due(store: BaseStore, now: datetime | None) -> bool:
    """True when the last scheduled build said nothing is due before a time still ahead,
    and no subscriber, schedule or rule has changed since (BaseStore.schedule_fingerprint)."""
    if store.path == ":memory:":
        return False
    known = _IDLE.get(store.path)
    if known is None:
        return False
    fingerprint, next_due = known
    moment = iso(now or datetime.now(timezone.utc))
    if moment >= next_due or store.schedule_fingerprint() != fingerprint:
        del _IDLE[store.path]
        return False
    return True


def build_workers(config: Config) -> int:
    """digest.build_workers, where 0 means one per core but the one the sender needs."""

    return config.digest.build_workers or max(1, (os.cpu_count() or 2) - 1)


@contextmanager
def _beating(work: asyncio.Future, heartbeat: Callable[[], None] | None) -> Iterator[None]:
    """Call `heartbeat` every HEARTBEAT_S while `work` runs."""
    if heartbeat is None:
        yield
        return

    async def beat() -> None:
        while not work.done():
            heartbeat()
            await asyncio.sleep(HEARTBEAT_S)

    task = asyncio.ensure_future(beat())
    try:
        yield
    finally:
        task.cancel()


async def _build_and_write_in_thread(config: Config, path: str, force: bool,
                                     now: datetime | None, stop: asyncio.Event | None
                                     ) -> tuple[BuildReport, DeliveryReport]:
    """The outbox method: build_digests, then write_outbox, in a worker thread. The thread
    opens its own store connection (one sqlite3 connection is never shared by two threads
    at once); `stop` reaches it as a threading.Event, checked between batches and files."""
    halt = threading.Event()
    relay = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if relay is not None:
        relay.add_done_callback(lambda _: halt.set())

    def work() -> tuple[BuildReport, DeliveryReport]:
        began = time.monotonic()
        with open_store(path) as store, store.checkpoints_in_background():
            built = build_digests(config, store, force=force, now=now, stop=halt.is_set)
            built.took_s = time.monotonic() - began
            return built, write_outbox(store, config.delivery.outbox_dir, stop=halt.is_set,
                                       **return_path(config))

    try:
        return await asyncio.to_thread(work)
    finally:
        # cancelled (a shutdown past its grace): the thread cannot be killed, it ends at
        # its next check instead
        halt.set()
        if relay is not None:
            relay.cancel()


def build_turns(subscribers: int, workers: int) -> int:
    """How many shards each of `workers` build processes builds in turn for `subscribers`
    subscribers: enough that a turn holds at most SUBSCRIBERS_PER_TURN of them."""
    per_process = -(-subscribers // max(1, workers))
    return max(1, -(-per_process // SUBSCRIBERS_PER_TURN))


async def _build_in_children(config: Config, path: str, force: bool, now: datetime | None,
                             stop: asyncio.Event | None = None, n: int = 1, helpers: int = 0,
                             *, turns: int = 1) -> tuple[BuildReport, DeliveryReport]:
    """`n` children, each building its part of the subscribers (in `turns` shards, one
    after another: build_turns); the first `helpers` then help send the outbox, each over
    its share of the connections."""

    async def child(k: int) -> tuple[BuildReport, DeliveryReport]:
        process = BuildProcess()
        built, helped, took = BuildReport(), DeliveryReport(), 0.0
        try:
            for turn in range(turns):
                last = turn == turns - 1
                one_built, one_helped = await process.build(
                    config, path, force, now, stop, (k + turn * n, n * turns),
                    helpers=helpers if last else 0, helper=last and k < helpers)
                built.add(one_built)
                helped.add(one_helped)
                took += one_built.took_s
                if one_built.stopped:
                    break
        finally:
            await process.close()
        built.took_s = took  # the turns' in all (add() keeps the longest)
        return built, helped

    builds = [asyncio.ensure_future(child(k)) for k in range(n)]
    try:
        results = await asyncio.gather(*builds)
    except BaseException:
        for b in builds:  # one failed or we are cancelled: the others end too
            b.cancel()
        await asyncio.gather(*builds, return_exceptions=True)
        raise
    built, helped = BuildReport(), DeliveryReport()
    for one_built, one_helped in results:
        built.add(one_built)
        helped.add(one_helped)
    return built, helped


class BuildProcess:
    """A `python -c` build process that builds one shard after another (jobs_cluster.py):
    each call's arguments and result are pickled over its stdin and stdout
    (multiprocessing's spawn would re-import the caller's __main__). Its start, imports and
    the ranking's libraries (loaded before the ranking process is forked) are paid once per
    process, not once per shard: ~1.7 s of CPU each.

    A build ends early (report.stopped) once `stop` is set: SIGTERM, which the process
    answers by finishing what is in flight, handing back its result and exiting; it is
    SIGKILLed after BUILD_STOP_GRACE. Cancelling a build ends the process too."""

    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._reading: asyncio.Future | None = None

    async def _start(self) -> asyncio.subprocess.Process:
        import sys

        # the result goes out on a copy of stdout; anything the build prints goes to stderr
        code = ("import os; result = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
                "from digestd.jobs import _child_entry; _child_entry(result)")
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, limit=1 << 20)

    async def build(self, config: Config, path: str, force: bool, now: datetime | None,
                    stop: asyncio.Event | None = None, shard: tuple[int, int] = (0, 1), *,
                    helpers: int = 0, helper: bool = False
                    ) -> tuple[BuildReport, DeliveryReport]:
        """(the build's report, what it helped send). Raises DigestdError when the process
        died or exited without a result (the log above says why), or what the build
        raised."""
        import pickle

        began = time.monotonic()
        if self._proc is None:
            self._proc = await self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        level = logging.getLogger().getEffectiveLevel()
        args = pickle.dumps((config, path, force, now, level, shard,
                             helpers if helper else 0, os.getpid()))
        reading = self._reading = asyncio.ensure_future(_read_result(proc.stdout))
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            proc.stdin.write(len(args).to_bytes(8, "big") + args)
            await proc.stdin.drain()
            await asyncio.wait({reading} | ({stopping} if stopping else set()),
                               return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                await self._end(reading)
                log.info("event=build_stopped reason=stop_requested took_ms=%d",
                         (time.monotonic() - began) * 1000)
                if reading.cancelled() or reading.exception():
                    # killed after the grace: what it committed stays, the rest is built and
                    # sent by the next run (its sent journal is applied first)
                    return BuildReport(stopped=True, took_s=time.monotonic() - began), \
                        DeliveryReport()
        except (BrokenPipeError, ConnectionResetError):  # it died before reading the args
            pass
        except BaseException:
            await self._end(reading)
            raise
        finally:
            if stopping is not None:
                stopping.cancel()
        out = await _quietly(reading)
        if out is None:
            await self.close()
            from .errors import DigestdError
            raise DigestdError(f"building the digests failed (exit code {proc.returncode}); "
                               "the log above says why")
        result = pickle.loads(out)
        if isinstance(result, BaseException):
            raise result
        built, helped = result
        built.took_s = built.took_s or time.monotonic() - began
        return built, helped

    async def _end(self, reading: asyncio.Future) -> None:
        """SIGTERM, then SIGKILL after BUILD_STOP_GRACE; returns once the result is read or
        the process is gone."""
        proc = self._proc
        assert proc is not None
        try:
            proc.terminate()
        except ProcessLookupError:  # already gone
            pass
        done, _ = await asyncio.wait({reading}, timeout=BUILD_STOP_GRACE)
        if not done:
            log.warning("event=build_killed pid=%d reason=no_exit_after_sigterm grace_s=%g",
                        proc.pid, BUILD_STOP_GRACE)
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await asyncio.wait({reading})

    async def close(self) -> None:
        """End the process: its stdin closed, it exits (SIGKILL after BUILD_STOP_GRACE)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self._reading is not None and not self._reading.done():
            self._reading.cancel()
        try:
            assert proc.stdin is not None
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            pass
        try:
            await asyncio.wait_for(proc.wait(), BUILD_STOP_GRACE)
        except asyncio.TimeoutError:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            await proc.wait()
        except asyncio.CancelledError:
            try:
                proc.kill()
            except ProcessLookupError:
                pass
            raise


async def _read_result(stream: asyncio.StreamReader) -> bytes:
    """One framed result of the build process: 8 bytes of length, then the pickle."""
    size = int.from_bytes(await stream.readexactly(8), "big")
    return await stream.readexactly(size)


async def _quietly(reading: asyncio.Future) -> bytes | None:
    """The result read, or None when the process ended without one (EOF, a broken pipe)."""
    try:
        return await reading
    except (asyncio.IncompleteReadError, ConnectionResetError, asyncio.CancelledError):
        return None


def _child_entry(result: BinaryIO) -> None:
    """The build process's body: each call's arguments framed and pickled on stdin, its
    result framed and pickled to `result`, until stdin ends or a SIGTERM ended a build.
    A parent killed while the result goes out closes the pipe a moment before its death
    reaches this process (PR_SET_PDEATHSIG): the write then fails with EPIPE, and this
    process ends quietly, as the SIGKILL on its way would end it."""
    import pickle
    import sys

    halt = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: halt.set())
    stdin = sys.stdin.buffer
    while not halt.is_set():
        head = stdin.read(8)
        if len(head) < 8:  # the parent is done with this process
            break
        out = pickle.dumps(_child_main(*pickle.loads(stdin.read(int.from_bytes(head, "big"))),
                                       halt=halt))
        try:
            result.write(len(out).to_bytes(8, "big") + out)
            result.flush()
        except BrokenPipeError:
            os._exit(1)
    try:
        result.close()
    except BrokenPipeError:
        os._exit(1)


def _child_main(config: Config, path: str, force: bool, now: datetime | None,
                level: int, shard: tuple[int, int] = (0, 1), helpers: int = 0,
                parent: int | None = None, *, halt: threading.Event
                ) -> tuple[BuildReport, DeliveryReport] | BaseException:
    """A build process's build: this shard; then, with `helpers`, send the outbox over this
    process's share of the connections until it is empty. `halt` (set by SIGTERM: a
    shutdown) ends the build at its next batch and the sending after the messages in
    flight; the death of the `parent` process (kill -9 of digestd) ends this one at once,
    as if killed too."""

    # a build process must not go on for a digestd that was killed (its claims and sent
    # journal are taken over by the next sender, as the parent's are)
    forked.die_with(parent)
    setup_logging(level)
    if shard[1] > 1 and config.relevance.method == "tfidf":
        # a process that builds shard after shard forks a ranking process for each: loaded
        # here once, the ranking's libraries (~1 s of CPU) are the forks' already
        from .relevance import text  # noqa: F401
    try:
        with open_store(path) as store, store.checkpoints_in_background():
            began, usage = time.monotonic(), _usage()
            built = build_digests(config, store, force=force, now=now, shard=shard,
                                  stop=halt.is_set, rank_apart=True)
            built.took_s = time.monotonic() - began
            done = _usage()
            built.cpu_s = done[0] - usage[0]
            built.written_bytes = 512 * (done[1] - usage[1])
            helped = DeliveryReport()
            if helpers and not halt.is_set() and config.smtp is not None:
                helped = asyncio.run(_help_send(config, store, helpers, halt))
            return built, helped
    except Exception as e:  # handed to the parent, which raises it
        return e


def _usage() -> tuple[float, int]:
    """(CPU seconds, 512-byte blocks written) of this process and the children it reaped
    (the ranking process the build forks)."""
    own, reaped = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
    return (own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime,
            own.ru_oublock + reaped.ru_oublock)


async def _help_send(config: Config, store: BaseStore, helpers: int,
                     halt: threading.Event) -> DeliveryReport:

    assert config.smtp is not None
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if halt.is_set():
        stop.set()
    share = max(1, config.smtp.max_connections // (helpers + 1))
    return await send_smtp(store, replace(config.smtp, max_connections=share),
                           config.delivery.from_, max_attempts=config.delivery.max_attempts,
                           bounce_threshold=config.delivery.bounce_threshold, stop=stop,
                           claim_lease=config.store.claim_lease, **return_path(config))
