"""The daemon: digests built on schedule from the store (injected clock), sd_notify, the web
server in the same loop, `digestd run` under a notify socket, and the systemd unit."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from digestd.daemon import Daemon, poll_trigger
from digestd.jobs import build_digests
from digestd.models import Paper
from digestd.schedule import iso
from digestd.sdnotify import Notifier
from digestd.store import Store, is_postgres_url, open_store

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- digests on schedule, from the store, with an injected clock ---------------------------------

@pytest.fixture
def config(write_config, tmp_path):
    return write_config(f"""
        [store]
        path = "{tmp_path / 'digestd.sqlite3'}"
        [delivery]
        method = "outbox"
        [web]
        enabled = false
        [digest]
        max_lateness = "12h"
    """)


def papers(day: str, n: int, topic: str = "noisy labels") -> list[Paper]:
    return [Paper(id=f"arxiv:{day}.{i:05d}", title=f"Learning with {topic}, part {i} of {day}",
                  abstract="We study it.", source="arxiv", published=day) for i in range(n)]


def sent_papers(store: Store, email_addr: str) -> list[str]:
    """Canonical ids in every digest queued for one subscriber, in order."""
    out = []
    for row in store.outbox() + store.outbox(status="sent"):
        if row.recipient == email_addr:
            msg = email.message_from_bytes(row.message, policy=email.policy.default)
            text = msg.get_body(("plain",)).get_content()
            out.extend(re.findall(r"part \d+ of [\dT-]+", text))
    return out


def periods(store: Store) -> list[tuple[str, str]]:
    rows = store.outbox() + store.outbox(status="sent")
    return sorted((r.recipient, r.period) for r in rows)


def test_due_digest_is_built_once_per_period(config, store):
    store.add_subscriber("ada@example.org", ['"noisy labels"'], timezone="Europe/Berlin",
                         send_at="07:00", now="2026-06-01T12:00:00+00:00")
    store.add_papers(papers("2026-06-01", 3), now="2026-06-01T20:00:00+00:00")
    # 06:59 in Berlin: not yet
    assert build_digests(config, store, now=utc(2026, 6, 2, 4, 59)).digests == 0
    built = build_digests(config, store, now=utc(2026, 6, 2, 5, 0))
    assert built.digests == 1 and built.matches == {"ada@example.org": 3}
    # every later tick of the same day finds nothing due, even with new papers
    store.add_papers(papers("2026-06-02", 2), now="2026-06-02T05:00:30+00:00")
    for minute in range(1, 120, 7):
        later = utc(2026, 6, 2, 5, 0) + timedelta(minutes=minute)
        assert build_digests(config, store, now=later).digests == 0
    # the next day's digest has the new papers only
    assert build_digests(config, store, now=utc(2026, 6, 3, 5, 0)).digests == 1
    assert periods(store) == [("ada@example.org", "2026-06-02"), ("ada@example.org", "2026-06-03")]
    got = sent_papers(store, "ada@example.org")
    assert len(got) == len(set(got)) == 5


def test_catch_up_after_downtime_is_one_digest_with_everything(config, store):
    store.add_subscriber("ada@example.org", ['"noisy labels"'], timezone="America/New_York",
                         send_at="07:00", now="2026-06-01T00:00:00+00:00")
    store.add_papers(papers("2026-06-01", 2), now="2026-06-01T09:00:00+00:00")
    assert build_digests(config, store, now=utc(2026, 6, 1, 11, 5)).digests == 1
    # the daemon is down from June 1st noon to June 4th 15:00 UTC (11:00 in New York);
    # papers arrived meanwhile (a CLI poll, or the first poll after the restart)
    for day in ("2026-06-02", "2026-06-03", "2026-06-04"):
        store.add_papers(papers(day, 2), now=f"{day}T09:00:00+00:00")
    built = build_digests(config, store, now=utc(2026, 6, 4, 15, 0))
    assert built.digests == 1
    assert periods(store)[-1] == ("ada@example.org", "2026-06-04")
    assert len(sent_papers(store, "ada@example.org")) == 2 + 6
    assert build_digests(config, store, now=utc(2026, 6, 4, 15, 1)).digests == 0


def test_too_late_digest_merges_into_the_next(config, store):
    store.add_subscriber("ada@example.org", ['"noisy labels"'], timezone="Europe/Berlin",
                         send_at="07:00", now="2026-06-01T00:00:00+00:00")
    store.add_papers(papers("2026-06-01", 2), now="2026-06-01T20:00:00+00:00")
    # back at 21:00 in Berlin: 14 h after 07:00 is later than max_lateness (12 h)
    late = build_digests(config, store, now=utc(2026, 6, 2, 19, 0))
    assert late.digests == 0 and late.merged == 1
    assert build_digests(config, store, now=utc(2026, 6, 2, 22, 0)).merged == 0  # logged once
    store.add_papers(papers("2026-06-02", 3), now="2026-06-02T20:00:00+00:00")
    built = build_digests(config, store, now=utc(2026, 6, 3, 5, 0))
    assert built.digests == 1 and built.matches == {"ada@example.org": 5}
    assert periods(store) == [("ada@example.org", "2026-06-03")]


def test_dst_days_in_berlin_send_once_a_day_through_the_store(config, store):
    # send_at inside the skipped hour (spring) and the repeated hour (autumn); the daemon
    # ticks every 10 minutes for four days around each change, papers arrive all day
    for name, start in (("spring", utc(2026, 3, 27)), ("autumn", utc(2026, 10, 23))):
        sub = store.add_subscriber(f"{name}@example.org", ['"noisy labels"'],
                                   timezone="Europe/Berlin", send_at="02:30", now=iso(start))
        now = start
        while now < start + timedelta(days=4):
            if now.minute == 0 and now.hour % 6 == 0:
                store.add_papers(papers(now.strftime("%Y-%m-%dT%H"), 1), now=iso(now))
            build_digests(config, store, now=now)
            now += timedelta(minutes=10)
        store.set_status(sub.id, "paused")
    got = periods(store)
    assert [p for who, p in got if who == "spring@example.org"] == [
        "2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
    assert [p for who, p in got if who == "autumn@example.org"] == [
        "2026-10-23", "2026-10-24", "2026-10-25", "2026-10-26"]
    for who in ("spring@example.org", "autumn@example.org"):
        ids = sent_papers(store, who)
        assert len(ids) == len(set(ids)) == 4 * 4 - 3  # all but those after the last slot


def test_a_crash_between_queueing_and_marking_does_not_send_twice(config, store):
    sub = store.add_subscriber("ada@example.org", ['"noisy labels"'],
                               now="2026-06-01T00:00:00+00:00")
    store.add_papers(papers("2026-06-01", 2), now="2026-06-01T20:00:00+00:00")
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 1)).digests == 1
    # as if the process died right after queue_digest: the slot is not marked handled
    store.db.execute("UPDATE subscribers SET last_slot_at = NULL, last_checked_at = NULL "
                     "WHERE id = ?", (sub.id,))
    store.add_papers(papers("2026-06-02", 1), now="2026-06-02T07:01:30+00:00")
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 2)).digests == 0
    assert build_digests(config, store, now=utc(2026, 6, 3, 7, 0)).matches == {
        "ada@example.org": 1}


def test_empty_day_note_only_for_those_who_asked(config, store):
    store.add_subscriber("quiet@example.org", ["quantum"], now="2026-06-01T00:00:00+00:00")
    store.add_subscriber("tell@example.org", ["quantum"], send_empty=True,
                         now="2026-06-01T00:00:00+00:00")
    store.add_papers(papers("2026-06-01", 4), now="2026-06-01T20:00:00+00:00")
    built = build_digests(config, store, now=utc(2026, 6, 2, 7, 0))
    assert built.digests == 1 and built.empty == 1 and built.quiet == 1 and not built.matches
    (row,) = store.outbox()
    assert row.recipient == "tell@example.org" and row.papers == 0
    msg = email.message_from_bytes(row.message, policy=email.policy.default)
    assert "nothing matched (4 papers checked)" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    assert "Nothing matched your rules for 2026-06-02 (4 new papers checked)" in text
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<html" in msg.get_body(("html",)).get_content()
    # the quiet subscriber's day is handled too: nothing is built for it again
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 5)).digests == 0
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 5)).quiet == 0


def test_forced_send_is_outside_the_schedule_and_never_resends(config, store):
    store.add_subscriber("ada@example.org", ['"noisy labels"'], now="2026-06-01T00:00:00+00:00")
    store.add_papers(papers("2026-06-01", 2), now="2026-06-01T20:00:00+00:00")
    assert build_digests(config, store, now=utc(2026, 6, 1, 21), force=True).digests == 1
    # the scheduled slot the next morning has nothing new: no email
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 0)).digests == 0


def test_cli_sets_the_schedule_and_refuses_a_bad_one(tmp_path, store_url, store_toml, capsys):
    from digestd.cli import main

    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\n{store_toml}\n')
    assert main(["-c", str(cfg), "subscribers", "add", "w@example.org", "--rule", "x",
                 "--timezone", "America/New_York", "--send-at", "06:45", "--frequency",
                 "weekly", "--weekday", "wed", "--send-empty"]) == 0
    with open_store(store_url) as store:
        sub = store.get_subscriber("w@example.org")
    assert (sub.timezone, sub.send_at, sub.frequency, sub.weekday, sub.send_empty) == (
        "America/New_York", "06:45", "weekly", 2, True)
    assert main(["-c", str(cfg), "subscribers", "add", "b@example.org", "--rule", "x",
                 "--timezone", "Mars/Olympus"]) == 2
    assert main(["-c", str(cfg), "subscribers", "add", "b@example.org", "--rule", "x",
                 "--send-at", "7am"]) == 2
    err = capsys.readouterr().err
    assert '--timezone must be an IANA time zone' in err and '--send-at must be' in err


def test_one_bad_schedule_does_not_hold_up_the_others(config, store, caplog):
    store.add_subscriber("ok@example.org", ['"noisy labels"'], now="2026-06-01T00:00:00+00:00")
    bad = store.add_subscriber("bad@example.org", ['"noisy labels"'],
                               now="2026-06-01T00:00:00+00:00")
    store.db.execute("UPDATE subscribers SET timezone = 'Nowhere/Atlantis' WHERE id = ?",
                     (bad.id,))
    store.add_papers(papers("2026-06-01", 1), now="2026-06-01T20:00:00+00:00")
    assert build_digests(config, store, now=utc(2026, 6, 2, 7, 0)).matches == {
        "ok@example.org": 1}
    assert "event=schedule_invalid" in caplog.text


# -- sd_notify -----------------------------------------------------------------------------------

def test_notifier_speaks_to_abstract_and_path_sockets(tmp_path):
    name = f"digestd-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        n = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000"})
        assert n.enabled and n.watchdog_interval == 2.0
        assert n.ready("all\nfine")
        assert sock.recv(4096) == b"READY=1\nSTATUS=all fine"
        n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        n.close()
    # a watchdog meant for another process is not ours; no socket means no-op
    assert Notifier({"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert not Notifier({}).enabled and not Notifier({}).ready()


# -- the daemon in this test's event loop ---------------------------------------------------------

class NotifyListener:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dn-")  # short: AF_UNIX paths max out at 107 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, field: str, timeout: float, *, after: int = 0) -> int:
        """Index of the first message (from `after`) with `field` as a line; fails on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            for i, (_, text) in enumerate(self.messages[after:], start=after):
                if field in text.split("\n"):
                    return i
            if time.monotonic() > deadline:
                raise AssertionError(f"no {field} within {timeout}s; got {self.messages}")
            time.sleep(0.02)

    def count(self, field: str) -> int:
        self.drain()
        return sum(1 for _, text in self.messages if field in text.split("\n"))

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    listener = NotifyListener()
    try:
        yield listener
    finally:
        listener.close()


def _daemon_config(write_config, tmp_path: Path, web: str, store: str = "") -> object:
    """`store`: the [store] table's line (store_toml), else a SQLite file in tmp_path."""
    return write_config(f"""
        [store]
        {store or f'path = "{tmp_path / "d.sqlite3"}"'}
        [delivery]
        method = "outbox"
        outbox_dir = "{tmp_path / 'outbox'}"
        [web]
        {web}
        [digest]
        check_every = "1h"
        [[sources]]
        name = "sample"
        kind = "sample"
    """)


async def _until_ready(d: Daemon, task: asyncio.Task, notify: NotifyListener) -> None:
    while not notify.count("READY=1"):
        assert not task.done(), task
        await asyncio.sleep(0.02)


async def test_ready_only_once_the_web_server_listens(write_config, tmp_path, notify):
    pytest.importorskip("digestd.web")
    port = free_port()
    config = _daemon_config(write_config, tmp_path, f'listen = "127.0.0.1:{port}"')
    d = Daemon(config, notifier=Notifier({"NOTIFY_SOCKET": notify.path,
                                          "WATCHDOG_USEC": "200000"}))
    task = asyncio.create_task(d.run())
    await _until_ready(d, task, notify)
    # on its SQLite store the run holds the lease `store copy` looks at
    assert d.store.lease_holder("running")[0] == d.instance
    # READY=1 came after the socket listens: a request is answered right away, from the
    # same store and the same loop
    async with httpx.AsyncClient() as client:
        answer = await client.get(f"http://127.0.0.1:{port}/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    await asyncio.sleep(0.5)
    assert notify.count("WATCHDOG=1") >= 3
    assert d.health_problem() is None
    d.last_progress -= 100_000  # a digest job silent for a day: the pings stop
    assert d.health_problem().startswith("digest_job_silent")
    await asyncio.sleep(0.15)  # a ping may be on its way
    before = notify.count("WATCHDOG=1")
    await asyncio.sleep(0.4)
    assert notify.count("WATCHDOG=1") == before
    d.request_stop("test")
    await asyncio.wait_for(task, 10)
    assert notify.count("STOPPING=1") == 1
    with Store(config.store.path) as store:  # a clean stop drops it
        assert store.lease_holder("running") is None
    with socket.socket() as again:  # the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


async def test_mail_queued_by_the_web_app_goes_out_at_once(write_config, tmp_path, notify):
    config = _daemon_config(write_config, tmp_path, "enabled = false")
    d = Daemon(config, notifier=Notifier({"NOTIFY_SOCKET": notify.path}))
    task = asyncio.create_task(d.run())
    await _until_ready(d, task, notify)
    await asyncio.sleep(0.2)
    while d.running:
        await asyncio.sleep(0.02)  # the first poll and digest run (at start) are over
    sub = d.store.add_subscriber("new@example.org", ["x"], status="pending")
    d.store.queue_digest(sub.id, "confirm", recipient=sub.email, message_id="<c@x>",
                         message=b"Subject: confirm\r\n\r\nhi\r\n", paper_pks=[])
    await d.wake_sender()  # what the web app calls after queueing a confirmation mail
    for _ in range(100):
        if list((tmp_path / "outbox").glob("*confirm*")):
            break
        await asyncio.sleep(0.02)
    assert list((tmp_path / "outbox").glob("*confirm*")), "not sent within 2 s (check_every=1h)"
    d.request_stop("test")
    await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("module", [None, "no_create_app"])
async def test_runs_without_a_web_app_when_the_build_has_none(write_config, tmp_path, notify,
                                                              monkeypatch, caplog, module):
    import types

    import digestd

    # None: importing digestd.web fails; otherwise a module without create_app/serve_web
    fake = None if module is None else types.ModuleType("digestd.web")
    monkeypatch.setitem(sys.modules, "digestd.web", fake)
    if fake is None:
        monkeypatch.delattr(digestd, "web", raising=False)
    else:
        monkeypatch.setattr(digestd, "web", fake, raising=False)
    config = _daemon_config(write_config, tmp_path, f'listen = "127.0.0.1:{free_port()}"')
    d = Daemon(config, notifier=Notifier({"NOTIFY_SOCKET": notify.path}))
    task = asyncio.create_task(d.run())
    await _until_ready(d, task, notify)
    assert "event=web_unavailable" in caplog.text and d.web is None
    d.request_stop("test")
    await asyncio.wait_for(task, 10)


def test_poll_triggers_follow_every_or_arxiv_announcements():
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from digestd.config import SourceConfig

    hourly = poll_trigger(SourceConfig(name="f", kind="feed", url="x"), 3600)
    assert isinstance(hourly, IntervalTrigger) and hourly.jitter == 300
    arxiv = poll_trigger(SourceConfig(name="a", kind="arxiv-rss", categories=("cs.LG",)), 21600)
    assert isinstance(arxiv, CronTrigger)
    fire = arxiv.get_next_fire_time(None, utc(2026, 6, 1, 12, 0))  # 08:00 in New York
    assert fire.astimezone(UTC).hour == 16 and 30 <= fire.minute <= 40  # 12:30 EDT + jitter
    explicit = poll_trigger(SourceConfig(name="a", kind="arxiv-rss", categories=("x",),
                                         every=1800), 1800)
    assert isinstance(explicit, IntervalTrigger)


# -- `digestd run` as a service --------------------------------------------------------------------

def _write_service_config(path: Path, store: Path | str, smtp_port: int, *,
                          extra: str = "") -> None:
    """`store`: a SQLite file, or a PostgreSQL URL."""
    key = "url" if is_postgres_url(str(store)) else "path"
    path.write_text(textwrap.dedent(f"""
        [store]
        {key} = "{store}"
        [delivery]
        from = "Digest <digest@example.org>"
        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "none"
        max_connections = 1
        [web]
        enabled = false
        [digest]
        check_every = "1s"
        [log]
        level = "info"
        [[sources]]
        name = "sample"
        kind = "sample"
    """) + extra, encoding="utf-8")


def _start(config: Path, notify: NotifyListener, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIGESTD_", "NOTIFY_", "WATCHDOG_", "CREDENTIALS_"))}
    env.update(PYTHONPATH=str(ROOT), NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="300000")
    with log.open("ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "digestd.cli", "--config", str(config),
                                 "run"], env=env, cwd=config.parent, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _stop(proc: subprocess.Popen, notify: NotifyListener) -> float:
    """SIGTERM; STOPPING=1 and exit 0 must follow within 10 s. Returns the seconds taken."""
    mark = len(notify.messages)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    notify.wait_for("STOPPING=1", 10, after=mark)
    try:
        code = proc.wait(timeout=10 - (time.monotonic() - began))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("digestd did not exit within 10 s of SIGTERM") from None
    assert code == 0
    return time.monotonic() - began


def test_digestd_run_as_a_service(tmp_path, store_url, smtp_sink, notify):
    """READY, watchdog pings, SIGHUP, SIGTERM mid-delivery, a restart: every subscriber gets
    exactly one digest, and each stop takes less than 10 s (on each backend)."""
    store_path = store_url
    config = tmp_path / "digestd.toml"
    _write_service_config(config, store_path, smtp_sink.port)
    now = datetime.now(UTC)
    due = (now - timedelta(hours=1)).strftime("%H:%M")  # today's slot was an hour ago
    emails = [f"reader{i:02d}@example.org" for i in range(30)]
    with open_store(store_path) as store:
        for addr in emails:
            store.add_subscriber(addr, ["diffusion"], send_at=due,
                                 now=iso(now - timedelta(days=2)))
    smtp_sink.handler.delay = 0.1  # slow enough that SIGTERM lands mid-delivery
    log = tmp_path / "digestd.log"

    proc = _start(config, notify, log)
    try:
        ready = notify.wait_for("READY=1", 20)
        time.sleep(1.0)
        notify.drain()
        pings = [t for t, text in notify.messages[ready:] if text == "WATCHDOG=1"]
        assert len(pings) >= 4, notify.messages  # every 0.15 s for WATCHDOG_USEC=0.3 s
        # drained while waiting: a full notify queue (10 datagrams) would block the daemon
        _wait(lambda: notify.drain() or len(smtp_sink.received) >= 3, 20, "the first digests")
        took = _stop(proc, notify)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = len(smtp_sink.received)
    # the messages in flight were finished, the rest handed back to the outbox
    assert took < 10 and 3 <= first < len(emails)

    proc = _start(config, notify, log)
    try:
        mark = len(notify.messages)
        notify.wait_for("READY=1", 20, after=mark)
        _wait(lambda: notify.drain() or len(smtp_sink.received) >= len(emails), 30,
              "the remaining digests")
        # SIGHUP: a second source appears without a restart
        _write_service_config(config, store_path, smtp_sink.port,
                              extra='\n[[sources]]\nname = "sample-b"\nkind = "sample"\n')
        mark = len(notify.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING=1", 10, after=mark)
        notify.wait_for("READY=1", 10, after=reloading)
        time.sleep(1.5)  # a tick or two more: nothing is sent twice
        took = _stop(proc, notify)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert took < 10

    recipients = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert recipients == Counter({addr: 1 for addr in emails})
    with open_store(store_path) as store:
        assert store.digest_counts() == {"sent": len(emails)}
    lines = log.read_text().splitlines()
    assert any("event=reloaded" in line and "changed=sources" in line and "sources=2" in line
               for line in lines)
    assert any("STATUS=" in text and "outbox" in text for _, text in notify.messages)
    assert "Traceback" not in log.read_text()
    # one line per event, key=value after the time stamp
    assert all(re.match(r"^\S+Z level=\w+ logger=\S+ \w+=", line) for line in lines), lines


# -- the systemd unit ------------------------------------------------------------------------------

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNIT = ROOT / "systemd" / "digestd.service"


def _installed_unit(tmp_path: Path) -> Path:
    # verify checks that ExecStart's program exists: stand one in where the unit expects it
    program = tmp_path / "digestd"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    unit = tmp_path / "digestd.service"
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/digestd run" in text
    unit.write_text(text.replace("/usr/local/bin/digestd", str(program)))
    return unit


def test_unit_has_the_hardening_the_issue_asks_for():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes",
                 "StateDirectory=digestd", "ConfigurationDirectory=digestd",
                 "LoadCredential=smtp-password:/etc/digestd/smtp-password",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "PrivateDevices=yes", "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "SystemCallFilter=@system-service", "CapabilityBoundingSet=\n",
                 "MemoryDenyWriteExecute=yes"):
        assert line in text, line
    # commented line by line: every directive has a comment right above it (or shares one
    # with the directives of its group)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            above = next(x for x in reversed(lines[:i]) if "=" not in x or x.startswith("#"))
            assert above.startswith("#"), line


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_passes(tmp_path):
    unit = _installed_unit(tmp_path)
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed")
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    unit = _installed_unit(tmp_path)
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0 and "offline" in done.stderr:
        pytest.skip("this systemd-analyze cannot rate units offline")
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found[1]) <= 2.0, found[0]  # "OK" is below 4.0; we keep well under


@pytest.mark.parametrize("hidden", ["missing", "unreadable"])
def test_the_reload_check_takes_credentials_it_cannot_see_as_given(tmp_path, capsys,
                                                                   monkeypatch, hidden):
    """systemd runs ExecReload= with $CREDENTIALS_DIRECTORY set but masked (v252) or not
    mounted (v256): `config check` must not fail (or crash) on a credential there, only on
    the file. The daemon reads the credentials itself when it reloads."""
    from digestd import cli

    config = tmp_path / "config.toml"
    _write_service_config(config, tmp_path / "s.sqlite3", 2525,
                          extra='[dkim]\nselector = "s1"\n')  # its key: credential "dkim-key"
    creds = tmp_path / "credentials"
    if hidden == "unreadable":  # as the service's user sees it under ExecReload= (v252)
        creds.mkdir()
        real_access = os.access
        monkeypatch.setattr(cli.start.os, "access", lambda p, mode: p != str(creds)
                            and real_access(p, mode))
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert cli.main(["--config", str(config), "config", "check"]) == 0
    assert "credentials not readable here" in capsys.readouterr().out
    assert cli.main(["--config", str(config), "config", "check", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    # the file is still checked, with file:line
    config.write_text(config.read_text().replace("port = 2525", 'port = "abc"'))
    assert cli.main(["--config", str(config), "config", "check", "--quiet"]) == 2
    line = config.read_text().splitlines().index('port = "abc"') + 1
    assert f'{config}:{line}: smtp.port must be an integer, got "abc"' in capsys.readouterr().err
    # where credentials are readable, a missing one is still an error
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    config.write_text(config.read_text().replace('port = "abc"', "port = 2525"))
    assert cli.main(["--config", str(config), "config", "check"]) == 2
    assert "dkim.selector is set but there is no key" in capsys.readouterr().err


def test_the_reload_check_stands_in_for_every_credential_digestd_reads():
    from digestd import cli

    source = "".join(p.read_text(encoding="utf-8")
                     for p in sorted((ROOT / "digestd" / "config").glob("*.py")))
    read = set(re.findall(r'\b(?:read_secret|secret)\("([^"]+)"', source))
    assert read and read <= set(cli.CREDENTIALS), read


async def test_the_daemon_drops_messages_sent_longer_ago_than_keep_sent_days(
        write_config, tmp_path, store_toml):
    config = _daemon_config(write_config, tmp_path, "", store_toml)
    assert config.store.keep_sent_days == 30
    with open_store(config.store) as store:
        sub = store.add_subscriber("a@example.org", ["t"])
        old, recent = (store.queue_digest(sub.id, period, recipient=sub.email,
                                          message_id=f"<{period}@x>", message=b"body",
                                          paper_pks=[]) for period in ("2020-01-01", "2026-11-22"))
        store.mark_sent(old, now="2020-01-01T08:00:00+00:00")
        store.mark_sent(recent)
    await Daemon(config)._prune()
    with open_store(config.store) as store:
        assert [r[0] for r in store.db.execute("SELECT digest_id FROM digest_bodies")] == [recent]
        assert store.digest_counts() == {"sent": 2}


@pytest.mark.parametrize("after", [0.5, 0.8, 1.2, 1.6])
def test_sigterm_at_any_moment_after_start_exits_0(tmp_path, notify, after, monkeypatch):
    """Even before the daemon's own handlers are installed (config, store, first polls).
    The interpreter's own start (about 0.1-0.3 s here) runs no digestd code that could
    catch it; systemd counts a death by SIGTERM as a clean stop anyway."""
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")
    config = tmp_path / "digestd.toml"
    _write_service_config(config, tmp_path / "s.sqlite3", free_port())
    began = time.monotonic()
    proc = _start(config, notify, tmp_path / "log")
    _wait(lambda: notify.count("READY=1") >= 0 and time.monotonic() > began + after,
          after + 5, "the moment to stop")  # reading the notify socket as systemd does
    proc.send_signal(signal.SIGTERM)
    try:
        _wait(lambda: notify.count("") >= 0 and proc.poll() is not None, 10, "exit")
        code = proc.wait(timeout=1)
    except (AssertionError, subprocess.TimeoutExpired):
        proc.send_signal(signal.SIGABRT)  # faulthandler: where it hangs, into the log
        time.sleep(0.5)
        proc.kill()
        proc.wait()
        raise AssertionError("digestd did not exit within 10 s of SIGTERM: "
                             + (tmp_path / "log").read_text()[-6000:]) from None
    assert code == 0, (tmp_path / "log").read_text()[-2000:]


def test_a_notify_socket_nobody_reads_never_blocks(notify):
    """The kernel queues only a few datagrams; past them a send must not stall the loop."""
    notifier = Notifier({"NOTIFY_SOCKET": notify.path})
    began = time.monotonic()
    try:
        results = [notifier.send("WATCHDOG=1") for _ in range(200)]
    finally:
        notifier.close()
    assert time.monotonic() - began < 2
    assert results[0] and not all(results)  # the first went through, later ones were dropped


def test_a_second_run_on_one_sqlite_store_is_refused_while_the_first_lives(tmp_path,
                                                                           smtp_sink, notify):
    """Two `digestd run` on one SQLite file would each poll, build and send: the second is
    refused (exit 2, naming the first's pid) while the first is alive; once it stopped, a
    run starts."""
    config = tmp_path / "digestd.toml"
    _write_service_config(config, tmp_path / "digestd.sqlite3", smtp_sink.port)
    log = tmp_path / "digestd.log"
    first = _start(config, notify, log)
    try:
        notify.wait_for("READY=1", 20)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DIGESTD_", "NOTIFY_", "WATCHDOG_", "CREDENTIALS_"))}
        env.update(PYTHONPATH=str(ROOT))
        second = subprocess.run([sys.executable, "-m", "digestd.cli", "--config", str(config),
                                 "run"], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2, second.stderr
        assert (f"is in use by another `digestd run` (pid {first.pid} on this host)"
                in second.stderr)
        assert "event=stopped" not in second.stderr  # it never started
        _stop(first, notify)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    again = _start(config, notify, log)
    try:
        mark = len(notify.messages)
        notify.wait_for("READY=1", 20, after=mark)
        _stop(again, notify)
    finally:
        if again.poll() is None:
            again.kill()
            again.wait()


async def test_a_failed_arxiv_poll_is_tried_again_soon(tmp_path):
    """arXiv is polled at fixed times, six hours apart: a poll that fails is tried again in
    POLL_RETRY_S, so a digest due before the next slot still gets the day's papers. So is a
    feed polled daily; a feed polled hourly (the default) just waits for its next turn."""
    import dataclasses

    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from digestd import daemon as D
    from digestd.config import load_config
    from digestd.config.schema import SourceConfig

    from .test_sources import fast_http

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: every poll fails
    arxiv = SourceConfig(name="arxiv", kind="arxiv-rss", categories=("cs.LG",),
                         url=f"http://127.0.0.1:{port}/rss/cs.LG")
    feed = SourceConfig(name="feed", kind="feed", url=f"http://127.0.0.1:{port}/feed.xml")
    daily = SourceConfig(name="daily", kind="feed", url=f"http://127.0.0.1:{port}/d.xml",
                         every=86400.0)
    config = dataclasses.replace(load_config(None), sources=(arxiv, feed, daily))
    daemon = D.Daemon(config)
    daemon.scheduler = AsyncIOScheduler(timezone=UTC)
    with open_store(str(tmp_path / "s.sqlite3")) as store:
        daemon.store, daemon.http = store, fast_http()
        daemon.leader = True
        try:
            for name in ("arxiv", "feed", "daily"):
                await daemon._poll(name)
        finally:
            await daemon.http.aclose()
    assert daemon.scheduler.get_job("retry:feed") is None
    soon = datetime.now(UTC) + timedelta(seconds=D.POLL_RETRY_S)
    for name in ("arxiv", "daily"):
        retry = daemon.scheduler.get_job(f"retry:{name}")
        assert retry is not None
        assert abs((retry.trigger.run_date - soon).total_seconds()) < 60
