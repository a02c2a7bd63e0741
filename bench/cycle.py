"""The whole daily cycle at scale: poll -> store new -> match -> build -> render -> send.

    python bench/cycle.py                                  # 100,000 subscribers x 3,000 papers
    python bench/cycle.py --subscribers 5000 --papers 1000 --seen 50000 --skip-rss2email
    python bench/cycle.py --cycles 5                       # memory and time over growing days
    python bench/cycle.py --json
    python bench/cycle.py --profiles 0                     # nobody has seeds or feedback
    python bench/cycle.py --store postgresql --instances 1,2 --compare-sqlite

Generates (seeded) a store with S subscribers holding 1-5 rules drawn from the corpus
vocabulary, P new papers derived from the corpus and served as an arXiv RSS feed from a
local HTTP server, and `--seen` already-seen papers; a fraction `--profiles` (0.3) of the
subscribers has 5 to 50 seed papers and a few "more/less like this" marks on seen papers, so
their digests are ranked by relevance (issue 17). Mail goes to Postfix's smtp-sink on
127.0.0.1 when installed (Debian package postfix), else to an aiosmtpd sink in its own
process. It runs the functions the daemon runs (jobs.poll_sources, jobs.build_digests,
jobs.send_outbox) and, in the same run, two baselines on the same sink: raw aiosmtplib
sending the very same message bytes over the same number of connections (the ceiling for
delivery), and rss2email delivering the same feed (one email per item).

With `--store postgresql` (a throwaway cluster of its own, PostgreSQL's default durability) or
`--store postgresql://...` (an empty database), the store is generated on SQLite as above and
moved with `digestd store copy`'s code; the day is polled into it, then built and sent by
`--instances` processes running what `digestd run` runs on one PostgreSQL (bench/pgcluster.py),
all sending to the one sink. Reported: the cycle, digests/s, the CPU of digestd's processes and
of the database server per digest; `--compare-sqlite` runs the same day on the SQLite store in
the same run, for the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import configparser
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import aiosmtplib  # noqa: E402
from match import RuleGenerator, last_names, load_corpus, make_papers  # noqa: E402
from send import free_port, start_sink, stop_sink  # noqa: E402

from digestd.config import load_config  # noqa: E402
from digestd.jobs import build_and_send, build_digests, poll_sources, send_outbox  # noqa: E402
from digestd.models import Paper  # noqa: E402
from digestd.schedule import iso  # noqa: E402
from digestd.store import Store, open_store, unpack_message, without_password  # noqa: E402
from digestd.store.copy import copy_store  # noqa: E402
from digestd.store.feedback import LESS, MORE  # noqa: E402
from digestd.store.records import StoredSeed  # noqa: E402

DEFAULT_CORPUS = ROOT / "tests" / "data" / "hf_listings.json"
RESULTS = ROOT / "bench" / "results"


# -- measuring ---------------------------------------------------------------------------------

def reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets VmHWM, so each phase gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def written_bytes() -> int:
    """Bytes this process and its waited-for children caused to be written to storage so
    far (getrusage's ru_oublock, 512-byte units; Linux's write_bytes of /proc/PID/io). A page
    counts when it is dirtied, once until it is written back: the store's WAL frames and the
    checkpoints' copies into the store file, the sent journal; the sink is another process."""
    self_, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                             resource.RUSAGE_CHILDREN))
    return 512 * (self_.ru_oublock + children.ru_oublock)


def checkpoint(store: Store) -> int:
    """Copy the whole WAL into the store file and empty it; returns the bytes that wrote."""
    before = written_bytes()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return written_bytes() - before


def tree_pss_mb(root: int) -> float:
    """The proportional set size (PSS) of process `root` and all its descendants, summed:
    memory the whole process tree really holds (pages shared after a fork counted once,
    split between the processes sharing them), from /proc/PID/smaps_rollup (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total / 1024


class TreeMemory:
    """A thread sampling tree_pss_mb of this process every `every` seconds; `peak` is the
    largest sample (the sink runs as its own process tree and is not counted)."""

    def __init__(self, every: float = 0.5) -> None:
        self.peak, self._every = 0.0, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, tree_pss_mb(me))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass
class Phase:
    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_tree_mb: float = 0.0  # the largest PSS of this process and its children together
    written_bytes: int = 0
    counts: dict = field(default_factory=dict)


class measure:
    """Context manager: wall time, CPU time and bytes written to storage (children included)
    and peak RSS of a phase."""

    def __init__(self, name: str, phases: list[Phase]) -> None:
        self.phase = Phase(name)
        phases.append(self.phase)

    def __enter__(self) -> Phase:
        reset_peak_rss()
        self.tree = TreeMemory()
        self.t0, self.c0, self.w0 = time.perf_counter(), os.times(), written_bytes()
        return self.phase

    def __exit__(self, *exc) -> None:
        c1 = os.times()
        self.phase.wall_s = time.perf_counter() - self.t0
        self.phase.cpu_s = sum(c1[:4]) - sum(self.c0[:4])
        self.phase.written_bytes = written_bytes() - self.w0
        self.phase.peak_tree_mb = self.tree.stop()
        # a child process (the build) counts too: its peak is in RUSAGE_CHILDREN
        self.phase.peak_rss_mb = max(peak_rss_mb(), self.phase.peak_rss_mb)


# -- the data ----------------------------------------------------------------------------------

def arxiv_rss(papers: list[Paper], day: datetime) -> bytes:
    """An RSS 2.0 feed shaped like rss.arxiv.org's (announce type, dc:creator, categories)."""
    items = []
    for p in papers:
        aid = p.id.split(":", 1)[1]
        cats = "".join(f"<category>{escape(c)}</category>" for c in p.categories)
        items.append(
            f"<item><title>{escape(p.title)}</title><link>https://arxiv.org/abs/{aid}</link>"
            f"<description>arXiv:{aid}v1 Announce Type: new \nAbstract: {escape(p.abstract)}"
            f"</description><guid isPermaLink=\"false\">oai:arXiv.org:{aid}v1</guid>{cats}"
            f"<pubDate>{format_datetime(day)}</pubDate>"
            f"<arxiv:announce_type>new</arxiv:announce_type>"
            f"<dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>"
            f"<dc:creator>{escape(', '.join(p.authors))}</dc:creator></item>")
    return ("<?xml version='1.0' encoding='UTF-8'?>\n"
            '<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:atom="http://www.w3.org/2005/Atom" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" version="2.0">'
            "<channel><title>cs updates on arXiv.org</title>"
            "<link>http://rss.arxiv.org/rss/cs</link><description>cs updates</description>"
            f"<lastBuildDate>{format_datetime(day)}</lastBuildDate>"
            + "".join(items) + "</channel></rss>").encode()


class FeedServer:
    """Serves one feed body with an ETag; answers 304 to a matching If-None-Match."""

    def __init__(self) -> None:
        self.body, self.etag = b"", '"0"'
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("If-None-Match") == outer.etag:
                    self.send_response(304)
                    self.send_header("ETag", outer.etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(outer.body)))
                self.send_header("ETag", outer.etag)
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/rss/cs"

    def publish(self, body: bytes, tag: str) -> None:
        self.body, self.etag = body, f'"{tag}"'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def new_papers(records, count: int, rng: random.Random, names, day_index: int) -> list[Paper]:
    """The day's papers: corpus-derived, with ids and titles unique to the day."""
    base = make_papers(records, count + len(records), rng, names)[len(records):]
    return [Paper(id=f"arxiv:26{11 + day_index // 28:02d}.{(day_index % 28) * count + i:05d}",
                  title=f"{p.title} ({day_index}.{i})", abstract=p.abstract, authors=p.authors,
                  categories=p.categories, source="arxiv-cs", published=p.published)
            for i, p in enumerate(base)]


def fill_seen(store: Store, records, count: int, rng: random.Random, names) -> float:
    """`count` papers seen long ago, stored through the store's own add_papers."""
    started = time.perf_counter()
    old = (datetime.now(timezone.utc) - timedelta(days=60)).isoformat(timespec="seconds")
    batch = 20000
    proto = make_papers(records, min(count, 5000), rng, names)
    for start in range(0, count, batch):
        chunk = [Paper(id=f"arxiv:old.{i}", title=f"{proto[i % len(proto)].title} [{i}]",
                       abstract=proto[i % len(proto)].abstract[:400],
                       authors=proto[i % len(proto)].authors[:3],
                       categories=proto[i % len(proto)].categories, source="arxiv-cs",
                       published="2026-09-01")
                 for i in range(start, min(count, start + batch))]
        store.add_papers(chunk, now=old)
    return time.perf_counter() - started


def fill_subscribers(store: Store, count: int, gen: RuleGenerator, rng: random.Random,
                     send_at: str, created_at: str) -> int:
    """Subscribers due now (UTC, send_at a minute ago), 1-5 rules each, half of the rules
    from a pool of popular ones so that rules are shared as in real life."""
    popular = [gen.rule() for _ in range(3000)]
    rules_total = 0
    for i in range(count):
        rules = [popular[int(len(popular) * rng.random() ** 2)] if rng.random() < 0.5
                 else gen.rule() for _ in range(rng.randint(1, 5))]
        rules_total += len(rules)
        store.add_subscriber(f"reader{i}@example.org", rules, timezone="UTC", send_at=send_at,
                             now=created_at)
    return rules_total


def fill_profiles(store: Store, records, fraction: float, rng: random.Random, names,
                  seen: int) -> tuple[int, int, int]:
    """Give `fraction` of the subscribers 5-50 seed papers (from a pool of 20,000 corpus-
    derived papers, so profiles share seeds as readers of one field do) and 0-6 "more/less
    like this" marks on seen papers. Returns (profiles, seeds, feedback marks)."""
    if fraction <= 0:
        return 0, 0, 0
    pool = [StoredSeed(paper_id=f"arxiv:seed.{i}", title=p.title, abstract=p.abstract)
            for i, p in enumerate(make_papers(records, 20_000, rng, names))]
    seen_pks = [r[0] for r in store.db.execute(
        "SELECT pk FROM papers ORDER BY pk LIMIT ?", (max(seen, 1),))]
    profiles = seeds = marks = 0
    with store.transaction():
        for (sid,) in store.db.execute("SELECT id FROM subscribers ORDER BY id").fetchall():
            if rng.random() >= fraction:
                continue
            profiles += 1
            chosen = rng.sample(pool, rng.randint(5, 50))
            seeds += store.add_seeds(sid, chosen)
            for pk in rng.sample(seen_pks, min(len(seen_pks), rng.randint(0, 6))):
                store.record_feedback(sid, pk, MORE if rng.random() < 0.6 else LESS)
                marks += 1
    return profiles, seeds, marks


# -- baselines ---------------------------------------------------------------------------------

async def raw_smtp(store_path: str, ids: tuple[int, int], port: int, connections: int
                   ) -> tuple[float, int]:
    """Messages per second for bare aiosmtplib sending the very bytes digestd sent:
    `connections` clients, each taking the next message, read from the store in chunks
    (holding 80,000 bodies of 50 KB in memory would measure the bench, not the sending)."""
    import sqlite3

    db = sqlite3.connect(store_path)
    first, last = ids
    queue: list[tuple[str, bytes]] = []
    state = {"next": first, "sent": 0}

    def refill() -> None:
        lo = state["next"]
        state["next"] = lo + 2000
        # unpacked before the clock runs for them: the same bytes digestd sent
        queue.extend((rcpt, unpack_message(data, packing)) for rcpt, data, packing in db.execute(
            "SELECT d.recipient, b.message, b.packing FROM digests d JOIN digest_bodies b "
            "ON b.digest_id = d.id WHERE d.id >= ? AND d.id < ? AND d.id <= ? ORDER BY d.id "
            "DESC", (lo, lo + 2000, last)).fetchall())

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False,
                                 use_tls=False, timeout=60)
        await client.connect()
        while True:
            if not queue:
                if state["next"] > last:
                    break
                refill()
                continue
            rcpt, data = queue.pop()
            await client.sendmail("digest@example.org", [rcpt], data)
            state["sent"] += 1
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.perf_counter() - started
    db.close()
    return state["sent"] / took, state["sent"]


def rss2email_rate(feed_url: str, port: int, workdir: Path, items: int,
                   tries: int = 3) -> dict:
    """rss2email 3 in a throwaway venv, delivering the same feed to the same sink: the
    best of `tries` fresh runs (the fairest figure for the baseline on a noisy machine)."""
    venv = workdir / "r2e-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "rss2email"], check=True)
    r2e = str(venv / "bin" / "r2e")
    times, cpus = [], []
    for n in range(tries):
        cfg, data = workdir / f"r2e-{n}.cfg", workdir / f"r2e-{n}.json"
        base = [r2e, "-c", str(cfg), "-d", str(data)]
        subprocess.run([*base, "new", "reader@example.org"], check=True, capture_output=True)
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(cfg)
        parser["DEFAULT"].update({"email-protocol": "smtp", "smtp-server": f"127.0.0.1:{port}",
                                  "smtp-auth": "False", "smtp-ssl": "False",
                                  "from": "digest@example.org", "feed-timeout": "120"})
        with cfg.open("w") as fh:
            parser.write(fh)
        subprocess.run([*base, "add", "bench", feed_url], check=True, capture_output=True)
        started, cpu = time.perf_counter(), children_cpu_s()
        subprocess.run([*base, "run"], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        cpus.append(children_cpu_s() - cpu)
    took = min(times)
    return {"emails": items, "seconds": round(took, 2), "per_s": items / took,
            "runs_s": [round(t, 2) for t in times],
            # CPU time does not count the moments another VM had the core: the fair
            # figure on a machine whose speed changes from minute to minute
            "cpu_ms_per_email": round(1000 * min(cpus) / items, 3),
            "version": subprocess.run([r2e, "--version"], capture_output=True,
                                      text=True).stdout.strip()}


# -- one run -----------------------------------------------------------------------------------

def write_config(folder: Path, feed_url: str, smtp_port: int, connections: int) -> Path:
    path = folder / "digestd.toml"
    path.write_text(f"""
[store]
path = "digestd.sqlite3"

[delivery]
from = "Paper digest <digest@example.org>"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
max_connections = {connections}

[web]
base_url = "https://digest.example.org"

[[sources]]
name = "arxiv-cs"
kind = "arxiv-rss"
categories = ["cs.LG"]
url = "{feed_url}"
""")
    return path


def build_counts(built) -> dict:
    return {"digests": built.digests, "matches": sum(built.matches.values()),
            "quiet": built.quiet, "match_s": round(built.match_s, 2),
            "render_s": round(built.render_s, 2), "build_took_s": round(built.took_s, 2),
            # the build process's own CPU and writes (BuildReport; 0 for a build in this one)
            "build_cpu_s": round(built.cpu_s, 2), "build_written_bytes": built.written_bytes,
            # the ranking step (issue 17), where the build reports it
            **({"rank_s": round(built.rank_s, 2)} if hasattr(built, "rank_s") else {}),
            **({"rank_wait_s": round(built.rank_wait_s, 2)}
               if hasattr(built, "rank_wait_s") else {})}


def copy_without_profiles(config, folder: Path, feed_url: str, port: int, connections: int):
    """A config for a copy of the store (as set up, before the first day) without any seed
    or feedback: the same subscribers, rules and papers, so the day differs by ranking only
    (--compare)."""
    folder.mkdir()
    plain = load_config(write_config(folder, feed_url, port, connections))
    with Store(config.store.path) as store:
        checkpoint(store)
        store.db.execute("VACUUM INTO ?", (plain.store.path,))
    with Store(plain.store.path) as store:
        with store.transaction() as db:
            db.execute("DELETE FROM feedback")
            db.execute("DELETE FROM seed_vectors")
            db.execute("DELETE FROM seeds")
        checkpoint(store)
    return plain


def queued_range(store: Store, first: int | None = None) -> tuple[int, int, int, int]:
    """(first id, last id, bytes of mail, bytes stored) of the digests queued by this cycle:
    the messages' own size, and the size of their bodies as stored (packed)."""
    where, args = ("d.status = 'queued'", ()) if first is None else ("d.id >= ?", (first,))
    lo = hi = None
    mail = stored = 0
    for did, data, packing in store.db.execute(
            "SELECT d.id, b.message, b.packing FROM digests d JOIN digest_bodies b "
            f"ON b.digest_id = d.id WHERE {where} ORDER BY d.id", args):
        lo = did if lo is None else lo
        hi = did
        stored += len(data)
        mail += len(unpack_message(data, packing))
    return lo, hi, mail, stored


def children_cpu_s() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def children_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cycle(config, store: Store, feed: FeedServer, papers: list[Paper], day: datetime,
          tag: str, sequential: bool = False) -> tuple[list[Phase], dict]:
    phases: list[Phase] = []
    feed.publish(arxiv_rss(papers, day), tag)
    with measure("poll+store", phases) as ph:
        (report,) = asyncio.run(poll_sources(config.sources, store))
        if report.error:
            raise SystemExit(f"poll failed: {report.error}")
        ph.counts = {"fetched": report.fetched, "new": report.new}
    # an empty WAL to start from: what the build and the send write is theirs alone
    checkpoint(store)
    size_before = Path(store.path).stat().st_size
    if sequential:
        with measure("match+build+render", phases) as ph:
            built = build_digests(config, store, now=day)
            ph.counts = build_counts(built)
        first_id, last_id, size, stored = queued_range(store)
        with measure("send", phases) as ph:
            sent = asyncio.run(send_outbox(config, store))
            ph.counts = {"sent": sent.sent, "deferred": sent.deferred, "failed": sent.failed,
                         "bytes": size, "stored_bytes": stored}
    else:
        # what `digestd send` and the daemon run: the build in a child process, the sender
        # following it in this one, so rendering and delivery overlap on two cores
        first = store.db.execute("SELECT coalesce(max(id), 0) + 1 FROM digests").fetchone()[0]
        with measure("build+send", phases) as ph:
            built, sent = asyncio.run(build_and_send(config, store, now=day))
            ph.counts = {**build_counts(built), "sent": sent.sent, "deferred": sent.deferred,
                         "failed": sent.failed}
            ph.peak_rss_mb = max(peak_rss_mb(), children_peak_mb())
        first_id, last_id, size, stored = queued_range(store, first)
        ph.counts["bytes"] = size
        ph.counts["stored_bytes"] = stored
    # what is still in the WAL goes to the store file at the next checkpoint: counted here
    flushed = checkpoint(store)
    grown = Path(store.path).stat().st_size - size_before
    with measure("poll-304", phases) as ph:
        (again,) = asyncio.run(poll_sources(config.sources, store))
        ph.counts = {"not_modified": again.not_modified, "new": again.new}
    return phases, {"digests": built.digests, "sent": sent.sent, "ids": (first_id, last_id),
                    "bytes": size or 0,
                    "store": store_figures(phases, built, flushed, grown, sequential)}


def store_figures(phases: list[Phase], built, flushed: int, grown: int,
                  sequential: bool) -> dict:
    """Bytes written to the store and CPU per digest, build and send apart (issue 19).

    `flushed`: bytes the checkpoint after the cycle wrote (WAL frames not yet in the store
    file); `grown`: how much the store file grew. Overlapping, the build process reports its
    own CPU and writes (BuildReport.cpu_s, .written_bytes) and the sending is the rest of the
    phase: the sender in this process, the build process once it helps send, the checkpoint."""
    n = built.digests
    if not n:
        return {}
    if sequential:
        build = next(p for p in phases if p.name == "match+build+render")
        send = next(p for p in phases if p.name == "send")
        build_cpu, build_w = build.cpu_s, build.written_bytes
        send_cpu, send_w = send.cpu_s, send.written_bytes + flushed
    else:
        both = next(p for p in phases if p.name == "build+send")
        build_cpu, build_w = built.cpu_s, built.written_bytes
        send_cpu = both.cpu_s - build_cpu
        send_w = both.written_bytes + flushed - build_w
    return {"written_per_digest": round((build_w + send_w) / n),
            "build_written_per_digest": round(build_w / n),
            "send_written_per_digest": round(send_w / n),
            "file_growth_per_digest": round(grown / n),
            "build_cpu_ms_per_digest": round(1000 * build_cpu / n, 3),
            "send_cpu_ms_per_digest": round(1000 * send_cpu / n, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--papers", type=int, default=3000, help="new papers per cycle")
    ap.add_argument("--seen", type=int, default=1_000_000, help="papers already in the store")
    ap.add_argument("--cycles", type=int, default=1, help="days to run over a growing store")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    ap.add_argument("--skip-rss2email", action="store_true")
    ap.add_argument("--sequential", action="store_true",
                    help="build everything, then send (instead of overlapping the two)")
    ap.add_argument("--profiles", type=float, default=0.3, metavar="F",
                    help="the fraction of subscribers with seed papers and feedback, whose "
                         "digests are ranked by relevance (default 0.3; 0: none)")
    ap.add_argument("--compare", action="store_true",
                    help="with profiles: first run the same first day on a copy of the store "
                         "without seeds and feedback, and report what ranking adds to the "
                         "cycle as a ratio of the two (issue 17: at most 20%%)")
    ap.add_argument("--store", default="sqlite", metavar="sqlite|postgresql|URL",
                    help="sqlite (default); postgresql: a throwaway cluster of the bench's own "
                         "(fsync and synchronous_commit on), removed at the end; or the "
                         "postgresql:// URL of an empty database")
    ap.add_argument("--instances", default="1", metavar="N[,M...]",
                    help="PostgreSQL: build and send in N `digestd run`-like processes; "
                         "several counts (1,2) run the same day once each, on copies of the "
                         "store (own cluster only)")
    ap.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE",
                    help="PostgreSQL, own cluster: a server setting beside initdb's defaults "
                         "(repeatable), e.g. --pg-set max_wal_size=8GB --pg-set "
                         "shared_buffers=2GB; said in the figures")
    ap.add_argument("--compare-sqlite", action="store_true",
                    help="PostgreSQL: run the same day on the SQLite store too, in this run, "
                         "and report PostgreSQL against it as ratios")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--out", type=Path, help="write the JSON figures here "
                    "(default: bench/results/cycle-S-P.json)")
    args = ap.parse_args(argv)
    postgres = args.store != "sqlite"
    try:
        args.instances = [int(n) for n in args.instances.split(",")]
    except ValueError:
        ap.error("--instances takes counts: 2, or 1,2")
    if postgres:
        if args.store != "postgresql" and not args.store.startswith(("postgresql://",
                                                                      "postgres://")):
            ap.error("--store is sqlite, postgresql or a postgresql:// URL")
        if args.store != "postgresql" and len(args.instances) > 1:
            ap.error("a given database holds one run: one --instances count with a URL")
        if args.cycles != 1 or args.compare or args.sequential or min(args.instances) < 1:
            ap.error("PostgreSQL runs one day (--cycles 1), without --compare and "
                     "--sequential, with 1 instance or more")
    elif args.instances != [1] or args.compare_sqlite:
        ap.error("--instances and --compare-sqlite are for --store postgresql")

    def say(*a) -> None:
        print(*a, file=sys.stderr if args.json else sys.stdout, flush=True)

    rng = random.Random(args.seed)
    records = load_corpus(args.corpus)
    names = last_names(rng)
    gen = RuleGenerator(records, rng, names)
    sink_kind = args.sink if args.sink != "auto" else (
        "smtp-sink" if shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists()
        else "aiosmtpd")
    work = Path(tempfile.mkdtemp(prefix="digestd-cycle-"))
    feed = FeedServer()
    port = free_port()
    sink = start_sink(sink_kind, port)
    try:
        config = load_config(write_config(work, feed.url, port, args.connections))
        # the days run back to back and end now: digests built for a day are due at once
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        first_day = now - timedelta(days=args.cycles - 1)
        send_at = (now - timedelta(minutes=1)).strftime("%H:%M")
        with Store(config.store.path) as store:
            say(f"setup: {args.seen:,} seen papers, {args.subscribers:,} subscribers ...")
            seen_s = fill_seen(store, records, args.seen, rng, names)
            t = time.perf_counter()
            rules = fill_subscribers(store, args.subscribers, gen, rng, send_at,
                                     (first_day - timedelta(hours=1)).isoformat(
                                         timespec="seconds"))
            subs_s = time.perf_counter() - t
            t = time.perf_counter()
            profiles, seeds, marks = fill_profiles(store, records, args.profiles, rng, names,
                                                   args.seen)
            say(f"setup: seen papers {seen_s:.1f}s, subscribers ({rules:,} rules) "
                f"{subs_s:.1f}s, {profiles:,} profiles ({seeds:,} seeds, {marks:,} feedback "
                f"marks) {time.perf_counter() - t:.1f}s")
        if postgres:
            return postgres_main(args, config, work, feed, port, sink_kind, first_day,
                                 new_papers(records, args.papers, rng, names, 0),
                                 (profiles, seeds, marks), say)
        days = []
        raw_rate = None
        plain = None  # the same first day without profiles (--compare)
        if args.compare and profiles:
            plain_config = copy_without_profiles(config, work / "plain", feed.url, port,
                                                 args.connections)
            say("compare: the first day on a copy of the store without profiles ...")
        for day_index in range(args.cycles):
            day = first_day + timedelta(days=day_index)
            papers = new_papers(records, args.papers, rng, names, day_index)
            if day_index == 0 and args.compare and profiles:
                with Store(plain_config.store.path) as store:
                    phases, _ = cycle(plain_config, store, feed, papers, day, "day0-plain",
                                      args.sequential)
                plain = {"cycle_s": round(sum(p.wall_s for p in phases if p.name not in (
                    "poll-304", "send-only")), 2),
                         "build_cpu_s": next((p.counts.get("build_cpu_s") for p in phases
                                              if p.name == "build+send"), None),
                         "peak_rss_mb": round(max(p.peak_rss_mb for p in phases), 1),
                         "peak_tree_mb": round(max(p.peak_tree_mb for p in phases), 1)}
                say(f"compare: without profiles the cycle took {plain['cycle_s']:.1f}s")
                Path(plain_config.store.path).unlink()
            with Store(config.store.path) as store:
                phases, out = cycle(config, store, feed, papers, day, f"day{day_index}",
                                    args.sequential)
                total = sum(p.wall_s for p in phases if p.name not in ("poll-304", "send-only"))
                rss_now = rss_mb()
                store_mb = Path(config.store.path).stat().st_size / 2**20
            if day_index == 0 and out["ids"][0] is not None:
                if not args.sequential:
                    # delivery alone, on the very same outbox: queue the cycle's digests again
                    # and let send_outbox deliver them, then raw aiosmtplib the same bytes
                    say("delivery alone: the cycle's outbox sent again ...")
                    with Store(config.store.path) as store:
                        store.db.execute(
                            "UPDATE digests SET status = 'queued', attempts = 0, sent_at = NULL, "
                            "claimed_by = NULL, claimed_until = NULL, next_attempt_at = created_at "
                            "WHERE id BETWEEN ? AND ?", out["ids"])
                        checkpoint(store)
                        with measure("send-only", phases) as ph:
                            again = asyncio.run(send_outbox(config, store))
                            ph.counts = {"sent": again.sent, "failed": again.failed}
                        ph.counts["written_with_checkpoint"] = ph.written_bytes + checkpoint(store)
                say("baseline: raw aiosmtplib, the same messages ...")
                raw_rate, _ = asyncio.run(raw_smtp(config.store.path, out["ids"], port,
                                                   args.connections))
            send = next((p for p in phases if p.name in ("send", "send-only")), None)
            build = next(p for p in phases if p.name in ("match+build+render", "build+send"))
            days.append({
                "day": day_index, "cycle_s": round(total, 2), "rss_mb": round(rss_now, 1),
                "store_mb": round(store_mb, 1), "digests": out["digests"],
                "digests_per_s": round(out["digests"] / total, 1) if total else None,
                "send_per_s": round(send.counts["sent"] / send.wall_s, 1) if send else None,
                "match_share": round(build.counts.get("match_s", 0) / total, 3) if total else None,
                "store": out["store"],
                "phases": {p.name: {"wall_s": round(p.wall_s, 2), "cpu_s": round(p.cpu_s, 2),
                                    "peak_rss_mb": round(p.peak_rss_mb, 1),
                                    "peak_tree_mb": round(p.peak_tree_mb, 1),
                                    "written_bytes": p.written_bytes, **p.counts}
                           for p in phases},
            })
            say(f"day {day_index}: cycle {total:.1f}s, {out['digests']:,} digests, "
                f"{days[-1]['digests_per_s']} digests/s, RSS {rss_now:.0f} MB")
            for p in phases:
                say(f"    {p.name:<20} wall {p.wall_s:7.2f}s  cpu {p.cpu_s:7.2f}s  "
                    f"peak {p.peak_rss_mb:7.1f} MB  written {p.written_bytes / 2**20:8.1f} MB  "
                    f"{p.counts}")
            say(f"    per digest: {out['store']}")
        r2e = None
        if not args.skip_rss2email:
            say("baseline: rss2email ...")
            feed.publish(arxiv_rss(new_papers(records, args.papers, rng, names, 99), now),
                         "r2e")
            r2e = rss2email_rate(feed.url, port, work, args.papers)
    finally:
        stop_sink(sink)
        feed.close()
    first = days[0]
    build = first["phases"].get("build+send") or first["phases"]["match+build+render"]
    send_cpu = first["phases"].get("send", {}).get("cpu_s", 0)
    cpu_ms = round(1000 * (first["phases"]["poll+store"]["cpu_s"] + build["cpu_s"] + send_cpu)
                   / first["digests"], 3) if first["digests"] else None
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "sink": sink_kind,
        "subscribers": args.subscribers, "papers": args.papers, "seen": args.seen,
        "connections": args.connections,
        "profiles": profiles, "profile_fraction": args.profiles,
        "cycle_s": first["cycle_s"],
        "digests": first["digests"],
        "digests_per_s": first["digests_per_s"],
        "send_per_s": first["send_per_s"],
        "raw_smtp_per_s": round(raw_rate, 1) if raw_rate else None,
        "delivery_vs_raw": round(first["send_per_s"] / raw_rate, 3)
        if raw_rate and first["send_per_s"] else None,
        "match_share": first["match_share"],
        # the ranking step's own time as a share of the cycle, and how long rendering waited
        # for it (ranked in a forked process, it overlaps rendering the other digests)
        "rank_share": round(build["rank_s"] / first["cycle_s"], 3)
        if build.get("rank_s") is not None and first["cycle_s"] else None,
        "rank_wait_s": build.get("rank_wait_s"),
        # --compare: the same first day without profiles, in this run; what ranking adds to
        # the cycle is cycle_s / plain["cycle_s"] - 1 (issue 17: at most 0.2)
        "plain": plain,
        "profiles_cost": round(first["cycle_s"] / plain["cycle_s"] - 1, 3) if plain else None,
        "profiles_extra_rss_mb": round(max(p["peak_rss_mb"] for p in first["phases"].values())
                                       - plain["peak_rss_mb"], 1) if plain else None,
        # the whole process tree's memory (PSS: the build and the ranking it forks together)
        "peak_tree_mb": max(p["peak_tree_mb"] for p in first["phases"].values()),
        "profiles_extra_tree_mb": round(max(p["peak_tree_mb"] for p in first["phases"].values())
                                        - plain["peak_tree_mb"], 1) if plain else None,
        "peak_rss_mb": max(p["peak_rss_mb"] for p in first["phases"].values()),
        "poll_304_s": first["phases"]["poll-304"]["wall_s"],
        "rss2email_per_s": round(r2e["per_s"], 2) if r2e else None,
        "vs_rss2email": round(first["digests_per_s"] / r2e["per_s"], 2) if r2e else None,
        # the same comparison in CPU time (the sink left out of both)
        "cpu_ms_per_digest": cpu_ms,
        "rss2email_cpu_ms_per_email": r2e["cpu_ms_per_email"] if r2e else None,
        "vs_rss2email_cpu": round(r2e["cpu_ms_per_email"] / cpu_ms, 2) if r2e and cpu_ms
        else None,
        "rss2email": r2e,
        # bytes written to the store (WAL and file) and CPU, per digest (issue 19)
        **{f"store_{k}" if "written" in k or "growth" in k else k: v
           for k, v in first["store"].items()},
        "send_only_cpu_ms_per_digest": round(
            1000 * first["phases"]["send-only"]["cpu_s"] / first["phases"]["send-only"]["sent"],
            3) if first["phases"].get("send-only", {}).get("sent") else None,
        "send_only_store_written_per_digest": round(
            first["phases"]["send-only"]["written_with_checkpoint"]
            / first["phases"]["send-only"]["sent"])
        if first["phases"].get("send-only", {}).get("sent") else None,
        "phases": first["phases"],
        "days": days,
    }
    shutil.rmtree(work, ignore_errors=True)
    return write_results(result, summary(result), args.out or RESULTS / (
        f"cycle-{args.subscribers}-{args.papers}.json"), as_json=args.json)


def write_results(result: dict, text: str, out_path: Path, *, as_json: bool) -> int:
    """The figures as JSON at `out_path` and the summary `text` beside it (.txt); printed
    too (the JSON with --json)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    out_path.with_suffix(".txt").write_text(text + "\n")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(text)
        print(f"figures written to {out_path} and its summary to {out_path.with_suffix('.txt')}")
    return 0


# -- PostgreSQL (--store postgresql, --instances, --compare-sqlite) ---------------------------

def postgres_config(folder: Path, url: str, feed_url: str, port: int, connections: int):
    """The bench's config with the store at `url` (in a folder of its own)."""
    folder.mkdir(exist_ok=True)
    path = write_config(folder, feed_url, port, connections)
    path.write_text(path.read_text().replace('path = "digestd.sqlite3"', f'url = "{url}"'))
    return load_config(path)


def postgres_cycle(config, admin_url: str, pid: int | None, feed: FeedServer,
                   papers: list[Paper], day: datetime, tag: str, n: int) -> dict:
    """One day on PostgreSQL: the poll in this process (the leader's part, as measured on
    SQLite), then the build and the send in `n` instance processes until every digest due is
    sent. The server's CPU, WAL and commits are sampled around each phase."""
    import pgcluster  # here: the SQLite cycle needs no PostgreSQL (nor tests/)

    phases: list[Phase] = []
    feed.publish(arxiv_rss(papers, day), tag)
    folder = Path(config.path).parent
    url = config.store.url
    pgcluster.checkpoint(admin_url)  # the setup's writes (a database copied) are done
    pgcluster.wait_idle(admin_url, url)
    server = [pgcluster.ServerSample.take(admin_url, pid)]
    with open_store(config.store) as store:
        with measure("poll+store", phases) as ph:
            (report,) = asyncio.run(poll_sources(config.sources, store))
            if report.error:
                raise SystemExit(f"poll failed: {report.error}")
            ph.counts = {"fetched": report.fetched, "new": report.new}
        first = store.db.execute("SELECT coalesce(max(id), 0) + 1 FROM digests").fetchone()[0]
    # the samples wait for the phase's connections to end (their counts are in then)
    pgcluster.wait_idle(admin_url, url)
    server.append(pgcluster.ServerSample.take(admin_url, pid))
    # started, imported and connected before the clock runs (see bench/pgcluster.py)
    instances = pgcluster.Instances(folder / "digestd.toml", iso(day), n, folder)
    try:
        with measure("build+send", phases) as ph:
            reports = instances.go()
    finally:
        instances.stop()
    pgcluster.wait_idle(admin_url, url)
    server.append(pgcluster.ServerSample.take(admin_url, pid))
    with open_store(config.store) as store:
        statuses = dict(store.db.execute("SELECT status, count(*) FROM digests WHERE id >= ? "
                                         "GROUP BY status", (first,)).fetchall())
        shards = dict(store.db.execute("SELECT holder, count(*) FROM build_shards "
                                       "GROUP BY holder").fetchall())
    digests = sum(r["digests"] for r in reports)
    if statuses != {"sent": digests}:
        raise SystemExit(f"not every digest was sent once: built {digests}, in the store "
                         f"{statuses}")
    for r in reports:
        r["shards"] = shards.get(r["owner"], 0)
    ph.counts = {"digests": digests, "sent": sum(r["sent"] for r in reports),
                 "instances": reports}
    total = sum(p.wall_s for p in phases)
    # digestd's processes: this one (the poll; then waiting, sampling memory) and the
    # instances from "go" on, their build processes included
    cpu = sum(p.cpu_s for p in phases) + sum(r["cpu_s"] for r in reports)
    poll_db, build_db = server[1].since(server[0]), server[2].since(server[1])
    db_cpu = (poll_db["cpu_s"] + build_db["cpu_s"]) if poll_db["cpu_s"] is not None else None
    per = (lambda v: round(1000 * v / digests, 3) if v is not None and digests else None)
    return {
        "instances": n, "cycle_s": round(total, 2), "digests": digests,
        "digests_per_s": round(digests / total, 1) if total else None,
        "cpu_ms_per_digest": per(cpu),
        # the build processes' own share (the rest: the poll, the instances' senders)
        "build_cpu_ms_per_digest": per(sum(r["build_cpu_s"] for r in reports)),
        "db_cpu_ms_per_digest": per(db_cpu),
        "wal_bytes_per_digest": round((poll_db["wal_bytes"] + build_db["wal_bytes"]) / digests)
        if digests else None,
        "commits_per_digest": round((poll_db["commits"] + build_db["commits"]) / digests, 2)
        if digests else None,
        "peak_tree_mb": max(p.peak_tree_mb for p in phases),
        "server": {"poll+store": poll_db, "build+send": build_db},
        "phases": {p.name: {"wall_s": round(p.wall_s, 2), "cpu_s": round(p.cpu_s, 2),
                            "peak_tree_mb": round(p.peak_tree_mb, 1), **p.counts}
                   for p in phases},
    }


def postgres_main(args, config, work: Path, feed: FeedServer, port: int, sink_kind: str,
                  day: datetime, papers: list[Paper], profiled: tuple[int, int, int],
                  say) -> int:
    """--store postgresql: copy the generated store, run the day on SQLite (--compare-sqlite)
    and on PostgreSQL with each --instances count, write and print the figures."""
    import pgcluster

    own = args.store == "postgresql"
    if any("=" not in item for item in args.pg_set) or (args.pg_set and not own):
        raise SystemExit("--pg-set takes NAME=VALUE, with --store postgresql (the bench's "
                         "own cluster)")
    settings = dict(item.split("=", 1) for item in args.pg_set)
    server = None
    try:
        if own:
            say("postgresql: a throwaway cluster (fsync on, synchronous_commit on) ...")
            server = pgcluster.start_cluster(settings)
            admin_url, base = server.url(), "digestd_base"
            pgcluster.create_database(admin_url, base)
            base_url = server.url(base)
        else:
            admin_url = base_url = args.store
        pid = pgcluster.postmaster_pid(admin_url)
        say("setup: digestd store copy into PostgreSQL ...")
        t = time.perf_counter()
        with Store(config.store.path) as lite, open_store(base_url) as pg:
            copied = copy_store(lite, pg)
        copy_s = time.perf_counter() - t
        t = time.perf_counter()
        pgcluster.vacuum_analyze(base_url)
        pgcluster.checkpoint(admin_url)
        analyze_s = time.perf_counter() - t
        say(f"setup: copied {sum(copied.counts.values()):,} rows in {copy_s:.1f}s, "
            f"VACUUM ANALYZE and CHECKPOINT {analyze_s:.1f}s")
        sqlite = None
        if args.compare_sqlite:
            say("sqlite: the same day on the SQLite store ...")
            with Store(config.store.path) as store:
                phases, out = cycle(config, store, feed, papers, day, "day0-sqlite")
            ran = [p for p in phases if p.name not in ("poll-304", "send-only")]
            total = sum(p.wall_s for p in ran)
            # as main() counts it for SQLite: the poll and the build+send phase (the
            # sender here, the build process in RUSAGE_CHILDREN)
            sqlite = {"cycle_s": round(total, 2), "digests": out["digests"],
                      "digests_per_s": round(out["digests"] / total, 1) if total else None,
                      "cpu_ms_per_digest": round(1000 * sum(p.cpu_s for p in ran)
                                                 / out["digests"], 3) if out["digests"] else None,
                      "peak_tree_mb": max(p.peak_tree_mb for p in ran),
                      # the build process's own share (the rest: the poll and the sender)
                      "build_cpu_ms_per_digest": out["store"].get("build_cpu_ms_per_digest"),
                      "phases": {p.name: {"wall_s": round(p.wall_s, 2),
                                          "cpu_s": round(p.cpu_s, 2)} for p in phases}}
            say(f"sqlite: cycle {total:.1f}s, {out['digests']:,} digests, "
                f"{sqlite['digests_per_s']} digests/s, {sqlite['cpu_ms_per_digest']} ms CPU "
                "per digest")
        runs = []
        for n in args.instances:
            if own:
                name = f"digestd_{n}"
                pgcluster.create_database(admin_url, name, template=base)
                url = server.url(name)
            else:
                url = base_url
            pg_config = postgres_config(work / f"pg-{n}", url, feed.url, port, args.connections)
            say(f"postgresql: the day with {n} instance(s) ...")
            run = postgres_cycle(pg_config, admin_url, pid, feed, papers, day,
                                 f"day0-pg{n}", n)
            if sqlite and sqlite["digests"] != run["digests"]:
                raise SystemExit(f"PostgreSQL built {run['digests']} digests, SQLite "
                                 f"{sqlite['digests']}: not the same day")
            if sqlite:
                run["vs_sqlite"] = {
                    "digests_per_s": round(run["digests_per_s"] / sqlite["digests_per_s"], 3),
                    "cpu_per_digest": round(run["cpu_ms_per_digest"]
                                            / sqlite["cpu_ms_per_digest"], 3),
                    # digestd and the server together, against SQLite (in digestd's process)
                    "cpu_with_db_per_digest": round(
                        (run["cpu_ms_per_digest"] + run["db_cpu_ms_per_digest"])
                        / sqlite["cpu_ms_per_digest"], 3)
                    if run["db_cpu_ms_per_digest"] is not None else None}
            runs.append(run)
            say(f"postgresql x{n}: cycle {run['cycle_s']:.1f}s, {run['digests']:,} digests, "
                f"{run['digests_per_s']} digests/s, CPU per digest {run['cpu_ms_per_digest']} "
                f"ms (digestd) + {run['db_cpu_ms_per_digest']} ms (PostgreSQL), "
                f"{run['wal_bytes_per_digest']} WAL bytes and {run['commits_per_digest']} "
                f"commits per digest" + (f"; vs SQLite {run['vs_sqlite']}" if sqlite else ""))
            if own:
                pgcluster.drop_database(admin_url, name)
    finally:
        if server is not None:
            server.stop()
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
        "date": datetime.now(timezone.utc).date().isoformat(),
        "sink": sink_kind, "store": "postgresql",
        "server": (f"{pgcluster.server_version()}, a throwaway cluster on a Unix socket (fsync, "
                   "synchronous_commit, full_page_writes on; "
                   + "".join(f"{k} = {v}, " for k, v in settings.items())
                   + "initdb's other defaults)")
        if own else without_password(args.store),
        "server_cpu_measured": pid is not None,
        "subscribers": args.subscribers, "papers": args.papers, "seen": args.seen,
        "connections_per_instance": args.connections,
        "profiles": profiled[0], "profile_fraction": args.profiles,
        "copy_s": round(copy_s, 2), "analyze_s": round(analyze_s, 2), "copied": copied.counts,
        "sqlite": sqlite, "runs": runs,
    }
    shutil.rmtree(work, ignore_errors=True)
    return write_results(result, postgres_summary(result), args.out or RESULTS / (
        f"cycle-{args.subscribers}-{args.papers}-postgresql.json"), as_json=args.json)


def postgres_summary(r: dict) -> str:
    text = (f"On {r['machine']} ({r['date']}), one daily cycle for {r['subscribers']:,} "
            f"subscribers x {r['papers']:,} new papers with {r['seen']:,} papers already in the "
            f"store, on PostgreSQL ({r['server']}), every instance and the server on the same "
            "machine:")
    for run in r["runs"]:
        db = (f" + {run['db_cpu_ms_per_digest']:.2f} ms of the server's"
              if run["db_cpu_ms_per_digest"] is not None else "")
        text += (f" with {run['instances']} instance(s), {run['cycle_s']:.1f} s for "
                 f"{run['digests']:,} digests, {run['digests_per_s']:.0f} digests/s, "
                 f"{run['cpu_ms_per_digest']:.2f} ms of digestd's CPU per digest{db}, "
                 f"{run['wal_bytes_per_digest'] / 1024:.1f} KB of WAL;")
    if r["sqlite"]:
        s = r["sqlite"]
        text += (f" the same day on SQLite, in this run: {s['cycle_s']:.1f} s, "
                 f"{s['digests_per_s']:.0f} digests/s, {s['cpu_ms_per_digest']:.2f} ms of CPU "
                 "per digest.")
        for run in r["runs"]:
            v = run["vs_sqlite"]
            text += (f" PostgreSQL x{run['instances']} against SQLite: {v['digests_per_s']:.2f}x "
                     f"the digests/s, {v['cpu_per_digest']:.2f}x digestd's CPU per digest"
                     + (f" ({v['cpu_with_db_per_digest']:.2f}x with the server's)."
                        if v["cpu_with_db_per_digest"] is not None else "."))
    return text.rstrip(";") + ("" if text.endswith(".") else ".")


def summary(r: dict) -> str:
    """The paragraph the README's Performance section quotes."""
    text = (f"On {r['machine']} ({r['date']}), one daily cycle for {r['subscribers']:,} "
            f"subscribers x {r['papers']:,} new papers with {r['seen']:,} papers already in the "
            f"store took {r['cycle_s']:.0f} s end to end: {r['digests']:,} personalized "
            f"digests, {r['digests_per_s']:.0f} digests/s. Delivery ran at {r['send_per_s']:.0f} "
            f"messages/s, {100 * (r['delivery_vs_raw'] or 0):.0f}% of raw aiosmtplib sending "
            f"the same bytes to the same {r['sink']} sink over {r['connections']} connections "
            f"({r['raw_smtp_per_s']:.0f}/s); matching took {100 * (r['match_share'] or 0):.1f}% "
            f"of the cycle; peak memory {r['peak_rss_mb']:.0f} MB in the largest process"
            + (f", {r['peak_tree_mb']:.0f} MB in all processes together (PSS)"
               if r.get("peak_tree_mb") else "") + "; a poll answered 304 took "
            f"{r['poll_304_s'] * 1000:.0f} ms.")
    if r.get("profiles"):
        text += (f" {r['profiles']:,} subscribers ({100 * r['profile_fraction']:.0f}%) had seed "
                 "papers and feedback, so their digests were ranked by relevance"
                 + (f"; ranking took {100 * r['rank_share']:.1f}% of the cycle."
                    if r.get("rank_share") is not None else "."))
    if r.get("profiles_cost") is not None:
        text += (f" The same day without any profile, in this run, took {r['plain']['cycle_s']:.0f}"
                 f" s: ranking added {100 * r['profiles_cost']:.0f}% to the cycle and "
                 f"{r['profiles_extra_rss_mb']:.0f} MB to the largest process's peak memory "
                 f"({r['profiles_extra_tree_mb']:.0f} MB to the peak of all processes "
                 "together, PSS).")
    if r.get("store_written_per_digest") is not None:
        text += (f" Each digest wrote {r['store_written_per_digest'] / 1024:.1f} KB to the store "
                 f"(WAL and file: {r['store_build_written_per_digest'] / 1024:.1f} KB building, "
                 f"{r['store_send_written_per_digest'] / 1024:.1f} KB sending; the file grew "
                 f"{r['store_file_growth_per_digest'] / 1024:.1f} KB) and cost "
                 f"{r['build_cpu_ms_per_digest']:.2f} ms of CPU to build and "
                 f"{r['send_cpu_ms_per_digest']:.2f} ms to send.")
    if r.get("rss2email_per_s"):
        text += (f" rss2email delivered the same feed at {r['rss2email_per_s']:.1f} emails/s "
                 f"(one item each): digestd is {r['vs_rss2email']:.1f}x "
                 + ("faster." if r["vs_rss2email"] >= 1 else "as fast."))
    if r.get("vs_rss2email_cpu"):
        text += (f" In CPU time, which the machine's other load stretches less, digestd "
                 f"spent {r['cpu_ms_per_digest']:.2f} ms per digest against rss2email's "
                 f"{r['rss2email_cpu_ms_per_email']:.2f} ms per email ("
                 + (f"{r['vs_rss2email_cpu']:.1f}x less" if r["vs_rss2email_cpu"] >= 1
                    else f"{1 / r['vs_rss2email_cpu']:.1f}x more")
                 + "), and it keeps both cores busy.")
    return text


if __name__ == "__main__":
    sys.exit(main())
