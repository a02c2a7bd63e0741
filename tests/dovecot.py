"""A real IMAP server for tests: Debian's Dovecot on 127.0.0.1, a throwaway config and users.

One server per test session (it starts in about half a second); each test gets a mailbox
of its own, one of the USERS users written into the passwd-file before the start. As
root the mail is stored as the user "nobody" and the server's own processes run as
Debian's "dovecot" and "dovenull"; as any other user, everything runs as that user.
Without Dovecot (`apt-get install dovecot-imapd`, which `.ci/run` does) or where it
cannot start, the tests that need it skip with the reason (the fixtures `dovecot_server`
and `mailbox` are in conftest.py).
"""

from __future__ import annotations

import grp
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or next(
    (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None)
USERS = 100  # mailboxes one session can hand out
PASSWORD = "pass word 1"

CONFIG = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass(frozen=True)
class Mailbox:
    """One user's mailbox on the test server."""

    host: str
    port: int
    username: str
    password: str
    tls_port: int = 0  # implicit TLS (0: none, openssl is missing); STARTTLS on `port`
    cert: Path | None = None  # the server's self-signed certificate: trust it as a CA

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        client.login(self.username, self.password)
        return client

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        """Deliver messages, unread, as an MTA would."""
        with self.client() as client:
            for raw in messages:
                client.append(folder, raw)

    def folders(self) -> dict[str, dict[str, int]]:
        """Every folder with its number of messages and of unread ones."""
        with self.client() as client:
            out = {}
            for _flags, _sep, name in client.list_folders():
                status = client.folder_status(name, ["MESSAGES", "UNSEEN"])
                out[name] = {"messages": status[b"MESSAGES"], "unseen": status[b"UNSEEN"]}
            return out

    def subjects(self, folder: str) -> list[str]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            found = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
            return sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].decode().partition(":")[2].strip()
                          for v in found.values())


class Dovecot:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="digestd-dovecot-"))
        self.dir.chmod(0o755)  # the mail user (nobody, when root) must reach its home
        self.port = _free_port()
        self.config = self.dir / "dovecot.conf"
        self.passwd = self.dir / "passwd"
        self.names = itertools.count(1)
        (self.dir / "home").mkdir()
        if os.geteuid() == 0:
            mail = pwd.getpwnam("nobody")
            internal, login = _user("dovecot"), _user("dovenull")
            group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
        else:
            mail = pwd.getpwuid(os.geteuid())
            internal = login = mail.pw_name
            group = grp.getgrgid(mail.pw_gid).gr_name
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        # every user now: Dovecot may not notice a change made within the second it read it
        self.passwd.write_text("".join(f"user{n}:{{PLAIN}}{PASSWORD}::::::\n"
                                       for n in range(1, USERS + 1)))
        for n in range(1, USERS + 1):
            home = self.dir / "home" / f"user{n}"
            home.mkdir()
            os.chown(home, self.uid, self.gid)
        # TLS where openssl can make a certificate: imaps on tls_port, STARTTLS on port
        self.cert = _certificate(self.dir)
        self.tls_port = _free_port() if self.cert else 0
        ssl = (f"ssl = yes\nssl_cert = <{self.cert}\nssl_key = <{self.dir / 'key.pem'}"
               if self.cert else "ssl = no")
        self.config.write_text(CONFIG.format(dir=self.dir, internal=internal, group=group,
                                             login=login,
                                             uid=self.uid, gid=self.gid, port=self.port,
                                             tls_port=self.tls_port, ssl=ssl))
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dovecot exited with {self.proc.returncode}: "
                                   f"{self.proc.stderr.read().decode(errors='replace')}"
                                   f"{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(200).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer on 127.0.0.1:{self.port}: {self.log()}")

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def mailbox(self) -> Mailbox:
        """A user with an empty mailbox, not handed out before."""
        n = next(self.names)
        if n > USERS:
            raise RuntimeError(f"more than {USERS} mailboxes in one session: raise USERS")
        return Mailbox("127.0.0.1", self.port, f"user{n}", PASSWORD, self.tls_port, self.cert)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _certificate(folder: Path) -> Path | None:
    """A self-signed certificate for 127.0.0.1 and localhost (cert.pem, key.pem), or None
    without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert = folder / "cert.pem"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(folder / "key.pem"), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, check=False)
    return cert if made.returncode == 0 else None


def _user(name: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return "nobody"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
