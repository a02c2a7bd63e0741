"""Benchmark the last mile through a real Postfix: digestd sending N digests straight to an
SMTP sink, and the same digests through a local Postfix relaying to the same kind of sink,
in one run.

    python bench/relay.py                      # 5,000 digests x 25 papers, 4 connections
    python bench/relay.py -n 1000 --json
    python bench/relay.py --concurrency 5      # Postfix's default_destination_concurrency_limit
    python bench/relay.py --sink smtp-sink     # Postfix's smtp-sink instead of aiosmtpd

Needs root and Debian's postfix (the throwaway instance of tests/postfix.py: its own
config, queue and data directories in a temporary folder, 127.0.0.1 only, relayhost the
sink). The digests are built once (bench/send.py's store: corpus papers, N subscribers
whose rules match at least 25 papers) and the store is copied, so both runs send the same
outbox with jobs.send_outbox, exactly what `digestd send` runs. The sinks (one per run, each
in its own process: aiosmtpd, or Postfix's smtp-sink with --sink smtp-sink) count messages
and note the wall-clock time of the last.

Reported per run: "handed over" (digestd's messages/s until its last 250: what the
sender sees), "at the sink" (messages/s until the sink had all N: what recipients see),
the ratios relay / direct, and CPU seconds of digestd, the sink and Postfix (the master
plus its daemons, alive or reaped). Results: bench/results/relay-N.json and .txt
(relay-N-smtp-sink.* with --sink smtp-sink).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from send import (  # noqa: E402
    FIRST,
    LAST,
    cpu_of,
    free_port,
    papers,
    rule_pool,
    subscriber_rules,
    write_config,
)

from digestd.config import load_config  # noqa: E402
from digestd.jobs import build_digests, send_outbox  # noqa: E402
from digestd.store import Store  # noqa: E402
from tests.postfix import POSTFIX, Postfix  # noqa: E402

RESULTS = ROOT / "bench" / "results"

# counts what it accepts and the wall-clock time of the last; prints both when stopped
SINK = """
import signal, sys, time
from aiosmtpd.controller import Controller
class Count:
    n = 0
    last = 0.0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        Count.last = time.time()
        return "250 OK"
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]), decode_data=False,
               data_size_limit=0)
c.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
print(Count.n, Count.last, flush=True)
"""


class Sink:
    """An SMTP sink in its own process on 127.0.0.1 that answers 250 and drops the mail:
    aiosmtpd (as in bench/send.py) or Postfix's smtp-sink (`-c`: a running count on
    stdout, read here as it comes); either way it tells how many it took and when the last
    came."""

    def __init__(self, kind: str = "aiosmtpd") -> None:
        self.port, self.kind = free_port(), kind
        self.count, self.last = 0, 0.0
        if kind == "smtp-sink":
            exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
            self.proc = subprocess.Popen([exe, "-c", "-u", "nobody", f"127.0.0.1:{self.port}",
                                          "256"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL)
            self.reader = threading.Thread(target=self._read_counter, daemon=True)
            self.reader.start()
        else:
            self.proc = subprocess.Popen([sys.executable, "-c", SINK, str(self.port)],
                                         stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _read_counter(self) -> None:
        """smtp-sink -c writes "sess=S quit=Q mesg=M\\r" after each session's step."""
        pending = b""
        while chunk := self.proc.stdout.read1(65536):
            now = time.time()
            pending += chunk
            *done, pending = pending.split(b"\r")
            for line in done:
                m = re.search(rb"mesg=(\d+)", line)
                if m and int(m[1]) > self.count:
                    self.count, self.last = int(m[1]), now

    def stop(self) -> tuple[int, float]:
        """(messages accepted, time.time() of the last one)."""
        self.proc.terminate()
        if self.kind == "smtp-sink":
            self.proc.wait(30)
            self.reader.join(10)
            self.proc.stdout.close()
            return self.count, self.last
        out, _ = self.proc.communicate(timeout=30)
        n, last = out.split()
        return int(n), float(last)


def postfix_cpu(master: int) -> float:
    """CPU seconds of a Postfix instance so far: its master (own and reaped children's
    time, /proc/PID/stat fields 14-17) plus the daemons still alive under it."""
    def fields(pid: int) -> list[str]:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()

    tick = os.sysconf("SC_CLK_TCK")
    try:
        f = fields(master)
    except OSError:
        return 0.0
    total = sum(int(x) for x in f[11:15]) / tick
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                f = fields(int(entry.name))
            except OSError:
                continue
            if int(f[1]) == master:
                total += (int(f[11]) + int(f[12])) / tick
    return total


def build(folder: Path, n: int, connections: int) -> Path:
    """A store with N subscribers and their digests queued (bench/send.py's), closed."""
    config = load_config(write_config(folder, free_port(), connections, None))
    rng = random.Random(42)
    with Store(config.store.path) as store:
        corpus = papers()
        store.add_papers(corpus)
        pool = rule_pool(corpus)
        for i in range(n):
            store.add_subscriber(f"reader{i:05d}@mail.example.net", subscriber_rules(rng, pool),
                                 name=f"{rng.choice(FIRST)} {rng.choice(LAST)}")
        report = build_digests(config, store, force=True)
        assert report.digests == n, report
    return Path(config.store.path)


def send_run(folder: Path, store_file: Path, port: int, connections: int, n: int
             ) -> tuple[float, float]:
    """jobs.send_outbox of a copy of the built store to 127.0.0.1:port: (wall seconds,
    CPU seconds of this process)."""
    run_dir = folder / f"run-{port}"
    run_dir.mkdir()
    shutil.copy(store_file, run_dir / "bench.sqlite3")
    config = load_config(write_config(run_dir, port, connections, None))
    with Store(config.store.path) as store:
        cpu0, started = time.process_time(), time.perf_counter()
        report = asyncio.run(send_outbox(config, store))
        took, cpu = time.perf_counter() - started, time.process_time() - cpu0
    assert (report.sent, report.deferred, report.failed) == (n, 0, 0), report
    return took, cpu


def run(n: int, connections: int, concurrency: int, rate_delay: str,
        sink_kind: str = "aiosmtpd") -> dict:
    if POSTFIX is None:
        sys.exit("Postfix is not installed (Debian: apt-get install postfix)")
    if os.geteuid() != 0:
        sys.exit("Postfix's master runs as root: run this bench as root")
    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-relay-"))
    try:
        started = time.perf_counter()
        store_file = build(folder, n, connections)
        build_s = time.perf_counter() - started
        size_mb = sum(len(bytes(r[0])) for r in sqlite_rows(store_file)) / 1e6

        # 1. straight to the sink
        sink = Sink(sink_kind)
        sink_cpu0 = cpu_of(sink.proc.pid)
        t0 = time.time()
        direct_s, direct_cpu = send_run(folder, store_file, sink.port, connections, n)
        direct_sink_cpu = cpu_of(sink.proc.pid) - sink_cpu0
        got, last = sink.stop()
        assert got == n, (got, n)
        direct_all_s = last - t0

        # 2. through Postfix to a sink of its own
        sink = Sink(sink_kind)
        relay = Postfix(sink.port, concurrency=concurrency, rate_delay=rate_delay)
        try:
            relay.start()
            master = relay._master_pid()
            pf_cpu0, sink_cpu0 = postfix_cpu(master), cpu_of(sink.proc.pid)
            t0 = time.time()
            relay_s, relay_cpu = send_run(folder, store_file, relay.port, connections, n)
            relay.wait_empty(timeout=max(600.0, n / 5))
            waited = time.time()
            relay_pf_cpu = postfix_cpu(master) - pf_cpu0
            relay_sink_cpu = cpu_of(sink.proc.pid) - sink_cpu0
            deferred = sum(1 for d in relay.deliveries() if d["status"] != "sent")
        finally:
            relay.stop()
        got, last = sink.stop()
        assert got == n, (got, n)
        relay_all_s = last - t0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    version = subprocess.run(["/usr/sbin/postconf", "-d", "-h", "mail_version"],
                             capture_output=True, text=True, check=False).stdout.strip()
    return {
        "digests": n, "mean_message_kb": round(size_mb * 1e3 / n / 1.024, 1),
        "connections": connections, "sink": sink_kind, "postfix": version,
        "default_destination_concurrency_limit": concurrency,
        "smtp_destination_rate_delay": rate_delay,
        "build_s": round(build_s, 1),
        "direct": {"handed_over_s": round(direct_s, 2), "at_sink_s": round(direct_all_s, 2),
                   "handed_over_per_s": round(n / direct_s, 1),
                   "at_sink_per_s": round(n / direct_all_s, 1),
                   "cpu_s": {"digestd": round(direct_cpu, 2), "sink": round(direct_sink_cpu, 2)}},
        "relay": {"handed_over_s": round(relay_s, 2), "at_sink_s": round(relay_all_s, 2),
                  "queue_empty_s": round(waited - t0, 2),
                  "handed_over_per_s": round(n / relay_s, 1),
                  "at_sink_per_s": round(n / relay_all_s, 1),
                  "not_sent_first_time": deferred,
                  "cpu_s": {"digestd": round(relay_cpu, 2), "sink": round(relay_sink_cpu, 2),
                            "postfix": round(relay_pf_cpu, 2)}},
        "relay_vs_direct": {"handed_over": round(direct_s / relay_s, 3),
                            "at_sink": round(direct_all_s / relay_all_s, 3)},
        "postfix_cpu_ms_per_message": round(relay_pf_cpu / n * 1000, 2),
        "load_average": round(os.getloadavg()[0], 2),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, Python "
                   f"{platform.python_version()}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def sqlite_rows(path: Path):
    import sqlite3
    with sqlite3.connect(path) as db:
        return db.execute("SELECT message FROM digest_bodies").fetchall()


def summary(r: dict) -> str:
    d, x = r["direct"], r["relay"]
    lines = [
        (f"{r['digests']} digests of {r['mean_message_kb']} KB, {r['connections']} connections "
         f"from digestd, sink {r['sink']}; Postfix {r['postfix']} with "
         f"default_destination_concurrency_limit = {r['default_destination_concurrency_limit']}"
         f", smtp_destination_rate_delay = {r['smtp_destination_rate_delay']} "
         f"({r['date']}, {r['machine']})"),
        (f"  straight to the sink   handed over {d['handed_over_per_s']:>7.1f}/s "
         f"({d['handed_over_s']} s), all at the sink after {d['at_sink_s']} s "
         f"({d['at_sink_per_s']}/s)"),
        (f"  through Postfix        handed over {x['handed_over_per_s']:>7.1f}/s "
         f"({x['handed_over_s']} s), all at the sink after {x['at_sink_s']} s "
         f"({x['at_sink_per_s']}/s), queue empty after {x['queue_empty_s']} s"),
        (f"  relay / direct         handed over {r['relay_vs_direct']['handed_over']:.2f}x, "
         f"at the sink {r['relay_vs_direct']['at_sink']:.2f}x"),
        (f"  CPU s: direct digestd {d['cpu_s']['digestd']} + sink {d['cpu_s']['sink']}; relay "
         f"digestd {x['cpu_s']['digestd']} + Postfix {x['cpu_s']['postfix']} + sink "
         f"{x['cpu_s']['sink']} (Postfix {r['postfix_cpu_ms_per_message']} ms a message)"),
        f"  load average {r['load_average']} (other processes on the machine skew the rates)",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="digests (subscribers), default 5000")
    parser.add_argument("--connections", type=int, default=4,
                        help="digestd's SMTP connections (smtp.max_connections, 4)")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="Postfix's default_destination_concurrency_limit (20, its default)")
    parser.add_argument("--rate-delay", default="0s",
                        help="Postfix's smtp_destination_rate_delay (0s, its default)")
    parser.add_argument("--sink", choices=("aiosmtpd", "smtp-sink"), default="aiosmtpd",
                        help="the sink (default aiosmtpd; smtp-sink is Postfix's, faster)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--out", type=Path,
                        help="write the result here (.json and .txt; default: "
                             "bench/results/relay-N.json)")
    args = parser.parse_args()
    result = run(args.n, args.connections, args.concurrency, args.rate_delay, args.sink)
    out = args.out or RESULTS / (f"relay-{args.n}.json" if args.sink == "aiosmtpd"
                                 else f"relay-{args.n}-{args.sink}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".txt").write_text(summary(result) + "\n")
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
