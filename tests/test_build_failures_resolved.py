"""A digest that could not be built has no message: `outbox` and `outbox retry --failed` say
what resolves it (fix the cause, then `send --now`, which builds the next digest with its
papers), and once a later digest of the subscriber is built the failure is history, no
longer counted by `outbox`, /healthz or /metrics. No paper is sent twice or dropped."""

from __future__ import annotations

import asyncio
import email
from pathlib import Path

import httpx

from digestd.cli import main
from digestd.config import load_config
from digestd.store import Store
from digestd.web import create_app

from .conftest import init_offline

HINT = ("1 digest could not be built (no message: `outbox retry` has nothing to send): their "
        "papers wait for the next digest. Fix what the last error names (a template of "
        "digest.templates_dir, an address), then `digestd send --now` builds it; a failure a "
        "later digest superseded is no longer counted")


def _counted(config) -> tuple[int, dict, str]:
    """(build failures in /healthz, its outbox, the digestd_digests build_failed line of
    /metrics), from the web app on this store."""
    with Store(config.store.path) as store:
        app = create_app(config, store)

        async def ask():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://t") as client:
                return ((await client.get("/healthz")).json(),
                        (await client.get("/metrics")).text)

        health, metrics = asyncio.run(ask())
    [line] = [x for x in metrics.splitlines()
              if x.startswith('digestd_digests{state="build_failed"}')]
    return health["outbox"]["by_kind"]["digest"]["build_failed"], health["outbox"], line


def test_a_build_failure_is_resolved_by_the_next_digest_not_by_retry(tmp_path, capsys,
                                                                      smtp_sink):
    assert init_offline(tmp_path) == 0
    path = tmp_path / "digestd.toml"
    path.write_text(path.read_text(encoding="utf-8") + '\n[digest]\ntemplates_dir = "tpl"\n'
                    f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\n'
                    'security = "none"\n', encoding="utf-8")
    paper_txt = tmp_path / "tpl" / "email" / "paper.txt"
    paper_txt.parent.mkdir(parents=True)
    # compiles (config check passes), fails on every paper when rendered
    paper_txt.write_text("{{ p.no_such_field }}\n", encoding="utf-8")
    cfg = str(path)
    assert main(["-c", cfg, "subscribers", "add", "a@example.org", "--rule", "learning"]) == 0
    assert main(["-c", cfg, "poll"]) == 0
    capsys.readouterr()
    assert main(["-c", cfg, "send", "--now"]) == 1
    assert "1 could not be built" in capsys.readouterr().out
    config = load_config(path)
    with Store(config.store.path) as store:
        [row] = store.outbox(status="failed")
        assert store.digest_counts() == {"failed": 1, "build_failed": 1}
    # `outbox` names it for what it is, and what resolves it; not `outbox retry`
    assert main(["-c", cfg, "outbox", "--failed"]) == 0
    out = capsys.readouterr().out
    assert f"{row.id:>6} a@example.org" in out and "could not be built  last error: " \
        "UndefinedError" in out
    assert out.endswith(f"0 waiting, 1 failed, 0 sent in all (--sent lists the last)\n{HINT}\n")
    assert "retry --failed` sends" not in out
    assert main(["-c", cfg, "outbox", "retry", "--failed"]) == 0
    assert capsys.readouterr().out == f"0 messages due now\n{HINT} (ids {row.id})\n"
    assert _counted(config)[0] == 1
    assert smtp_sink.received == []
    # the template fixed: `send --now` builds the digest with the papers that waited
    paper_txt.unlink()
    assert main(["-c", cfg, "send", "--now"]) == 0
    assert "built 1 digest" in capsys.readouterr().out
    assert len(smtp_sink.received) == 1
    # the failure is history: kept in the store, no longer counted or listed anywhere
    built_failed, outbox, line = _counted(config)
    assert built_failed == 0 and outbox["failed"] == 0
    assert line == 'digestd_digests{state="build_failed"} 0.0'
    with Store(config.store.path) as store:
        assert store.digest_counts() == {"sent": 1}
        assert store.outbox(status="failed") == []
        assert store.digest_statuses([row.id]) == {row.id: "failed"}
        papers = store.count_papers()
    assert main(["-c", cfg, "outbox"]) == 0
    assert capsys.readouterr().out == ("0 waiting, 0 failed (--failed lists them), 1 sent in "
                                       "all (--sent lists the last)\n")
    # every paper the failed digest would have had went out once, and never again
    message = email.message_from_bytes(smtp_sink.received[0].data)
    assert message["Subject"].endswith("new papers") and papers == 300
    assert main(["-c", cfg, "send", "--now"]) == 0
    assert "built 0 digests" in capsys.readouterr().out
    assert len(smtp_sink.received) == 1


def test_only_the_subscriber_built_since_is_resolved(store):
    """A later digest of one subscriber resolves that subscriber's build failures only (and
    a confirmation mail is no digest); on both backends."""
    from digestd.models import Paper

    store.add_papers([Paper(id="url:https://j.example.org/1", title="Graphs", abstract="x",
                            source="j")])
    a = store.add_subscriber("a@example.org", ["graphs"])
    b = store.add_subscriber("b@example.org", ["graphs"])
    for sub in (a, b):
        store.record_build_failure(sub.id, "2026-11-30", recipient=sub.email,
                                   error="UndefinedError: x", papers=1)
    store.queue_message(b.id, "confirm", recipient=b.email, message_id="<c@x>",
                        message=b"Subject: c\r\n\r\nc\r\n", now=1764547200.0)
    assert store.digest_counts() == {"failed": 2, "build_failed": 2, "queued": 1}
    pk = store.paper_pks(["url:https://j.example.org/1"])["url:https://j.example.org/1"]
    store.queue_digest(a.id, "2026-12-01", recipient=a.email, message_id="<d@x>",
                       message=b"Subject: d\r\n\r\nd\r\n", paper_pks=[pk])
    assert store.digest_counts() == {"failed": 1, "build_failed": 1, "queued": 2}
    assert [r.subscriber_id for r in store.outbox(status="failed")] == [b.id]
    assert store.outbox_stats()["digest"]["build_failed"] == 1
    # a failure after the last digest counts again
    store.record_build_failure(a.id, "2026-12-02", recipient=a.email, error="e", papers=1)
    assert store.digest_counts()["build_failed"] == 2


def test_the_hint_of_outbox_is_about_delivery_only_when_digests_failed_to_deliver(
        tmp_path, capsys):
    assert init_offline(tmp_path) == 0
    cfg = str(tmp_path / "digestd.toml")
    assert main(["-c", cfg, "subscribers", "add", "a@example.org", "--rule", "x"]) == 0
    config = load_config(Path(cfg))
    with Store(config.store.path) as store:
        sub = store.find_subscriber("a@example.org")
        did = store.queue_digest(sub.id, "2026-12-01", recipient=sub.email,
                                 message_id="<d@x>", message=b"Subject: d\r\n\r\nd\r\n",
                                 paper_pks=[])
        store.mark_failed(did, "550 no such user")  # as the sender does on a 5xx
    capsys.readouterr()
    assert main(["-c", cfg, "outbox"]) == 0
    out = capsys.readouterr().out
    assert "`digestd outbox retry --failed` sends them" in out
    assert "could not be built" not in out
