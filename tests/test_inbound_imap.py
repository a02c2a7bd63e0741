"""The [inbound] mailbox against a real Dovecot: each message handled once, moved, kept
unread for a retry, filed as failed; the config of it; the daemon's job."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from email.message import EmailMessage

import pytest

from digestd import daemon
from digestd.cli import main
from digestd.config import InboundConfig
from digestd.daemon import Daemon
from digestd.errors import InboundTempFail
from digestd.inbound import imap
from digestd.inbound.imap import FAILED, PROCESSED, connect, fetch_and_handle
from digestd.sdnotify import Notifier

from .conftest import free_port
from .dovecot import Mailbox


def message(subject: str, body: str = "hello") -> bytes:
    msg = EmailMessage()
    msg["From"] = "MAILER-DAEMON@mx.example.net"
    msg["To"] = "digest@example.org"
    msg["Subject"] = subject
    msg.set_content(body)
    return bytes(msg)


def subject_of(raw: bytes) -> str:
    return raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].strip().decode()


class Handler:
    """Records what it was given; answers by the subject's first word."""

    def __init__(self, raises: dict[str, Exception] | None = None) -> None:
        self.seen: list[str] = []
        self.raises = raises or {}

    def __call__(self, raw: bytes) -> str:
        subject = subject_of(raw)
        self.seen.append(subject)
        if subject in self.raises:
            raise self.raises.pop(subject)
        return subject.split()[0]


def cfg(box: Mailbox, **kw) -> InboundConfig:
    kw = {"imap_security": "none", "timeout": 10, **kw}
    return InboundConfig(imap_host=box.host, imap_port=box.port, username=box.username, **kw)


def test_each_message_is_handled_once_and_moved(mailbox):
    mailbox.append(message("bounce for a@example.org"), message("unsubscribe TOKEN"))
    handle = Handler()
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert run.error is None
    assert (run.fetched, run.handled, run.retry, run.failed) == (2, 2, 0, 0)
    assert run.kinds == {"bounce": 1, "unsubscribe": 1}
    assert handle.seen == ["bounce for a@example.org", "unsubscribe TOKEN"]  # oldest first
    folders = mailbox.folders()
    assert folders["INBOX"]["messages"] == 0
    assert folders[PROCESSED] == {"messages": 2, "unseen": 0} and FAILED not in folders
    # a new connection, as after a restart: nothing left to handle
    again = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (again.error, again.fetched, again.handled) == (None, 0, 0)
    assert len(handle.seen) == 2
    # new mail goes into the folder made the first time
    mailbox.append(message("bounce again"))
    assert fetch_and_handle(cfg(mailbox), mailbox.password, handle).handled == 1
    assert mailbox.folders()[PROCESSED]["messages"] == 3
    with mailbox.client() as client:
        assert PROCESSED.encode() in b" ".join(  # subscribed: mail clients show it
            name.encode() for _f, _s, name in client.list_sub_folders())


def test_a_temporary_failure_leaves_the_message_unread_for_the_next_run(mailbox, caplog):
    mailbox.append(message("bounce one"), message("bounce two"))
    handle = Handler({"bounce one": InboundTempFail("the store is busy")})
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (run.fetched, run.handled, run.retry, run.failed) == (2, 1, 1, 0)
    assert mailbox.folders()["INBOX"] == {"messages": 1, "unseen": 1}
    assert mailbox.subjects("INBOX") == ["bounce one"]
    assert "event=inbound_message_retry" in caplog.text and "action=left_unread" in caplog.text
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (run.fetched, run.handled, run.retry) == (1, 1, 0)
    assert handle.seen == ["bounce one", "bounce two", "bounce one"]
    assert mailbox.folders()["INBOX"]["messages"] == 0
    assert mailbox.subjects(PROCESSED) == ["bounce one", "bounce two"]


def test_a_message_that_breaks_the_handler_is_filed_and_the_rest_handled(mailbox, caplog):
    mailbox.append(message("bounce one"), message("complaint two"), message("bounce three"))
    bug = ValueError("no DSN in it, To: victim@example.org\r\nevent=forged")
    handle = Handler({"complaint two": bug})
    with caplog.at_level(logging.INFO, "digestd.inbound"):
        run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (run.fetched, run.handled, run.failed) == (3, 2, 1)
    assert mailbox.subjects(PROCESSED) == ["bounce one", "bounce three"]
    assert mailbox.subjects(FAILED) == ["complaint two"]
    assert mailbox.folders()[FAILED]["unseen"] == 1  # as it came: unread
    [line] = [r.getMessage() for r in caplog.records if "inbound_message_failed" in r.getMessage()]
    # one line, the message's text escaped: no forged line or key
    assert "\r" not in line and "\n" not in line and "\\r\\nevent=forged" in line
    assert "action=moved_to_digestd-failed" in line and "test_inbound_imap.py:" in line
    # not tried again every few minutes
    assert fetch_and_handle(cfg(mailbox), mailbox.password, handle).fetched == 0
    assert handle.seen.count("complaint two") == 1


def test_a_message_too_big_for_a_bounce_is_filed_unread(mailbox, monkeypatch):
    monkeypatch.setattr(imap, "MAX_MESSAGE_BYTES", 2000)
    monkeypatch.setattr(imap, "SIZES_AT_ONCE", 2)  # sizes asked for in two FETCHes
    mailbox.append(message("bounce one"), message("huge", "x" * 3000), message("bounce three"))
    handle = Handler()
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (run.fetched, run.handled, run.failed) == (2, 2, 1)
    assert handle.seen == ["bounce one", "bounce three"]  # never read into memory
    assert mailbox.folders()[FAILED] == {"messages": 1, "unseen": 1}


def test_a_stopping_daemon_leaves_the_rest_for_the_next_run(mailbox):
    mailbox.append(message("bounce one"), message("bounce two"), message("bounce three"))
    handle = Handler()
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle,
                           stop=lambda: len(handle.seen) == 1)
    assert run.stopped and run.handled == 1
    assert mailbox.folders()["INBOX"] == {"messages": 2, "unseen": 2}
    assert fetch_and_handle(cfg(mailbox), mailbox.password, handle).handled == 2


def test_a_message_read_by_a_person_is_left_alone(mailbox):
    mailbox.append(message("read by someone"), message("bounce new"))
    with mailbox.client() as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(["SUBJECT", "read by someone"]), [b"\\Seen"])
    handle = Handler()
    assert fetch_and_handle(cfg(mailbox), mailbox.password, handle).handled == 1
    assert handle.seen == ["bounce new"] and mailbox.subjects("INBOX") == ["read by someone"]


def keywords(mailbox, folder: str = "INBOX") -> dict[str, set[bytes]]:
    """Subject -> the flags of each message in `folder`."""
    with mailbox.client() as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        flags = client.get_flags(uids) if uids else {}
        subjects = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    return {subject_of(subjects[uid][b"BODY[HEADER.FIELDS (SUBJECT)]"]): set(flags[uid])
            for uid in uids}


def test_a_message_not_ours_stays_unread_where_it_was_and_is_not_read_again(mailbox):
    """A reader's reply, an out-of-office: the folder may be one a person reads, so what the
    handler does not understand stays there, unread; a keyword keeps the next runs from
    reading (and counting) it again."""
    mailbox.append(message("unrecognized please unsubscribe me"), message("bounce one"),
                   message("unrecognized out of office"))
    handle = Handler()
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (run.fetched, run.handled, run.left, run.retry, run.failed) == (3, 1, 2, 0, 0)
    assert run.kinds == {"bounce": 1, "unrecognized": 2}
    assert "left=2" in run.log_fields()
    assert mailbox.folders()["INBOX"] == {"messages": 2, "unseen": 2}
    assert mailbox.subjects(PROCESSED) == ["bounce one"]
    flags = keywords(mailbox)
    assert all(f == {imap.LEFT.encode()} for f in flags.values()), flags  # and not \Seen
    # the next runs read nothing: not even its size is fetched
    for _ in range(2):
        again = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
        assert (again.fetched, again.left) == (0, 0)
    assert len(handle.seen) == 3
    # doctor counts only what a run would handle
    ok, line = imap.probe(cfg(mailbox), mailbox.password)
    assert ok and "holds 2 messages, 0 unread (to be handled)" in line
    # without the keyword (a person removed it) it is read again
    with mailbox.client() as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search(["SUBJECT", "out of office"]), [imap.LEFT])
    again = fetch_and_handle(cfg(mailbox), mailbox.password, handle)
    assert (again.fetched, again.left) == (1, 1)
    assert handle.seen[-1] == "unrecognized out of office"


def test_where_the_server_keeps_no_keywords_the_caller_remembers_what_was_left(mailbox):
    mailbox.append(message("unrecognized a reply"), message("bounce one"))

    def no_keywords(c: InboundConfig):
        client = connect(c)
        select = client.select_folder

        def select_folder(folder, readonly=False):
            selected = select(folder, readonly)
            selected[b"PERMANENTFLAGS"] = tuple(
                f for f in selected.get(b"PERMANENTFLAGS", ()) if f != b"\\*")
            return selected

        client.select_folder = select_folder
        return client

    handle, left = Handler(), set()
    for _ in range(3):
        run = fetch_and_handle(cfg(mailbox), mailbox.password, handle, connect=no_keywords,
                               left=left)
        assert run.error is None
    assert handle.seen == ["unrecognized a reply", "bounce one"]
    assert len(left) == 1
    assert keywords(mailbox) == {"unrecognized a reply": set()}  # unread, no keyword
    # a new process (a restart) remembers nothing: the message is read once more
    run = fetch_and_handle(cfg(mailbox), mailbox.password, handle, connect=no_keywords)
    assert (run.fetched, run.left) == (1, 1)
    # one a person has read since is forgotten
    with mailbox.client() as client:
        client.select_folder("INBOX")
        client.add_flags(client.search(["ALL"]), [b"\\Seen"])
    fetch_and_handle(cfg(mailbox), mailbox.password, handle, connect=no_keywords, left=left)
    assert left == set()


@pytest.mark.parametrize("uidplus", [True, False])
def test_without_move_it_copies_deletes_and_expunges(mailbox, uidplus):
    mailbox.append(message("bounce one"), message("bounce two"))

    def old_server(c: InboundConfig):
        client = connect(c)
        has = client.has_capability
        lacking = {"MOVE"} | (set() if uidplus else {"UIDPLUS"})
        client.has_capability = lambda name: name.upper() not in lacking and has(name)
        return client

    run = fetch_and_handle(cfg(mailbox), mailbox.password, Handler(), connect=old_server)
    assert (run.error, run.handled) == (None, 2)
    folders = mailbox.folders()
    assert folders["INBOX"]["messages"] == 0 and folders[PROCESSED]["messages"] == 2


def test_another_folder_is_read_when_configured(mailbox):
    with mailbox.client() as client:
        client.create_folder("bounces")
    mailbox.append(message("bounce in folder"), folder="bounces")
    mailbox.append(message("personal mail"))
    run = fetch_and_handle(cfg(mailbox, folder="bounces"), mailbox.password, Handler())
    assert (run.folder, run.handled) == ("bounces", 1)
    assert mailbox.subjects("INBOX") == ["personal mail"]


def test_a_missing_folder_is_an_error_of_the_run(mailbox):
    run = fetch_and_handle(cfg(mailbox, folder="nope"), mailbox.password, Handler())
    assert run.error.startswith(f"IMAP {mailbox.username}@127.0.0.1:{mailbox.port} (none): "
                                "select failed: Mailbox doesn't exist: nope")


def test_a_wrong_password_is_a_clear_error_not_a_crash(mailbox):
    run = fetch_and_handle(cfg(mailbox), "wrong", Handler())
    assert run.error == (f"the IMAP server refused the login of {mailbox.username}@127.0.0.1:"
                         f"{mailbox.port}: [AUTHENTICATIONFAILED] Authentication failed.")
    assert run.fetched == 0
    assert "no IMAP password" in fetch_and_handle(cfg(mailbox), "", Handler()).error


def test_no_server_is_a_clear_error_not_a_crash():
    c = InboundConfig(imap_host="127.0.0.1", imap_port=free_port(), imap_security="none",
                      username="u", timeout=2)
    run = fetch_and_handle(c, "pw", Handler())
    assert run.error == f"IMAP u@127.0.0.1:{c.port} (none): Connection refused"


def test_tls_and_starttls_check_the_certificate(mailbox):
    if not mailbox.tls_port:
        pytest.skip("no TLS on the test server: openssl is missing")
    tls = cfg(mailbox, imap_security="tls", ca_file=str(mailbox.cert))
    tls = dataclasses.replace(tls, imap_port=mailbox.tls_port)
    starttls = cfg(mailbox, imap_security="starttls", ca_file=str(mailbox.cert))
    for c in (tls, starttls):
        mailbox.append(message(f"bounce over {c.imap_security}"))
        run = fetch_and_handle(c, mailbox.password, Handler())
        assert (run.error, run.handled) == (None, 1), run.error
    # a certificate no CA vouches for: refused before the password goes out
    for c in (tls, starttls):
        run = fetch_and_handle(dataclasses.replace(c, ca_file=""), mailbox.password, Handler())
        assert f"({c.imap_security}): [SSL: CERTIFICATE_VERIFY_FAILED]" in run.error
    # implicit TLS to the plain port
    run = fetch_and_handle(dataclasses.replace(tls, imap_port=mailbox.port), mailbox.password,
                           Handler())
    assert "(tls): [SSL: WRONG_VERSION_NUMBER]" in run.error and run.fetched == 0


def test_doctor_logs_in_and_touches_nothing(mailbox, tmp_path, capsys, monkeypatch):
    mailbox.append(message("bounce one"), message("bounce two"))
    monkeypatch.setenv("DIGESTD_IMAP_PASSWORD", mailbox.password)
    path = tmp_path / "digestd.toml"
    path.write_text(f'[inbound]\nimap_host = "127.0.0.1"\nimap_port = {mailbox.port}\n'
                    f'imap_security = "none"\nusername = "{mailbox.username}"\n')
    main(["--config", str(path), "doctor"])
    out = capsys.readouterr().out
    assert (f"ok    imap                   logged in as {mailbox.username} at 127.0.0.1:"
            f"{mailbox.port} (none); 'INBOX' holds 2 messages, 2 unread (to be handled); "
            "moves by MOVE; nothing was read or moved") in out
    assert mailbox.folders() == {"INBOX": {"messages": 2, "unseen": 2}}
    monkeypatch.setenv("DIGESTD_IMAP_PASSWORD", "wrong")
    assert main(["--config", str(path), "doctor"]) == 1
    assert (f"FAIL  imap                   the server refused the login of {mailbox.username}: "
            "[AUTHENTICATIONFAILED]") in capsys.readouterr().out


# -- the config --------------------------------------------------------------------------------

def test_no_inbound_table_means_no_mailbox(write_config):
    assert not write_config("[store]\npath = 'd.sqlite3'\n").inbound.enabled


def test_inbound_config_reads_the_password_and_picks_the_port(write_config, tmp_path,
                                                              monkeypatch):
    monkeypatch.delenv("DIGESTD_IMAP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    (tmp_path / "imap.pw").write_text("s3cret\n")
    config = write_config("""
        [inbound]
        imap_host = "imap.example.org"
        username = "bounces@example.org"
        password_file = "imap.pw"
        every = "2m"
    """)
    c = config.inbound
    assert c.enabled and c.port == 993 and c.password == "s3cret" and c.every == 120
    assert c.folder == "INBOX" and c.password_file == str(tmp_path / "imap.pw")
    assert "s3cret" not in repr(c)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "imap-password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = write_config("""
        [inbound]
        imap_host = "imap.example.org"
        imap_security = "starttls"
        username = "bounces"
    """)
    assert config.inbound.password == "from-systemd" and config.inbound.port == 143
    assert not config.warnings


def test_config_check_shows_the_mailbox(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DIGESTD_IMAP_PASSWORD", "pw")
    path = tmp_path / "digestd.toml"
    path.write_text('[inbound]\nimap_host = "imap.example.org"\nusername = "bounces"\n')
    assert main(["--config", str(path), "config", "check"]) == 0
    assert ("  inbound   IMAP bounces@imap.example.org:993 (tls), folder 'INBOX', every 5m\n"
            in capsys.readouterr().out)
    path.write_text("")
    assert main(["--config", str(path), "config", "check"]) == 0
    assert "  inbound   off\n" in capsys.readouterr().out


def check(tmp_path, capsys, text: str) -> tuple[int, str]:
    path = tmp_path / "digestd.toml"
    path.write_text(text)
    code = main(["--config", str(path), "config", "check"])
    return code, capsys.readouterr().err.replace(f"{path}:", "LINE:")


@pytest.mark.parametrize("body, error", [
    ('imap_host = "imap.example.org"\nimap_security = "none"\nusername = "u"',
     ('LINE:3: inbound.imap_security "none" sends the password in clear text: it is allowed '
      'only for a server on this machine (127.0.0.1, ::1, localhost), not "imap.example.org"')),
    ('imap_host = "imap.example.org"', ("LINE:2: inbound.username is required with "
                                      "inbound.imap_host")),
    ('imap_host = "imap.example.org"\nusername = ""', "LINE:3: inbound.username is required"),
    ('imap_host = "imap example.org"',
     ('LINE:2: inbound.imap_host must be a host name or IP address such as '
      '"smtp.example.org", got "imap example.org"')),
    ('imap_port = 99999', "LINE:2: inbound.imap_port must be at most 65535, got 99999"),
    ('imap_security = "ssl"', ('LINE:2: inbound.imap_security must be one of "tls", "starttls",'
                               ' "none", got "ssl"')),
    ('every = "10s"', 'LINE:2: inbound.every must be at least "30s", got "10s"'),
    ('folder = ""', 'LINE:2: inbound.folder must be a folder name such as "INBOX"'),
    ('imap_host = "imap.example.org"\nusername = "u"\npassword_file = "nope.pw"',
     "LINE:4: inbound.password_file: cannot read secret file"),
    ('imap_host = "imap.example.org"\nusername = "u"\nca_file = "nope.pem"',
     "LINE:4: inbound.ca_file must be a readable file"),
    ('imap_server = "imap.example.org"', 'LINE:2: unknown key "inbound.imap_server"'),
])
def test_config_check_names_the_line_and_key(tmp_path, capsys, monkeypatch, body, error):
    monkeypatch.setenv("DIGESTD_IMAP_PASSWORD", "pw")
    code, err = check(tmp_path, capsys, f"[inbound]\n{body}\n")
    assert code == 2 and error in err, err
    assert "Traceback" not in err


def test_config_check_allows_none_on_this_machine_and_warns_without_password(
        tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DIGESTD_IMAP_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    for host in ("127.0.0.1", "::1", "localhost"):
        code, err = check(tmp_path, capsys, f'[inbound]\nimap_host = "{host}"\n'
                          'imap_security = "none"\nusername = "u"\n')
        assert code == 0
        assert ('LINE:2: inbound.imap_host is set but no IMAP password is: set '
                'inbound.password_file') in err


# -- the daemon --------------------------------------------------------------------------------

async def test_the_daemon_reads_the_mailbox_once_across_a_restart(write_config, tmp_path,
                                                                  mailbox, caplog, monkeypatch):
    (tmp_path / "imap.pw").write_text(mailbox.password)
    config = write_config(f"""
        [store]
        path = "{tmp_path / 'd.sqlite3'}"
        [delivery]
        method = "outbox"
        outbox_dir = "{tmp_path / 'outbox'}"
        [web]
        enabled = false
        [digest]
        check_every = "1h"
        [inbound]
        imap_host = "127.0.0.1"
        imap_port = {mailbox.port}
        imap_security = "none"
        username = "{mailbox.username}"
        password_file = "imap.pw"
        every = "30s"
    """)
    mailbox.append(message("bounce for a@example.org"), message("unsubscribe TOKEN"))
    handled: list[tuple[str, str]] = []

    def handler(cfg, store):
        # a store connection of the IMAP thread's own, as the real handler gets
        assert store.path == config.store.path
        return lambda raw: handled.append((subject_of(raw), store.path)) or "bounce"

    monkeypatch.setattr(daemon, "INBOUND_FIRST_RUN", 0.0)
    caplog.set_level(logging.DEBUG, "digestd")

    def runs() -> list[str]:
        return [r.getMessage() for r in caplog.records if "event=inbound_run" in r.getMessage()]

    for _start in range(2):  # the second start is the restart
        before = len(runs())
        d = Daemon(config, notifier=Notifier({}), inbound_handler=handler)
        task = asyncio.create_task(d.run())
        for _ in range(200):
            if len(runs()) > before:
                break
            assert not task.done()
            await asyncio.sleep(0.05)
        d.request_stop("test")
        await asyncio.wait_for(task, 10)
        assert [s for s, _ in handled] == ["bounce for a@example.org", "unsubscribe TOKEN"]
    lines = runs()
    assert len(lines) == 2 and "fetched=0 handled=0" in lines[1]
    assert lines[0].startswith("event=inbound_run folder='INBOX' fetched=2 handled=2 retry=0 "
                               "failed=0 kinds=bounce:2 took_ms=")
    assert "event=inbound_scheduled server=127.0.0.1:" in caplog.text
    assert mailbox.folders()[PROCESSED]["messages"] == 2


async def test_the_daemon_logs_a_refused_login_and_goes_on(write_config, tmp_path, mailbox,
                                                           caplog, monkeypatch):
    monkeypatch.setenv("DIGESTD_IMAP_PASSWORD", "wrong")
    config = write_config(f"""
        [store]
        path = "{tmp_path / 'd.sqlite3'}"
        [inbound]
        imap_host = "127.0.0.1"
        imap_port = {mailbox.port}
        imap_security = "none"
        username = "{mailbox.username}"
    """)
    d = Daemon(config, inbound_handler=lambda cfg, store: Handler())
    with caplog.at_level(logging.INFO, "digestd"):
        await d._inbound()
    [line] = [r for r in caplog.records if "event=inbound_run" in r.getMessage()]
    assert line.levelno == logging.ERROR
    assert "error='the IMAP server refused the login of" in line.getMessage()


async def test_a_reload_starts_and_stops_reading_the_mailbox(write_config, tmp_path, caplog):
    plain = f"""
        [store]
        path = "{tmp_path / 'd.sqlite3'}"
        [delivery]
        method = "outbox"
        [web]
        enabled = false
    """
    config = write_config(plain)
    d = Daemon(config, notifier=Notifier({}))
    task = asyncio.create_task(d.run())
    while d.scheduler is None or not d.scheduler.running:
        await asyncio.sleep(0.02)
    assert d.scheduler.get_job("inbound") is None
    write_config(plain + '[inbound]\nimap_host = "imap.example.org"\nusername = "u"\n'
                 'every = "10m"\n')
    with caplog.at_level(logging.INFO, "digestd"):
        d.reload()
        job = d.scheduler.get_job("inbound")
        assert job is not None and job.trigger.interval.total_seconds() == 600
        write_config(plain)
        d.reload()
        assert d.scheduler.get_job("inbound") is None
    assert "event=inbound_scheduled server=imap.example.org:993 security=tls" in caplog.text
    assert "event=inbound_off" in caplog.text
    d.request_stop("test")
    await asyncio.wait_for(task, 10)
