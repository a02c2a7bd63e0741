"""Benchmark building and sending digests: render+MIME alone, the whole build+send path, and
raw aiosmtplib sending the same bytes to the same SMTP sink, in one run.

    python bench/send.py                          # 5,000 digests x 25 papers, 4 connections
    python bench/send.py -n 1000 --json
    python bench/send.py --sink smtp-sink         # Postfix's smtp-sink (Debian: postfix)
    python bench/send.py --dkim                   # sign every digest (RSA 2048, openssl)

The store is a fresh SQLite file with the corpus papers (tests/data/hf_listings.json) and N
subscribers with 2 to 8 rules each (words, phrases, prefixes, fields, negations of middling
reach), drawn until they match at least 25 papers, so every digest shows 25 papers. The sink runs in its own process: aiosmtpd by default (counts and drops), or
Postfix's smtp-sink. "whole" is jobs.build_and_send, exactly what `digestd send --now` runs:
build_digests (match, render, MIME, queue in the outbox with the sent marks, one transaction
per digest) in a thread, and the SMTP sender following it (claims, one transaction per 250). "raw" sends the very bytes from
the outbox with plain aiosmtplib over the same number of connections, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402

from digestd.config import load_config  # noqa: E402
from digestd.jobs import build_and_send, make_renderer  # noqa: E402
from digestd.match import Matcher  # noqa: E402
from digestd.models import Digest, Paper  # noqa: E402
from digestd.store import Store  # noqa: E402
from digestd.store.bodies import unpack_message  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "hf_listings.json"
# rules as people write them: a topic word, a phrase, a prefix, a field, a negation
STOP = set("""a an and are as at be by can for from has have how in into is it its of on or our
over that the their this to under via we with without using towards beyond through new
based large models model learning data via study""".split())
FIRST = "Ada Alan Anna Bo Chen Elena Fei Grace Hiro Jun Kai Lena Maria Noam Omar Ravi Zoë".split()
LAST = "Smith Wang Zhang Müller Rossi Dubois Nguyen Tanaka Ivanov Kowalski Łukasiewicz".split()

SINK = """
import asyncio, signal, sys
from aiosmtpd.controller import Controller
class Count:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        Count.n += 1
        return "250 OK"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]), decode_data=False,
               data_size_limit=0)
c.start()
print("ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
print(Count.n, flush=True)
"""


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(kind: str, port: int) -> subprocess.Popen:
    if kind == "smtp-sink":
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not Path(exe).exists():
            sys.exit("smtp-sink is not installed (Debian: apt-get install postfix)")
        # -c: count; backlog 256; answers 250 to everything and drops the mail
        proc = subprocess.Popen([exe, "-c", "-u", "nobody", f"127.0.0.1:{port}", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        proc = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"the {kind} sink did not start")


def stop_sink(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc.stdout:
        proc.stdout.close()


def papers() -> list[Paper]:
    rng = random.Random(7)
    out = []
    for i, c in enumerate(json.loads(CORPUS.read_text(encoding="utf-8"))):
        n = c.get("authors_count") or rng.randint(1, 12)
        authors = tuple(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(n))
        out.append(Paper(id=f"arxiv:2409.{i:05d}", title=c["title"], abstract=c["abstract"],
                         authors=authors, categories=("cs.LG", "cs.CL", "cs.CV")[: 1 + i % 3],
                         source="hf-daily", url=f"https://arxiv.org/abs/2409.{i:05d}",
                         pdf_url=f"https://arxiv.org/pdf/2409.{i:05d}",
                         published=c["published"] or "", upvotes=c["upvotes"]))
    return out


def write_config(folder: Path, port: int, connections: int, dkim_key: Path | None) -> Path:
    path = folder / "digestd.toml"
    dkim = f'\n[dkim]\nselector = "bench"\nprivate_key_file = "{dkim_key}"\n' if dkim_key else ""
    path.write_text(f"""
[store]
path = "{folder / 'bench.sqlite3'}"

[delivery]
from = "Paper digest <digest@papers.example.org>"

[web]
base_url = "https://papers.example.org"
secret_file = "{folder / 'secret'}"

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
max_connections = {connections}
{dkim}""")
    (folder / "secret").write_text("bench-secret-" + "x" * 32)
    return path


def rule_pool(corpus: list[Paper]) -> list[tuple[str, frozenset[str]]]:
    """Rules of middling reach (each matches 8-60 of the corpus papers), with what they match."""
    from collections import Counter

    from digestd.text import words

    df: Counter = Counter()
    for p in corpus:
        df.update(set(w for w in words(p.title) if len(w) > 3 and w not in STOP))
    candidates = []
    for word, n in df.most_common():
        if 8 <= n <= 60:
            candidates += [word, f"title:{word}", f"{word[:-2]}*" if len(word) > 6 else word]
    candidates += ['"language models"', '"reinforcement learning"', '"diffusion models"',
                   "agent* -survey", "(video OR audio) generation", "abstract:benchmark*"]
    candidates = list(dict.fromkeys(candidates))
    matched = Matcher({r: [r] for r in candidates}).match(corpus)
    pool = [(r, frozenset(m.paper.id for m in matched.get(r, ()))) for r in candidates]
    return [(r, ids) for r, ids in pool if 8 <= len(ids) <= 60]


def subscriber_rules(rng: random.Random, pool, at_least: int = 25) -> list[str]:
    """2 to 8 rules whose matches add up to at least `at_least` papers (a full digest)."""
    rules: list[str] = []
    seen: set[str] = set()
    while len(rules) < 2 or (len(seen) < at_least and len(rules) < 8):
        rule, ids = rng.choice(pool)
        if rule not in rules:
            rules.append(rule)
            seen |= ids
    return rules


async def raw_send(port: int, messages: list[tuple[str, bytes]], connections: int) -> float:
    """Plain aiosmtplib: the same bytes, the same number of reused connections."""
    todo = list(reversed(messages))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        while todo:
            recipient, data = todo.pop()
            await client.sendmail("digest@papers.example.org", [recipient], data)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started


def run(n: int, connections: int, sink_kind: str, dkim: bool) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="digestd-bench-"))
    port = free_port()
    sink = start_sink(sink_kind, port)
    try:
        key = None
        if dkim:
            key = folder / "dkim.pem"
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                           capture_output=True)
        config = load_config(write_config(folder, port, connections, key))
        rng = random.Random(42)
        with Store(config.store.path) as store:
            corpus = papers()
            store.add_papers(corpus)
            pool = rule_pool(corpus)
            for i in range(n):
                store.add_subscriber(f"reader{i:05d}@mail.example.net",
                                     subscriber_rules(rng, pool),
                                     name=f"{rng.choice(FIRST)} {rng.choice(LAST)}")

            # 1. render + MIME alone, on the digests the build would make
            subs = store.subscribers("active")
            matched = Matcher({s.id: s.rules for s in subs}).match(corpus)
            digests = [Digest(subscriber=s, period="2026-11-23", items=tuple(matched[s.id]))
                       for s in subs if s.id in matched]
            renderer = make_renderer(config)
            started = time.perf_counter()
            sizes = [len(renderer.message(d)[1]) for d in digests]
            render_s = time.perf_counter() - started

            # 2. the whole path: build (match, render, MIME, queue) + send
            started = time.perf_counter()
            cpu0 = (time.process_time(), children_cpu(), cpu_of(sink.pid))
            built, report = asyncio.run(build_and_send(config, store, force=True))
            whole_s = time.perf_counter() - started
            cpu1 = (time.process_time(), children_cpu(), cpu_of(sink.pid))
            assert built.digests == len(digests) == report.sent, (built, report)

            # 3. raw aiosmtplib, the same bytes
            messages = [(r[0], unpack_message(r[1], r[2])) for r in store.db.execute(
                "SELECT d.recipient, b.message, b.packing FROM digests d JOIN digest_bodies b "
                "ON b.digest_id = d.id ORDER BY d.id")]
        cpu2 = (time.process_time(), cpu_of(sink.pid))
        raw_s = asyncio.run(raw_send(port, messages, connections))
        cpu3 = (time.process_time(), cpu_of(sink.pid))
    finally:
        stop_sink(sink)
        shutil.rmtree(folder, ignore_errors=True)
    count = len(digests)
    papers_shown = min(25, min(len(d.items) for d in digests))
    matches = sorted(len(d.items) for d in digests)
    return {
        "digests": count, "papers_per_digest": papers_shown,
        "matches_per_digest_median": matches[len(matches) // 2],
        "mean_message_kb": round(sum(sizes) / len(sizes) / 1024, 1),
        "connections": connections, "sink": sink_kind, "dkim": dkim,
        "render_mime_per_s": round(count / render_s, 1),
        "whole_per_s": round(count / whole_s, 1),
        "raw_smtp_per_s": round(count / raw_s, 1),
        "whole_vs_raw": round(raw_s / whole_s, 3),
        "seconds": {"render_mime": round(render_s, 2), "whole": round(whole_s, 2),
                    "raw": round(raw_s, 2)},
        # CPU time per digest, which the load of other processes on the machine does not skew
        "cpu_ms_per_digest": {
            "whole_sender": round((cpu1[0] - cpu0[0]) / count * 1000, 2),
            "whole_builder": round((cpu1[1] - cpu0[1]) / count * 1000, 2),
            "whole_sink": round((cpu1[2] - cpu0[2]) / count * 1000, 2),
            "raw_client": round((cpu3[0] - cpu2[0]) / count * 1000, 2),
            "raw_sink": round((cpu3[1] - cpu2[1]) / count * 1000, 2)},
        "load_average": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, Python "
                   f"{platform.python_version()}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="digests (subscribers), default 5000")
    parser.add_argument("--connections", type=int, default=4, help="SMTP connections (4)")
    parser.add_argument("--sink", choices=("aiosmtpd", "smtp-sink"), default="aiosmtpd",
                        help="the SMTP sink (default aiosmtpd, in its own process)")
    parser.add_argument("--dkim", action="store_true", help="DKIM-sign every digest")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args.n, args.connections, args.sink, args.dkim)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    r = result
    print(f"{r['digests']} digests x {r['papers_per_digest']} papers (median "
          f"{r['matches_per_digest_median']} matches), {r['mean_message_kb']} KB "
          f"each, {r['connections']} connections, sink: {r['sink']}"
          + (", DKIM-signed" if r["dkim"] else ""))
    print(f"  render + MIME alone     {r['render_mime_per_s']:>8.1f} digests/s")
    print(f"  whole path build+send   {r['whole_per_s']:>8.1f} digests/s")
    print(f"  raw aiosmtplib          {r['raw_smtp_per_s']:>8.1f} digests/s (same bytes, same sink)")
    print(f"  whole path / raw        {r['whole_vs_raw'] * 100:>8.1f} %   (goal: >= 70 %)")
    c = r["cpu_ms_per_digest"]
    print(f"  CPU ms per digest: whole = sender {c['whole_sender']} + builder "
          f"{c['whole_builder']} + sink {c['whole_sink']}; raw = client {c['raw_client']} + "
          f"sink {c['raw_sink']}")
    print(f"  load average {r['load_average']} (other processes on the machine skew the rates)")
    print(f"  ({r['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
