"""Delivery to a real aiosmtpd server on 127.0.0.1: headers, retries, bounces, the pool, TLS."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult

from digestd.cli import Progress, main
from digestd.config import SmtpConfig
from digestd.deliver import DeliveryReport, backoff, classify, send_smtp
from digestd.models import Digest, Hit, Paper, PaperMatch, RuleMatch
from digestd.render import Links, Renderer
from digestd.store import Store

from .conftest import free_port
from .smtp_server import SmtpSink

PAPER = Paper(id="arxiv:2401.00001", title="Diffusion for everyone",
              abstract="We diffuse. " * 40, authors=("A. Author", "B. Author"),
              categories=("cs.LG",), source="arxiv-ml", url="https://arxiv.org/abs/2401.00001",
              pdf_url="https://arxiv.org/pdf/2401.00001", published="2026-11-20", upvotes=3)


def renderer() -> Renderer:
    return Renderer(links=Links("https://digest.example.org", b"s" * 32),
                    from_addr="Paper digest <digest@example.org>")


def queue(store: Store, emails, *, period: str = "2026-11-23") -> list[int]:
    """One queued digest per address (subscribers created as needed); their ids."""
    r = renderer()
    ids = []
    for email in emails:
        try:
            sub = store.get_subscriber(email)
        except Exception:
            sub = store.add_subscriber(email, ["diffusion"])
        digest = Digest(subscriber=sub, period=period, items=(PaperMatch(PAPER, (RuleMatch(
            0, "diffusion", (Hit("title", "diffusion"),)),)),))
        message_id, message = r.message(digest)
        ids.append(store.queue_digest(sub.id, period, recipient=email, message_id=message_id,
                                      message=message, paper_pks=[]))
    return ids


def smtp(sink: SmtpSink, **kw) -> SmtpConfig:
    return SmtpConfig(**{"host": "127.0.0.1", "port": sink.port, "security": "none",
                         "timeout": 5.0, **kw})


def status_of(store: Store, digest_id: int) -> tuple:
    return store.db.execute("SELECT status, attempts, last_error, next_attempt_at, claimed_by "
                            "FROM digests WHERE id = ?", (digest_id,)).fetchone()


def write_cfg(tmp_path, sink, extra: str = "") -> str:
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f"""
[delivery]
from = "Digest <digest@example.org>"
bounce_threshold = 2

[web]
base_url = "https://digest.example.org"

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
timeout = 5
{extra}

[[sources]]
name = "sample"
kind = "sample"
""")
    return str(cfg)


# -- the whole path ----------------------------------------------------------------------------------

def test_a_full_digest_arrives_with_every_header_and_both_parts(tmp_path, smtp_sink, capsys):
    cfg = write_cfg(tmp_path, smtp_sink)
    assert main(["-c", cfg, "poll"]) == 0
    assert main(["-c", cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion",
                 "--name", "Zoë \"the\" Reader"]) == 0
    assert main(["-c", cfg, "subscribers", "add", "b@example.org", "--rule", "segmentation"]) == 0
    capsys.readouterr()
    assert main(["-c", cfg, "send", "--now"]) == 0
    out = capsys.readouterr().out
    assert "2 sent, 0 deferred, 0 failed" in out
    assert out.count("\n") == 2  # "built ..." and one summary line: stdout is not a terminal
    got = sorted(smtp_sink.received, key=lambda r: r.rcpt_tos)
    assert [r.rcpt_tos for r in got] == [["a@example.org"], ["b@example.org"]]
    assert got[0].mail_from == "digest@example.org"
    msg = got[0].message
    assert msg["From"] == "Digest <digest@example.org>"
    assert msg["To"].addresses[0].display_name == 'Zoë "the" Reader'
    assert msg["To"].addresses[0].addr_spec == "a@example.org"
    today = datetime.now(timezone.utc).date().isoformat()
    assert today in msg["Subject"] and "new paper" in msg["Subject"]
    assert msg["Date"].datetime.tzinfo is not None
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["List-Id"] == "Digest <digest.example.org>"
    unsub = msg["List-Unsubscribe"]
    assert "<https://digest.example.org/u/" in unsub and "<mailto:digest@example.org?" in unsub
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Precedence"] == "bulk"
    assert msg["Feedback-ID"] == "daily:digest:digestd:example"  # a 5-15 character sender id
    assert msg.get_content_type() == "multipart/alternative"
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = parts[0].get_content(), parts[1].get_content()
    assert "matched:" in text and re.search(
        r"Unsubscribe with one click:\r?\n  https://digest\.example\.org/u/", text)
    assert "<html" in html and 'href="https://digest.example.org/u/' in html
    assert all(len(line) <= 998 for line in got[0].data.split(b"\r\n"))
    # the Message-ID stored in the outbox is the one that went out
    with Store(tmp_path / "digestd.sqlite3") as store:
        ids = {r[0] for r in store.db.execute("SELECT message_id FROM digests")}
    assert {r.message["Message-ID"] for r in got} == ids


@pytest.mark.parametrize("announces_8bitmime", [True, False])
async def test_an_8bit_text_part_goes_8bit_only_to_a_server_that_announces_8bitmime(
        store, smtp_sink, announces_8bitmime):
    smtp_sink.handler.without_8bitmime = not announces_8bitmime
    sub = store.add_subscriber("zoe@example.org", ["diffusion"])
    paper = Paper(id="arxiv:2401.00009", title="Diffusion für alle: 𝔼[x] ≤ ½",
                  abstract="Zoë's café – naïve ünïcode. " * 20, source="arxiv-ml",
                  url="https://arxiv.org/abs/2401.00009")
    digest = Digest(subscriber=sub, period="2026-11-23", items=(PaperMatch(paper, (RuleMatch(
        0, "diffusion", (Hit("title", "diffusion"),)),)),))
    r = renderer()
    text, html = r.render(digest)
    message_id, message = r.message(digest)
    assert b"Content-Transfer-Encoding: 8bit" in message
    store.queue_digest(sub.id, "2026-11-23", recipient=sub.email, message_id=message_id,
                       message=message, paper_pks=[])
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert report.sent == 1
    (got,) = smtp_sink.received
    if announces_8bitmime:  # RFC 6152: declared in MAIL FROM, the bytes as stored
        assert "BODY=8BITMIME" in got.mail_options and got.data == message
    else:  # made 7bit on the way, headers and text unchanged
        assert "BODY=8BITMIME" not in got.mail_options
        assert got.data.isascii() and b"quoted-printable" in got.data
    msg = got.message
    assert msg["Message-ID"] == message_id and msg["Subject"] == r.subject(digest)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html


@pytest.mark.parametrize("body", [
    b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmiddle . dot\r\n...\r\nend\r\n",
    b".starts with a dot\r\n\r\nbody\r\n",
    b"Subject: bare line ends\n\n.one\nr\rtwo\r\n",  # not CRLF throughout: data() itself
])
async def test_data_is_dot_stuffed_and_arrives_as_it_was(smtp_sink, body):
    from digestd.deliver import Session, connect
    from digestd.mime import crlf_only

    session = Session(await connect(smtp(smtp_sink)))
    try:
        await session.send(b"<digest@example.org>", [], b"<a@example.org>", body)
        if crlf_only(body):  # as the outbox vouches for a built digest: still dot-stuffed
            await session.send(b"<digest@example.org>", [], b"<a@example.org>", body,
                               crlf=True)
    finally:
        await session.quit()
    # the server undoes the dot-stuffing: the same lines, each ending in CRLF
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert [got.data for got in smtp_sink.received] == [expected] * (1 + crlf_only(body))


# -- retries ---------------------------------------------------------------------------------------

async def test_421_then_success_is_retried_once(store, smtp_sink, tmp_path, capsys):
    (did,) = queue(store, ["a@example.org"])
    smtp_sink.handler.data_answers.append("421 4.3.2 service shutting down")
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert (report.sent, report.deferred, report.failed) == (0, 1, 0)
    status, attempts, error, next_at, claimed = status_of(store, did)
    assert (status, attempts, claimed) == ("queued", 1, None)
    assert "421" in error and next_at > datetime.now(timezone.utc).isoformat()
    # not due yet: a run now sends nothing
    assert (await send_smtp(store, smtp(smtp_sink), "digest@example.org")).done == 0
    assert store.retry_outbox() == 1
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert (report.sent, report.deferred, report.failed) == (1, 0, 0)
    assert status_of(store, did)[:2] == ("sent", 2)
    assert len(smtp_sink.received) == 1


def test_cli_outbox_and_outbox_retry(tmp_path, smtp_sink, capsys):
    cfg = write_cfg(tmp_path, smtp_sink)
    with Store(tmp_path / "digestd.sqlite3") as store:
        queue(store, ["a@example.org", "b@example.org"])
    smtp_sink.handler.data_answers.extend(["451 4.7.1 greylisted", "451 4.7.1 greylisted"])
    assert main(["-c", cfg, "send"]) == 0
    assert "0 sent, 2 deferred, 0 failed; 2 still waiting in the outbox" in \
        capsys.readouterr().out
    assert main(["-c", cfg, "outbox"]) == 0
    out = capsys.readouterr().out
    assert out.count("retry at") == 2 and "greylisted" in out and "2 waiting, 0 failed" in out
    assert main(["-c", cfg, "outbox", "retry"]) == 0
    out = capsys.readouterr().out
    assert "2 messages due now" in out and "2 sent, 0 deferred, 0 failed" in out
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["a@example.org", "b@example.org"]
    assert main(["-c", cfg, "outbox", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_cli_says_a_failed_digests_papers_wait_for_retry_failed(tmp_path, smtp_sink, capsys):
    """A digest that could not be delivered keeps its papers (they were marked sent when it
    was built): `send` and `outbox` say so and name `outbox retry --failed`, which sends
    it; a deferral shows its attempt out of delivery.max_attempts."""
    cfg = write_cfg(tmp_path, smtp_sink)
    with Store(tmp_path / "digestd.sqlite3") as store:
        queue(store, ["a@example.org", "b@example.org"])
    smtp_sink.handler.data_answers.extend(["554 5.6.0 content refused", "451 4.7.1 later"])
    assert main(["-c", cfg, "send"]) == 1
    out = capsys.readouterr().out
    assert "0 sent, 1 deferred, 1 failed" in out
    assert "papers are not offered again" in out and "outbox retry --failed" in out
    assert main(["-c", cfg, "outbox"]) == 0
    out = capsys.readouterr().out
    assert "(attempt 2 of 12)" in out and "outbox retry --failed" in out
    assert main(["-c", cfg, "outbox", "retry", "--failed"]) == 0
    out = capsys.readouterr().out
    assert "2 messages due now" in out and "2 sent, 0 deferred, 0 failed" in out
    assert "not offered again" not in out
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == ["a@example.org", "b@example.org"]


def test_cli_outbox_show_starts_with_the_verp_return_path_it_goes_out_from(
        tmp_path, smtp_sink, capfdbinary):
    cfg = write_cfg(tmp_path, smtp_sink)
    text = Path(cfg).read_text().replace(
        "bounce_threshold = 2\n", 'bounce_threshold = 2\nreturn_path = "bounces@example.org"\n')
    Path(cfg).write_text(text)
    with Store(tmp_path / "digestd.sqlite3") as store:
        (digest_id,) = queue(store, ["a@example.org"])
        stored = store.outbox()[0].message
    assert main(["-c", cfg, "outbox", "show", str(digest_id)]) == 0
    head, _, rest = capfdbinary.readouterr().out.partition(b"\r\n")
    assert rest == stored and head.startswith(b"Return-Path: <bounces+")
    assert main(["-c", cfg, "send"]) == 0
    (got,) = smtp_sink.received
    assert head == f"Return-Path: <{got.mail_from}>".encode()  # the envelope sender, VERP
    # sent: the envelope it went out with is not kept (the config may change), so none
    capfdbinary.readouterr()
    assert main(["-c", cfg, "outbox", "show", str(digest_id)]) == 0
    assert capfdbinary.readouterr().out == stored


def test_cli_outbox_show_prints_the_message_as_it_goes_out(tmp_path, smtp_sink, capfdbinary):
    cfg = write_cfg(tmp_path, smtp_sink)
    with Store(tmp_path / "digestd.sqlite3") as store:
        (digest_id,) = queue(store, ["a@example.org"])
        stored = store.outbox()[0].message
    assert main(["-c", cfg, "outbox", "show", str(digest_id)]) == 0
    out = capfdbinary.readouterr().out
    assert out == stored and out.startswith(b"From: ") and b"\r\n\r\n" in out
    assert main(["-c", cfg, "send"]) == 0
    capfdbinary.readouterr()
    # sent: still shown (until outbox prune drops it), the very bytes the server got
    assert main(["-c", cfg, "outbox", "show", str(digest_id)]) == 0
    assert capfdbinary.readouterr().out == stored
    assert smtp_sink.received[0].data.replace(b"\r\n", b"\n") == stored.replace(b"\r\n", b"\n")
    assert main(["-c", cfg, "outbox", "show", str(digest_id + 1)]) == 1
    assert b"no stored message for digest" in capfdbinary.readouterr().err
    # where a sent digest's id is found: `outbox --sent`, newest first
    assert main(["-c", cfg, "outbox"]) == 0
    assert b"0 waiting, 0 failed (--failed lists them), 1 sent in all (--sent lists the last)" \
        in capfdbinary.readouterr().out
    assert main(["-c", cfg, "outbox", "--sent"]) == 0
    listed = capfdbinary.readouterr().out.decode()
    # with the time its 250 came
    assert re.search(rf"^\s*{digest_id} a@example.org .* sent \d{{4}}-\d\d-\d\dT\S+$", listed,
                     re.MULTILINE), listed


async def test_max_attempts_then_failed(store, smtp_sink):
    (did,) = queue(store, ["a@example.org"])
    smtp_sink.handler.data_answers.extend(["452 4.3.1 out of memory"] * 2)
    for _ in range(2):
        store.retry_outbox()
        await send_smtp(store, smtp(smtp_sink), "digest@example.org", max_attempts=2)
    status, attempts, error, _, _ = status_of(store, did)
    assert (status, attempts) == ("failed", 2) and error.startswith("gave up after 2 attempts")
    assert not smtp_sink.received
    # an operator can requeue it
    assert store.retry_outbox(failed=True) == 1
    assert (await send_smtp(store, smtp(smtp_sink), "digest@example.org")).sent == 1


def test_backoff_grows_to_hours():
    assert [backoff(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert sum(backoff(n) for n in range(1, 9)) > 3 * 3600
    assert backoff(30) == 6 * 3600


async def test_a_connection_dropped_mid_data_is_retried_without_a_duplicate(store, smtp_sink):
    ids = queue(store, ["a@example.org", "b@example.org", "c@example.org"])
    smtp_sink.handler.data_answers.append("drop")
    report = await send_smtp(store, smtp(smtp_sink, max_connections=1), "digest@example.org")
    # the others went on over a new connection
    assert (report.sent, report.deferred) == (2, 1)
    dropped = next(i for i in ids if status_of(store, i)[0] == "queued")
    assert "DATA" in status_of(store, dropped)[2]
    store.retry_outbox()
    assert (await send_smtp(store, smtp(smtp_sink), "digest@example.org")).sent == 1
    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert counts == {"a@example.org": 1, "b@example.org": 1, "c@example.org": 1}


async def test_a_server_too_slow_to_answer_times_out_and_is_deferred(store, smtp_sink):
    queue(store, ["a@example.org"])
    smtp_sink.handler.delay = 1.5
    started = time.monotonic()
    report = await send_smtp(store, smtp(smtp_sink, timeout=0.3, data_timeout=0.3),
                             "digest@example.org")
    assert report.deferred == 1 and time.monotonic() - started < 1.4
    assert "Timeout" in store.outbox()[0].last_error


async def test_the_end_of_a_message_is_given_data_timeout_not_timeout(store, smtp_sink):
    """The answer to the final "." comes once the server has the message safe: it is
    awaited for smtp.data_timeout (RFC 5321 4.5.3.2.6: 10 minutes), not the step timeout,
    or a message the server took is sent a second time."""
    queue(store, ["a@example.org"])
    smtp_sink.handler.delay = 0.8
    report = await send_smtp(store, smtp(smtp_sink, timeout=0.3, data_timeout=5),
                             "digest@example.org")
    assert (report.sent, report.deferred) == (1, 0)
    assert len(smtp_sink.received) == 1


async def test_an_unreachable_server_stops_the_run_and_keeps_the_rest(store):
    ids = queue(store, [f"u{i}@example.org" for i in range(10)])
    cfg = SmtpConfig(host="127.0.0.1", port=free_port(), security="none", timeout=2)
    report = await send_smtp(store, cfg, "digest@example.org")
    # why, said once: not aiosmtplib's "Error connecting to ... [Errno 111] Connect call failed"
    assert report.stopped == f"connect to 127.0.0.1:{cfg.port}: Connection refused"
    # the row in hand counts an attempt; the others were never tried and stay due, unclaimed
    assert report.deferred == cfg.max_connections or report.deferred >= 1
    rows = [status_of(store, i) for i in ids]
    assert all(r[0] == "queued" and r[4] is None for r in rows)
    assert sum(1 for r in rows if r[1] == 0) >= 10 - cfg.max_connections


# -- bounces ---------------------------------------------------------------------------------------

async def test_550_is_a_hard_bounce_and_n_of_them_make_a_subscriber_bouncing(store, smtp_sink):
    smtp_sink.handler.rcpt_answers["gone@example.org"] = "550 5.1.1 user unknown"
    cfg = smtp(smtp_sink)
    (first,) = queue(store, ["gone@example.org"], period="2026-11-21")
    report = await send_smtp(store, cfg, "digest@example.org", bounce_threshold=2)
    assert (report.failed, report.bounced) == (1, 1)
    assert status_of(store, first)[0] == "failed" and "550" in status_of(store, first)[2]
    sub = store.get_subscriber("gone@example.org")
    assert (sub.status, sub.bounces) == ("active", 1)
    # the same message retried (`outbox retry --failed`) and refused again: still one bounce
    for _ in range(3):
        assert store.retry_outbox([first], failed=True) == 1
        report = await send_smtp(store, cfg, "digest@example.org", bounce_threshold=2)
        assert report.failed == 1 and status_of(store, first)[0] == "failed"
    sub = store.get_subscriber("gone@example.org")
    assert (sub.status, sub.bounces) == ("active", 1)
    queue(store, ["gone@example.org"], period="2026-11-22")
    await send_smtp(store, cfg, "digest@example.org", bounce_threshold=2)
    sub = store.get_subscriber("gone@example.org")
    assert (sub.status, sub.bounces) == ("bouncing", 2)
    # a digest already queued for them is not sent any more
    (third,) = queue(store, ["gone@example.org"], period="2026-11-23")
    report = await send_smtp(store, cfg, "digest@example.org", bounce_threshold=2)
    assert (report.sent, report.cancelled) == (0, 1)
    assert status_of(store, third)[2] == "not sent: the subscriber is bouncing"
    assert not smtp_sink.received


async def test_an_address_that_cannot_go_on_a_command_line_fails_alone(store, smtp_sink):
    # the outbox row's recipient is written out as it is: one that would end the path or
    # smuggle in a command never reaches the server, and the other digests go out
    sub = store.add_subscriber("ok@example.org", ["diffusion"])
    bad = store.queue_digest(sub.id, "2026-11-22", recipient="x@example.org>\r\nRCPT TO:<evil@"
                             "example.org", message_id="<m1@example.org>",
                             message=b"Subject: x\r\n\r\nhi\r\n", paper_pks=[])
    (good,) = queue(store, ["ok@example.org"])
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert (report.sent, report.failed, report.bounced) == (1, 1, 0)
    status, _, error, _, _ = status_of(store, bad)
    assert status == "failed" and "cannot go on an SMTP command line" in error
    assert status_of(store, good)[0] == "sent"
    assert [m.rcpt_tos for m in smtp_sink.received] == [["ok@example.org"]]


async def test_a_delivery_resets_the_count_of_bounces(store, smtp_sink):
    smtp_sink.handler.rcpt_answers["flaky@example.org"] = "550 5.2.1 mailbox disabled"
    queue(store, ["flaky@example.org"], period="2026-11-21")
    await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert store.get_subscriber("flaky@example.org").bounces == 1
    del smtp_sink.handler.rcpt_answers["flaky@example.org"]
    queue(store, ["flaky@example.org"], period="2026-11-22")
    await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert store.get_subscriber("flaky@example.org").bounces == 0


@pytest.mark.parametrize("stage,code,message,kind", [
    ("RCPT", 550, "5.1.1 user unknown", "bounced"),
    ("RCPT", 450, "4.2.1 mailbox busy", "deferred"),
    # a policy refusal at RCPT is about the sender (a blocklist, relaying): no bounce counted
    ("RCPT", 554, "5.7.1 Service unavailable; Client host blocked using zen.example", "failed"),
    ("RCPT", 550, "5.7.1 Relaying denied", "failed"),
    ("RCPT", 550, "5.4.1 Recipient address rejected: Access denied", "bounced"),
    ("RCPT", 553, "5.1.3 bad recipient address syntax", "bounced"),
    ("DATA", 550, "5.1.1 no such user", "bounced"),
    ("DATA", 554, "5.7.1 message refused as spam", "failed"),
    ("DATA", 550, "rejected", "bounced"),
    ("DATA", 554, "transaction failed", "failed"),
    ("MAIL", 553, "5.7.1 sender not allowed", "deferred"),  # our config, not their address
    # too big for the server (RFC 1870's SIZE at MAIL FROM; X.3.4): no retry sends it
    ("MAIL", 552, "Error: message size exceeds fixed maximum message size", "failed"),
    ("MAIL", 552, "5.3.4 Message size exceeds fixed limit", "failed"),
    # our sender's address refused at RCPT (Postfix delays its rejections there): our config
    ("RCPT", 553, "5.1.8 <digest@example.org>: Sender address rejected: Domain not found",
     "deferred"),
    ("RCPT", 550, "5.1.7 <digest@example.org>: Sender address rejected", "deferred"),
    # too big for the mailbox (X.2.3): the message's fault, not the address's
    ("DATA", 552, "5.2.3 Message length exceeds administrative limit", "failed"),
    # without an enhanced code: 550/551/553 blame the address, 552 is storage (temporary)
    ("RCPT", 554, "Client host [192.0.2.1] blocked using zen.example.org", "failed"),
    ("DATA", 552, "Requested mail action aborted: exceeded storage allocation", "deferred"),
    # the enhanced code on a later line of a multi-line reply
    ("RCPT", 550, "Message rejected\n5.7.1 Sender blocked by policy", "failed"),
    ("RCPT", 550, "5.1.1 The email account does not exist\n5.1.1 double-check", "bounced"),
    ("RCPT", 550, "5.0.0 <gone@example.org>: Recipient rejected", "bounced"),
])
def test_classify(stage, code, message, kind):
    import aiosmtplib
    assert classify(stage, aiosmtplib.SMTPResponseException(code, message)).kind == kind


def test_a_reply_that_is_not_utf8_is_stored_readable(store):
    """aiosmtplib decodes replies with surrogateescape: a Latin-1 "sp\xe4ter" is stored and
    logged as readable UTF-8, not left to fail every run at the store."""
    import aiosmtplib
    latin1 = "4.7.1 Bitte sp\xe4ter".encode("latin-1").decode("utf-8", "surrogateescape")
    outcome = classify("RCPT", aiosmtplib.SMTPResponseException(451, latin1))
    assert outcome.kind == "deferred" and outcome.error == "RCPT 451 4.7.1 Bitte sp\ufffdter"
    (did,) = queue(store, ["a@example.org"])
    store.mark_deferred(did, outcome.error, "2026-11-30T00:00:00+00:00")
    assert status_of(store, did)[2] == outcome.error


def test_subscribers_list_shows_bouncing(tmp_path, smtp_sink, capsys):
    cfg = write_cfg(tmp_path, smtp_sink)
    smtp_sink.handler.rcpt_answers["gone@example.org"] = "550 5.1.1 user unknown"
    with Store(tmp_path / "digestd.sqlite3") as store:
        queue(store, ["gone@example.org"], period="p1")
        queue(store, ["gone@example.org"], period="p2")
    assert main(["-c", cfg, "send"]) == 1
    out = capsys.readouterr().out
    assert "0 sent, 0 deferred, 2 failed (2 bounced: the address refused, counted toward " \
        "delivery.bounce_threshold = 2, once a digest)" in out
    assert main(["-c", cfg, "subscribers", "list"]) == 0
    out = capsys.readouterr().out
    assert "bouncing (2 hard bounces)" in out and "1 bouncing" in out


async def test_unsubscribed_before_sending_cancels_the_digest_but_not_web_mail(store, smtp_sink):
    (did,) = queue(store, ["left@example.org"])
    sub = store.get_subscriber("left@example.org")
    store.set_status(sub.id, "unsubscribed")
    pending = store.add_subscriber("new@example.org", ["x"], status="pending")
    store.db.execute("INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                     "recipient, message, next_attempt_at) VALUES (?, 'confirm-1', ?, 0, "
                     "'<c@example.org>', 'new@example.org', ?, ?)",
                     (pending.id, "2020-01-01T00:00:00+00:00", b"Subject: confirm\r\n\r\nhi\r\n",
                      "2020-01-01T00:00:00+00:00"))
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert (report.sent, report.cancelled) == (1, 1)
    assert status_of(store, did)[0] == "failed"
    assert [r.rcpt_tos for r in smtp_sink.received] == [["new@example.org"]]


# -- the pool, the rate limit, claims --------------------------------------------------------------

async def test_a_small_pool_of_connections_is_reused(store, smtp_sink):
    queue(store, [f"u{i}@example.org" for i in range(24)])
    report = await send_smtp(store, smtp(smtp_sink, max_connections=3), "digest@example.org")
    assert report.sent == 24
    peers = Counter(r.peer for r in smtp_sink.received)
    assert 2 <= len(peers) <= 3 and all(n >= 2 for n in peers.values())


async def test_max_per_second(store, smtp_sink):
    queue(store, [f"u{i}@example.org" for i in range(8)])
    started = time.monotonic()
    report = await send_smtp(store, smtp(smtp_sink, max_per_second=20.0), "digest@example.org")
    assert report.sent == 8 and time.monotonic() - started >= 7 / 20 - 0.02


async def test_two_senders_at_once_never_send_the_same_digest(store, smtp_sink):
    queue(store, [f"u{i}@example.org" for i in range(40)])
    smtp_sink.handler.delay = 0.005
    cfg = smtp(smtp_sink, max_connections=2)
    a, b = await asyncio.gather(send_smtp(store, cfg, "digest@example.org"),
                                send_smtp(store, cfg, "digest@example.org"))
    assert a.sent + b.sent == 40 and a.sent and b.sent
    counts = Counter(r.rcpt_tos[0] for r in smtp_sink.received)
    assert len(counts) == 40 and set(counts.values()) == {1}


async def test_marks_still_waiting_for_the_store_thread_at_the_end_are_stored(tmp_path,
                                                                             smtp_sink):
    """The sent marks go to the store from the sender's store thread, which may be busy (a
    claim waiting for a build's commit). The writer of the marks is cancelled as the run
    ends, and a write of its still waiting there then never runs: its marks must still be
    stored before the claims are handed back, or those rows are queued and free again, and
    another sender (a build process helping, the next run) sends them a second time."""
    from digestd.deliver.sender import SmtpSender, StoreThread

    with Store(tmp_path / "digestd.sqlite3") as store:
        (did,) = queue(store, ["once@example.org"])
        free = threading.Event()  # the store thread's other work is done
        busy: list[bool] = []
        waiting: list[str] = []  # who wrote marks while the store thread was busy

        class BusyStoreThread(StoreThread):
            async def __call__(self, method, *args, **kwargs):
                if waiting:  # the run went on past that write: the thread is free again
                    free.set()
                elif busy and method == "mark_sent_many":
                    waiting.append(asyncio.current_task().get_coro().__qualname__)
                return await super().__call__(method, *args, **kwargs)

        def progress(report: DeliveryReport) -> None:
            # right after the 250: the store thread is busy, and the marks are due now
            busy.append(True)
            sender.db.pool.submit(free.wait, 10)
            sender.marks.due.set()

        # limit 1: once its row is sent, the run ends without another store call
        sender = SmtpSender(store, smtp(smtp_sink, max_connections=1), "digest@example.org",
                            limit=1, progress=progress)
        sender.db.pool.shutdown()
        sender.db = BusyStoreThread(store)
        report = await asyncio.wait_for(sender.run(), 10)
        assert report.sent == 1 and len(smtp_sink.received) == 1
        assert waiting == ["SentMarks._write"]  # the interleaving meant to happen
        assert status_of(store, did)[0] == "sent"
        again = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
        assert again.sent == 0 and len(smtp_sink.received) == 1


async def test_claims_of_a_dead_sender_are_taken_over_and_a_live_ones_are_not(store, smtp_sink):
    import socket
    queue(store, [f"u{i}@example.org" for i in range(4)])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    host = socket.gethostname()
    store.claim_outbox(f"{host}/{dead}/x", limit=2, lease_s=900)
    store.claim_outbox(f"{host}/1/y", limit=2, lease_s=900)  # pid 1 is alive
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert report.sent == 2
    assert store.outbox_claimants() == {f"{host}/1/y": 2}


async def test_limit_sends_at_most_that_many(store, smtp_sink):
    queue(store, [f"u{i}@example.org" for i in range(7)])
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org", limit=3)
    assert report.sent == 3 and report.total == 3
    assert len(store.outbox()) == 4 and not store.outbox_claimants()


async def test_stop_mid_run_finishes_in_flight_and_hands_back_the_rest(store, smtp_sink):
    emails = [f"s{i:02d}@example.org" for i in range(12)]
    queue(store, emails)
    smtp_sink.handler.delay = 0.1  # a slow server: the stop lands mid-run
    cfg = smtp(smtp_sink, max_connections=2)
    stop = asyncio.Event()
    run = asyncio.ensure_future(send_smtp(store, cfg, "digest@example.org", stop=stop))
    while len(smtp_sink.received) < 3:
        await asyncio.sleep(0.005)
    stop.set()
    at_stop = len(smtp_sink.received)
    began = time.monotonic()
    first = await asyncio.wait_for(run, 5)
    # only the transactions in flight (one per connection) were finished
    assert time.monotonic() - began < 0.5
    assert first.sent == len(smtp_sink.received) <= at_stop + 2 < len(emails)
    assert first.handed_back >= 1 and not first.stopped and not first.deferred
    left = store.outbox()  # still queued, untried, claimed by nobody
    assert len(left) == len(emails) - first.sent
    assert all(r.attempts == 0 and r.claimed_by is None for r in left)
    smtp_sink.handler.delay = 0
    second = await send_smtp(store, cfg, "digest@example.org")
    assert second.sent == len(left)
    assert Counter(r.rcpt_tos[0] for r in smtp_sink.received) == Counter(emails)


async def test_stop_while_waiting_for_the_rate_limit_starts_nothing_more(store, smtp_sink):
    queue(store, [f"u{i}@example.org" for i in range(6)])
    stop = asyncio.Event()
    run = asyncio.ensure_future(send_smtp(store, smtp(smtp_sink, max_per_second=2.0),
                                          "digest@example.org", stop=stop))
    while not smtp_sink.received:
        await asyncio.sleep(0.005)
    stop.set()  # the next row waits ~0.5 s for its turn: it must not be started after that
    report = await asyncio.wait_for(run, 5)
    assert report.sent == len(smtp_sink.received) == 1
    assert len(store.outbox()) == 5 and not store.outbox_claimants()
    stop = asyncio.Event()
    stop.set()  # set before the run: nothing is claimed at all
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org", stop=stop)
    assert report.sent == 0 and len(store.outbox()) == 5 and not store.outbox_claimants()


def test_progress_bar_on_a_terminal_and_silence_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(stream)
        bar(DeliveryReport(sent=1, total=4))
        bar(DeliveryReport(sent=3, deferred=1, total=4))
        bar.close()
    assert "4/4" in tty.getvalue() and "sent 3  deferred 1  failed 0" in tty.getvalue()
    assert pipe.getvalue() == ""


# -- TLS and AUTH ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (auth_data.login, auth_data.password) == (b"digest", b"s3cret")
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535


@pytest.fixture
def tls_sink(certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(free_port(), tls_context=context, require_starttls=True,
                    authenticator=authenticator, auth_require_tls=True)
    sink.start()
    yield sink
    sink.stop()


async def test_starttls_and_auth(store, tls_sink, certificate):
    queue(store, ["a@example.org"])
    cfg = smtp(tls_sink, security="starttls", ca_file=str(certificate[0]), username="digest",
               password="s3cret")
    report = await send_smtp(store, cfg, "digest@example.org")
    assert report.sent == 1 and len(tls_sink.received) == 1


async def test_wrong_password_or_untrusted_certificate_stop_the_run(store, tls_sink, certificate):
    queue(store, ["a@example.org"])
    bad = smtp(tls_sink, security="starttls", ca_file=str(certificate[0]), username="digest",
               password="wrong")
    report = await send_smtp(store, bad, "digest@example.org")
    assert report.stopped and "535" in report.stopped
    store.retry_outbox()
    untrusted = smtp(tls_sink, security="starttls", username="digest", password="s3cret")
    report = await send_smtp(store, untrusted, "digest@example.org")
    assert report.stopped and "CERTIFICATE_VERIFY_FAILED" in report.stopped
    assert not tls_sink.received


async def test_implicit_tls(store, certificate):
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(free_port(), ssl_context=context)
    sink.start()
    try:
        queue(store, ["a@example.org"])
        report = await send_smtp(store, smtp(sink, security="tls", ca_file=str(cert)),
                                 "digest@example.org")
        assert report.sent == 1 and len(sink.received) == 1
    finally:
        sink.stop()


# -- SMTP answers as the field sends them (shared/field/README.md) ---------------------------------

async def test_a_relay_that_takes_one_connection_gets_all_six_over_it(store, tmp_path):
    """The relay greets every connection beyond the first with 421 4.7.0; with
    max_connections = 4 and six digests, all six go out in this run over the one that works:
    none deferred, nothing stopped early."""
    from .conftest import free_port
    sink = SmtpSink(port=free_port(), max_sessions=1)
    sink.start()
    try:
        ids = queue(store, [f"r{i}@example.org" for i in range(6)])
        report = await send_smtp(store, smtp(sink, max_connections=4), "digest@example.org")
    finally:
        sink.stop()
    assert (report.sent, report.deferred, report.failed, report.stopped) == (6, 0, 0, None)
    assert len(sink.received) == 6
    assert {status_of(store, i)[0] for i in ids} == {"sent"}


@pytest.mark.parametrize("answer", ["421 4.7.0 Too many messages in this connection", "drop"])
@pytest.mark.parametrize("connections, digests", [(1, 10), (4, 20)])
async def test_a_relay_that_ends_a_connection_after_three_messages_gets_all(
        store, smtp_sink, answer, connections, digests):
    """A relay ends each connection after three messages (421 to the next MAIL, or it hangs
    up): nothing of the next message was sent, so it goes over a new connection, in the
    same run; none deferred, none twice."""
    smtp_sink.handler.per_session, smtp_sink.handler.per_session_answer = 3, answer
    ids = queue(store, [f"r{i}@example.org" for i in range(digests)])
    report = await send_smtp(store, smtp(smtp_sink, max_connections=connections),
                             "digest@example.org")
    assert (report.sent, report.deferred, report.failed, report.stopped) == (digests, 0, 0, None)
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(
        f"r{i}@example.org" for i in range(digests))
    assert {status_of(store, i)[0] for i in ids} == {"sent"}


@pytest.mark.parametrize("refuse_delay, release_delay, per_session", [(0.3, 0.0, None),
                                                                      (0.0, 0.2, 3)])
async def test_a_relay_slow_to_refuse_or_to_forget_a_connection_gets_all(
        store, refuse_delay, release_delay, per_session):
    """One connection at a time, and the relay answers the others' 421 only after 0.3 s (the
    one that works may be done by then), or counts an ended connection 0.2 s longer (the
    next one is refused at first): every digest goes out in the run, none is left behind."""
    from .conftest import free_port
    sink = SmtpSink(port=free_port(), max_sessions=1, refuse_delay=refuse_delay,
                    release_delay=release_delay)
    sink.handler.per_session = per_session
    sink.start()
    time.sleep(release_delay + 0.1)  # the controller's own trial connection is forgotten
    try:
        ids = queue(store, [f"r{i}@example.org" for i in range(12)])
        report = await send_smtp(store, smtp(sink, max_connections=4), "digest@example.org")
    finally:
        sink.stop()
    assert (report.sent, report.deferred, report.stopped, report.handed_back) == (12, 0, None, 0)
    assert len(sink.received) == 12
    assert {status_of(store, i)[0] for i in ids} == {"sent"}


async def test_a_421_to_ehlo_is_reported_in_its_own_words(store, smtp_sink):
    smtp_sink.handler.ehlo_answer = "421 4.7.0 mx.example.org busy, try later"
    queue(store, ["a@example.org"])
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org")
    assert report.stopped and "421" in report.stopped and "busy" in report.stopped


async def test_a_full_mailbox_is_temporary_and_5_1_1_stays_hard(store, smtp_sink):
    """552 5.2.2 to RCPT (RFC 3463 X.2.2, RFC 5321 4.5.3.1.10): retry later, no bounce
    counted, the subscriber stays active; 550 5.1.1 is a hard bounce."""
    smtp_sink.handler.rcpt_answers.update({"full@example.org": "552 5.2.2 Mailbox full",
                                           "quota@example.org": "452 4.2.2 Over quota",
                                           "gone@example.org": "550 5.1.1 User unknown"})
    full, quota, gone = queue(store, ["full@example.org", "quota@example.org",
                                      "gone@example.org"])
    report = await send_smtp(store, smtp(smtp_sink), "digest@example.org",
                             bounce_threshold=1)
    assert (report.sent, report.deferred, report.bounced) == (0, 2, 1)
    for did in (full, quota):
        status, attempts, error, next_at, _ = status_of(store, did)
        assert status == "queued" and "2.2" in error and next_at
    for email in ("full@example.org", "quota@example.org"):
        sub = store.get_subscriber(email)
        assert (sub.status, sub.bounces) == ("active", 0)
    assert store.get_subscriber("gone@example.org").status == "bouncing"
    assert status_of(store, gone)[0] == "failed"


async def test_a_failing_worker_lets_the_others_finish_the_message_in_flight(
        store, smtp_sink, monkeypatch):
    """When one connection's worker fails (the store, the journal), the run ends; a message
    another connection has sent and awaits the answer to is not cut off (the server may
    take it, and the next run would send it again): it finishes and is marked, nothing new
    starts, and the rest is handed back and goes out once in the next run."""
    from digestd.deliver import sender as S
    from tests.smtp_server import Handler

    emails = ["fast@example.org", "slow@example.org", "later1@example.org",
              "later2@example.org"]
    queue(store, emails)
    real_data, real_finish, failed = Handler.handle_DATA, S.SmtpSender._finish, []
    slow_in_flight = threading.Event()  # set on the sink's thread

    async def slow_for_one(self, server, session, envelope):
        if envelope.rcpt_tos == ["slow@example.org"]:
            slow_in_flight.set()
            await asyncio.sleep(1.0)  # still awaited when the other worker fails
        return await real_data(self, server, session, envelope)

    async def fails_once(self, row, outcome):
        done = await real_finish(self, row, outcome)
        if not failed:
            failed.append(row.recipient)
            # the failure comes while the other connection's message is in flight (on a
            # busy machine that connection may still be greeting the server otherwise)
            assert await asyncio.to_thread(slow_in_flight.wait, 30)
            raise OSError("the store went away")
        return done

    monkeypatch.setattr(Handler, "handle_DATA", slow_for_one)
    monkeypatch.setattr(S.SmtpSender, "_finish", fails_once)
    with pytest.raises(OSError):
        await send_smtp(store, smtp(smtp_sink, max_connections=2), "digest@example.org")
    took = sorted(r.rcpt_tos[0] for r in smtp_sink.received)
    assert failed == ["fast@example.org"] and took == ["fast@example.org", "slow@example.org"]
    sent = {r[0] for r in store.db.execute(
        "SELECT recipient FROM digests WHERE status = 'sent'")}
    assert sent == set(took)  # the slow one finished and was marked, not cut off
    assert store.outbox_claimants() == {}
    monkeypatch.setattr(S.SmtpSender, "_finish", real_finish)
    report = await send_smtp(store, smtp(smtp_sink, max_connections=2), "digest@example.org")
    assert report.sent == 2
    assert Counter(r.rcpt_tos[0] for r in smtp_sink.received) == Counter(emails)


def test_a_failed_group_commit_stops_the_data_and_loses_no_mark(postgres_url, smtp_sink,
                                                                monkeypatch):
    """PostgreSQL: the 250s are committed in groups, and a connection's next DATA waits for
    the commit of its last one (its MAIL FROM and RCPT TO go out meanwhile). When a commit
    fails, the run ends with that error: no connection finishes another message, the marks
    of what the server took reach the store in the run's last attempt, and the rows not
    sent are handed back; the next run sends each of them once."""
    import psycopg

    from digestd.store import open_store
    from digestd.store.postgres import PostgresStore

    emails = [f"reader{i:02d}@example.org" for i in range(12)]
    with open_store(postgres_url) as store:
        queue(store, emails)
    real, calls = PostgresStore.mark_sent_many, []

    def first_commit_fails(self, marks):
        calls.append(list(marks))
        if len(calls) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(self, marks)

    monkeypatch.setattr(PostgresStore, "mark_sent_many", first_commit_fails)
    connections = 3
    with open_store(postgres_url) as store:
        with pytest.raises(psycopg.OperationalError):
            asyncio.run(send_smtp(store, smtp(smtp_sink, max_connections=connections),
                                  "digest@example.org"))
        took = sorted(r.rcpt_tos[0] for r in smtp_sink.received)
        # one message per connection at most: each waited for its commit before more DATA
        assert 1 <= len(took) <= connections
        sent = {r[0] for r in store.db.execute(
            "SELECT recipient FROM digests WHERE status = 'sent'")}
        assert sent == set(took)  # the failed group's marks, stored by the last attempt
        assert store.outbox_claimants() == {}  # the rest handed back
        monkeypatch.setattr(PostgresStore, "mark_sent_many", real)
        report = asyncio.run(send_smtp(store, smtp(smtp_sink, max_connections=connections),
                                       "digest@example.org"))
        assert report.sent == len(emails) - len(took)
    assert Counter(r.rcpt_tos[0] for r in smtp_sink.received) == Counter(emails)
