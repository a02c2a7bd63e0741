"""PostgreSQL for bench/cycle.py: a throwaway durable cluster, the server's own CPU, and the day's
build and send in N `digestd run`-like processes against one database.

    python bench/cycle.py --store postgresql --instances 1,2 --compare-sqlite ...

The cluster is tests/postgres.py's (initdb + pg_ctl on a Unix socket, as "nobody" when run as
root) with PostgreSQL's default durability: fsync, synchronous_commit and full_page_writes on,
the other settings as initdb leaves them. The server's processes are not the bench's
children: their CPU is read from /proc (utime + stime of the postmaster and every process
under it, plus the cutime + cstime of those that ended, which the postmaster reaped).

An instance (`python bench/pgcluster.py worker CONFIG AT`) runs what `digestd run` runs on
each tick of its digest job when the store is PostgreSQL (daemon.Daemon._build_and_send): the
one holding the leader's lease opens the build round as of AT (jobs_cluster.open_round), and
every instance claims shards and sends the outbox (jobs_cluster.build_shards_and_send),
again after a short pause until the round is built and nothing is left for it to send (the
daemon would come back at its next check_every). It starts, imports and connects first,
says "ready", and runs on "go": the clock and its CPU count from then, as the SQLite cycle
runs in a process that started before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.postgres import BIN, Postgres  # noqa: E402

TICK_S = 0.2  # an instance's pause between two ticks that found nothing to do
TICKS = os.sysconf("SC_CLK_TCK")


# -- the server --------------------------------------------------------------------------------

def start_cluster(settings: dict[str, str] | None = None) -> Postgres:
    """A throwaway cluster with PostgreSQL's default durability, and `settings` (name ->
    value, as postgresql.conf's) beside initdb's defaults; stop() removes it."""
    server = Postgres(durable=True, settings=settings)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def server_version() -> str:
    try:
        return subprocess.run([str(BIN / "postgres"), "--version"], capture_output=True,
                              text=True).stdout.strip()
    except (OSError, TypeError):
        return "?"


def postmaster_pid(url: str) -> int | None:
    """The server's postmaster, when it runs on this machine: the parent of the backend
    serving a connection (None when that process is not here to see, a remote server)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            stat = Path(f"/proc/{backend}/stat").read_text()
        except OSError:
            return None
        if not stat.rsplit(")", 1)[0].endswith("(postgres"):
            return None
        return int(stat.rsplit(")", 1)[1].split()[1])


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) of process `root` and all under it, with those that ended
    and were reaped (cutime, cstime): for the postmaster, every backend the server ran."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        if pid in stats:  # fields after the name: state is [0]; utime..cstime are [11:15]
            total += sum(int(v) for v in stats[pid][11:15])
    return total / TICKS


@dataclass
class ServerSample:
    """What the server did so far: CPU seconds (None: not on this machine), WAL bytes and
    commits (pg_stat_wal, pg_stat_database: all databases)."""
    cpu_s: float | None
    wal_bytes: int
    commits: int

    @classmethod
    def take(cls, url: str, pid: int | None) -> ServerSample:
        import psycopg

        cpu = tree_cpu_s(pid) if pid else None  # before this sample's own backend starts
        with psycopg.connect(url, autocommit=True) as conn:
            wal = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()[0]
            commits = conn.execute("SELECT sum(xact_commit) FROM pg_stat_database"
                                   ).fetchone()[0]
        return cls(cpu, int(wal), int(commits or 0))

    def since(self, before: ServerSample) -> dict:
        return {"cpu_s": round(self.cpu_s - before.cpu_s, 2)
                if self.cpu_s is not None and before.cpu_s is not None else None,
                "wal_bytes": self.wal_bytes - before.wal_bytes,
                # the samples' own connections commit too (a few)
                "commits": self.commits - before.commits}


def wait_idle(admin_url: str, url: str, timeout: float = 30.0) -> None:
    """Until no connection to the database of `url` is left: a backend adds its WAL and
    commit counts to pg_stat_wal / pg_stat_database when it ends (PostgreSQL 15 flushes a
    busy backend's at most once a second), and its CPU is the postmaster's once reaped."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(url).get("dbname")
    began = time.monotonic()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                           "pid <> pg_backend_pid()", (name,)).fetchone()[0]:
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"connections to {name} still open after {timeout:g} s")
            time.sleep(0.05)
    time.sleep(0.1)  # the postmaster reaps the last one (its CPU moves to cutime)


def vacuum_analyze(url: str) -> None:
    """What autovacuum does within its first minutes after a `digestd store copy`: the
    planner's statistics and the visibility map of the copied tables."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")


def checkpoint(url: str) -> None:
    """Write every dirty buffer now (a superuser's, or pg_checkpoint's, right), so that a
    measured phase does not pay for the setup's writes; without the right, nothing."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass


def create_database(url: str, name: str, template: str | None = None) -> None:
    """CREATE DATABASE, as a copy of `template`'s files (PostgreSQL 15's default strategy
    would write the whole copy to the WAL)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        sql = f"CREATE DATABASE {name}"
        if template:
            sql += f" TEMPLATE {template}"
            if conn.info.server_version >= 150000:
                sql += " STRATEGY = FILE_COPY"
        conn.execute(sql)


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- the instances -----------------------------------------------------------------------------

class Instances:
    """N instance processes (see the module's docstring), started and ready: `go()` starts
    them all at once and returns each one's report once every one has finished."""

    def __init__(self, config: Path, at: str, n: int, logs: Path) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DIGESTD_", "NOTIFY_", "WATCHDOG_", "CREDENTIALS_"))}
        env["PYTHONPATH"] = str(ROOT)
        self.logs = logs
        self.procs = []
        for k in range(n):
            with (logs / f"instance-{k}.log").open("ab") as log:
                self.procs.append(subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "worker", str(config), at],
                    env=env, cwd=config.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=log, text=True))
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                self.stop()
                raise RuntimeError(f"an instance did not start: see {logs}/instance-*.log")

    def go(self) -> list[dict]:
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in self.procs:
            line = proc.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError("an instance ended without a report: see "
                                   f"{self.logs}/instance-*.log")
            reports.append(json.loads(line))
        return reports

    def stop(self) -> None:
        """Wait for them to exit (after go(), they do by themselves)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.stdin.close()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _worker(config_path: str, at: str) -> int:
    import asyncio
    import logging

    from digestd.config import load_config
    from digestd.deliver import DeliveryReport, new_owner
    from digestd.jobs import build_workers
    from digestd.jobs_build import BuildReport
    from digestd.jobs_cluster import Leadership, build_shards_and_send, open_round
    from digestd.schedule import parse_iso
    from digestd.store import open_store

    # warnings only, as in the SQLite cycle (bench/cycle.py sets up no logging)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    config = load_config(Path(config_path))
    store = open_store(config.store)
    owner = new_owner()
    leadership = Leadership(store, owner, config.store.leader_lease)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    began, cpu0 = time.perf_counter(), os.times()

    def round_opened() -> bool:
        return store.db.execute("SELECT 1 FROM build_shards LIMIT 1").fetchone() is not None

    def left_to_do() -> bool:
        """The round is not opened yet, has a shard not built, or digests nobody claimed."""
        if not round_opened():
            return True
        return store.build_round_open() or store.db.execute(
            "SELECT 1 FROM digests WHERE status = 'queued' AND claimed_by IS NULL LIMIT 1"
        ).fetchone() is not None

    async def run() -> tuple[BuildReport, DeliveryReport, int, bool]:
        built, sent, ticks, led = BuildReport(), DeliveryReport(), 0, False
        opened = False
        while True:
            ticks += 1
            # the first to lead opens the round; another that leads later (the first gave
            # the lease up, done) finds it built, as a daemon would
            if not opened and leadership.take():
                opened = True
                led = open_round(store, parse_iso(at), build_workers(config))
                if not led and not round_opened():
                    raise SystemExit("the leader found nothing due: no round was opened")
            one_built, one_sent = await build_shards_and_send(config, store, owner)
            built.add(one_built)
            sent.add(one_sent)
            if not left_to_do():
                return built, sent, ticks, led
            await asyncio.sleep(TICK_S)

    built, sent, ticks, led = asyncio.run(run())
    leadership.give_up()
    cpu1 = os.times()
    store.close()
    print(json.dumps({
        "owner": owner, "leader": led, "ticks": ticks,
        "wall_s": round(time.perf_counter() - began, 3),
        # this process and its build processes (waited for: RUSAGE_CHILDREN)
        "cpu_s": round(sum(cpu1[:4]) - sum(cpu0[:4]), 3),
        "build_cpu_s": round(built.cpu_s, 3),
        "digests": built.digests, "sent": sent.sent, "deferred": sent.deferred,
        "failed": sent.failed}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        sys.exit(_worker(sys.argv[2], sys.argv[3]))
    sys.exit(f"usage: {sys.argv[0]} worker CONFIG AT (started by bench/cycle.py)")
