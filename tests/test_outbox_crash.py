"""kill -9 of a real `digestd` process while it builds or sends, then `digestd send` again:
every digest arrives, and none twice (at worst the messages in flight at the kill, with the
same Message-ID). The aiosmtpd server on 127.0.0.1 counts what it received. The kills of
sending and building run on each backend (SQLite, PostgreSQL); the sent journals are files
beside [store] path with either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.store import Store, open_store

from .test_deliver import queue

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 3

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def config(tmp_path: Path, sink, smtp_extra: str = "", store: str = "") -> Path:
    """`store`: the [store] table's line (store_toml); path stays digestd.sqlite3 here."""
    path = tmp_path / "digestd.toml"
    path.write_text(f"""
[store]
{store}

[delivery]
from = "Digest <digest@example.org>"

[web]
base_url = "https://digest.example.org"

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
timeout = 20
max_connections = {CONNECTIONS}
{smtp_extra}

[[sources]]
name = "sample"
kind = "sample"
""")
    return path


def python(*args: str) -> subprocess.Popen:
    """`python ARGS` with this checkout's digestd, its output captured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def digestd(cfg: Path, *args: str) -> subprocess.Popen:
    return python("-m", "digestd.cli", "-c", str(cfg), *args)


def sent_in_store(db_path: Path | str) -> int:
    with open_store(db_path) as store:
        return store.digest_counts().get("sent", 0)


def wait_for(condition, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def kill(proc: subprocess.Popen, db_path: Path | str | None = None) -> None:
    """kill -9 of a digestd process; with `db_path`, also wait until every sender that
    holds claims is gone (a build process that helps send dies with its parent)."""
    from digestd.deliver import owner_alive

    proc.send_signal(signal.SIGKILL)
    proc.wait(10)  # reaped: a zombie's pid would still look alive
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    if db_path is not None:
        def claimants_gone() -> bool:
            with open_store(db_path) as store:
                return not any(owner_alive(o) for o in store.outbox_claimants())
        wait_for(claimants_gone, "the helpers of the killed process to die with it")


@pytest.mark.parametrize("server_had_them", [False, True],
                         ids=["killed-before-the-server-took-them",
                              "killed-after-the-server-took-them-before-250"])
def test_sigkill_mid_send_then_send_again(tmp_path, store_url, store_toml, smtp_sink, capsys,
                                          server_had_them):
    # one sending process with CONNECTIONS connections (a rate limit keeps the build
    # process from helping, whose share of the rows would depend on timing)
    cfg = config(tmp_path, smtp_sink, "max_per_second = 10000", store_toml)
    db_path = store_url
    emails = [f"reader{i:02d}@example.org" for i in range(30)]
    with open_store(db_path) as store:
        queue(store, emails)
    # the first 10 messages go through; then every DATA hangs until the test says so, with
    # the message either not taken yet or already taken by the server (its 250 not yet sent)
    smtp_sink.handler.hold_accepts = server_had_them
    smtp_sink.handler.hold_after = 10
    proc = digestd(cfg, "send")
    try:
        wait_for(lambda: smtp_sink.handler.parked == CONNECTIONS, "every connection in DATA")
        wait_for(lambda: sent_in_store(db_path) == 10, "the first 10 marked sent")
    finally:
        kill(proc, db_path)
    in_flight = {r.rcpt_tos[0] for r in smtp_sink.received[10:]}
    smtp_sink.handler.release()
    capsys.readouterr()
    assert main(["-c", str(cfg), "send"]) == 0
    assert "20 sent, 0 deferred, 0 failed" in capsys.readouterr().out

    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert set(counts) == set(emails)
    repeated = {email for email, n in counts.items() if n > 1}
    if server_had_them:
        # the ambiguous window of SMTP itself: those messages go out again, same Message-ID
        assert repeated == in_flight and len(repeated) == CONNECTIONS
        for email in repeated:
            copies = [r.data for r in smtp_sink.received if r.rcpt_tos[0] == email]
            assert len(copies) == 2 and copies[0] == copies[1]
    else:
        assert not repeated and not in_flight
    with open_store(db_path) as store:
        assert store.digest_counts() == {"sent": 30}
        assert not store.outbox_claimants()


def test_sigkill_between_build_and_send(tmp_path, store_toml, smtp_sink, capsys):
    cfg = config(tmp_path, smtp_sink, store=store_toml)
    assert main(["-c", str(cfg), "poll"]) == 0
    rules = ["diffusion", "segmentation", '"language models"', "reinforcement", "3D"]
    for i in range(10):
        assert main(["-c", str(cfg), "subscribers", "add", f"r{i}@example.org",
                     "--rule", rules[i % len(rules)]]) == 0
    build_then_die = (
        "import os, signal, sys\n"
        "from digestd.config import load_config\n"
        "from digestd.jobs import build_digests\n"
        "from digestd.store import open_store\n"
        "config = load_config(sys.argv[1])\n"
        "with open_store(config.store) as store:\n"
        "    print(build_digests(config, store, force=True).digests, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = python("-c", build_then_die, str(cfg))
    out, _ = done.communicate(timeout=60)
    assert done.returncode == -signal.SIGKILL and int(out) == 10
    assert not smtp_sink.received
    capsys.readouterr()
    assert main(["-c", str(cfg), "send", "--now"]) == 0
    out = capsys.readouterr().out
    assert "built 0 digests" in out and "10 sent, 0 deferred, 0 failed" in out
    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert len(counts) == 10 and set(counts.values()) == {1}
    # and nothing more goes out on the next run
    assert main(["-c", str(cfg), "send", "--now"]) == 0
    assert len(smtp_sink.received) == 10


def test_sigkill_with_marks_only_in_the_sent_journal(tmp_path, store_url, store_toml, smtp_sink,
                                                     capsys):
    """The marks of messages the server took reach the store in batches; until then they
    are in the sent journal, which the next sender applies before anything else. On
    PostgreSQL there is no journal: each 250 is committed (a group commit) before its
    connection sends again, so the store has every mark already when the process dies."""
    # a rate limit keeps the build process from helping: one sender, whose batches of
    # marks are held back below
    cfg = config(tmp_path, smtp_sink, "max_per_second = 10000", store_toml)
    db_path = store_url
    emails = [f"reader{i:02d}@example.org" for i in range(30)]
    with open_store(db_path) as store:
        queue(store, emails)
    smtp_sink.handler.hold_after = 10  # 10 accepted (250), then every DATA waits
    never_store_marks = (
        "import sys\n"
        "import digestd.deliver.marks as d\n"
        "d.MARKS_EVERY_S, d.MARKS_PER_WRITE = 3600.0, 10**9\n"
        "from digestd.cli import main\n"
        "sys.exit(main(['-c', sys.argv[1], 'send']))\n")
    proc = python("-c", never_store_marks, str(cfg))
    try:
        wait_for(lambda: smtp_sink.handler.parked == CONNECTIONS, "every connection in DATA")
        assert len(smtp_sink.received) == 10
        journals = list(tmp_path.glob("digestd.sqlite3.sent-journal.*"))
        with open_store(db_path) as store:
            if store.sql.name == "postgresql":  # committed, not journaled
                assert store.digest_counts() == {"sent": 10, "queued": 20}
                assert not journals
            else:
                assert store.digest_counts() == {"queued": 30}  # the marks are journaled only
                assert len(journals) == 1 and \
                    len(journals[0].read_text().splitlines()) == 1 + 10
    finally:
        kill(proc, db_path)
    smtp_sink.handler.release()
    capsys.readouterr()
    assert main(["-c", str(cfg), "send"]) == 0
    assert "20 sent, 0 deferred, 0 failed" in capsys.readouterr().out
    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert set(counts) == set(emails) and set(counts.values()) == {1}
    assert not list(tmp_path.glob("digestd.sqlite3.sent-journal.*"))
    with open_store(db_path) as store:
        assert store.digest_counts() == {"sent": 30}
        assert not store.outbox_claimants()


async def test_journals_of_dead_senders_are_applied_and_the_others_left_alone(tmp_path,
                                                                               smtp_sink):
    import socket

    from digestd.config import SmtpConfig
    from digestd.deliver import SentJournal, new_owner, send_smtp

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    db_path = tmp_path / "digestd.sqlite3"
    with Store(db_path) as store:
        first, second, third = queue(store, ["a@example.org", "b@example.org", "c@example.org"])
        journals = {
            "live": SentJournal(str(db_path), new_owner()),  # this very process
            "dead": SentJournal(str(db_path), f"{socket.gethostname()}/{gone.stdout.strip()}/x"),
            "elsewhere": SentJournal(str(db_path), "another-host.example/1/x"),  # can't tell
        }
        journals["live"].record(first, "2026-11-23T06:00:00+00:00")
        journals["dead"].record(second, "2026-11-23T06:00:01+00:00")
        journals["elsewhere"].record(third, "2026-11-23T06:00:02+00:00")
        for j in journals.values():
            j.close(remove=False)
        # a sender starting this instant has made its journal but not written its owner
        # line yet: left alone; an empty one from minutes ago is a dead sender's
        prefix = str(db_path) + SentJournal.PREFIX
        (starting := Path(prefix + "starting")).touch()
        (stale := Path(prefix + "stale")).touch()
        os.utime(stale, (time.time() - 600, time.time() - 600))
        report = await send_smtp(store, SmtpConfig(host="127.0.0.1", port=smtp_sink.port,
                                                   security="none", timeout=5),
                                 "digest@example.org")
        sent_at = dict(store.db.execute("SELECT id, sent_at FROM digests"))
    # the dead sender's mark is applied: b is not sent again; a and c are
    assert report.sent == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["a@example.org",
                                                                 "c@example.org"]
    assert sent_at[second] == "2026-11-23T06:00:01+00:00"
    assert {p.name for p in tmp_path.glob("digestd.sqlite3.sent-journal.*")} == {
        journals["live"].path.name, journals["elsewhere"].path.name, starting.name}
    assert not stale.exists()
