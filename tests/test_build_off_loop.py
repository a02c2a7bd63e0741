"""Building digests off the event loop: the daemon answers while it builds for thousands of
subscribers, and a stop (SIGTERM) ends a running build at once without losing or repeating a
digest. Real parts: the store (a SQLite file in tmp_path, then a PostgreSQL database), the
aiosmtpd sink, the web app over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timezone

import httpx
import pytest

from digestd.daemon import Daemon
from digestd.jobs import build_and_send, build_digests
from digestd.models import Paper
from digestd.store import BaseStore, open_store

from .conftest import free_port

NOW = datetime(2026, 6, 2, 7, 1, tzinfo=timezone.utc)  # a minute after everybody's slot


def fill(path, subscribers: int, papers: int = 3) -> list[str]:
    """`subscribers` readers whose 07:00 UTC digest is due at NOW, each matching `papers`."""
    emails = [f"r{i:05d}@example.org" for i in range(subscribers)]
    with open_store(path) as store:
        with store.transaction():
            for email in emails:
                store.add_subscriber(email, ["diffusion"], send_at="07:00",
                                     now="2026-06-01T00:00:00+00:00")
        store.add_papers([Paper(id=f"arxiv:2606.{i:05d}", title=f"Diffusion, part {i}",
                                abstract="We diffuse.", source="arxiv", published="2026-06-01")
                          for i in range(papers)], now="2026-06-01T20:00:00+00:00")
    return emails


def digests_per_subscriber(store: BaseStore) -> Counter:
    return Counter(r.recipient for r in store.outbox() + store.outbox(status="sent"))


def smtp_config(write_config, store_toml, sink, extra: str = ""):
    return write_config(f"""
        [store]
        {store_toml}
        [delivery]
        from = "Digest <digest@example.org>"
        [smtp]
        host = "127.0.0.1"
        port = {sink.port}
        security = "none"
        max_connections = 2
        {extra}
    """)


async def test_a_stop_ends_the_build_process_and_the_next_run_builds_the_rest(
        write_config, store_url, store_toml, smtp_sink):
    emails = fill(store_url, 5000, papers=1)
    config = smtp_config(write_config, store_toml, smtp_sink)
    stop = asyncio.Event()
    with open_store(store_url) as store:
        run = asyncio.ensure_future(build_and_send(config, store, now=NOW, stop=stop))
        while not smtp_sink.received:  # the child committed its first batch
            await asyncio.sleep(0.005)
        stop.set()
        began = time.monotonic()
        built, sent = await asyncio.wait_for(run, 10)
        took = time.monotonic() - began
        assert took < 1.5, took  # SIGTERM ends the child at once (SIGKILL only after 2 s)
        assert built.stopped and sent.sent == len(smtp_sink.received) < len(emails)
        first = digests_per_subscriber(store)
        assert 0 < len(first) < len(emails)  # committed batches stay, the rest was rolled back
        assert not store.outbox_claimants()
        # the next run builds exactly the digests the stopped one did not
        again = build_digests(config, store, now=NOW)
        assert again.digests == len(emails) - len(first)
        assert digests_per_subscriber(store) == Counter(emails)
    assert len({r.rcpt_tos[0] for r in smtp_sink.received}) == len(smtp_sink.received)


async def test_outbox_method_builds_in_a_thread_and_stops_between_batches(
        write_config, tmp_path, store_url, store_toml):
    emails = fill(store_url, 450)
    config = write_config(f"""
        [store]
        {store_toml}
        [delivery]
        method = "outbox"
        outbox_dir = "{tmp_path / 'outbox'}"
    """)
    stop = asyncio.Event()
    stop.set()
    with open_store(store_url) as store:
        built, written = await build_and_send(config, store, now=NOW, stop=stop)
        assert built.stopped and built.digests == 0 and written.sent == 0
        built, written = await build_and_send(config, store, now=NOW)
        assert not built.stopped and built.digests == written.sent == len(emails)
        assert digests_per_subscriber(store) == Counter(emails)
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == len(emails)


@pytest.mark.parametrize("method", ["outbox", "smtp"])
async def test_the_daemon_answers_while_it_builds(write_config, tmp_path, store_url, store_toml,
                                                  smtp_sink, method):
    """The web app's /healthz and a loop-latency probe answer within a second while the
    digest job builds for thousands of subscribers; for SMTP, a stop mid-build is quick."""
    pytest.importorskip("digestd.web")
    emails = fill(store_url, 3000)
    port = free_port()
    common = f"""
        [web]
        listen = "127.0.0.1:{port}"
        [digest]
        check_every = "1h"
    """
    if method == "smtp":
        config = smtp_config(write_config, store_toml, smtp_sink, common)
    else:
        config = write_config(f"""
            [store]
            {store_toml}
            [delivery]
            method = "outbox"
            outbox_dir = "{tmp_path / 'outbox'}"
        """ + common)
    d = Daemon(config, clock=lambda: NOW)  # no sources: the digest job runs at start
    task = asyncio.create_task(d.run())
    lags: list[float] = []
    answers: list[float] = []
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 20
        while "digests" not in d.running.values():
            assert not task.done() and time.monotonic() < deadline
            await asyncio.sleep(0.005)
        probe_until = time.monotonic() + 1.5
        while "digests" in d.running.values() and time.monotonic() < probe_until:
            asked = time.monotonic()
            answer = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            answers.append(time.monotonic() - asked)
            assert answer.status_code == 200
            slept = time.monotonic()
            await asyncio.sleep(0.02)
            lags.append(time.monotonic() - slept - 0.02)
    building = "digests" in d.running.values()
    stopped_at = time.monotonic()
    d.request_stop("test")
    await asyncio.wait_for(task, 10)
    took_to_stop = time.monotonic() - stopped_at
    print(f"method={method} probes={len(answers)} healthz_max_ms={max(answers) * 1000:.0f} "
          f"loop_lag_max_ms={max(lags) * 1000:.0f} stop_ms={took_to_stop * 1000:.0f}")
    assert len(answers) >= 5, answers  # the probes ran while the job was building
    assert max(answers) < 1.0 and max(lags) < 1.0, (answers, lags)
    if method == "smtp":
        assert building, "the build ended before the stop: make it bigger"
        assert took_to_stop < 4.0  # the child is terminated, not waited for
    with open_store(store_url) as store:
        # what the stopped build did not commit (on a busy machine the outbox build is
        # stopped too) is built by the next run, once
        build_digests(config, store, now=NOW)
        assert digests_per_subscriber(store) == Counter(emails)
        if method == "smtp":
            sent = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
            assert set(sent.values()) <= {1}
