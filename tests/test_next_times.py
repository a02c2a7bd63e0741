"""When the next digest and the next poll happen, as the daemon's schedule says, told by
`subscribers list`, `send --dry-run`, `sources` and the daemon's log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digestd.cli import main
from digestd.store import open_store

from .conftest import init_offline

TOKYO = ZoneInfo("Asia/Tokyo")  # no DST: the expected times below hold on any day


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    assert init_offline(tmp_path) == 0
    return tmp_path / "digestd.toml"


def _later(hours: int) -> datetime:
    """A whole minute `hours` from now, in Tokyo."""
    return (datetime.now(UTC) + timedelta(hours=hours)).astimezone(TOKYO).replace(
        second=0, microsecond=0)


def test_subscribers_list_says_when_each_next_digest_is_due(site, capsys):
    at = _later(2)
    assert main(["-c", str(site), "subscribers", "add", "a@example.org", "--rule", "graphs",
                 "--timezone", "Asia/Tokyo", "--send-at", f"{at:%H:%M}"]) == 0
    assert main(["-c", str(site), "subscribers", "add", "b@example.org", "--rule", "x"]) == 0
    assert main(["-c", str(site), "subscribers", "pause", "b@example.org"]) == 0
    capsys.readouterr()
    assert main(["-c", str(site), "subscribers", "list"]) == 0
    head, a, b, *_ = capsys.readouterr().out.splitlines()
    assert "NEXT_DIGEST" in head.split()
    col = head.index("NEXT_DIGEST")
    utc = at.astimezone(UTC)
    when = f"{at:%Y-%m-%d %H:%M} JST (" + (
        f"{utc:%H:%M}" if utc.date() == at.date() else f"{utc:%Y-%m-%d %H:%M}") + " UTC)"
    assert a[col:].startswith(when)
    assert b[col:].startswith("- ")  # paused: no digest to come
    assert main(["-c", str(site), "subscribers", "list", "--json"]) == 0
    first, second = json.loads(capsys.readouterr().out)
    assert first["next_digest_at"] == utc.isoformat(timespec="seconds")
    assert first["next_digest_local"] == at.isoformat(timespec="minutes")
    assert first["next_digest_due_now"] is False
    assert second["next_digest_at"] is None and second["next_digest_local"] is None


def test_a_slot_passed_and_not_built_is_due_now(site, capsys):
    """A slot since the subscriber's last one, not built yet (the daemon is not running):
    the next check builds it, and the list says so."""
    at = _later(-1)
    assert main(["-c", str(site), "subscribers", "add", "a@example.org", "--rule", "graphs",
                 "--timezone", "Asia/Tokyo", "--send-at", f"{at:%H:%M}"]) == 0
    with open_store(str(site.parent / "digestd.sqlite3")) as store:
        sub = store.get_subscriber("a@example.org")
        store.mark_slot(sub.id, (at - timedelta(days=1)).astimezone(UTC).isoformat())
    capsys.readouterr()
    assert main(["-c", str(site), "subscribers", "list"]) == 0
    head, a, *_ = capsys.readouterr().out.splitlines()
    assert a[head.index("NEXT_DIGEST"):].startswith(f"due now ({at:%Y-%m-%d %H:%M} JST")
    assert main(["-c", str(site), "send", "--dry-run"]) == 0
    out = capsys.readouterr().out
    # nothing polled yet: due, but without matches, so no email (and it says why)
    assert "1 digest due now without new matches: no email" in out
    assert "no other is due now: the next digest is due at" in out
    assert main(["-c", str(site), "poll"]) == 0
    capsys.readouterr()
    assert main(["-c", str(site), "send", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would send a@example.org" in out and "is due now" not in out


def test_send_dry_run_says_when_the_next_digest_is_due(site, capsys):
    """Two minutes before a digest, "0 digests would be built" alone looks like a fault."""
    at = _later(3)
    assert main(["-c", str(site), "subscribers", "add", "a@example.org", "--rule", "graphs",
                 "--timezone", "Asia/Tokyo", "--send-at", f"{at:%H:%M}"]) == 0
    capsys.readouterr()
    assert main(["-c", str(site), "send", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "0 digests would be built" in out
    assert f"the next digest is due at {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC (in 3 h;" in out


def test_sources_say_when_each_is_polled_next(site, capsys):
    """The interval since the last poll, arXiv's fixed times after theirs, "now" for a
    source never polled, none for a disabled one: as the daemon schedules them."""
    text = site.read_text(encoding="utf-8")
    site.write_text(text + '\n[[sources]]\nname = "arxiv-2"\nkind = "arxiv-rss"\n'
                    'categories = ["cs.LG"]\n', encoding="utf-8")
    assert main(["-c", str(site), "poll", "--source", "sample"]) == 0
    polled = datetime.now(UTC).replace(microsecond=0)
    with open_store(str(site.parent / "digestd.sqlite3")) as store:
        state = {s.name: s for s in store.source_states()}["sample"]
        # arXiv's were polled at 12:30 New York time; the next turn is 20:30 that day
        noon = datetime.now(ZoneInfo("America/New_York")).replace(
            hour=12, minute=31, second=0, microsecond=0)
    capsys.readouterr()
    assert main(["-c", str(site), "sources", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    last = datetime.fromisoformat(state.last_poll)
    assert rows["sample"]["next_poll_at"] == (last + timedelta(days=1)).isoformat()
    assert rows["sample"]["next_poll_jitter_s"] == 300
    assert rows["arxiv-ml"]["next_poll_at"] is None  # disabled
    assert datetime.fromisoformat(rows["arxiv-2"]["next_poll_at"]) <= polled + timedelta(
        seconds=5)  # never polled: at once
    assert main(["-c", str(site), "sources"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("sample "))
    assert f"next poll {last + timedelta(days=1):%Y-%m-%d %H:%M} UTC" in line
    assert "next poll now (due)" in next(x for x in out.splitlines() if x.startswith("arxiv-2"))
    assert "up to 10m later" in out

    with open_store(str(site.parent / "digestd.sqlite3")) as store:
        store.record_poll("arxiv-2", ok=True, now=noon.astimezone(UTC).isoformat())
    from digestd.config import load_config
    from digestd.daemon.parts import next_poll

    cfg = next(s for s in load_config(site).sources if s.name == "arxiv-2")
    at = next_poll(cfg, 6 * 3600.0, noon.astimezone(UTC).isoformat(), noon)
    assert at == noon.replace(hour=20, minute=30)


async def test_the_daemon_logs_when_the_next_digest_is_due(site):
    """`run` is quiet between ticks that build nothing: it says once when the next is."""
    import logging

    from digestd import daemon as D
    from digestd.config import load_config

    at = _later(2)
    assert main(["-c", str(site), "subscribers", "add", "a@example.org", "--rule", "graphs",
                 "--timezone", "Asia/Tokyo", "--send-at", f"{at:%H:%M}"]) == 0
    d = D.Daemon(load_config(site))
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore
    logger = logging.getLogger("digestd.daemon")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    with open_store(str(site.parent / "digestd.sqlite3")) as store:
        d.store = store
        try:
            await d._build_and_send()
            await d._build_and_send()
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
    expected = at.astimezone(UTC).isoformat()
    assert records.count(f"event=next_digest at={expected}") == 1
