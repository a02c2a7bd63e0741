"""A real MTA relay for tests: Debian's Postfix on 127.0.0.1, a throwaway instance.

The instance has its own config_directory, queue_directory and data_directory in a
temporary folder (`postfix -c DIR start`, no postmulti), so a system Postfix, its queue
and port 25 are left alone. It listens on a free port of 127.0.0.1, accepts mail from
127.0.0.0/8 (`mynetworks`), delivers nothing locally and relays everything to
`relayhost = [127.0.0.1]:SINK` (the tests' aiosmtpd sink, tests/smtp_server.py). Its
queue timers are seconds instead of minutes, so a message deferred by a 4xx is tried
again within about 2 s; `transports` can route addresses to `pipe` services of
master.cf (the `digestd inbound` pipe of docs/inbound.md). Postfix's log goes to
`DIR/maillog` (postlogd, `maillog_file`, Postfix >= 3.4) instead of syslog.

Postfix's master runs as root and its daemons as `mail_owner` (Debian's "postfix" user),
so the instance starts only as root; elsewhere, or without Postfix (`apt-get install
postfix`, which `.ci/run` does), the tests that need it skip with the reason (the fixture
`relay` is in test_relay.py). Parameters: postconf(5); services: master(5).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or next(
    (p for p in ("/usr/sbin/postfix", "/usr/local/sbin/postfix") if os.access(p, os.X_OK)), None)
MAIL_OWNER = "postfix"  # Debian's unprivileged user for the daemons (mail_owner)

MAIN_CF = """\
compatibility_level = 3.6
mail_owner = {owner}
setgid_group = {setgid_group}
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
syslog_name = postfix-test
myhostname = relay.digestd.test
mydomain = digestd.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# what a relay for digestd needs: the instances may hand it mail, it delivers none itself
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:{sink_port}
mydestination =
local_transport = error:5.1.1 this relay delivers no mail locally
alias_maps =
alias_database =
local_recipient_maps =
recipient_delimiter = +
transport_maps = {transport_maps}
# rate shaping per destination (QSHAPE_README, TUNING_README)
default_destination_concurrency_limit = {concurrency}
smtp_destination_rate_delay = {rate_delay}
# seconds, not minutes: a deferred message is tried again at once
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
# no DNS: the relayhost is an address in brackets, the sink answers on it
smtp_host_lookup = native
smtpd_peername_lookup = no
biff = no
"""

# the services a relay needs, none chrooted (master(5); Debian's master.cf chroots them)
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
{extra}"""


class Postfix:
    """One throwaway Postfix instance relaying to 127.0.0.1:`sink_port`.

    `transports`: address -> master.cf service name (a `transport_maps` entry, e.g.
    {"bounces@example.org": "digestd"}); `services`: extra master.cf text, such as the
    pipe service those name. `concurrency` and `rate_delay` are
    default_destination_concurrency_limit and smtp_destination_rate_delay ("0s": none).
    """

    def __init__(self, sink_port: int, *, transports: dict[str, str] | None = None,
                 services: str = "", concurrency: int = 20, rate_delay: str = "0s") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="digestd-postfix-"))
        self.dir.chmod(0o755)  # the daemons run as mail_owner and must reach queue/ and data/
        self.port = _free_port()
        self.sink_port = sink_port
        self.config_dir = self.dir / "etc"
        self.config_dir.mkdir()
        # postfix start makes the queue's subfolders, with their owners, but not these
        (self.dir / "queue").mkdir(mode=0o755)
        (self.dir / "data").mkdir(mode=0o700)
        self.started = False
        transport_maps = ""
        if transports:
            table = self.config_dir / "transport"
            table.write_text("".join(f"{address} {service}:\n"
                                     for address, service in transports.items()))
            transport_maps = f"texthash:{table}"  # read as text: no postmap, no Berkeley DB
        owner = MAIL_OWNER
        try:
            pwd.getpwnam(owner)
        except KeyError:
            owner = "nobody"
        os.chown(self.dir / "data", pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
        (self.config_dir / "main.cf").write_text(MAIN_CF.format(
            dir=self.dir, owner=owner, setgid_group=_setgid_group(), sink_port=sink_port,
            transport_maps=transport_maps, concurrency=concurrency, rate_delay=rate_delay))
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port,
                                                                    extra=services))

    def postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([POSTFIX, "-c", str(self.config_dir), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, timeout: float = 20.0) -> None:
        """`postfix start` (which makes the queue's folders with their owners), then wait
        for the 220 greeting. RuntimeError with Postfix's words when it does not come."""
        if POSTFIX is None:
            raise RuntimeError("Postfix is not installed (apt-get install postfix)")
        if os.geteuid() != 0:
            raise RuntimeError("Postfix's master runs as root; these tests run as "
                               f"uid {os.geteuid()}")
        done = self.postfix("start")
        if done.returncode != 0:
            raise RuntimeError(f"postfix start exited with {done.returncode}: "
                               f"{done.stderr.strip()} {self.log()}")
        self.started = True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(200).startswith(b"220"):
                        s.sendall(b"QUIT\r\n")
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"Postfix did not answer on 127.0.0.1:{self.port}: {self.log()}")

    def log(self) -> str:
        """The end of Postfix's own log (DIR/maillog)."""
        path = self.dir / "maillog"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def queued(self) -> int:
        """Messages in the queue (incoming, active, deferred, hold): what Postfix still has
        to deliver or bounce."""
        queue = self.dir / "queue"
        return sum(1 for name in ("incoming", "active", "deferred", "hold", "maildrop")
                   for p in (queue / name).rglob("*") if p.is_file())

    def wait_empty(self, timeout: float = 60.0) -> None:
        """Until the queue is empty; TimeoutError (with the log's end) after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.queued():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.queued()} messages still queued after {timeout} s: "
                                   f"{self.log()}")
            time.sleep(0.1)

    def deliveries(self) -> list[dict[str, str]]:
        """Each delivery attempt Postfix logged (smtp, pipe, error ...): the queue id, `to`,
        `relay`, `status` (sent, deferred, bounced) and the rest of the line."""
        path = self.dir / "maillog"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [{"id": m[1], "to": m[2], "relay": m[3], "status": m[4], "line": m[0]}
                for m in re.finditer(r"([0-9A-F]+): to=<([^>]*)>.*?relay=([^,]+),.*?"
                                     r"status=(\w+).*", text)]

    def stop(self) -> None:
        """`postfix stop` (`abort` if that fails), wait for the master to exit (10 s, then
        SIGKILL to that pid), and the folder goes."""
        if self.started:
            master = self._master_pid()
            if self.postfix("stop", timeout=30).returncode != 0:
                self.postfix("abort", timeout=30)
            deadline = time.monotonic() + 10
            while master and _is_master(master) and time.monotonic() < deadline:
                time.sleep(0.05)
            if master and _is_master(master):
                os.kill(master, 9)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def _master_pid(self) -> int | None:
        """The master's pid from queue/pid/master.pid (it stays after the master exits)."""
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _is_master(pid: int) -> bool:
    """Whether `pid` is still a Postfix master (not a process that reused the number)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "master"
    except OSError:
        return False


def _setgid_group() -> str:
    """Debian's postdrop group (postdrop(1), postqueue(1)), else the mail owner's group."""
    import grp
    for name in ("postdrop", "nogroup"):
        try:
            return grp.getgrnam(name).gr_name
        except KeyError:
            pass
    return grp.getgrgid(os.getegid()).gr_name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
