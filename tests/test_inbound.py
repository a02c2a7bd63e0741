"""Mail that comes back: VERP return paths, and `digestd inbound` fed real-shaped bounces
(Postfix, Exim, Outlook.com, Gmail), complaints (Yahoo, Microsoft JMRP), mailto:
unsubscribes, a person's reply, a forged token and garbage, each piped into the real
command as an MTA would."""

from __future__ import annotations

import random
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.config import load_config, web_secret
from digestd.inbound import handle_message
from digestd.store import Store
from digestd.tokens import (
    bounce_token,
    find_mail_tokens,
    unsubscribe_mail_token,
    verify_mail_token,
)

from .smtp_server import SmtpSink

DATA = Path(__file__).parent / "data" / "inbound"
VERP = re.compile(r"bounces\+(d-[0-9a-z]+-[0-9a-z]+-[a-z2-7]{16})@example\.org")


@dataclass
class Site:
    cfg: str
    store_path: Path
    secret: bytes
    sink: SmtpSink

    def store(self) -> Store:
        return Store(self.store_path)

    def sent_to(self, address: str) -> list:
        return [r for r in self.sink.received if r.rcpt_tos == [address]]


def write_cfg(tmp_path: Path, sink: SmtpSink, extra: str = "") -> str:
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f"""
[delivery]
from = "Digest <digest@example.org>"
return_path = "bounces@example.org"
bounce_threshold = 3
{extra}

[web]
base_url = "https://digest.example.org"

[smtp]
host = "127.0.0.1"
port = {sink.port}
security = "none"
timeout = 5

[[sources]]
name = "sample"
kind = "sample"
""")
    return str(cfg)


ADDRESSES = [f"reader{i}@example.net" for i in range(1, 7)]


@pytest.fixture
def site(tmp_path, smtp_sink, capsys) -> Site:
    cfg = write_cfg(tmp_path, smtp_sink)
    assert main(["-c", cfg, "poll"]) == 0
    for address in ADDRESSES:
        assert main(["-c", cfg, "subscribers", "add", address, "--rule", "diffusion"]) == 0
    assert main(["-c", cfg, "send", "--now"]) == 0
    capsys.readouterr()
    config = load_config(cfg)
    s = Site(cfg, Path(config.store.path), web_secret(config), smtp_sink)
    assert all(len(s.sent_to(a)) == 1 for a in ADDRESSES)
    return s


def fill(site: Site, name: str, address: str, received=None, **more: str) -> bytes:
    """A file of tests/data/inbound with its placeholders filled in for `address` and the
    (last) digest it was sent."""
    received = received or site.sent_to(address)[-1]
    msg = received.message
    with site.store() as store:
        sid = store.get_subscriber(address).id
    values = {"VERP": received.mail_from, "FAILED": address,
              "MESSAGE_ID": msg["Message-ID"],
              "UNSUB": unsubscribe_mail_token(site.secret, sid),
              "UNSUB_URL": re.findall(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"]))[:1]
              and re.findall(r"<(https://[^>]+)>", str(msg["List-Unsubscribe"]))[0] or "",
              **more}
    text = (DATA / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    assert "@@" not in text
    return text.encode("utf-8")


def pipe(site: Site, raw: bytes, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`digestd inbound` as an MTA runs it: a process of its own, the message on stdin."""
    return subprocess.run([sys.executable, "-m", "digestd.cli", "-c", site.cfg, "inbound",
                           "--log-level", "info", *args], input=raw, capture_output=True,
                          timeout=timeout, cwd=Path(site.cfg).parent)


def state(site: Site) -> tuple:
    """Everything mail that comes back may change, but the counts of what came."""
    with site.store() as store:
        return (store.db.execute("SELECT id, status, bounces FROM subscribers ORDER BY id"
                                 ).fetchall(),
                store.db.execute("SELECT id, subscriber_id, period, status, bounced_at, "
                                 "last_error FROM digests ORDER BY id").fetchall(),
                store.db.execute("SELECT count(*) FROM inbound_seen").fetchone())


def subscriber(site: Site, address: str):
    with site.store() as store:
        return store.get_subscriber(address)


# -- the return path --------------------------------------------------------------------------

def test_every_digest_goes_out_from_a_verp_address_whose_token_names_it(site):
    with site.store() as store:
        rows = {r[0]: (r[1], r[2]) for r in store.db.execute(
            "SELECT recipient, id, subscriber_id FROM digests")}
    for address in ADDRESSES:
        (got,) = site.sent_to(address)
        m = VERP.fullmatch(got.mail_from)
        assert m, got.mail_from
        assert len(got.mail_from.partition("@")[0]) <= 64  # RFC 5321 4.5.3.1.1
        token = verify_mail_token(site.secret, m[1])
        assert token is not None and token.kind == "bounce"
        assert (token.digest_id, token.subscriber_id) == rows[address]
        # a provider that lowercases (or uppercases) the local part keeps the token working
        assert verify_mail_token(site.secret, m[1].upper()) == token
        # the mailto: of List-Unsubscribe carries the subscriber's unsubscribe token
        unsub = str(got.message["List-Unsubscribe"])
        utoken = unsubscribe_mail_token(site.secret, token.subscriber_id)
        assert (f"<mailto:unsubscribe+{utoken}@example.org?subject=unsubscribe%20{utoken}>"
                in unsub.replace("\r\n", "").replace("\n", ""))


def test_mail_tokens_are_short_one_case_and_unforgeable():
    secret = b"k" * 32
    token = bounce_token(secret, 123456, 7890)
    assert token == token.lower() and len(token) <= 36
    assert verify_mail_token(secret, token).digest_id == 123456
    assert verify_mail_token(b"x" * 32, token) is None  # another secret
    assert verify_mail_token(secret, token.replace("-2n9c-", "-2n9d-")) is None  # a digest
    assert verify_mail_token(secret, token[:-1]) is None  # cut off
    assert verify_mail_token(secret, unsubscribe_mail_token(secret, 7890)).kind == "unsubscribe"
    # the purposes are signed: an unsubscribe token's MAC does not make a bounce token
    utoken = unsubscribe_mail_token(secret, 7890)
    assert verify_mail_token(secret, f"d-1-{utoken[2:]}") is None
    assert find_mail_tokens(f"To: bounces+{token.upper()}@example.org") == [token]


def test_without_a_return_path_digests_go_out_from_the_from_address(tmp_path, smtp_sink):
    cfg = write_cfg(tmp_path, smtp_sink)
    Path(cfg).write_text(Path(cfg).read_text().replace('return_path = "bounces@example.org"', ""))
    assert main(["-c", cfg, "poll"]) == 0
    assert main(["-c", cfg, "subscribers", "add", "a@example.net", "--rule", "diffusion"]) == 0
    assert main(["-c", cfg, "send", "--now"]) == 0
    (got,) = smtp_sink.received
    assert got.mail_from == "digest@example.org"
    assert "<mailto:digest@example.org?subject=unsubscribe%20" in str(
        got.message["List-Unsubscribe"])


@pytest.mark.parametrize("value, ok", [
    ("bounces@example.org", True),
    ("Bounces <bounces@example.org>", False),  # a bare address: it is the envelope
    ("b+x@example.org", False),
    ("a-very-long-local-part-for-bounces@example.org", False),  # no room for the token
])
def test_return_path_is_checked(tmp_path, value, ok):
    from digestd.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text(f'[delivery]\nreturn_path = "{value}"\n')
    if ok:
        assert load_config(str(path)).delivery.return_path == value
    else:
        with pytest.raises(ConfigError, match="return_path"):
            load_config(str(path))


# -- bounces ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, address", [
    ("postfix.eml", ADDRESSES[0]), ("exim.eml", ADDRESSES[1]),
    ("outlook.eml", ADDRESSES[2]), ("gmail.eml", ADDRESSES[3])])
def test_a_dsn_counts_a_hard_bounce_for_the_digest_its_token_names(site, name, address):
    raw = fill(site, name, address)
    sub = subscriber(site, address)
    before = state(site)
    done = pipe(site, raw)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == f"bounce subscriber={sub.id} (changed)"
    after = subscriber(site, address)
    assert (after.status, after.bounces) == ("active", 1)
    with site.store() as store:
        rows = store.db.execute("SELECT subscriber_id, bounced_at, last_error FROM digests "
                                "WHERE bounced_at IS NOT NULL").fetchall()
        assert store.inbound_counts() == {"bounce": 1}
    assert len(rows) == 1 and rows[0][0] == sub.id
    assert rows[0][2].startswith("bounced after delivery: 5.")
    # the outbox says so of that sent digest
    listed = subprocess.run([sys.executable, "-m", "digestd.cli", "-c", site.cfg, "outbox",
                             "--sent"], capture_output=True, text=True, timeout=60, check=True)
    (line,) = [x for x in listed.stdout.splitlines() if address in x]
    assert re.search(r"  sent \S+, then bounced after delivery: 5\.", line), line
    # nobody else changed
    assert [r for r in state(site)[0] if r[0] != sub.id] == \
        [r for r in before[0] if r[0] != sub.id]
    # the same message again (the MTA retried, the IMAP move failed) changes nothing
    changed = state(site)
    again = pipe(site, raw)
    assert (again.returncode, again.stdout.decode().strip()) == (0, "duplicate")
    assert state(site) == changed
    # no address in the log, whatever came in
    assert address.encode() not in done.stderr + again.stderr
    assert b"event=inbound kind=bounce" in done.stderr


def test_the_envelope_recipient_that_postfix_passes_is_enough(site):
    address = ADDRESSES[0]
    raw = fill(site, "postfix.eml", address)
    verp = site.sent_to(address)[0].mail_from
    # the headers that name the recipient are gone: only --recipient names it
    raw = re.sub(rb"(?m)^(X-Original-To|Delivered-To|To): .*\n", b"", raw)
    raw = raw.replace(b"X-Postfix-Sender: rfc822; " + verp.encode(), b"")
    raw = raw.replace(b"Return-Path: <" + verp.encode() + b">\n", b"")
    assert verp.encode() not in raw
    done = pipe(site, raw, "--recipient", verp)
    assert done.returncode == 0 and done.stdout.startswith(b"bounce subscriber=")
    assert subscriber(site, address).bounces == 1


def test_a_full_mailbox_and_a_delay_never_count(site):
    address = ADDRESSES[0]
    before = state(site)
    for name in ("mailbox_full.eml", "delayed.eml"):
        done = pipe(site, fill(site, name, address))
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().startswith("delay subscriber=")
    assert state(site)[:2] == before[:2]
    with site.store() as store:
        assert store.inbound_counts() == {"delay": 2}


def test_a_refusal_about_the_sender_never_counts(site):
    """5.7.x (RFC 3463: security or policy, a blocklist, DMARC) is about the sender: the
    DSN and the non-standard form are "refused", and no bounce is counted."""
    before = state(site)
    for name, address in (("postfix.eml", ADDRESSES[0]), ("exim.eml", ADDRESSES[1])):
        raw = fill(site, name, address).replace(b"550 5.1.1", b"554 5.7.1").replace(
            b"Status: 5.1.1", b"Status: 5.7.1")
        assert b"5.7.1" in raw
        done = pipe(site, raw)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().startswith("refused"), done.stdout
    assert state(site)[:2] == before[:2]
    with site.store() as store:
        assert store.inbound_counts() == {"refused": 2}


def test_which_statuses_count_as_bounces():
    """By deliver.classify's rules: the address (X.0, X.1, X.2, X.4) counts; a full mailbox
    is temporary; our sender, a message too big, policy and the mail system are refusals."""
    from digestd.inbound.dsn import permanent_status, policy_status
    counted = ["5.1.1", "5.1.10", "5.2.1", "5.4.1", "5.4.4", "5.0.0"]
    refused = ["5.7.1", "5.7.26", "5.3.4", "5.2.3", "5.1.7", "5.1.8", "5.5.4", "5.3.0"]
    neither = ["5.2.2", "4.2.2", "4.4.1", ""]
    assert [permanent_status(s) for s in counted] == [True] * len(counted)
    assert [policy_status(s) for s in counted] == [False] * len(counted)
    assert [(permanent_status(s), policy_status(s)) for s in refused] == [(False, True)] * len(
        refused)
    assert [(permanent_status(s), policy_status(s)) for s in neither] == [(False, False)] * len(
        neither)


def test_a_bounce_without_a_token_is_found_by_its_failed_address(site):
    address = ADDRESSES[4]
    raw = fill(site, "exim.eml", address, VERP="digest@example.org")
    done = pipe(site, raw)
    assert done.returncode == 0 and done.stdout.startswith(b"bounce subscriber=")
    assert subscriber(site, address).bounces == 1


def test_bounces_without_a_token_never_count_more_than_the_messages_sent(site):
    """Found by address, a bounce does not say which message failed: copies of it (new
    Message-IDs, as a relay that reports twice sends them) count the one message once, and
    after a counted bounce with a token, one without adds nothing either."""
    for address, first in ((ADDRESSES[4], None), (ADDRESSES[5], "postfix.eml")):
        if first:
            assert pipe(site, fill(site, first, address)).returncode == 0
        for n in range(3):
            raw = fill(site, "exim.eml", address, VERP="digest@example.org")
            raw = raw.replace(b"Message-Id: <", f"Message-Id: <copy{n}.".encode(), 1)
            assert f"copy{n}.".encode() in raw
            done = pipe(site, raw)
            assert done.returncode == 0, done.stderr
        sub = subscriber(site, address)
        assert (sub.bounces, sub.status) == (1, "active"), address
        with site.store() as store:
            assert store.db.execute("SELECT count(*) FROM digests WHERE subscriber_id = ? AND "
                                    "bounced_at IS NOT NULL", (sub.id,)).fetchone()[0] == 1


def test_after_bounce_threshold_dsns_the_subscriber_is_bouncing_and_gets_nothing(site, capsys):
    """Each DSN arrives after the next digest went out (a relay accepts everything, so the
    SMTP-time count starts again with every message): the bounces in a row still add up."""
    address = ADDRESSES[5]
    sub = subscriber(site, address)
    for n in range(3):
        if n:
            with site.store() as store:
                queue_digest(store, sub, f"2000-01-0{n}")  # never today's period
            assert main(["-c", site.cfg, "send"]) == 0
        received = site.sent_to(address)[-1]
        raw = fill(site, "postfix.eml", address, received=received).replace(
            b"20261130000004.", f"2026113000000{n}.".encode())
        done = pipe(site, raw)
        assert done.returncode == 0, done.stderr
        assert subscriber(site, address).bounces == n + 1
        assert subscriber(site, address).status == ("bouncing" if n == 2 else "active")
    assert b"now_bouncing" in done.stderr
    # no more digests: one queued now is cancelled, not sent
    count = len(site.sent_to(address))
    with site.store() as store:
        queue_digest(store, sub, "2000-01-09")
    capsys.readouterr()
    main(["-c", site.cfg, "send"])
    assert "1 cancelled: subscriber no longer active" in capsys.readouterr().out
    assert len(site.sent_to(address)) == count
    # and building leaves them out
    assert main(["-c", site.cfg, "send", "--now"]) == 0
    assert len(site.sent_to(address)) == count
    capsys.readouterr()


def queue_digest(store: Store, sub, period: str) -> int:
    message_id = f"<{period}.{sub.id}@example.org>"
    message = (f"From: Digest <digest@example.org>\r\nTo: {sub.email}\r\nSubject: a digest\r\n"
               f"Message-ID: {message_id}\r\n\r\nHi\r\n").encode()
    return store.queue_digest(sub.id, period, recipient=sub.email, message_id=message_id,
                              message=message, paper_pks=[])


# -- complaints and unsubscribes --------------------------------------------------------------

@pytest.mark.parametrize("name", ["arf_yahoo.eml", "arf_jmrp.eml"])
def test_a_complaint_unsubscribes_at_once_without_a_notice(site, name):
    address = ADDRESSES[1]
    sub = subscriber(site, address)
    with site.store() as store:
        outbox = store.db.execute("SELECT count(*) FROM digests").fetchone()
    done = pipe(site, fill(site, name, address))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == f"complaint subscriber={sub.id} (changed)"
    assert subscriber(site, address).status == "unsubscribed"
    with site.store() as store:
        assert store.inbound_counts() == {"complaint": 1}
        # nothing is mailed to someone who called us spam
        assert store.db.execute("SELECT count(*) FROM digests").fetchone() == outbox
    assert address.encode() not in done.stderr


def test_a_mailto_unsubscribe_unsubscribes_and_confirms_once(site, capsys):
    address = ADDRESSES[2]
    sub = subscriber(site, address)
    raw = fill(site, "mailto_unsubscribe.eml", address)
    done = pipe(site, raw)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == f"unsubscribe subscriber={sub.id} (changed)"
    assert subscriber(site, address).status == "unsubscribed"
    # the notice goes through the outbox, from a VERP address, built as a digest is
    assert main(["-c", site.cfg, "send"]) == 0
    notices = site.sent_to(address)[1:]
    assert len(notices) == 1
    notice = notices[0]
    assert VERP.fullmatch(notice.mail_from)
    assert b"\r\n" in notice.data and b"\n" not in notice.data.replace(b"\r\n", b"")
    msg = notice.message
    assert msg["Subject"] == "You are unsubscribed from Paper digest"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Date"] and msg["Message-ID"]
    assert "https://digest.example.org/" in msg.get_body(("plain",)).get_content()
    # the same message again, and the same request in a new message: no second notice
    assert pipe(site, raw).stdout.strip() == b"duplicate"
    again = raw.replace(b"<CAF=unsub.4711@mail.example.net>", b"<CAF=unsub.4712@x>")
    assert pipe(site, again).stdout.strip() == f"unsubscribe subscriber={sub.id}".encode()
    assert main(["-c", site.cfg, "send"]) == 0
    assert len(site.sent_to(address)) == 2
    capsys.readouterr()


def test_a_bouncing_address_that_unsubscribes_gets_no_notice(site):
    address = ADDRESSES[3]
    sub = subscriber(site, address)
    with site.store() as store:
        store.set_status(sub.id, "bouncing")
        rows = store.db.execute("SELECT count(*) FROM digests").fetchone()
    done = pipe(site, fill(site, "mailto_unsubscribe.eml", address))
    assert done.returncode == 0
    assert subscriber(site, address).status == "unsubscribed"
    with site.store() as store:
        assert store.db.execute("SELECT count(*) FROM digests").fetchone() == rows


# -- what changes nothing -----------------------------------------------------------------------

def test_a_reply_a_forged_token_and_garbage_change_nothing(site):
    address = ADDRESSES[0]
    sid = subscriber(site, address).id
    real = unsubscribe_mail_token(site.secret, sid)
    forged = real[:-4] + ("aaaa" if not real.endswith("aaaa") else "bbbb")
    garbage = random.Random(16).randbytes(4096)
    before = state(site)
    for raw in (fill(site, "reply.eml", address), fill(site, "forged.eml", address,
                                                        FORGED=forged),
                garbage, b"", b"\x00\xff\r\n\r\n\r\n--"):
        done = pipe(site, raw)
        assert (done.returncode, done.stdout.strip()) == (0, b"unrecognized"), done.stderr
        assert address.encode() not in done.stderr
        assert b"Traceback" not in done.stderr
    assert state(site) == before
    with site.store() as store:
        assert store.inbound_counts() == {"unrecognized": 5}


def test_a_forged_bounce_token_changes_nothing(site):
    address = ADDRESSES[0]
    verp = site.sent_to(address)[0].mail_from
    forged = re.sub(r"-([a-z2-7]{16})@", lambda m: "-" + m[1][::-1] + "@", verp)
    assert forged != verp
    before = state(site)
    done = pipe(site, fill(site, "postfix.eml", address, VERP=forged))
    assert (done.returncode, done.stdout.strip()) == (0, b"unrecognized")
    assert state(site) == before


# -- exit codes ---------------------------------------------------------------------------------

def test_a_locked_store_exits_75_and_changes_nothing(site):
    raw = fill(site, "postfix.eml", ADDRESSES[0])
    before = state(site)
    lock = sqlite3.connect(site.store_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        done = pipe(site, raw, "--timeout", "0.3")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert done.returncode == 75, done.stderr
    assert b"try again later" in done.stderr
    assert state(site) == before
    # later the MTA tries again, and it works
    assert pipe(site, raw).stdout.startswith(b"bounce subscriber=")


def test_a_broken_config_exits_75_so_the_mta_keeps_the_message(site):
    Path(site.cfg).write_text(Path(site.cfg).read_text() + "\n[delivery.oops\n")
    done = pipe(site, b"Subject: hi\r\n\r\nhi\r\n")
    assert done.returncode == 75
    assert b"cannot handle mail now" in done.stderr


def test_handle_message_raises_inbound_temp_fail_on_a_busy_store(site):
    from digestd.errors import InboundTempFail

    config = load_config(site.cfg)
    lock = sqlite3.connect(site.store_path, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        with Store(site.store_path, timeout=0.2) as store, \
                pytest.raises(InboundTempFail) as e:
            handle_message(fill(site, "postfix.eml", ADDRESSES[0]), config=config, store=store)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert e.value.exit_code == 75


# -- counts ------------------------------------------------------------------------------------

def test_counts_persist_and_reach_metrics(site, capsys):
    assert pipe(site, fill(site, "postfix.eml", ADDRESSES[0])).returncode == 0
    assert pipe(site, b"hello").returncode == 0
    capsys.readouterr()
    assert main(["-c", site.cfg, "inbound", "--counts"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"(?m)^bounce +1$", out) and re.search(r"(?m)^unrecognized +1$", out)
    from collections import Counter

    from prometheus_client import CollectorRegistry, generate_latest

    from digestd.web.metrics import StoreCollector

    registry = CollectorRegistry()
    with site.store() as store:
        registry.register(StoreCollector(store, Counter()))
        text = generate_latest(registry).decode()
    assert 'digestd_inbound_messages_total{kind="bounce"} 1.0' in text
    assert 'digestd_inbound_messages_total{kind="unrecognized"} 1.0' in text
    assert 'digestd_inbound_messages_total{kind="complaint"} 0.0' in text


def test_keys_of_handled_messages_are_forgotten_after_30_days(site):
    raw = fill(site, "postfix.eml", ADDRESSES[0])
    assert pipe(site, raw).stdout.startswith(b"bounce")
    with site.store() as store, store.transaction() as db:
        db.execute("UPDATE inbound_seen SET at = '2000-01-01T00:00:00+00:00'")
    assert pipe(site, b"Subject: x\r\n\r\nx\r\n").stdout.strip() == b"unrecognized"
    with site.store() as store:
        assert store.db.execute("SELECT count(*) FROM inbound_seen").fetchone() == (0,)


def test_without_a_config_file_it_exits_75_and_makes_no_store(tmp_path):
    done = subprocess.run([sys.executable, "-m", "digestd.cli", "inbound"], input=b"x",
                          capture_output=True, cwd=tmp_path, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 75 and b"no config file" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_non_standard_bounce_that_says_mailbox_full_never_counts(site):
    address = ADDRESSES[1]
    raw = fill(site, "exim.eml", address).replace(
        b"550 5.1.1 <" + address.encode() + b">: No such user here",
        b"552 5.2.2 <" + address.encode() + b">: Mailbox full")
    before = state(site)
    with site.store() as store:
        handled = handle_message(raw, config=load_config(site.cfg), store=store)
    assert (handled.kind, handled.changed) == ("delay", False)
    assert state(site)[:2] == before[:2]


def test_a_success_notice_is_not_a_bounce(site):
    address = ADDRESSES[0]
    raw = fill(site, "postfix.eml", address).replace(b"Action: failed", b"Action: delivered")
    before = state(site)
    with site.store() as store:
        handled = handle_message(raw, config=load_config(site.cfg), store=store)
    assert handled.kind == "unrecognized"
    assert state(site)[:2] == before[:2]


def test_unsubscribe_mailto_must_take_a_token_only_with_a_return_path(tmp_path):
    from digestd.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[delivery]\nunsubscribe_mailto = "digest+unsub@example.org"\n')
    assert load_config(str(path)).delivery.unsubscribe_mailto == "digest+unsub@example.org"
    path.write_text('[delivery]\nunsubscribe_mailto = "digest+unsub@example.org"\n'
                    'return_path = "bounces@example.org"\n')
    with pytest.raises(ConfigError, match=r"c.toml:2: delivery.unsubscribe_mailto .*\+TOKEN"):
        load_config(str(path))


def test_config_check_names_the_return_path(site, capsys):
    assert main(["-c", site.cfg, "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "bounces   return path bounces+TOKEN@example.org" in out
    # and the List-Unsubscribe mailto, which goes to `digestd inbound` too
    assert ("  mailto    unsubscribe mails to unsubscribe+TOKEN@example.org: pipe it to "
            "`digestd inbound`") in out
    # in the summary's column, as every label's value
    summary = [line for line in out.splitlines() if line.startswith("  ") and line[2] != " "]
    assert len(summary) >= 6 and all(line[10] == " " and line[12] != " " for line in summary)


def test_a_bug_of_ours_exits_75_without_quoting_the_message(site, monkeypatch, capsys):
    import digestd.inbound

    def broken(*args, **kwargs):
        raise ValueError("secret text from the message")

    monkeypatch.setattr(digestd.inbound, "handle_message", broken)
    monkeypatch.setattr("sys.stdin", type("In", (), {"buffer": __import__("io").BytesIO(b"x")}))
    assert main(["-c", site.cfg, "inbound"]) == 75
    err = capsys.readouterr().err
    assert "event=inbound_failed error=ValueError" in err and "secret text" not in err


def test_the_subject_of_an_older_mailto_unsubscribes_too(site):
    """Digests sent without a return path (or before it was set) carry the /u/ token in the
    mailto:'s subject, to the From address: piping that mailbox in works as well."""
    from digestd.render import Links

    address = ADDRESSES[4]
    sub = subscriber(site, address)
    token = Links("https://digest.example.org", site.secret).unsubscribe_token(sub.id)
    raw = (f"From: {address}\r\nTo: digest@example.org\r\nSubject: unsubscribe {token}\r\n"
           "Message-ID: <old.1@example.net>\r\n\r\nunsubscribe\r\n").encode()
    with site.store() as store:
        handled = handle_message(raw, config=load_config(site.cfg), store=store)
    assert (handled.kind, handled.subscriber_id, handled.changed) == ("unsubscribe", sub.id,
                                                                     True)
    assert subscriber(site, address).status == "unsubscribed"
    # and a forged one changes nothing
    other = subscriber(site, ADDRESSES[5])
    forged = Links("https://digest.example.org", b"x" * 32).unsubscribe_token(other.id)
    with site.store() as store:
        handled = handle_message(raw.replace(token.encode(), forged.encode()).replace(
            b"old.1", b"old.2"), config=load_config(site.cfg), store=store)
    assert handled.kind == "unrecognized" and subscriber(site, ADDRESSES[5]).status == "active"


# -- the [inbound] mailbox, end to end ------------------------------------------------------------

def imap_runs(site, mailbox, runs: int = 2):
    """Read the real mailbox `runs` times with the daemon's own handler, each over a new
    connection (as after a restart): each run's report, as it ends."""
    from digestd.config import InboundConfig
    from digestd.daemon import inbound_handler
    from digestd.inbound.imap import fetch_and_handle

    cfg = InboundConfig(imap_host=mailbox.host, imap_port=mailbox.port, imap_security="none",
                        username=mailbox.username, timeout=10)
    config = load_config(site.cfg)
    for _ in range(runs):
        with site.store() as store:
            run = fetch_and_handle(cfg, mailbox.password, inbound_handler(config, store))
        assert run.error is None
        yield run


def test_a_bounce_and_an_unsubscribe_in_a_real_mailbox_are_handled_once(site, mailbox):
    """Real Dovecot, the daemon's own handler: the DSN counts one bounce, the mailto:
    unsubscribe unsubscribes; both are moved, and a new connection (a restart) reads neither
    again."""
    from digestd.inbound.imap import PROCESSED

    bounced, leaving = ADDRESSES[0], ADDRESSES[1]
    mailbox.append(fill(site, "postfix.eml", bounced),
                   fill(site, "mailto_unsubscribe.eml", leaving))
    for restart, run in enumerate(imap_runs(site, mailbox)):
        if restart == 0:
            assert (run.fetched, run.handled, run.failed) == (2, 2, 0)
            assert run.kinds == {"bounce": 1, "unsubscribe": 1}
        else:
            assert (run.fetched, run.handled) == (0, 0)
        assert (subscriber(site, bounced).bounces, subscriber(site, bounced).status) == (
            1, "active")
        assert subscriber(site, leaving).status == "unsubscribed"
        with site.store() as store:
            assert store.inbound_counts() == {"bounce": 1, "unsubscribe": 1}
    folders = mailbox.folders()
    assert folders["INBOX"]["messages"] == 0 and folders[PROCESSED]["messages"] == 2


@pytest.mark.parametrize("value, says", [
    ("bounces+x@example.org", 'without a "+" of its own'),
    (f"{'b' * 28}@example.org", "has 28 characters, at most 27"),
    ("Bounces <bounces@example.org>", "without a name"),
    ("not-an-address", 'such as "bounces@example.org"'),
])
def test_config_check_says_what_is_wrong_with_a_return_path(tmp_path, capsys, value, says):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[delivery]\nfrom = "D <digest@example.org>"\nreturn_path = "{value}"\n')
    assert main(["-c", str(cfg), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:3: delivery.return_path must be a plain ASCII address" in err and says in err
    assert "Paper digest <" not in err  # the From address's example does not fit here


def test_config_check_warns_of_a_feedback_id_google_would_not_advise(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[delivery]\nfrom = "D <digest@example.org>"\nfeedback_id = "ab"\n')
    assert main(["-c", str(cfg), "config", "check"]) == 0
    assert (f'{cfg}:3: delivery.feedback_id "ab" has 2 characters: Google\'s Feedback-ID '
            "advice is 5 to 15") in capsys.readouterr().err


def test_the_outbox_method_writes_the_return_path_a_delivery_would(tmp_path, capsys):
    """With method "outbox" no SMTP envelope exists: each .eml starts with the Return-Path
    header a final delivery adds, so a bounce can be written for it."""
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[delivery]\n'
                   f'outbox_dir = "{tmp_path / "outbox"}"\nfrom = "D <digest@example.org>"\n'
                   'return_path = "bounces@example.org"\n'
                   '[[sources]]\nname = "sample"\nkind = "sample"\n')
    assert main(["-c", str(cfg), "poll"]) == 0
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.net", "--rule",
                 "diffusion"]) == 0
    assert main(["-c", str(cfg), "send", "--now"]) == 0
    capsys.readouterr()
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    first = eml.read_bytes().split(b"\r\n", 1)[0].decode()
    m = re.fullmatch(r"Return-Path: <bounces\+(d-[0-9a-z-]+)@example\.org>", first)
    assert m, first
    token = verify_mail_token(web_secret(load_config(str(cfg))), m[1])
    assert token is not None and token.kind == "bounce"
