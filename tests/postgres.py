"""A real PostgreSQL for tests: Debian's server binaries, a throwaway cluster on a Unix socket.

One cluster per test session (initdb and the start take about two seconds); each test that
asks for it gets a database of its own, a copy of one migrated once (CREATE DATABASE ...
TEMPLATE), dropped afterwards. PostgreSQL refuses to run as root: as root the cluster belongs
to the user "nobody" in a folder it owns; as any other user, to that user. No TCP port is
opened; clients reach it through the socket in the cluster's folder, as the database user
"digestd" with trust authentication (or as PASSWORD_USER, with its password). Durability is
off (fsync, synchronous_commit): a test database never outlives a crash; a benchmark asks for
PostgreSQL's defaults (`Postgres(durable=True)`, bench/pgcluster.py). Without the server
binaries (`apt-get install postgresql`, which `.ci/run` does) or where it cannot start, the
tests that need it skip with the reason (the fixtures are in conftest.py).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def _bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: PG_BINDIR, else the newest of Debian's, else PATH."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


BIN = _bin_dir()
# util-linux's runuser is in /usr/sbin, which a PATH of cron, `su` or `env -i` leaves out
RUNUSER = shutil.which("runuser") or next(
    (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None)
USER = "digestd"
PASSWORD_USER, PASSWORD = "secretive", "pass word 1"


class Postgres:
    """One cluster: start(), url(dbname), new_database(), drop(dbname), stop(). `durable`
    keeps PostgreSQL's default durability (fsync, synchronous_commit, full_page_writes on)."""

    def __init__(self, *, durable: bool = False, settings: dict[str, str] | None = None) -> None:
        self.durable = durable
        self.settings = dict(settings or {})  # more server settings (-c NAME=VALUE)
        self.dir = Path(tempfile.mkdtemp(prefix="digestd-pg-"))
        self.data = self.dir / "data"
        self.run_as: str | None = "nobody" if os.geteuid() == 0 else None
        self.numbers = itertools.count(1)
        self.template: str | None = None
        self.started = False

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = [str(BIN / args[0]), *args[1:]]
        if self.run_as is not None:
            cmd = [str(RUNUSER), "-u", self.run_as, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir)
        if done.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-1500:]} {tail}")

    def start(self) -> None:
        if BIN is None or not (BIN / "initdb").exists():
            raise RuntimeError("PostgreSQL's initdb is not installed")
        if self.run_as is not None:
            if RUNUSER is None:
                raise RuntimeError("running as root and runuser (util-linux) is missing: "
                                   "PostgreSQL refuses to run as root")
            user = pwd.getpwnam(self.run_as)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        os.chmod(self.dir, 0o755)  # the socket is in here: the tests' user must reach it
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        # the user PASSWORD_USER logs in with a password (the tests of password_file and
        # the like); everyone else is trusted
        hba = self.data / "pg_hba.conf"
        hba.write_text(f"local all {PASSWORD_USER} scram-sha-256\nlocal all all trust\n")
        fast = "" if self.durable else \
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        fast += "".join(f"-c {name}={value} " for name, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-w",
                  "-t", "60", "-o",
                  f"-k {self.dir} -c listen_addresses='' {fast}-c max_connections=200",
                  "start")
        self.started = True
        self._watch()
        self.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")

    def _watch(self) -> None:
        """A small process that stops the cluster and removes its folder if this process
        dies without stop() (pytest killed with SIGKILL, say): the server is no child of
        ours (pg_ctl detaches it) and would run on. Linux's PR_SET_PDEATHSIG (prctl(2))
        sends the watcher SIGTERM at this process's death; elsewhere nothing watches."""
        stop = [str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"]
        if self.run_as is not None:
            stop = [str(RUNUSER), "-u", self.run_as, "--", *stop]
        code = (
            "import ctypes, os, shutil, signal, subprocess, sys\n"
            "parent, folder, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3:]\n"
            "def end(*_):\n"
            "    subprocess.run(stop, capture_output=True, timeout=60, cwd=folder)\n"
            "    shutil.rmtree(folder, ignore_errors=True)\n"
            "    os._exit(0)\n"
            "signal.signal(signal.SIGTERM, end)\n"
            "try:\n"
            "    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
            "except (OSError, AttributeError):\n"
            "    os._exit(0)\n"
            "if os.getppid() != parent:\n"
            "    end()\n"
            "while True:\n"
            "    signal.pause()\n")
        self.watcher = subprocess.Popen(
            [sys.executable, "-c", code, str(os.getpid()), str(self.dir), *stop],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def url(self, dbname: str = "postgres", user: str = USER) -> str:
        """A libpq URL for `dbname` through the socket (the host is the socket's folder)."""
        return f"postgresql://{user}@/{dbname}?host={self.dir}"

    def execute(self, sql: str) -> None:
        """One statement outside a transaction, as the cluster's owner (CREATE DATABASE ...)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def new_database(self, migrated: bool = True) -> str:
        """The name of a fresh database: a copy of the migrated template (or, with
        `migrated` False, empty)."""
        name = f"test_{next(self.numbers)}"
        if migrated and self.template is None:
            from digestd.store.postgres import PostgresStore

            self.execute("CREATE DATABASE digestd_template")
            PostgresStore(self.url("digestd_template")).close()
            self.template = "digestd_template"
        template = self.template if migrated else "template0"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def drop(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        watcher = getattr(self, "watcher", None)
        if watcher is not None:  # stopped here: the watcher must not stop it again
            watcher.kill()
            watcher.wait()
        if self.started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
