"""Several `digestd run` against one PostgreSQL store (tests/postgres.py), as real processes:
kill -9 of one in the middle of sending leaves every digest delivered once (but the message in
flight on each of its connections, same Message-ID), and kill -9 of the leader while it polls
hands the polling to another instance within its lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.schedule import iso
from digestd.store import open_store

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 3  # per instance
SUBSCRIBERS = 5000

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def write_config(path: Path, url: str, *, smtp_port: int = 1, sources: str = "") -> Path:
    path.write_text(textwrap.dedent(f"""
        [store]
        url = "{url}"
        leader_lease = "2s"
        claim_lease = "3s"
        [delivery]
        from = "Digest <digest@example.org>"
        [smtp]
        host = "127.0.0.1"
        port = {smtp_port}
        security = "none"
        timeout = 20
        max_connections = {CONNECTIONS}
        [web]
        enabled = false
        [digest]
        check_every = "1s"
        build_workers = 1
        [log]
        level = "info"
    """) + textwrap.dedent(sources or """
        [[sources]]
        name = "sample"
        kind = "sample"
    """), encoding="utf-8")
    return path


def start(config: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIGESTD_", "NOTIFY_", "WATCHDOG_", "CREDENTIALS_"))}
    env["PYTHONPATH"] = str(ROOT)
    with log.open("ab") as stderr:
        return subprocess.Popen([sys.executable, "-m", "digestd.cli", "--config", str(config),
                                 "run"], env=env, cwd=config.parent, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)


def wait_for(condition, what: str, timeout: float) -> float:
    """Seconds it took until `condition()` held; fails after `timeout`."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def leader_pid(url: str) -> int | None:
    with open_store(url) as store:
        held = store.lease_holder("leader")
    return int(held[0].split("/")[1]) if held else None


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_instances_one_killed_mid_send_every_digest_once(tmp_path, postgres_url, smtp_sink):
    """5,000 subscribers due, two instances; kill -9 of the leader once ~1,500 digests went
    out: the other finishes. Every subscriber got the digest, none twice but a message in
    flight on a killed connection (then with the same Message-ID), and no subscriber has
    two digests for the period."""
    cfg = write_config(tmp_path / "digestd.toml", postgres_url, smtp_port=smtp_sink.port)
    assert main(["-c", str(cfg), "poll"]) == 0
    now = datetime.now(UTC)
    due = (now - timedelta(hours=1)).strftime("%H:%M")  # today's slot was an hour ago
    emails = [f"reader{i:04d}@example.org" for i in range(SUBSCRIBERS)]
    with open_store(postgres_url) as store, store.transaction():
        for addr in emails:
            store.add_subscriber(addr, ["diffusion"], send_at=due,
                                 now=iso(now - timedelta(days=2)))
    began = time.monotonic()
    procs = [start(cfg, tmp_path / f"digestd-{n}.log") for n in (1, 2)]
    try:
        wait_for(lambda: leader_pid(postgres_url) is not None, "a leader", 30)
        wait_for(lambda: len(smtp_sink.received) >= 1500, "1,500 digests sent", 60)
        victim = next(p for p in procs if p.pid == leader_pid(postgres_url))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = len(smtp_sink.received)
        survivor = next(p for p in procs if p is not victim)
        wait_for(lambda: len({r.rcpt_tos[0] for r in smtp_sink.received}) >= SUBSCRIBERS,
                 "every subscriber's digest", 90)
        # the dead instance's shard, claimed again once its lease ran out, is done too
        def round_closed() -> bool:
            with open_store(postgres_url) as store:
                return not store.build_round_open()
        wait_for(round_closed, "every shard of the round built", 60)
        time.sleep(2.5)  # a few ticks more: nothing goes out twice afterwards
        assert survivor.poll() is None
    finally:
        stop_all(procs)
    took = time.monotonic() - began
    assert killed_at < SUBSCRIBERS

    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert set(counts) == set(emails)
    repeated = {addr: n for addr, n in counts.items() if n > 1}
    # at most the message in flight on each of the killed instance's connections
    assert len(repeated) <= CONNECTIONS and set(repeated.values()) <= {2}, repeated
    for addr in repeated:
        copies = {r.message["Message-ID"] for r in smtp_sink.received if r.rcpt_tos[0] == addr}
        assert len(copies) == 1, (addr, copies)
    with open_store(postgres_url) as store:
        assert store.digest_counts() == {"sent": SUBSCRIBERS}
        assert store.db.execute("SELECT count(*) FROM (SELECT subscriber_id, period FROM "
                                "digests GROUP BY subscriber_id, period HAVING count(*) > 1) "
                                "twice").fetchone()[0] == 0
        assert store.db.execute("SELECT count(DISTINCT message_id) FROM digests").fetchone()[0] \
            == SUBSCRIBERS
        assert not store.outbox_claimants()
    logs = [(tmp_path / f"digestd-{n}.log").read_text() for n in (1, 2)]
    # both instances built and sent: the round's shards and the outbox were shared
    assert all("event=build_shard_claimed" in text for text in logs), logs
    assert "Traceback" not in "".join(logs)
    print(f"two instances: {SUBSCRIBERS} digests in {took:.1f} s, killed after {killed_at}, "
          f"{len(repeated)} sent twice")


class _SlowFeed(BaseHTTPRequestHandler):
    """A feed whose first request hangs (the leader dies while it polls); the others are
    answered at once with an empty RSS feed. Every request's time is kept."""

    requests: list[float] = []
    hang = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        type(self).requests.append(time.monotonic())
        if len(type(self).requests) == 1:
            type(self).hang.wait(60)
        body = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                b"<link>http://x/</link><description>d</description></channel></rss>")
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:  # the killed leader's request
            pass

    def log_message(self, *args) -> None:
        pass


def test_the_leader_killed_while_polling_another_polls_within_its_lease(tmp_path, postgres_url):
    _SlowFeed.requests, _SlowFeed.hang = [], threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFeed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = write_config(tmp_path / "digestd.toml", postgres_url, sources=f"""
        [[sources]]
        name = "slow"
        kind = "feed"
        url = "http://127.0.0.1:{server.server_port}/feed.xml"
        every = "1h"
    """)
    procs = [start(cfg, tmp_path / f"digestd-{n}.log") for n in (1, 2)]
    try:
        wait_for(lambda: len(_SlowFeed.requests) >= 1, "the leader's poll", 30)
        pid = leader_pid(postgres_url)
        victim = next(p for p in procs if p.pid == pid)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed = time.monotonic()
        wait_for(lambda: len(_SlowFeed.requests) >= 2, "another instance's poll", 60)
        took = _SlowFeed.requests[1] - killed
        survivor = next(p for p in procs if p is not victim)
        assert leader_pid(postgres_url) == survivor.pid
    finally:
        _SlowFeed.hang.set()
        stop_all(procs)
        server.shutdown()
        server.server_close()
    # the lease is 2 s, tried every third of it: well within a minute
    assert took < 10, took
    log = next((tmp_path / f"digestd-{n}.log").read_text() for n, p in zip((1, 2), procs)
               if p is survivor)
    assert "event=leader_elected" in log
    with open_store(postgres_url) as store:
        state = {s.name: s for s in store.source_states()}["slow"]
        assert state.last_poll is not None and not state.consecutive_errors


async def test_two_web_apps_on_one_store_share_rate_limits_and_csrf(tmp_path, smtp_sink,
                                                                    postgres_url, monkeypatch):
    """Two instances' web apps behind one proxy: a form shown by one is accepted by the
    other (one link secret), and a client's feedback posts count against one limit
    wherever they land (the store counts them)."""
    import httpx

    from digestd.web import create_app

    from .test_archive import BROAD, Day
    from .test_feedback import feedback_links, form_of, sent_digest
    from .test_web import path_of

    monkeypatch.setattr("digestd.web.guard.FEEDBACK_PER_IP", 3)
    day = Day(tmp_path, smtp_sink, store_url=postgres_url)
    other_store = open_store(day.config.store)
    try:
        other = create_app(day.config, other_store, clock=day.clock)
        actions, _pages, _html = feedback_links(sent_digest(day, rules=(BROAD,)))
        more = path_of(actions[0])

        def client(app) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(
                app=app, client=("198.51.100.7", 4242)), base_url="http://testserver")

        async with client(day.app) as first, client(other) as second:
            fields = form_of((await first.get(more)).text, "/more")
            second.cookies = first.cookies  # the same browser, behind one proxy
            answers = [(await c.post(more, data=fields)).status_code
                       for c in (first, second, first, second)]
        assert answers == [303, 303, 303, 429]
    finally:
        other_store.close()
        day.store.close()
