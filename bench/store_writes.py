"""Where the bytes a build and a send write to the store go, table by table (issue 19).

    python bench/store_writes.py                                   # 20,000 x 1,000
    python bench/store_writes.py --subscribers 5000 --papers 1000 --seen 50000

The store and the day are made as bench/cycle.py makes them. Then a second connection opens
a read transaction on an empty WAL and holds it: no checkpoint can copy a frame past its
snapshot, so the WAL is never reset and, once the build (in this process, as
`cycle.py --sequential` runs it) and the send are done, it holds every frame they wrote.
Each frame names its page, and SQLite's dbstat table names the table or index that owns
the page: the bytes written, by owner, per digest. A checkpoint at the end copies each page
once into the store file; cycle.py measures the checkpoints of a real run (every second).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cycle as C  # noqa: E402  (puts the repository on sys.path too)

from digestd.config import load_config  # noqa: E402
from digestd.jobs import build_digests, poll_sources, send_outbox  # noqa: E402
from digestd.store import Store, unpack_message  # noqa: E402


def frames_by_owner(store: Store, wal: Path, start: int, end: int) -> tuple[dict, int]:
    """(owner -> frames, commits) of the WAL frames between byte offsets start and end."""
    owner = dict(store.db.execute("SELECT pageno, name FROM dbstat"))
    with wal.open("rb") as fh:
        head = fh.read(32)
        page = struct.unpack(">I", head[8:12])[0]
        frame = page + 24
        first = 32 + max(0, start - 32) // frame * frame
        fh.seek(first)
        data = fh.read(max(0, end - first))
    counts: collections.Counter = collections.Counter()
    commits = 0
    for off in range(0, len(data) - frame + 1, frame):
        pgno, size_after = struct.unpack(">II", data[off:off + 8])
        counts[owner.get(pgno, "(freed)")] += 1
        commits += size_after > 0
    return dict(counts.most_common()), commits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=20_000)
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--seen", type=int, default=200_000)
    ap.add_argument("--profiles", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    records = C.load_corpus(C.DEFAULT_CORPUS)
    names = C.last_names(rng)
    gen = C.RuleGenerator(records, rng, names)
    work = Path(tempfile.mkdtemp(prefix="digestd-writes-"))
    feed, port = C.FeedServer(), C.free_port()
    kind = "smtp-sink" if shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists() \
        else "aiosmtpd"
    sink = C.start_sink(kind, port)
    try:
        config = load_config(C.write_config(work, feed.url, port, 4))
        path = Path(config.store.path)
        wal = Path(str(path) + "-wal")
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        with Store(path) as store:
            C.fill_seen(store, records, args.seen, rng, names)
            C.fill_subscribers(store, args.subscribers, gen, rng,
                               (now - timedelta(minutes=1)).strftime("%H:%M"),
                               (now - timedelta(hours=1)).isoformat(timespec="seconds"))
            C.fill_profiles(store, records, args.profiles, rng, names, args.seen)
        feed.publish(C.arxiv_rss(C.new_papers(records, args.papers, rng, names, 0), now), "d0")
        with Store(path) as store:
            asyncio.run(poll_sources(config.sources, store))
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN")
            holder.execute("SELECT count(*) FROM subscribers").fetchone()  # the snapshot
            size0 = path.stat().st_size
            started = time.process_time()
            built = build_digests(config, store, now=now)
            build_cpu = time.process_time() - started
            wal1 = wal.stat().st_size
            started = time.process_time()
            sent = asyncio.run(send_outbox(config, store))
            send_cpu = time.process_time() - started
            wal2 = wal.stat().st_size
            n = built.digests
            body = stored = 0
            for data, packing in store.db.execute("SELECT message, packing FROM digest_bodies"):
                stored += len(data)
                body += len(unpack_message(data, packing))
            build_owners, build_commits = frames_by_owner(store, wal, 0, wal1)
            send_owners, send_commits = frames_by_owner(store, wal, wal1, wal2)
            holder.execute("COMMIT")
            holder.close()
            store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            grown = path.stat().st_size - size0
    finally:
        C.stop_sink(sink)
        feed.close()
        shutil.rmtree(work, ignore_errors=True)

    def per_digest(owners: dict) -> str:
        page = 4096 + 24
        return ", ".join(f"{name} {frames * page / n / 1024:.1f}"
                         for name, frames in owners.items() if frames * page / n >= 50)

    print(f"{args.subscribers:,} subscribers x {args.papers:,} papers ({args.seen:,} seen): "
          f"{n:,} digests, {sent.sent:,} sent; message {body / n / 1024:.1f} KB, stored "
          f"{stored / n / 1024:.1f} KB per digest")
    print(f"build: {build_commits} commits, WAL {wal1 / n / 1024:.1f} KB per digest "
          f"({per_digest(build_owners)}); CPU {1000 * build_cpu / n:.2f} ms per digest")
    print(f"send: {send_commits} commits, WAL {(wal2 - wal1) / n / 1024:.1f} KB per digest "
          f"({per_digest(send_owners)}); CPU {1000 * send_cpu / n:.2f} ms per digest")
    print(f"the store file grew {grown / n / 1024:.1f} KB per digest")
    return 0


if __name__ == "__main__":
    sys.exit(main())
