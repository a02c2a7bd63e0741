"""The last mile through a real MTA relay: `digestd send` hands digests to a throwaway
Postfix on 127.0.0.1 (tests/postfix.py), which relays them to the aiosmtpd sink.

What must hold (issue 18, README "Beyond one machine", docs/relay.md): every digest
arrives once with its headers, DKIM signature and VERP envelope sender intact; a
destination that answers 4xx is Postfix's problem, not digestd's (digestd has its 250 and
counts the digest sent; Postfix queues it and delivers it once, later); and a 5xx after
the relay accepted comes back as Postfix's DSN to the VERP return path, which the `pipe`
transport of docs/inbound.md feeds into `digestd inbound`, counting a hard bounce.
"""

from __future__ import annotations

import base64
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dkim
import pytest

from digestd.cli import main
from digestd.config import load_config, web_secret
from digestd.store import Store, unpack_message
from digestd.tokens import verify_mail_token

from .postfix import POSTFIX, Postfix
from .test_inbound import VERP

ADDRESSES = [f"reader{i}@example.net" for i in range(1, 9)]


def need_postfix() -> None:
    """Skip, saying why, where no Postfix instance can run."""
    if POSTFIX is None:
        pytest.skip("Postfix is not installed (apt-get install postfix)")
    if os.geteuid() != 0:
        pytest.skip(f"Postfix's master runs as root; this test runs as uid {os.geteuid()}")


@pytest.fixture
def relay(smtp_sink):
    """Start a Postfix relaying to this test's sink: relay(**Postfix options) -> Postfix.
    Skips with the reason where Postfix is missing or cannot start (not root, say)."""
    started: list[Postfix] = []

    def start(**options) -> Postfix:
        need_postfix()
        server = Postfix(smtp_sink.port, **options)
        started.append(server)
        try:
            server.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            pytest.skip(f"Postfix cannot start here: {e}")
        return server

    yield start
    for server in started:
        server.stop()


def write_cfg(folder: Path, port: int, extra: str = "") -> str:
    cfg = folder / "digestd.toml"
    cfg.write_text(f"""
[delivery]
from = "Digest <digest@example.org>"
return_path = "bounces@example.org"
bounce_threshold = 3

[web]
base_url = "https://digest.example.org"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
timeout = 10
{extra}

[[sources]]
name = "sample"
kind = "sample"
""")
    return str(cfg)


def send_digests(cfg: str, capsys, addresses=ADDRESSES) -> str:
    """Poll the sample papers, subscribe `addresses` to "diffusion", `digestd send --now`;
    what send printed."""
    assert main(["-c", cfg, "poll"]) == 0
    for address in addresses:
        assert main(["-c", cfg, "subscribers", "add", address, "--rule", "diffusion"]) == 0
    capsys.readouterr()
    assert main(["-c", cfg, "send", "--now"]) == 0
    return capsys.readouterr().out


def stored_messages(cfg: str) -> dict[str, tuple[int, str, bytes]]:
    """recipient -> (digest id, status, the message bytes digestd handed over)."""
    with Store(load_config(cfg).store.path) as store:
        return {r[0]: (r[1], r[2], unpack_message(bytes(r[3]), r[4])) for r in store.db.execute(
            "SELECT d.recipient, d.id, d.status, b.message, b.packing FROM digests d "
            "JOIN digest_bodies b ON b.digest_id = d.id")}


def wait_for(predicate, timeout: float, what: str, relay: Postfix) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s; Postfix's log: {relay.log()}")
        time.sleep(0.1)


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl makes the DKIM test key")
def test_digests_pass_the_relay_once_with_headers_signature_and_envelope_intact(
        tmp_path, smtp_sink, relay, capsys):
    from .test_dkim import dns_for

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True)
    der = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    postfix = relay()
    cfg = write_cfg(tmp_path, postfix.port,
                    f'\n[dkim]\nselector = "mail2026"\nprivate_key_file = "{key}"\n')
    out = send_digests(cfg, capsys)
    assert f"{len(ADDRESSES)} sent, 0 deferred, 0 failed" in out
    postfix.wait_empty(30)
    wait_for(lambda: len(smtp_sink.received) >= len(ADDRESSES), 10, "every digest at the sink",
             postfix)
    time.sleep(0.5)  # a duplicate would come right behind
    got = smtp_sink.received
    assert sorted(r.rcpt_tos[0] for r in got) == sorted(ADDRESSES)  # each once
    assert Counter(len(r.rcpt_tos) for r in got) == {1: len(ADDRESSES)}
    stored = stored_messages(cfg)
    secret = web_secret(load_config(cfg))
    for received in got:
        (address,) = received.rcpt_tos
        digest_id, status, handed = stored[address]
        assert status == "sent"
        # the bytes digestd handed over arrive as they were, below Postfix's Received:
        arrived = lf(received.data)
        assert arrived.startswith(b"Received: ") and arrived.endswith(lf(handed)), address
        msg = received.message
        assert msg["Message-ID"] and msg["Message-ID"] in handed.decode()
        assert "<https://digest.example.org/u/" in str(msg["List-Unsubscribe"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), address
        # the VERP envelope sender survives the relay, and its token names this digest
        m = VERP.fullmatch(received.mail_from)
        assert m, received.mail_from
        token = verify_mail_token(secret, m[1])
        assert (token.kind, token.digest_id) == ("bounce", digest_id)
    # Postfix itself says it relayed each to the sink once
    sent = [d for d in postfix.deliveries() if d["status"] == "sent"]
    assert sorted(d["to"] for d in sent) == sorted(ADDRESSES)
    assert all(d["relay"].endswith(f":{smtp_sink.port}") for d in sent)


def test_a_destination_that_answers_4xx_is_the_relays_to_retry(tmp_path, smtp_sink, relay,
                                                                   capsys):
    """The sink answers 451 to the first 5 DATA commands: digestd is done (250 from
    Postfix), Postfix defers those 5 and delivers every digest once, seconds later."""
    postfix = relay()
    refusals = 5
    smtp_sink.handler.data_answers.extend(["451 4.3.0 try again later"] * refusals)
    cfg = write_cfg(tmp_path, postfix.port)
    started = time.monotonic()
    out = send_digests(cfg, capsys)
    # Postfix said 250 to each: for digestd they are sent, nothing waits in its outbox
    assert f"{len(ADDRESSES)} sent, 0 deferred, 0 failed" in out
    assert {status for _, status, _ in stored_messages(cfg).values()} == {"sent"}
    postfix.wait_empty(60)
    took = time.monotonic() - started
    got = smtp_sink.received
    assert sorted(r.rcpt_tos[0] for r in got) == sorted(ADDRESSES), postfix.log()
    assert not smtp_sink.handler.data_answers  # all 5 refusals were used
    statuses = Counter(d["status"] for d in postfix.deliveries())
    assert statuses == {"deferred": refusals, "sent": len(ADDRESSES)}, postfix.log()
    assert took < 45  # retried within seconds (the instance's backoff), not Postfix's minutes


def test_smtp_destination_rate_delay_paces_the_relay_not_digestd(tmp_path, smtp_sink, relay,
                                                                 capsys):
    """The shaping is the relay's: digestd hands the digests over at once, and Postfix
    (smtp_destination_rate_delay = 1s: one delivery at a time to the destination, a second
    between them; postconf(5) transport_destination_rate_delay) paces them to the sink."""
    postfix = relay(rate_delay="1s")
    addresses = ADDRESSES[:4]
    cfg = write_cfg(tmp_path, postfix.port)
    started = time.monotonic()
    out = send_digests(cfg, capsys, addresses)
    handed_over = time.monotonic() - started
    assert f"{len(addresses)} sent, 0 deferred, 0 failed" in out
    postfix.wait_empty(60)
    arrivals = sorted(r.at for r in smtp_sink.received)
    assert len(arrivals) == len(addresses)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.9, gaps  # Postfix's clock has whole seconds: 1 s, give or take
    # digestd was not held up by the pacing: it was done before the relay had sent half
    assert started + handed_over < arrivals[2], (handed_over, gaps)


def assert_one_bounce_counted(cfg: str, gone: str) -> None:
    """The digest to `gone` is marked bounced, its subscriber has one bounce (of 3), and
    nobody else changed."""
    with Store(load_config(cfg).store.path) as store:
        sub = store.get_subscriber(gone)
        assert sub.bounces == 1 and sub.status == "active"  # bounce_threshold 3
        rows = store.db.execute("SELECT recipient FROM digests WHERE bounced_at IS NOT NULL"
                                ).fetchall()
        assert rows == [(gone,)]
        assert store.inbound_counts() == {"bounce": 1}
        assert all(store.get_subscriber(a).bounces == 0 for a in ADDRESSES if a != gone)


def test_a_5xx_after_the_relay_comes_back_as_postfixs_dsn_and_inbound_counts_it(
        tmp_path, smtp_sink, relay, capsys):
    """The sink refuses one recipient (550 5.1.1) after Postfix accepted the digest;
    Postfix's own DSN (RFC 3464) goes to the VERP return path (relayed to the sink too, as
    no transport names it here) and `digestd inbound` gets it as the pipe would pass it."""
    gone = ADDRESSES[1]
    smtp_sink.handler.rcpt_answers[gone] = "550 5.1.1 user unknown"
    postfix = relay()
    cfg = write_cfg(tmp_path, postfix.port)
    out = send_digests(cfg, capsys)
    if f"{len(ADDRESSES)} sent, 0 deferred, 0 failed" not in out:  # the relay took them all
        postfix.wait_empty(60)  # what reached the sink, to tell a miscount from a resend
        stored = {r: v[:2] for r, v in stored_messages(cfg).items()}
        at_sink = sorted(r.rcpt_tos[0] for r in smtp_sink.received)
        pytest.fail(f"{out!r}; stored (id, status): {stored!r}; at the sink: {at_sink!r}; "
                    f"relay: {postfix.deliveries()!r:.3000}")
    postfix.wait_empty(60)
    null = ("", "<>")  # a DSN's envelope sender is null (RFC 3464 2.3); aiosmtpd says "<>"
    wait_for(lambda: any(r.mail_from in null for r in smtp_sink.received), 10,
             "Postfix's DSN at the sink", postfix)
    (dsn,) = [r for r in smtp_sink.received if r.mail_from in null]
    delivered = [r for r in smtp_sink.received if r.mail_from not in null]
    assert sorted(r.rcpt_tos[0] for r in delivered) == sorted(set(ADDRESSES) - {gone})
    (verp,) = dsn.rcpt_tos
    m = VERP.fullmatch(verp)
    assert m and verify_mail_token(web_secret(load_config(cfg)), m[1]).kind == "bounce"
    assert dsn.message.get_content_type() == "multipart/report"
    assert dsn.message.get_param("report-type") == "delivery-status"
    assert [d["to"] for d in postfix.deliveries() if d["status"] == "bounced"] == [gone]
    # what the documented pipe passes: Return-Path (flags=R) and ${recipient}
    done = subprocess.run([sys.executable, "-m", "digestd.cli", "-c", cfg, "inbound",
                           "--recipient", verp], input=b"Return-Path: <>\n" + dsn.data,
                          capture_output=True, timeout=60, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"bounce subscriber="), done.stdout
    assert_one_bounce_counted(cfg, gone)


def pipe_python(account: pwd.struct_passwd) -> list[str] | None:
    """The start of a command line that runs this Python with digestd as `account`: this
    very interpreter if they can run it, else (a pyenv under /root, say) the system's
    python3 of the same version with digestd's folder and this environment's packages on
    PYTHONPATH; None when neither imports digestd as that user."""
    import site

    import digestd

    paths = [str(Path(digestd.__file__).resolve().parent.parent), *site.getsitepackages()]
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [[sys.executable]]
    for system in (f"/usr/bin/python{version}", "/usr/bin/python3"):
        if os.access(system, os.X_OK):
            candidates.append(["/usr/bin/env", f"PYTHONPATH={':'.join(paths)}", system])
    check = ("import sys, digestd.cli, digestd.inbound; "
             f"sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})")
    for prefix in candidates:
        try:
            ran = subprocess.run([*prefix, "-c", check], user=account.pw_uid,
                                 group=account.pw_gid, extra_groups=[], capture_output=True,
                                 timeout=60, cwd="/", env={"PATH": "/usr/bin:/bin"},
                                 check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        if ran.returncode == 0:
            return prefix
    return None


def test_the_documented_pipe_run_by_postfix_counts_the_bounce(smtp_sink, relay, capsys):
    """docs/inbound.md's master.cf pipe service, run by Postfix itself: the sink refuses one
    recipient (550 5.1.1), Postfix bounces it to the VERP return path, transport_maps sends
    bounces+TOKEN@example.org (recipient_delimiter +) to the pipe, and `digestd inbound
    --recipient ${recipient}`, run by pipe(8) as an unprivileged user, counts the hard
    bounce of that digest."""
    need_postfix()
    user = "nobody"  # pipe(8) runs no command as root or as the mail owner
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"no user {user} for the pipe to run digestd inbound as")
    python = pipe_python(account)
    if python is None:
        pytest.skip(f"user {user} can run neither {sys.executable} nor a system Python of the "
                    "same version with digestd (a Python under a root-only folder?): the pipe "
                    "could not start digestd inbound")
    # the pipe's user must reach the config and the store: a folder outside pytest's
    # root-only tmp_path, made theirs once digestd sent
    folder = Path(tempfile.mkdtemp(prefix="digestd-relay-site-"))
    folder.chmod(0o755)
    try:
        gone = ADDRESSES[1]
        smtp_sink.handler.rcpt_answers[gone] = "550 5.1.1 user unknown"
        command = " ".join([*python, "-m", "digestd.cli", "-c", str(folder / "digestd.toml")])
        assert " " not in str(folder) + "".join(python)  # pipe(8) splits argv on spaces
        postfix = relay(
            transports={"bounces@example.org": "digestd", "unsubscribe@example.org": "digestd"},
            services=("digestd   unix  -       n       n       -       4       pipe\n"
                      f"  flags=Rq user={user} argv={command}\n"
                      "  inbound --recipient ${recipient}\n"))
        cfg = write_cfg(folder, postfix.port)
        out = send_digests(cfg, capsys)
        assert f"{len(ADDRESSES)} sent, 0 deferred, 0 failed" in out
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)
        # until now the pipe may have exited 75 (EX_TEMPFAIL: the store was root's), and
        # Postfix keeps the DSN and tries again a second later
        postfix.wait_empty(60)
        piped = [d for d in postfix.deliveries() if d["relay"] == "digestd"]
        assert piped and piped[-1]["status"] == "sent", postfix.log()
        assert all(VERP.fullmatch(d["to"]) for d in piped)
        # the DSN went to the pipe, not to the sink
        assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(
            set(ADDRESSES) - {gone})
        assert [d["to"] for d in postfix.deliveries() if d["status"] == "bounced"] == [gone]
        assert_one_bounce_counted(cfg, gone)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
