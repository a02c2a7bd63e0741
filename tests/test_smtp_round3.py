"""SMTP servers as the field has them, third round: a relay that refuses new messages for a
while (a rate limit or full storage answered to MAIL FROM) or refuses our sender. The run
pauses or stops rather than spend an attempt of every queued digest. Against a real aiosmtpd
server on 127.0.0.1 (tests/smtp_server.py) and the real sender."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from aiosmtplib import SMTPResponseException

from digestd.deliver import send_smtp
from digestd.deliver import sender as sender_module
from digestd.deliver.smtp import classify

from .test_deliver import queue, smtp, status_of
from .test_smtp_round2 import FROM, addresses, all_sent_once, sink  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch):
    monkeypatch.setattr(sender_module, "PAUSE_S", 0.05)


@pytest.mark.parametrize("connections", [1, 4])
@pytest.mark.parametrize("answer", [
    "451 4.7.1 Rate limit exceeded, slow down",
    "450 4.7.1 Too many messages, try later",
    "452 4.3.1 Insufficient system storage",
])
async def test_a_rate_limit_at_mail_from_pauses_the_run(store, sink, connections, answer):
    """Two MAIL FROMs answered 4xx in the middle of a run: every digest still goes out in this
    run, none deferred, and no attempt is spent."""
    server = sink()
    server.handler.mail_answers.update({3: answer, 4: answer})
    emails = addresses(8)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=connections), FROM)
    all_sent_once(store, server, report, ids, emails)
    assert {status_of(store, i)[1] for i in ids} == {1}  # each sent at its first attempt


async def test_a_rate_limit_that_lasts_stops_the_run_and_keeps_the_rest_queued(store, sink):
    server = sink()
    server.handler.mail_answers.update({i: "451 4.7.1 Rate limit exceeded" for i in
                                        range(3, 200)})
    emails = addresses(10)
    ids = queue(store, emails)
    started = time.monotonic()
    report = await send_smtp(store, smtp(server, max_connections=2), FROM)
    # paused 0.05 + 0.1 + 0.2 + 0.4 s, then it stopped
    assert time.monotonic() - started >= 0.7
    assert report.sent == 2 and report.deferred == 1 and report.failed == 0
    assert "rate limit exceeded" in report.stopped.lower()
    rows = [status_of(store, i) for i in ids]
    assert Counter(r[0] for r in rows) == {"sent": 2, "queued": 8}
    # one attempt spent beside the two sent, none of the rows still claimed
    assert sorted(r[1] for r in rows) == [0] * 7 + [1] * 3
    assert all(r[4] is None for r in rows)
    # the next run, once the relay takes mail again, sends the rest
    server.handler.mail_answers.clear()
    deferred = next(i for i, r in zip(ids, rows) if r[:2] == ("queued", 1))
    with store.transaction() as db:  # its backoff is over
        db.execute("UPDATE digests SET next_attempt_at = ? WHERE id = ?",
                   ("2000-01-01T00:00:00+00:00", deferred))
    again = await send_smtp(store, smtp(server, max_connections=2), FROM)
    assert again.sent == 8 and again.stopped is None
    assert Counter(r.rcpt_tos[0] for r in server.received) == Counter(emails)


@pytest.mark.parametrize("answer", [
    "553 5.7.1 Sender address rejected: not owned by user",
    "451 4.7.1 Greylisted, try again in 3600 seconds",
])
async def test_our_sender_refused_or_a_long_wait_stops_the_run_at_once(store, sink, answer):
    server = sink()
    server.handler.mail_answers.update({i: answer for i in range(1, 200)})
    emails = addresses(6)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=1), FROM)
    assert (report.sent, report.deferred, report.failed) == (0, 1, 0)
    assert report.stopped and server.handler.mails == 1
    rows = [status_of(store, i) for i in ids]
    assert sorted(r[1] for r in rows) == [0] * 5 + [1]
    if "3600" in answer:  # deferred for as long as it asked
        (when,) = [r[3] for r in rows if r[1] == 1]
        assert (datetime.fromisoformat(when) - datetime.now(timezone.utc)).total_seconds() > 3000


@pytest.mark.parametrize("stage, code, message, pause", [
    ("MAIL", 451, "4.7.1 Rate limit exceeded", "wait"),
    ("MAIL", 421, "4.7.0 Too many connections", ""),  # "again": the session ended
    ("MAIL", 553, "5.7.1 sender not allowed", "stop"),
    ("MAIL", 552, "5.3.4 Message size exceeds fixed limit", ""),  # this message's
    ("RCPT", 553, "5.1.8 <digest@example.org>: Sender address rejected", "stop"),
    ("RCPT", 450, "4.2.1 mailbox busy", ""),  # this recipient's
    ("RCPT", 452, "4.2.2 Mailbox full", ""),
    ("DATA", 451, "4.3.0 try again later", ""),
])
def test_which_deferrals_pause_the_run(stage, code, message, pause):
    assert classify(stage, SMTPResponseException(code, message)).pause == pause


# -- a full mailbox and an unknown user, in more of the words servers use --------------------------

@pytest.mark.parametrize("code, message", [
    (550, "Mailbox quota usage exceeded"),
    (550, "User is over their quota"),
    (554, "The recipient mailbox has exceeded its storage limit"),
    (550, "Inbox is full"),
    (550, "Quota reached"),
    (522, "Mailbox full"),  # a non-standard code some providers answer
    (550, "5.7.1 Mailbox full"),
])
def test_more_words_for_a_full_mailbox_defer(code, message):
    assert classify("RCPT", SMTPResponseException(code, message)).kind == "deferred"


@pytest.mark.parametrize("code, message, kind", [
    # sendmail's "553 5.3.0 <x@y>... No such user": the undefined status says nothing more
    (553, "5.3.0 <gone@example.org>... No such user", "bounced"),
    (550, "5.3.0 User unknown", "bounced"),
    (550, "5.5.0 Requested action not taken: mailbox unavailable", "bounced"),
    # ... without such words it stays a failure of this message alone
    (554, "5.3.0 transaction failed", "failed"),
    (550, "5.7.1 Recipient address rejected: Access denied", "failed"),
])
def test_an_unknown_user_said_in_words_under_an_undefined_status(code, message, kind):
    assert classify("RCPT", SMTPResponseException(code, message)).kind == kind


async def test_a_mailbox_over_its_quota_is_retried_not_bounced(store, sink):
    server = sink()
    server.handler.rcpt_answers.update({"full@example.org": "550 Mailbox quota usage exceeded",
                                        "gone@example.org": "553 5.3.0 <gone@example.org>... "
                                                            "No such user"})
    ids = queue(store, ["full@example.org", "gone@example.org", "ok@example.org"])
    report = await send_smtp(store, smtp(server), FROM)
    assert (report.sent, report.deferred, report.bounced) == (1, 1, 1)
    assert [status_of(store, i)[0] for i in ids] == ["queued", "failed", "sent"]
    assert store.get_subscriber("full@example.org").bounces == 0
    assert store.get_subscriber("gone@example.org").bounces == 1


# -- what an operator reads when the port is not what [smtp] says ------------------------------

async def test_a_port_that_is_no_smtp_server_and_tls_on_a_plain_port_are_said(sink):
    import asyncio
    import socket

    from digestd.config.schema import SmtpConfig
    from digestd.deliver.smtp import connect, connect_failure

    async def failure(port: int, security: str) -> str:
        try:
            client = await connect(SmtpConfig(host="127.0.0.1", port=port, security=security,
                                              timeout=5))
        except Exception as e:  # noqa: BLE001
            return connect_failure(e)
        client.close()
        raise AssertionError("connected")

    # something that takes the connection and closes it (a web server on the wrong port)
    closing = socket.socket()
    closing.bind(("127.0.0.1", 0))
    closing.listen(4)
    port = closing.getsockname()[1]

    async def accept_and_close() -> None:
        loop = asyncio.get_running_loop()
        closing.setblocking(False)
        conn, _ = await loop.sock_accept(closing)
        conn.close()

    closer = asyncio.ensure_future(accept_and_close())
    said = await failure(port, "none")
    await closer
    closing.close()
    assert said.startswith("no SMTP greeting") and "is this an SMTP port?" in said
    assert "port None" not in said
    # security = "tls" against a server that speaks plain SMTP first (587, 25)
    server = sink()
    said = await failure(server.port, "tls")
    assert 'for 587 or 25 set security = "starttls"' in said
