"""One bad record stops nothing else: a digest that cannot be built fails alone, with its
reason on its outbox row and in /metrics; the other digests go out."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

from digestd.cli import main
from digestd.config import load_config
from digestd.jobs import build_and_send
from digestd.models import Paper
from digestd.store import Store


def _config(tmp_path: Path, sink, templates: Path) -> Path:
    path = tmp_path / "digestd.toml"
    path.write_text(textwrap.dedent(f"""
        [store]
        path = "{tmp_path / 's.sqlite3'}"
        [delivery]
        from = "Digest <digest@example.org>"
        [web]
        base_url = "https://digest.example.org"
        [digest]
        templates_dir = "{templates}"
        [smtp]
        host = "127.0.0.1"
        port = {sink.port}
        security = "none"
        max_connections = 2
    """), encoding="utf-8")
    return path


def test_three_poisoned_digests_of_100_fail_alone(tmp_path, smtp_sink, capfd):
    # a template of one's own that breaks on one paper (as a template mistake would)
    templates = tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    bundled = Path(__file__).parent.parent / "templates" / "email" / "paper.txt"
    (templates / "email" / "paper.txt").write_text(
        "{% if 'Explosive' in p.title %}{{ p.title.no_such_method() }}{% endif %}"
        + bundled.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = _config(tmp_path, smtp_sink, templates)
    config = load_config(cfg)
    with Store(config.store.path) as store:
        papers = [Paper(id=f"url:https://j.example.org/{i}", title=f"Graph paper number {i}",
                        abstract="About graphs.", source="j", published="2026-11-27")
                  for i in range(100)]
        papers.append(Paper(id="url:https://j.example.org/boom", title="Explosive sparsity",
                            abstract="About pruning.", source="j"))
        # broken data (a store written by hand, or a bug): upvotes that are no number; and
        # authors that are no names, which the store turns into text so matching never fails
        papers.append(Paper(id="url:https://j.example.org/odd", title="Odd tensor networks",
                            abstract="x", authors=(None, 3), upvotes="many",  # type: ignore
                            source="j"))
        store.add_papers(papers)
        for i in range(97):
            store.add_subscriber(f"reader{i:03d}@example.org", [f'"number {i}"'])
        # 1. an address that cannot be sent to (stored before addresses were checked)
        bad = store.add_subscriber("bad one@example.org", ['"number 1"'])
        # 2. a template error on one paper
        boom = store.add_subscriber("boom@example.org", ["sparsity"])
        # 3. a paper with broken data
        odd = store.add_subscriber("odd@example.org", ["tensor"])
        built, report = asyncio.run(build_and_send(config, store, force=True))
        assert (built.digests, built.failed) == (97, 3)
        assert report.sent == 97
        assert len(smtp_sink.received) == 97
        failed = {r.subscriber_id: r for r in store.outbox(status="failed")}
        assert set(failed) == {bad.id, boom.id, odd.id}
        assert all(r.last_error for r in failed.values())
        # nothing was marked sent for them: their papers wait for the next digest
        assert store.sent_among(store.paper_pks(["url:https://j.example.org/boom"]).values()
                                ) == {}
        assert store.outbox_stats()["digest"]["build_failed"] == 3
    log = capfd.readouterr().err
    assert "event=digest_build_failed" in log
    assert "bad one@example.org" not in log and "boom@example.org" not in log
    # `digestd outbox --failed` shows each with its reason; retrying sends nothing empty
    assert main(["--config", str(cfg), "outbox", "--failed"]) == 0
    out = capfd.readouterr().out
    assert out.count("last error") >= 3 and "UndefinedError" in out and "TypeError" in out
    assert main(["--config", str(cfg), "outbox", "retry", "--failed", "--no-send"]) == 0
    assert "0 messages due now" in capfd.readouterr().out


def test_idle_ticks_start_no_build_process(tmp_path, smtp_sink, monkeypatch):
    """A tick with nothing due (the next slot ahead, no subscriber or rule changed) sends the
    outbox but starts no build process; a change, or the slot's time, brings the build back."""
    from datetime import datetime, timedelta, timezone

    from digestd import jobs

    templates = tmp_path / "templates"
    templates.mkdir()
    config = load_config(_config(tmp_path, smtp_sink, templates))
    started = []
    real = jobs._build_in_children

    async def counting(*args, **kw):
        started.append(1)
        return await real(*args, **kw)

    monkeypatch.setattr(jobs, "_build_in_children", counting)
    noon = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)  # digests go out at 07:00 UTC
    with Store(config.store.path) as store:
        store.add_subscriber("a@example.org", ["graphs"], now="2026-11-29T00:00:00+00:00")

        def tick(at):
            return asyncio.run(jobs.build_and_send(config, store, now=at))

        tick(noon)
        tick(noon + timedelta(minutes=1))
        tick(noon + timedelta(minutes=2))
        assert len(started) == 1
        store.add_subscriber("b@example.org", ["pruning"], now="2026-11-30T12:02:30+00:00")
        tick(noon + timedelta(minutes=3))
        assert len(started) == 2
        tick(noon + timedelta(minutes=4))
        assert len(started) == 2
        tick(noon + timedelta(hours=19, minutes=1))  # past tomorrow's 07:00: due
        assert len(started) == 3
    jobs._IDLE.clear()
