"""`digestd store copy`: a SQLite store into an empty PostgreSQL database, every row with its
keys, then the row counts compared table by table."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import StoreError
from .base import BaseStore
from .cluster import RUNNING_LEASE
from .sqlite import Store

log = logging.getLogger("digestd.store")

# every table, parents before children (the foreign keys hold at each step); schema_version
# is each backend's own
TABLES = ("papers", "paper_ids", "source_state", "subscribers", "rules", "digests",
          "digest_bodies", "whys", "sent", "web_events", "id_high_water", "schedule_version",
          "inbound_seen", "inbound_counts", "feedback", "seed_texts", "seeds",
          "seed_vectors")
# the tables whose keys PostgreSQL numbers itself (identity columns): after rows with their
# own keys, the next key must come after the largest copied
IDENTITIES = (("papers", "pk"), ("subscribers", "id"), ("rules", "id"), ("digests", "id"),
              ("whys", "id"), ("seed_texts", "id"))
# tables that are never empty in a fresh store (made by the migrations), so not checked as such
SEEDED = ("schedule_version",)


@dataclass
class CopyReport:
    counts: dict[str, int] = field(default_factory=dict)  # table -> rows copied (and found)
    took_s: float = 0.0


def copy_store(source: Store, target: BaseStore, *,
               progress: Callable[[str, int], None] | None = None) -> CopyReport:
    """Copy every row of the SQLite store `source` into `target`, a migrated, empty
    PostgreSQL store, in one transaction of the target (a failed copy leaves it empty), then
    compare each table's row count.

    Raises StoreError when the target is not empty, when the source is in use (claimed
    outbox rows: stop digestd first), or when a count differs after the copy (the target
    is left as it is, for a look; empty it to try again). `progress(table, rows)` is called
    after each table.
    """
    if target.sql.name != "postgresql":
        raise StoreError("the copy goes into a PostgreSQL database (--to postgresql://...)")
    running = source.lease_holder(RUNNING_LEASE)
    if running:
        raise StoreError(f"the store {source.path} is in use by a running digestd "
                         f"({running[0]}): stop it, then copy (a digestd killed with kill -9 "
                         f"holds it {running[1]:.0f} s more)")
    busy = source.outbox_claimants()
    if busy:
        raise StoreError(f"the store {source.path} is in use (outbox rows claimed by "
                         f"{', '.join(sorted(busy))}): stop digestd, then copy")
    filled = [t for t in TABLES if t not in SEEDED
              and target.db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
    if filled:
        raise StoreError(f"the database {target.path} is not empty (rows in "
                         f"{', '.join(filled)}): copy into a new, empty database")
    began = time.monotonic()
    report = CopyReport()
    pg = target.db.conn
    with target.transaction():
        for table in TABLES:
            columns = [r[1] for r in source.db.execute(f"PRAGMA table_info({table})")]
            names = ", ".join(columns)
            rows = source.db.execute(f"SELECT {names} FROM {table}")
            if table in SEEDED:
                target.db.execute(f"DELETE FROM {table}")
            n = 0
            with pg.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    n += 1
            report.counts[table] = n
            log.info("event=store_copy table=%s rows=%d", table, n)
            if progress is not None:
                progress(table, n)
        for table, key in IDENTITIES:
            target.db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                              f"coalesce((SELECT max({key}) FROM {table}), 0) + 1, false)")
    differ = []
    for table, copied in report.counts.items():
        there = target.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        here = source.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if not here == there == copied:
            differ.append(f"{table}: {here} in SQLite, {there} in PostgreSQL")
    if differ:
        raise StoreError("the copy is incomplete: " + "; ".join(differ))
    # statistics now, so the first instance to start plans with the tables' real sizes
    # (autovacuum would analyze them within a minute or so, after the first plans are made)
    target.db.execute("ANALYZE")
    report.took_s = time.monotonic() - began
    return report
