"""The store's part in running several `digestd run` against one store: named leases (the
leader's), the shards of a build round, and the web app's rate windows.

Leases are judged by the store's clock (Dialect.epoch_now), never by the instances' own, so
machines whose clocks disagree still agree on who holds what. Every write here takes row
locks only (transaction(exclusive=False)): an instance renewing its lease never waits for
another's build to commit.
"""

from __future__ import annotations

from datetime import datetime, timezone

from .records import lease_end, utcnow

# the lease a `digestd run` holds on a SQLite store while it runs (jobs_cluster.Presence):
# `store copy` refuses to copy a store in use
RUNNING_LEASE = "running"


class ClusterStore:
    """Leases, build shards and rate windows (the tables of the "cluster" migration)."""

    # -- named leases (the leader's) -----------------------------------------------------------

    def take_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Hold the lease `name` for `holder` for `seconds` from now (store clock): taken
        when nobody holds it, when its holder's time is up, or renewed when `holder` holds it
        already. Returns whether `holder` holds it now. Never waits for another holder."""
        now = self.sql.epoch_now
        with self.transaction(exclusive=False) as db:
            if db.execute(f"INSERT INTO leases (name, holder, until) VALUES (?, ?, {now} + ?) "
                          "ON CONFLICT DO NOTHING", (name, holder, float(seconds))).rowcount == 1:
                return True
            return db.execute(f"UPDATE leases SET holder = ?, until = {now} + ? WHERE name = ? "
                              f"AND (until < {now} OR holder = ?)",
                              (holder, float(seconds), name, holder)).rowcount == 1

    def drop_lease(self, name: str, holder: str) -> bool:
        """Give the lease `name` up at once, if `holder` holds it (a clean stop): another
        instance can take it at its next try. Returns whether it was held."""
        with self.transaction(exclusive=False) as db:
            return db.execute("DELETE FROM leases WHERE name = ? AND holder = ?",
                              (name, holder)).rowcount == 1

    def lease_holder(self, name: str) -> tuple[str, float] | None:
        """(holder, seconds left) of the lease `name`, or None when nobody holds it."""
        row = self.db.execute(f"SELECT holder, until - {self.sql.epoch_now} FROM leases "
                              f"WHERE name = ? AND until >= {self.sql.epoch_now}",
                              (name,)).fetchone()
        return (row[0], float(row[1])) if row else None

    # -- the shards of a build round -----------------------------------------------------------

    def open_build_round(self, round_at: str, shards: int) -> bool:
        """Queue a build round: `shards` shards (k of `shards`), each to be claimed by one
        instance, all building as of `round_at` (ISO time). Nothing is queued (False) while
        a round still has a shard not done, nor while the last round said nothing is due
        before a time after `round_at` and no schedule changed since (schedule_fingerprint).
        The rounds done before are forgotten. Returns whether a round was queued."""
        fingerprint = self.schedule_fingerprint()
        # row locks only, as everything here: the leader's event loop must not wait for a
        # build's commit. Two leaders at once (one stalled past its lease) may both open a
        # round; each shard is then built twice, which queues nothing twice.
        with self.transaction(exclusive=False) as db:
            last = db.execute("SELECT count(*) FILTER (WHERE done_at IS NULL), min(next_due), "
                              "count(next_due), count(*), min(fingerprint) FROM build_shards "
                              "WHERE round = (SELECT max(round) FROM build_shards)").fetchone()
            open_shards, next_due, with_next, count, last_fingerprint = last
            if count and open_shards:
                return False
            if count and last_fingerprint == fingerprint and (
                    with_next == 0 or next_due > round_at):
                return False  # nothing can be due yet
            db.execute("DELETE FROM build_shards")  # all done: only the last one was read
            db.executemany("INSERT INTO build_shards (round, shard, shards, fingerprint) "
                           "VALUES (?,?,?,?) ON CONFLICT DO NOTHING",
                           [(round_at, k, shards, fingerprint) for k in range(shards)])
        return True

    def claim_build_shard(self, holder: str, lease_s: float) -> tuple[str, int, int] | None:
        """Claim one shard of an open round that nobody holds (or whose holder's lease ran
        out: it died) for `lease_s` seconds: (round, k, shards), or None when there is none.
        On PostgreSQL the shards another instance is claiming right now are passed over."""
        now = self.sql.epoch_now
        with self.transaction(exclusive=False) as db:
            row = db.execute(
                "SELECT round, shard, shards FROM build_shards WHERE done_at IS NULL AND "
                f"(holder IS NULL OR until < {now}) ORDER BY round, shard LIMIT 1 "
                f"{self.sql.skip_locked}").fetchone()
            if row is None:
                return None
            db.execute(f"UPDATE build_shards SET holder = ?, until = {now} + ? "
                       "WHERE round = ? AND shard = ?", (holder, float(lease_s), row[0], row[1]))
        return row[0], int(row[1]), int(row[2])

    def renew_build_shard(self, round_at: str, shard: int, holder: str, lease_s: float) -> bool:
        """Extend `holder`'s lease on a shard it builds; False when it is not its any more."""
        with self.transaction(exclusive=False) as db:
            return db.execute(
                f"UPDATE build_shards SET until = {self.sql.epoch_now} + ? WHERE round = ? AND "
                "shard = ? AND holder = ? AND done_at IS NULL",
                (float(lease_s), round_at, shard, holder)).rowcount == 1

    def finish_build_shard(self, round_at: str, shard: int, *, done: bool = True,
                           next_due: str | None = None) -> None:
        """The shard was built (`done`; `next_due`, ISO time: its earliest slot after the
        round, None for none), or its build stopped early: handed back, for any instance to
        claim at once."""
        with self.transaction(exclusive=False) as db:
            if done:
                db.execute("UPDATE build_shards SET done_at = ?, until = NULL, next_due = ? "
                           "WHERE round = ? AND shard = ?", (utcnow(), next_due, round_at, shard))
            else:
                db.execute("UPDATE build_shards SET holder = NULL, until = NULL WHERE "
                           "round = ? AND shard = ? AND done_at IS NULL", (round_at, shard))

    def build_round_open(self) -> bool:
        """Whether a build round has a shard not done yet (claimed or not)."""
        return self.db.execute(
            "SELECT 1 FROM build_shards WHERE done_at IS NULL LIMIT 1").fetchone() is not None

    # -- the outbox's claims, while a long send runs ------------------------------------------

    def store_clock(self) -> datetime:
        """Now by the store's clock (UTC): the database server's on PostgreSQL, which every
        instance shares, so claims are judged alike whatever the machines' clocks say."""
        epoch = self.db.execute(f"SELECT {self.sql.epoch_now}").fetchone()[0]
        return datetime.fromtimestamp(float(epoch), timezone.utc)

    def renew_outbox_claims(self, owner: str, lease_s: float) -> int:
        """Move the lease of every outbox row `owner` holds to `lease_s` seconds from now
        (the store's clock, as claim_outbox). Returns the rows still held."""
        until = lease_end(self.store_clock(), lease_s)
        with self.transaction(exclusive=False) as db:
            return db.execute("UPDATE digests SET claimed_until = ? WHERE claimed_by = ?",
                              (until, owner)).rowcount

    # -- the web app's rate limits, shared by every instance ----------------------------------

    def rate_hit(self, key: str, limit: int, *, now: float, window_s: int, span_s: int) -> bool:
        """Count one request under `key`, unless the requests counted in the last `span_s`
        seconds (whole windows of `window_s` seconds, `now` in epoch seconds) reach `limit`
        already. Returns whether it was allowed (and counted)."""
        started = int(now // window_s * window_s)
        oldest = started - span_s + window_s
        with self.transaction(exclusive=False) as db:
            db.execute("DELETE FROM rate_windows WHERE key = ? AND started < ?", (key, oldest))
            hits = db.execute("SELECT coalesce(sum(hits), 0) FROM rate_windows WHERE key = ?",
                              (key,)).fetchone()[0]
            if hits >= limit:
                return False
            db.execute("INSERT INTO rate_windows (key, started, hits) VALUES (?, ?, 1) "
                       "ON CONFLICT (key, started) DO UPDATE SET hits = rate_windows.hits + 1",
                       (key, started))
        return True
