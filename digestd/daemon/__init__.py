"""The long-running service: APScheduler, signals, sd_notify and the web server in one event loop.

Jobs (all in the one asyncio loop, none of them one-per-subscriber):

- `poll:NAME`, one per enabled source, at its `every` with jitter (arXiv kinds without
  their own `every`: shortly after arXiv's announcements, see schedule.py);
- `digests`, every `digest.check_every`: build the digests that are due now (the
  schedule is computed from the store) while the outbox is sent (jobs.build_and_send:
  the build runs in a child process, or a thread for the outbox method, so the web app
  and the watchdog keep answering during a long build);
- `inbound`, every `inbound.every` when [inbound] names an IMAP server: read the mail that
  came back (bounces, complaints, unsubscribes) from that mailbox, in a thread
  (digestd.inbound.imap).

Several instances on one PostgreSQL store (docs/postgresql.md): one of them, the leader
(it holds the store's "leader" lease, renewed every third of store.leader_lease), polls
the sources, reads the [inbound] mailbox, prunes, and opens each build round; every
instance builds the round's shards it claims and sends the outbox (jobs_cluster.py), and
serves the web app. When the leader dies, another takes the lease once it ran out and
schedules the polls. With the SQLite file there is one instance and it leads.

SIGTERM/SIGINT stop taking new work: the sender starts no new message, the build is
stopped (what it committed stays, the rest is built at the next start), in-flight jobs get
a few seconds, then are cancelled (a digest not yet accepted by the SMTP server stays
queued: the outbox makes that safe), the store is closed and digestd exits 0. SIGHUP
reloads the config file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .. import __version__
from ..config import Config, InboundConfig, SourceConfig, load_config
from ..deliver import DeliveryReport, new_owner
from ..errors import DigestdError, StoreInUse
from ..inbound.imap import fetch_and_handle
from ..jobs import build_and_send, build_workers, poll_sources, send_outbox
from ..jobs_cluster import Leadership, Presence, build_shards_and_send, open_round
from ..logs import quiet_daemon_libraries
from ..render import check_templates
from ..sdnotify import Notifier
from ..sources import Http, make_source
from ..store import BaseStore, open_store
from .parts import (  # noqa: F401  (inbound_handler, poll_trigger: what tests import from here)
    ARXIV_POLL_JITTER,
    InboundHandle,
    WebServer,
    first_poll,
    inbound_handler,
    poll_interval,
    poll_trigger,
    web_parts,
)

log = logging.getLogger("digestd.daemon")

# APScheduler drops a run that starts more than misfire_grace_time late, 1 s by default:
# a busy loop or a suspended machine would silently lose polls. A run may be late, never
# lost; coalesce folds the runs that piled up meanwhile into one.
MISFIRE_GRACE = 24 * 3600
DRAIN_TIMEOUT = 6.0  # seconds in-flight jobs get on SIGTERM before they are cancelled
STARTUP_POLL_GRACE = 300.0  # after a start, due digests wait this long at most for first polls
# a failed poll at arXiv's fixed times is tried again after this (seconds)
POLL_RETRY_S = 1800
RETRY_BEYOND_S = 3600  # a source polled less often than this is retried after POLL_RETRY_S
STALL_AFTER = 900.0  # the digest job silent this long: stop the watchdog pings (and restart)
PRUNE_EVERY = 6 * 3600.0  # how often sent messages older than store.keep_sent_days are dropped
INBOUND_FIRST_RUN = 5.0  # seconds after a start (or a reload that changed [inbound])


class Daemon:
    """One event loop: the scheduler's poll and digest jobs, the web server, signals, sd_notify.

    `clock` gives "now" to the digest schedule (tests inject one); the scheduler itself
    runs on the real clock.
    """

    def __init__(self, config: Config, *, notifier: Notifier | None = None,
                 clock: Callable[[], datetime] | None = None,
                 inbound_handler: Callable[[Config, BaseStore], InboundHandle] = inbound_handler
                 ) -> None:
        self.config = config
        self.inbound_handler = inbound_handler
        self.notifier = notifier or Notifier()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop_requested = asyncio.Event()
        self.stopping = False
        self.started = False  # the scheduler ran: a refused start logs no "stopped"
        self.running: dict[asyncio.Task, str] = {}  # in-flight job tasks -> job id
        self.first_polls: set[str] = set()  # sources polled at start, not finished yet
        self.last_progress = time.monotonic()  # the digest job's last sign of life
        # [inbound] messages left as not ours on a server that keeps no keyword of ours
        self.inbound_left: set[tuple[str, int, int]] = set()
        self.store: BaseStore | None = None
        self.http: Http | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.web: WebServer | None = None
        self.send_again = False  # the web app queued mail while the digest job was running
        self.next_due_logged: str | None = None  # the next digest's time, as last logged
        # several instances on one store: this one's name in leases and claims, and whether
        # it leads (polls, reads [inbound], prunes, opens build rounds); alone, it always does
        self.instance = new_owner()
        self.shared = False
        self.leader = True
        self.leadership: Leadership | Presence | None = None  # Presence: on a SQLite store
        self.leading: asyncio.Task | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or `request_stop`), then shut down cleanly."""
        loop = asyncio.get_running_loop()
        quiet_daemon_libraries()
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None:  # set outside Python: nothing to restore but the default
            previous = signal.SIG_DFL
        signals = self._install_signals(loop)
        watchdog: asyncio.Task | None = None
        try:
            self.store = open_store(self.config.store)
            self.http = Http()
            self.scheduler = AsyncIOScheduler(timezone=timezone.utc, job_defaults={
                "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE})
            self.shared = self.store.sql.name == "postgresql"
            if self.shared:
                self.leadership = Leadership(self.store, self.instance,
                                             self.config.store.leader_lease)
                self.leader = self.leadership.take()
            else:  # alone, it leads; the lease tells `store copy` the store is in use
                self.leadership = Presence(self.store, self.instance,
                                           self.config.store.leader_lease)
                if not self.leadership.take():
                    self._refuse_a_second_run()
            if self.leader:
                self._schedule_polls(startup=True)
            # after downtime the digests that are due should include what the sources
            # published meanwhile: the first digest run waits for the first polls (it is
            # moved to "now" when they are done), at most STARTUP_POLL_GRACE
            first = datetime.now(timezone.utc)
            if self.first_polls:
                first += timedelta(seconds=STARTUP_POLL_GRACE)
            self.scheduler.add_job(self._job, self._digest_trigger(), id="digests",
                                   name="digests", args=("digests", self._digests),
                                   next_run_time=first)
            if self.config.store.keep_sent_days:
                self.scheduler.add_job(
                    self._job, IntervalTrigger(seconds=PRUNE_EVERY, timezone=timezone.utc),
                    id="prune", name="prune", args=("prune", self._prune),
                    next_run_time=first + timedelta(minutes=10))
            self._schedule_inbound()
            self.scheduler.start()
            self.started = True
            if isinstance(self.leadership, Leadership):
                self.leading = asyncio.create_task(self.leadership.keep(self._lead_changed),
                                                   name="leader-lease")
            elif self.leadership is not None:
                self.leading = asyncio.create_task(self.leadership.keep(), name="running-lease")
            await self._start_web()
            if not self.stop_requested.is_set():
                self.notifier.ready(self.status_text())
                interval = self.notifier.watchdog_interval
                if interval:
                    watchdog = asyncio.create_task(self._watchdog(interval), name="watchdog")
                log.info("event=ready version=%s store=%s sources=%d web=%s check_every_s=%g "
                         "max_lateness_s=%g watchdog_s=%s instance=%s leader=%s", __version__,
                         self.store.path, len(self._poll_jobs()),
                         self.config.web.listen if self.web else "off",
                         self.config.digest.check_every, self.config.digest.max_lateness,
                         f"{interval:g}" if interval else "off", self.instance,
                         "yes" if self.leader else "no")
            await self.stop_requested.wait()
        finally:
            await self._shutdown(watchdog)
            for sig in signals:
                loop.remove_signal_handler(sig)
            # removing a handler restores the default action, which for SIGTERM is to die
            # with status 143: put back what was there (`digestd run`'s clean exit 0)
            signal.signal(signal.SIGTERM, previous)

    async def _start_web(self) -> None:
        """Serve the web app in this loop; return once it listens (READY=1 waits for it)."""
        assert self.store is not None
        parts = web_parts(self.config)
        if parts is None:
            return
        create_app, serve_web = parts
        app = create_app(self.config, self.store, mailer=self.wake_sender)
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve_web(app, self.config.web.listen, ready=ready,
                                             stop=stop), name="web")
        self.web = WebServer(task, stop)
        listening = asyncio.create_task(ready.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if task.done():
            self.web = None
            await task  # raises the reason (an address in use, say)
            raise DigestdError(f"the web app stopped while starting on {self.config.web.listen}")
        task.add_done_callback(self._web_ended)

    def _web_ended(self, task: asyncio.Task) -> None:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("event=web_failed error=%r", f"{type(error).__name__}: {error}")
        elif not self.stopping:
            log.error("event=web_failed error=%r", "the server stopped")

    async def wake_sender(self) -> None:
        """The web app's mailer: a confirmation or preferences mail is queued, send it now
        through the one sender of this process (the digest job)."""
        if self.stopping or self.scheduler is None:
            return
        if "digests" in self.running.values():
            self.send_again = True
        else:
            self._run_digests_now()

    def request_stop(self, reason: str = "request") -> None:
        if self.stop_requested.is_set():
            log.info("event=stop_requested reason=%s note=already_stopping", reason)
            return
        log.info("event=stop_requested reason=%s", reason)
        self.stop_requested.set()

    async def _shutdown(self, watchdog: asyncio.Task | None) -> None:
        began = time.monotonic()
        self.stopping = True
        self.notifier.stopping("stopping: finishing in-flight work")
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        if self.leading is not None:
            self.leading.cancel()
            await asyncio.gather(self.leading, return_exceptions=True)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.pause()  # no new runs; in-flight ones go on for now
        waiting: list[asyncio.Task] = list(self.running)
        if self.web is not None and not self.web.task.done():
            self.web.stop.set()  # no new connections; requests in flight may finish
            waiting.append(self.web.task)
        if waiting:
            log.info("event=draining jobs=%s", ",".join(sorted(self.running.values())) or "-")
            _done, pending = await asyncio.wait(waiting, timeout=DRAIN_TIMEOUT)
            for task in pending:
                # a digest not yet accepted by the server stays queued and goes next time
                log.warning("event=cancelled job=%s reason=shutdown_timeout",
                            self.running.get(task, task.get_name()))
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback
        if self.http is not None:
            await self.http.aclose()
        if self.store is not None:
            if self.leadership is not None:
                self.leadership.give_up()
            self.store.close()
        if self.started:  # a run refused at its start (the store in use) never ran
            log.info("event=stopped took_ms=%d", (time.monotonic() - began) * 1000)
        self.notifier.close()

    def _refuse_a_second_run(self) -> None:
        """Another `digestd run` holds this SQLite store's running lease: refused (exit 2)
        when it is known to be alive (a digestd process on this host); else only logged
        (Presence.take), as it may be a run killed with kill -9 whose lease runs out."""
        from ..deliver.journal import running_here
        from ..jobs_cluster import RUNNING_LEASE

        found = self.store.lease_holder(RUNNING_LEASE)
        pid = running_here(found[0]) if found else None
        if pid is not None:
            raise StoreInUse(
                f"the store {self.store.path} is in use by another `digestd run` (pid {pid} "
                "on this host): two runs on one SQLite store would each poll, build and "
                "send. Stop that one first; several instances need PostgreSQL "
                "([store] url, docs/postgresql.md)")

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        handlers = {signal.SIGTERM: functools.partial(self.request_stop, "SIGTERM"),
                    signal.SIGINT: functools.partial(self.request_stop, "SIGINT"),
                    signal.SIGHUP: self.reload}
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        return list(handlers)

    # -- the leader (several instances on one store) ---------------------------------------------

    def _lead_changed(self, leads: bool) -> None:
        """This instance became the leader (schedule the polls: the sources the last leader
        polled lately wait for their turn, the others are polled now) or stopped being it."""
        self.leader = leads
        if self.stopping:
            return
        if leads:
            self._schedule_polls()
            self._run_digests_now()
        else:
            for job in self._poll_jobs():
                job.remove()
        self._update_status()

    # -- jobs --------------------------------------------------------------------------------------

    async def _job(self, job_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one job; its errors are logged and never stop the schedule."""
        task = asyncio.current_task()
        assert task is not None
        self.running[task] = job_id
        began = time.monotonic()
        try:
            await work()
        except asyncio.CancelledError:
            # cancelled by _shutdown after the drain timeout: end quietly, nothing is lost
            log.info("event=job_cancelled job=%s", job_id)
        except Exception as e:
            log.exception("event=job_failed job=%s error=%r took_ms=%d", job_id,
                          f"{type(e).__name__}: {e}", (time.monotonic() - began) * 1000)
        finally:
            self.running.pop(task, None)

    def _digest_trigger(self) -> IntervalTrigger:
        return IntervalTrigger(seconds=self.config.digest.check_every, timezone=timezone.utc)

    def _poll_jobs(self) -> list:
        assert self.scheduler is not None
        return [j for j in self.scheduler.get_jobs() if j.id.startswith("poll:")]

    def _schedule_polls(self, *, startup: bool = False) -> None:
        """(Re)create one poll job per enabled source; a source polled recently is not
        polled again right away after a restart or reload."""
        assert self.scheduler is not None and self.store is not None and self.http is not None
        now = datetime.now(timezone.utc)
        states = {s.name: s for s in self.store.source_states()}
        wanted: dict[str, SourceConfig] = {f"poll:{s.name}": s for s in self.config.sources
                                           if s.enabled}
        for job in self._poll_jobs():
            if job.id not in wanted:
                job.remove()
        for job_id, cfg in wanted.items():
            try:
                every = make_source(cfg, self.http).every
            except NotImplementedError as e:
                log.error("event=source_unavailable source=%s error=%r", cfg.name, str(e))
                continue
            trigger = poll_trigger(cfg, every)
            every = poll_interval(trigger, every)
            state = states.get(cfg.name)
            first = first_poll(trigger, state.last_poll if state else None, every, now)
            if startup and first <= now:
                self.first_polls.add(cfg.name)
            self.scheduler.add_job(self._job, trigger, id=job_id, name=job_id,
                                   args=(job_id, functools.partial(self._poll, cfg.name)),
                                   next_run_time=first, replace_existing=True)
            log.info("event=poll_scheduled source=%s first=%s every_s=%g", cfg.name,
                      first.isoformat(timespec="seconds"), every)

    async def _poll(self, name: str) -> None:
        assert self.store is not None
        cfg = next((s for s in self.config.sources if s.name == name), None)
        try:
            if cfg is not None and not self.stopping and self.leader:
                reports = await poll_sources([cfg], self.store, http=self.http, names=[name])
                if any(r.error for r in reports) and self._retried_soon(cfg):
                    self._retry_poll(name)
        finally:
            if name in self.first_polls:
                self.first_polls.discard(name)
                if not self.first_polls and not self.stopping:
                    self._run_digests_now()
        self._update_status()

    def _retried_soon(self, cfg: SourceConfig) -> bool:
        """Whether a failed poll of this source is tried again in POLL_RETRY_S: one polled at
        arXiv's fixed times, or on an interval longer than RETRY_BEYOND_S (a daily feed);
        one polled more often just waits for its next turn."""
        if isinstance(poll_trigger(cfg, POLL_RETRY_S), CronTrigger):
            return True
        try:
            return make_source(cfg, self.http).every > RETRY_BEYOND_S
        except NotImplementedError:
            return False

    def _retry_poll(self, name: str) -> None:
        """A failed poll of a source polled at arXiv's fixed times, or rarely (_retried_soon),
        is tried again in POLL_RETRY_S (and again while it fails), not at its next turn
        hours later: a digest due before it would miss the day's papers."""
        if self.scheduler is None or self.stopping:
            return
        job_id = f"retry:{name}"
        self.scheduler.add_job(
            self._job, DateTrigger(datetime.now(timezone.utc) + timedelta(
                seconds=POLL_RETRY_S), timezone=timezone.utc), id=job_id, name=job_id,
            args=(job_id, functools.partial(self._poll, name)), replace_existing=True)
        log.info("event=poll_retry_scheduled source=%s in_s=%d", name, POLL_RETRY_S)

    async def _prune(self) -> None:
        """Drop the messages of digests sent more than store.keep_sent_days ago, in a
        thread with its own connection (it can take seconds on a big store)."""
        if not self.leader:  # the leader prunes for every instance
            return
        days = self.config.store.keep_sent_days
        before = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(
            timespec="seconds")

        def prune() -> int:
            with open_store(self.config.store) as store:
                return store.prune_sent(before)

        began = time.monotonic()
        dropped = await asyncio.to_thread(prune)
        if dropped:
            log.info("event=sent_messages_dropped count=%d older_than_days=%d took_ms=%d",
                     dropped, days, (time.monotonic() - began) * 1000)

    def _schedule_inbound(self) -> None:
        """(Re)create the job that reads the [inbound] mailbox, or remove it."""
        assert self.scheduler is not None
        cfg = self.config.inbound
        if self.scheduler.get_job("inbound") is not None:
            self.scheduler.remove_job("inbound")
            if not cfg.enabled:
                log.info("event=inbound_off reason=no_imap_host")
        if not cfg.enabled:
            return
        self.scheduler.add_job(
            self._job, IntervalTrigger(seconds=cfg.every, timezone=timezone.utc), id="inbound",
            name="inbound", args=("inbound", self._inbound),
            next_run_time=datetime.now(timezone.utc) + timedelta(seconds=INBOUND_FIRST_RUN))
        log.info("event=inbound_scheduled server=%s:%d security=%s folder=%r every_s=%g",
                 cfg.imap_host, cfg.port, cfg.imap_security, cfg.folder, cfg.every)

    async def _inbound(self) -> None:
        """Read the [inbound] mailbox once: in a thread (imapclient blocks), with a store
        connection of its own; one key=value line says what it did."""
        if not self.leader:  # one instance reads the mailbox: the leader
            return
        cfg: InboundConfig = self.config.inbound
        target = self.config.store
        config = self.config

        def fetch():
            with open_store(target) as store:
                handle = self.inbound_handler(config, store)
                return fetch_and_handle(cfg, cfg.password, handle, stop=self._stop_asked,
                                        left=self.inbound_left)

        run = await asyncio.to_thread(fetch)
        if run.error:
            log.error("event=inbound_run %s error=%r", run.log_fields(), run.error)
        else:
            # a quiet mailbox every few minutes is not news
            level = logging.INFO if run.fetched or run.failed else logging.DEBUG
            log.log(level, "event=inbound_run %s%s", run.log_fields(),
                    " stopped=shutdown" if run.stopped else "")

    def _stop_asked(self) -> bool:
        return self.stopping or self.stop_requested.is_set()

    def _run_digests_now(self) -> None:
        """Run the digest job now (the first polls are done, or the web app queued mail)."""
        assert self.scheduler is not None
        job = self.scheduler.get_job("digests")
        if job is not None:
            job.modify(next_run_time=datetime.now(timezone.utc))

    async def _digests(self) -> None:
        assert self.store is not None
        self._progress()
        if self.first_polls:
            log.warning("event=first_polls_slow pending=%s waited_s=%d",
                        ",".join(sorted(self.first_polls)), STARTUP_POLL_GRACE)
            self.first_polls.clear()
        reports: list[DeliveryReport] = []
        if not self.stopping and not self.stop_requested.is_set():
            reports.append(await self._build_and_send())
        self._progress()
        while self.send_again and not self.stop_requested.is_set():
            # the web app queued mail after the sender above had finished
            self.send_again = False
            reports.append(await send_outbox(self.config, self.store, stop=self.stop_requested,
                                             progress=self._delivered))
        sent, deferred, failed = (sum(r.sent for r in reports), sum(r.deferred for r in reports),
                                  sum(r.failed for r in reports))
        if sent or deferred or failed:
            log.info("event=delivered sent=%d deferred=%d failed=%d", sent, deferred, failed)
        self._progress()
        self._update_status()

    async def _build_and_send(self) -> DeliveryReport:
        """Build what is due while sending the outbox; off the event loop (see jobs)."""
        assert self.store is not None
        try:
            if self.shared and self.config.delivery_method == "smtp":
                # the leader decides what is due (a round as of its clock); every instance
                # builds the shards it claims and sends
                if self.leader:
                    open_round(self.store, self.clock(), build_workers(self.config))
                built, report = await build_shards_and_send(
                    self.config, self.store, self.instance, stop=self.stop_requested,
                    progress=self._delivered, heartbeat=self._progress)
            else:
                built, report = await build_and_send(
                    self.config, self.store, now=self.clock(), stop=self.stop_requested,
                    progress=self._delivered, heartbeat=self._progress)
        except Exception as e:
            # logged, retried next tick; what is queued already (confirmations) still goes.
            # A DigestdError says what to do (a template that no longer compiles: its
            # file and line): no traceback
            if isinstance(e, DigestdError):
                log.error("event=build_failed error=%r", str(e))
            else:
                log.exception("event=build_failed error=%r", f"{type(e).__name__}: {e}")
            if self.stop_requested.is_set():
                return DeliveryReport()
            return await send_outbox(self.config, self.store, stop=self.stop_requested,
                                     progress=self._delivered)
        if (built.digests or built.feed_only or built.merged or built.quiet or built.stopped
                or built.failed):
            log.info("event=built digests=%d feed_only=%d empty_notes=%d quiet=%d caught_up=%d "
                     "merged=%d failed=%d papers_checked=%d took_ms=%d%s", built.digests,
                     built.feed_only, built.empty, built.quiet, built.caught_up, built.merged,
                     built.failed, built.papers_checked, built.took_s * 1000,
                     " stopped=shutdown" if built.stopped else "")
        if built.next_due and built.next_due != self.next_due_logged:
            # once each time it moves: between ticks that build nothing the log says when
            # something will happen (the digest job itself runs every check_every, quietly)
            self.next_due_logged = built.next_due
            log.info("event=next_digest at=%s", built.next_due)
        return report

    def _delivered(self, _report: DeliveryReport) -> None:
        self._progress()

    def _progress(self) -> None:
        self.last_progress = time.monotonic()

    # -- health ------------------------------------------------------------------------------------

    def health_problem(self) -> str | None:
        """Why the daemon is not healthy, or None. No WATCHDOG=1 goes out while there is one,
        so systemd restarts a daemon whose scheduler stopped or whose digest job hangs."""
        if self.scheduler is None or not self.scheduler.running:
            return "scheduler_stopped"
        if self.web is not None and self.web.task.done():
            return "web_server_stopped"  # unsubscribe links would fail: better restart
        stall_after = max(STALL_AFTER, 3 * self.config.digest.check_every)
        silent = time.monotonic() - self.last_progress
        if silent > stall_after:
            return f"digest_job_silent_{int(silent)}s"
        return None

    async def _watchdog(self, interval: float) -> None:
        reported = None
        while True:
            await asyncio.sleep(interval)
            # this task runs at all only while the loop is responsive
            problem = self.health_problem()
            if problem is None:
                self.notifier.watchdog()
                if reported:
                    log.info("event=healthy_again was=%s", reported)
            elif problem != reported:
                log.error("event=unhealthy reason=%s action=watchdog_pings_stopped", problem)
            reported = problem

    def status_text(self) -> str:
        """One line for `systemctl status`: the last poll and the outbox backlog."""
        assert self.store is not None
        states = [s for s in self.store.source_states()
                  if any(c.name == s.name and c.enabled for c in self.config.sources)]
        polled = [s.last_poll for s in states if s.last_poll]
        failing = sum(1 for s in states if s.consecutive_errors)
        counts = self.store.digest_counts()
        last = max(polled)[:16].replace("T", " ") + " UTC" if polled else "never"
        role = "" if not self.shared else "leader; " if self.leader else "not leading; "
        return (f"{role}last poll {last} ({failing} of {len(self._poll_jobs())} sources "
                f"failing); outbox {counts.get('queued', 0)} queued, "
                f"{counts.get('failed', 0)} failed")

    def _update_status(self) -> None:
        if self.notifier.enabled and not self.stopping:
            self.notifier.status(self.status_text())

    # -- reload ------------------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: re-read the config file. Sources, schedule, delivery, SMTP, digest, inbound
        and log settings apply at once; [store] and [web] changes need a restart (logged)."""
        path = self.config.path
        if path is None:
            log.warning("event=reload_skipped reason=no_config_file")
            return
        if self.scheduler is None or self.stopping:
            log.warning("event=reload_skipped reason=%s",
                        "stopping" if self.stopping else "starting")
            return
        self.notifier.reloading()
        try:
            new = load_config(path)
            check_templates(new.digest.templates_dir)  # as `config check` and `run` do
        except DigestdError as e:
            log.error("event=reload_failed error=%r note=keeping_old_config", str(e))
            self.notifier.ready(self.status_text())
            return
        restart = [name for name in ("store", "web")
                   if getattr(new, name) != getattr(self.config, name)]
        if restart:
            log.warning("event=reload_partial restart_needed=%s", ",".join(restart))
        new = dataclasses.replace(new, store=self.config.store, web=self.config.web)
        if new.log.level != self.config.log.level:
            logging.getLogger().setLevel(new.log.level_for(service=True).upper())
        check_changed = new.digest.check_every != self.config.digest.check_every
        old_inbound = self.config.inbound
        # the sections that changed, for the log ("changed=smtp,sources"; none: "-")
        changed = [f.name for f in dataclasses.fields(new) if f.compare and f.name not in (
            "store", "web") and getattr(new, f.name) != getattr(self.config, f.name)]
        self.config = new
        if self.scheduler.running:
            if self.leader:
                self._schedule_polls()
            if check_changed:
                self.scheduler.reschedule_job("digests", trigger=self._digest_trigger())
            if new.inbound != old_inbound:
                self._schedule_inbound()
        log.info("event=reloaded config=%s changed=%s sources=%d", path,
                 ",".join(changed) or "-", len(self._poll_jobs()))
        self.notifier.ready(self.status_text())


def run(config: Config) -> int:
    """`digestd run`: serve until SIGTERM or SIGINT; 0 after a clean stop."""

    async def main() -> None:
        await Daemon(config).run()

    asyncio.run(main())
    return 0
