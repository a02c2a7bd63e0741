"""SMTP servers as the field has them, second round: connection limits and sessions a relay
ends, replies about one recipient, and timeouts; each against a real aiosmtpd server on
127.0.0.1 (tests/smtp_server.py) and the real sender, with the store in tmp_path."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from digestd.deliver import send_smtp

from .conftest import free_port
from .smtp_server import SmtpSink
from .test_deliver import queue, smtp, status_of

FROM = "digest@example.org"


@pytest.fixture
def sink():
    """A server of this test's own, started by the test (its settings differ)."""
    made: list[SmtpSink] = []

    def make(**options) -> SmtpSink:
        server = SmtpSink(port=free_port(), **options)
        server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


def addresses(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i:02d}@example.org" for i in range(n)]


def all_sent_once(store, server: SmtpSink, report, ids, emails) -> None:
    """Every digest went out in this run, each once: none deferred, failed or handed back,
    and the run did not stop."""
    assert (report.sent, report.deferred, report.failed, report.stopped,
            report.handed_back) == (len(emails), 0, 0, None, 0)
    assert Counter(r.rcpt_tos[0] for r in server.received) == Counter(emails)
    assert {status_of(store, i)[0] for i in ids} == {"sent"}


# -- how many connections, and sessions the relay ends -------------------------------------------

async def test_a_421_greeting_past_two_connections_of_four(store, sink):
    server = sink(max_sessions=2)
    time.sleep(0.1)  # the controller's trial connection is over
    emails = addresses(12)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=4), FROM)
    all_sent_once(store, server, report, ids, emails)
    assert len({r.peer for r in server.received}) <= 2


@pytest.mark.parametrize("refuse", ["after_ehlo", "at_ehlo"])
@pytest.mark.parametrize("limit", [1, 2])
async def test_extra_connections_closed_right_after_ehlo(store, sink, refuse, limit):
    """The relay takes four connections but closes the ones past its limit once they said
    EHLO, after its answer or instead of it: the first MAIL FROM of such a connection finds
    it gone. Nothing of that message was sent: it goes over a connection that works."""
    server = sink(max_sessions=limit, refuse=refuse)
    time.sleep(0.1)
    emails = addresses(10)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=4), FROM)
    all_sent_once(store, server, report, ids, emails)


@pytest.mark.parametrize("connections", [1, 4])
@pytest.mark.parametrize("at", [1, 4])
async def test_a_421_to_mail_from_as_the_server_shuts_down(store, sink, connections, at):
    """"421 4.3.2 Service shutting down" to a MAIL FROM (the run's first, or one in the middle
    of a session), and the connection closed: a new connection takes that message; it is
    neither failed nor deferred."""
    server = sink()
    server.handler.mail_answers = {at: "421 4.3.2 Service shutting down"}
    emails = addresses(8)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=connections), FROM)
    all_sent_once(store, server, report, ids, emails)


async def test_a_server_that_restarts_after_its_421(store, sink):
    """The server says 421 to MAIL FROM and is gone for 0.6 s (a restart): the run connects
    again once it is back and sends everything."""
    server = sink()
    emails = addresses(8)
    ids = queue(store, emails)

    class Restart(dict):
        def get(self, number, default=None):
            if number == 3:
                server.server.closed_until = time.monotonic() + 0.6
                return "421 4.3.2 Service shutting down"
            return default

    server.handler.mail_answers = Restart()
    report = await send_smtp(store, smtp(server, max_connections=2), FROM)
    all_sent_once(store, server, report, ids, emails)


@pytest.mark.parametrize("connections", [1, 3])
async def test_rate_limited_with_421_after_k_messages_per_connection(store, sink, connections):
    server = sink()
    server.handler.per_session = 2
    server.handler.per_session_answer = "421 4.7.0 Try again later"
    emails = addresses(11)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=connections), FROM)
    all_sent_once(store, server, report, ids, emails)


@pytest.mark.parametrize("connections", [1, 4])
async def test_a_server_that_hangs_up_after_every_k_messages(store, sink, connections):
    """The connection is closed right after the 250 to its third message, without a word."""
    server = sink()
    server.handler.drop_after = 3
    emails = addresses(13)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=connections), FROM)
    all_sent_once(store, server, report, ids, emails)


@pytest.mark.parametrize("greeting", ["554 5.7.1 no service", "554 no SMTP service here"])
async def test_a_554_greeting_stops_the_run_and_keeps_the_mail(store, sink, greeting):
    server = sink()
    server.server.greeting = greeting
    emails = addresses(6)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=4), FROM, bounce_threshold=1)
    assert report.stopped and greeting in report.stopped
    assert (report.sent, report.failed, report.bounced) == (0, 0, 0)
    assert {status_of(store, i)[0] for i in ids} == {"queued"}
    assert not store.outbox_claimants()
    for email in emails:
        sub = store.get_subscriber(email)
        assert (sub.status, sub.bounces) == ("active", 0)
    assert not server.received


# -- what a reply says of one message ------------------------------------------------------------

RCPT = [
    # temporary, however said: retried later, never a bounce
    ("452 4.2.2 Mailbox full", "deferred"),
    ("450 4.2.1 Mailbox busy, try again later", "deferred"),
    ("451 4.7.1 Greylisted, try again in 300 seconds", "deferred"),
    ("552 5.2.2 Mailbox full", "deferred"),
    ("422 4.2.2 The recipient has exceeded their storage quota", "deferred"),
    ("422 Recipient mailbox over quota", "deferred"),
    ("550 Mailbox full", "deferred"),
    ("550 User over quota", "deferred"),
    ("554 Sorry, mailbox is full", "deferred"),
    ("550 5.0.0 <ADDR>: quota exceeded", "deferred"),
    ("552 Requested mail action aborted: exceeded storage allocation", "deferred"),
    ("550 5.4.5 Daily user sending quota exceeded", "deferred"),  # congestion (X.4.5)
    ("553 5.3.1 Mail system full", "deferred"),  # the system's storage (X.3.1)
    # policy, the mail system: this message fails, the address is not blamed
    ("550 5.7.1 Message rejected by policy", "failed"),
    ("554 5.7.1 Service unavailable; client host blocked", "failed"),
    ("550 5.7.606 Access denied, banned sending IP", "failed"),
    # the address itself: a hard bounce
    ("550 5.1.1 <ADDR>: Recipient address rejected: User unknown", "bounced"),
    ("553 5.1.3 Bad recipient address syntax", "bounced"),
    ("550 5.1.10 Recipient address has null MX", "bounced"),
    ("550 5.2.1 Mailbox disabled", "bounced"),
    ("550 No such user here", "bounced"),
    # multi-line replies whose last line carries the enhanced code
    ("550-The account you tried to reach\r\n550-does not exist here\r\n"
     "550 5.1.1 <ADDR>: user unknown", "bounced"),
    ("550-Your message was not accepted\r\n550 5.7.1 Rejected by policy", "failed"),
    ("450-Greylisted\r\n450-see https://example.net/grey\r\n450 4.2.0 try again later",
     "deferred"),
    ("552-Message not delivered\r\n552 5.2.2 Mailbox full", "deferred"),
]


@pytest.mark.parametrize("answer, kind", RCPT)
async def test_what_a_reply_to_rcpt_says(store, smtp_sink, answer, kind):
    """bounce_threshold 1: a single counted bounce would make the subscriber bouncing."""
    address = "them@example.org"
    smtp_sink.handler.rcpt_answers[address] = answer.replace("ADDR", address)
    (did,) = queue(store, [address])
    report = await send_smtp(store, smtp(smtp_sink), FROM, bounce_threshold=1)
    assert (report.sent, report.deferred, report.failed, report.bounced) == (
        0, kind == "deferred", kind != "deferred", kind == "bounced")
    status, attempts, error, next_at, claimed = status_of(store, did)
    assert (status, attempts, claimed) == (
        "queued" if kind == "deferred" else "failed", 1, None)
    assert error.startswith("RCPT " + answer[:3])
    sub = store.get_subscriber(address)
    assert (sub.status, sub.bounces) == (
        ("bouncing", 1) if kind == "bounced" else ("active", 0))


DATA = [
    ("552 5.3.4 Message too big for system", "failed"),
    ("552 5.2.3 Message length exceeds administrative limit", "failed"),
    ("554 5.7.1 Message rejected as spam", "failed"),
    ("452 4.3.1 Insufficient system storage", "deferred"),
    ("451 4.7.1 Greylisted, try again in 300 seconds", "deferred"),
    ("550 5.1.1 <ADDR>: user unknown", "bounced"),
]


@pytest.mark.parametrize("answer, kind", DATA)
async def test_what_a_reply_to_the_end_of_data_says(store, smtp_sink, answer, kind):
    address = "them@example.org"
    smtp_sink.handler.data_answers.append(answer.replace("ADDR", address))
    (did,) = queue(store, [address])
    report = await send_smtp(store, smtp(smtp_sink), FROM, bounce_threshold=1)
    assert (report.sent, report.deferred, report.failed, report.bounced) == (
        0, kind == "deferred", kind != "deferred", kind == "bounced")
    assert status_of(store, did)[0] == ("queued" if kind == "deferred" else "failed")
    sub = store.get_subscriber(address)
    assert (sub.status, sub.bounces) == (
        ("bouncing", 1) if kind == "bounced" else ("active", 0))


@pytest.mark.parametrize("connections", [1, 2])
async def test_too_many_recipients_in_a_session(store, smtp_sink, connections):
    """"452 4.5.3 Too many recipients" once a connection had two (RFC 5321 4.5.3.1.10: the
    rest go in a new transaction): every digest goes out in this run, each once."""
    smtp_sink.handler.rcpt_per_session = 2
    emails = addresses(9)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(smtp_sink, max_connections=connections), FROM)
    all_sent_once(store, smtp_sink, report, ids, emails)


async def test_too_many_recipients_for_one_address_every_time_is_deferred(store, smtp_sink):
    """The same answer to one address on every new connection: tried a few times, then
    deferred like any 4xx; the others go out."""
    smtp_sink.handler.rcpt_answers["odd@example.org"] = "452 4.5.3 Too many recipients"
    odd, *ids = queue(store, ["odd@example.org", *addresses(4)])
    report = await send_smtp(store, smtp(smtp_sink, max_connections=2), FROM)
    assert (report.sent, report.deferred, report.failed, report.stopped) == (4, 1, 0, None)
    assert status_of(store, odd)[:2] == ("queued", 1)
    assert store.get_subscriber("odd@example.org").bounces == 0


@pytest.mark.parametrize("answer, wait", [
    ("451 4.7.1 Greylisted, try again in 300 seconds", 300),
    ("451 4.7.1 Greylisting in action, please come back in 00:05:00", 300),
    ("450 4.2.0 Greylisted for 10 minutes", 600),
    ("451 4.7.1 Please try again later", 60),
])
async def test_greylisting_is_retried_no_sooner_than_the_server_asks(store, smtp_sink, answer,
                                                                     wait):
    smtp_sink.handler.rcpt_answers["grey@example.org"] = answer
    (did,) = queue(store, ["grey@example.org"])
    began = datetime.now(timezone.utc)
    report = await send_smtp(store, smtp(smtp_sink), FROM)
    assert report.deferred == 1
    status, _, _, next_at, _ = status_of(store, did)
    after = (datetime.fromisoformat(next_at) - began).total_seconds()
    assert status == "queued" and wait * 0.9 - 1 <= after <= wait * 1.1 + 1
    assert store.get_subscriber("grey@example.org").bounces == 0


# -- timeouts ------------------------------------------------------------------------------------

async def test_no_answer_to_the_final_dot_defers_and_never_resends_in_the_run(store, smtp_sink):
    """The server has the message but does not answer its final "." within
    smtp.data_timeout: the digest is deferred (the server may have it; the next attempt sends
    it again, with the same Message-ID), not sent again over another connection now."""
    handler = smtp_sink.handler
    handler.hold_after, handler.hold_accepts = 0, True
    (did,) = queue(store, ["slow@example.org"])
    try:
        report = await send_smtp(store, smtp(smtp_sink, max_connections=2, timeout=2,
                                             data_timeout=0.4), FROM)
    finally:
        handler.release()
    assert (report.sent, report.deferred, report.failed, report.stopped) == (0, 1, 0, None)
    status, attempts, error, next_at, _ = status_of(store, did)
    assert (status, attempts) == ("queued", 1) and next_at
    assert "data_timeout" in error
    assert len(handler.received) == 1
    assert store.get_subscriber("slow@example.org").bounces == 0


async def test_a_server_slow_to_greet(store, sink):
    """A server that waits before its 220 (a tarpit, an Exim connect ACL's "delay"): the
    greeting is awaited smtp.greeting_timeout (RFC 5321 4.5.3.2.1: 5 minutes), not the
    step timeout."""
    server = sink()
    server.server.greet_delay = 1.0
    emails = addresses(3)
    ids = queue(store, emails)
    report = await send_smtp(store, smtp(server, max_connections=2, timeout=0.3), FROM)
    all_sent_once(store, server, report, ids, emails)


async def test_a_greeting_that_never_comes_stops_the_run(store, sink):
    server = sink()
    server.server.greet_delay = 3.0
    ids = queue(store, addresses(2))
    began = time.monotonic()
    report = await send_smtp(store, smtp(server, max_connections=1, timeout=0.3,
                                         greeting_timeout=0.5), FROM)
    assert time.monotonic() - began < 2.5
    assert report.stopped and "greeting" in report.stopped
    assert (report.sent, report.failed) == (0, 0)
    assert {status_of(store, i)[0] for i in ids} == {"queued"}


async def test_a_server_that_ends_every_connection_after_ehlo_stops_the_run(store, sink,
                                                                          monkeypatch):
    """No connection ever carries a message: after the retries a relay that frees its
    places gets, the run stops with the reason; the mail stays queued, nothing bounced."""
    import digestd.deliver.sender as sender
    monkeypatch.setattr(sender, "CONNECT_RETRY_S", 0.01)
    server = sink(max_sessions=0, refuse="after_ehlo")
    time.sleep(0.1)
    ids = queue(store, addresses(5))
    report = await send_smtp(store, smtp(server, max_connections=4), FROM, bounce_threshold=1)
    assert report.stopped and "ended the session before a message" in report.stopped
    assert (report.sent, report.failed, report.bounced, report.deferred) == (0, 0, 0, 1)
    assert {status_of(store, i)[0] for i in ids} == {"queued"}
    assert not server.received and not store.outbox_claimants()


async def test_the_doctor_waits_for_a_slow_greeting_too(sink):
    from digestd.deliver import probe

    server = sink()
    server.server.greet_delay = 0.8
    result = await probe(smtp(server, timeout=0.3))
    assert result.ok, result.steps


@pytest.mark.parametrize("text, seconds", [
    ("4.7.1 Greylisted, try again in 300 seconds", 300),
    ("4.7.1 Greylisting in action, please come back in 00:05:00", 300),
    ("4.2.0 Greylisted for 10 minutes", 600),
    ("4.7.0 Try again in 2h", 7200),
    ("4.7.0 try again in 99 hours", 6 * 3600),
    ("4.7.1 Please try again later", 0),
    ("4.7.1 Listed in 3 lists", 0),
    ("4.3.0 Too many messages in 2 sessions", 0),
])
def test_the_wait_a_reply_asks_for(text, seconds):
    from digestd.deliver import retry_hint
    assert retry_hint(text) == seconds
