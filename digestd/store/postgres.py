"""The PostgreSQL store: one psycopg connection, migrated to the current schema on open; the
same methods as the SQLite store (base.BaseStore), over a connection that speaks like
sqlite3's (`?` placeholders, execute, executemany, insert_id).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq

from ..errors import StoreError
from .base import BaseStore
from .bodies import PackedMessage, pack_message
from .dialect import POSTGRESQL
from .postgres_schema import MIGRATIONS, SCHEMA_VERSION
from .records import QueuedDigest, utcnow

log = logging.getLogger("digestd.store")

# held while migrating, so two instances starting at once apply each step once
_MIGRATION_LOCK = 0x64696765  # "dige"
# held by every write transaction: one writer at a time, as SQLite's BEGIN IMMEDIATE, so the
# store's read-then-write steps (claiming outbox rows, the next subscriber id) stay atomic
_WRITE_LOCK = 0x73746f72  # "stor"

# The tables a day's build grows: on a new store they start empty, and the planner, going by
# an empty table's statistics, checks each sent mark's foreign key and claims outbox rows by
# scanning the whole table (a plan a connection keeps). After this many digests queued on a
# connection, the store looks whether one of them has changed by more rows than its
# statistics counted (and at least GROWN_ROWS) and ANALYZEs it: autovacuum does the same but
# only after its naptime (a minute), and with a scale factor of 0.1 instead of 1.
GROWN_ROWS = 1000
_GROWING = ("digests", "digest_bodies", "sent", "whys")


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """sqlite3's `?` placeholders as psycopg's `%s` (a literal % doubled). The store's SQL
    has no `?` inside its string literals."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Connection:
    """A psycopg connection in autocommit mode (a statement outside a transaction commits
    alone), with the calls the store's classes make of a sqlite3 connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, args: Sequence[Any] = ()) -> psycopg.Cursor:
        cur = self.conn.cursor()
        if args:
            cur.execute(_placeholders(sql), tuple(args))
        else:
            cur.execute(sql)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        """One statement per row (pipelined); `rowcount` is the rows changed by all."""
        cur = self.conn.cursor()
        rows = [tuple(r) for r in rows]
        if rows:
            cur.executemany(_placeholders(sql), rows)
        return cur

    def insert_id(self, sql: str, args: Sequence[Any] = (), *, key: str = "id",
                  or_none: bool = False) -> int | None:
        """INSERT one row; its `key` (RETURNING). With `or_none`, None when a constraint
        refused the row (a UNIQUE key that exists, a missing foreign key): the INSERT runs in
        a savepoint, so the transaction it is part of goes on."""
        sql = f"{sql} RETURNING {key}"
        if not or_none:
            return self.execute(sql, args).fetchone()[0]
        try:
            with self.conn.transaction():
                return self.execute(sql, args).fetchone()[0]
        except psycopg.errors.IntegrityError:
            return None

    def close(self) -> None:
        self.conn.close()


class PostgresStore(BaseStore):
    """A connection to a PostgreSQL database, migrated to the current schema on open.

    `target` is a libpq URL (postgresql://user@host/db?sslmode=require ...) or a StoreConfig
    with `url` and `password` set (digestd/config reads the password from its file, the
    environment or the credential). libpq's own environment variables (PGHOST, PGPASSWORD,
    PGSSLMODE, ...) and ~/.pgpass fill in what the URL leaves out. Raises StoreError when
    the server cannot be reached or refuses the login, naming the URL (never the password).
    """

    sql = POSTGRESQL

    def __init__(self, target: Any, *, timeout: float = 30.0) -> None:
        url = target if isinstance(target, str) else target.url
        password = None if isinstance(target, str) else (target.password or None)
        self.target = target
        from . import without_password

        self.path = without_password(url)
        # the sent journals (deliver/journal.py) are files on this machine: beside the SQLite path
        # of the config (its folder is the state directory), else in the temporary folder
        self.side_files = getattr(target, "path", "") or os.path.join(
            tempfile.gettempdir(), "digestd-" + hashlib.sha256(url.encode()).hexdigest()[:16])
        extra = {"password": password} if password else {}
        try:
            conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)),
                                   application_name="digestd", **extra)
        except psycopg.Error as e:
            raise StoreError(f"cannot reach the PostgreSQL store {self.path}: "
                             f"{str(e).strip()}") from None
        self.db = _Connection(conn)
        self._queued = 0  # digests queued on this connection since statistics were looked at
        try:
            # a write waiting for a row lock gives up after `timeout`, as SQLite's busy timeout
            self.db.execute(f"SET lock_timeout = {int(timeout * 1000)}")
            self.migrate()
        except BaseException:
            conn.close()
            raise

    @contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[_Connection]:
        """BEGIN ... COMMIT, rolled back on any exception; one at a time over all the
        store's connections (a transaction-level advisory lock, waited for at most the
        store's timeout), as SQLite's BEGIN IMMEDIATE: what a transaction read stays true
        until it commits.

        With `exclusive` False, no such lock: for the writes that row locks make safe
        (claims with SKIP LOCKED, sent marks, leases), so a sender never waits for a build's
        commit of a thousand digests.

        Inside an open transaction it joins it: a caller can group many small writes
        (a batch of digests) into one commit, and they commit or roll back together.
        """
        if self.db.in_transaction:
            yield self.db
            return
        with self.db.conn.transaction():
            if exclusive:
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK,))
            yield self.db
        if self._queued >= GROWN_ROWS:
            self._queued = 0
            self.refresh_statistics()

    def refresh_statistics(self) -> list[str]:
        """ANALYZE each of the tables a build grows whose rows changed since its last
        statistics by more than it then held (and at least GROWN_ROWS): what autovacuum's
        analyze would do, now rather than within a minute. Returns the tables analyzed.

        ANALYZE invalidates the plans that read the table, in every connection (PostgreSQL
        manual, "ANALYZE" and 59.1 on cached plans): the foreign-key checks of `sent` and
        `digest_bodies` and the outbox claims plan again with the table's real size. A
        failure (another ANALYZE holding the table past the lock timeout, a table this role
        does not own) is logged and left to autovacuum."""
        try:
            names = [r[0] for r in self.db.execute(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.schemaname = current_schema() AND s.relname = ANY(?) "
                "AND s.n_mod_since_analyze > greatest(?, c.reltuples)",
                (list(_GROWING), GROWN_ROWS)).fetchall()]
            for name in names:
                self.db.execute(f"ANALYZE {name}")
                log.debug("event=store_analyzed table=%s", name)
            return names
        except psycopg.Error as e:
            log.warning("event=store_analyze_failed error=%s", str(e).strip().splitlines()[0])
            return []

    def queue_digest(self, subscriber_id: int, period: str, *, recipient: str, message_id: str,
                     message: bytes | PackedMessage, paper_pks: Sequence[int],
                     whys: Sequence[str] = (), why_ids: Mapping[str, int] | None = None,
                     checked: int | None = None, kinds: Sequence[int] = (),
                     deliver: bool = True, now: str | None = None,
                     slot_at: str | None = None, checked_through: str | None = None
                     ) -> int | None:
        """DigestStore.queue_digest as a batch of one (queue_digests): one statement, one
        round trip to the server. A subscriber deleted before the statement gets no digest
        (None); one deleted by another transaction during it fails the batch, which the next
        build makes again."""
        return self.queue_digests([QueuedDigest(
            subscriber_id, period, recipient, message_id, message, paper_pks, whys=whys,
            kinds=kinds, checked=checked, deliver=deliver, slot_at=slot_at)],
            why_ids=why_ids, now=now, checked_through=checked_through)[0]

    # DigestStore.queue_digests in one statement per this many digests
    QUEUE_BATCH = 250

    # the digests of a batch (v), their rows (d, only for subscribers that exist and have no
    # digest for the period), bodies (b), sent marks (s) and the subscribers' marks (m: where
    # the digest has a slot, mark_slot's rule, the larger of the old and the new; the
    # subscriber's own rows are one row each, so the rule is written per row here);
    # %b: sent in PostgreSQL's binary format (the bodies as they are, not hex-escaped)
    _QUEUE_MANY = (
        "WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::text[], %s::integer[], %s::text[], "
        "%s::text[], %s::text[], %s::text[], %s::text[], %s::integer[], %b::bytea[], "
        "%s::integer[], %s::boolean[], %s::text[]) AS v(sid, period, papers, message_id, "
        "recipient, status, sent_at, due, checked, body, packing, deliver, slot_at)), "
        "d AS (INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
        "recipient, message, status, sent_at, next_attempt_at, checked) "
        "SELECT v.sid, v.period, %s, v.papers, v.message_id, v.recipient, ''::bytea, "
        "v.status, v.sent_at, v.due, v.checked FROM v "
        "WHERE EXISTS (SELECT 1 FROM subscribers x WHERE x.id = v.sid) "
        "ON CONFLICT DO NOTHING RETURNING id, subscriber_id, period), "
        "b AS (INSERT INTO digest_bodies (digest_id, message, packing) "
        "SELECT d.id, v.body, v.packing FROM d JOIN v ON v.sid = d.subscriber_id "
        "AND v.period = d.period WHERE v.deliver), "
        "s AS (INSERT INTO sent (subscriber_id, paper_pk, digest_id, position, why_id, kind) "
        "SELECT d.subscriber_id, u.pk, d.id, u.position, u.why_id, u.kind FROM d JOIN "
        "unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bigint[], %s::integer[], "
        "%s::integer[]) AS u(sid, period, pk, why_id, kind, position) "
        "ON u.sid = d.subscriber_id AND u.period = d.period ON CONFLICT DO NOTHING), "
        "m AS (UPDATE subscribers x SET last_digest_at = %s, "
        "last_slot_at = CASE WHEN v.slot_at IS NULL THEN x.last_slot_at "
        "ELSE greatest(coalesce(x.last_slot_at, ''), v.slot_at) END, "
        "last_checked_at = CASE WHEN v.slot_at IS NULL THEN x.last_checked_at "
        "ELSE nullif(greatest(coalesce(x.last_checked_at, ''), coalesce(%s, '')), '') END "
        "FROM d JOIN v ON v.sid = d.subscriber_id AND v.period = d.period "
        "WHERE x.id = d.subscriber_id) "
        "SELECT subscriber_id, period, id FROM d")

    def queue_digests(self, digests: Sequence[QueuedDigest], *,
                      why_ids: Mapping[str, int] | None = None, now: str | None = None,
                      checked_through: str | None = None) -> list[int | None]:
        """DigestStore.queue_digests with one statement per QUEUE_BATCH digests (arrays
        unnested into data-modifying CTEs, PostgreSQL manual 7.8.4) instead of one per digest;
        the same rows and marks, each only where the digest row went in (ON CONFLICT DO
        NOTHING refuses a second digest for a period). A subscriber's second digest for one
        period in the same batch goes into the next statement, so within a statement
        (subscriber, period) names one."""
        now = now or utcnow()
        digests = list(digests)
        if why_ids is None:
            texts = [w for d in digests for w in d.whys]
            why_ids = self.why_ids(texts) if texts else {}
        out: dict[int, int | None] = {}
        with self.transaction() as db:
            todo = list(enumerate(digests))
            while todo:
                batch, later, keys = [], [], set()
                for i, d in todo:
                    key = (d.subscriber_id, d.period)
                    if key in keys or len(batch) >= self.QUEUE_BATCH:
                        later.append((i, d))
                    else:
                        keys.add(key)
                        batch.append((i, d))
                found = {(sid, period): did for sid, period, did in db.conn.execute(
                    self._QUEUE_MANY, self._queue_args([d for _, d in batch], why_ids, now,
                                                       checked_through)).fetchall()}
                for i, d in batch:
                    out[i] = found.get((d.subscriber_id, d.period))
                self._queued += len(batch)
                todo = later
        return [out[i] for i in range(len(digests))]

    @staticmethod
    def _queue_args(batch: Sequence[QueuedDigest], why_ids: Mapping[str, int], now: str,
                    checked_through: str | None) -> tuple:
        cols: list[list] = [[] for _ in range(13)]
        marks: list[list] = [[] for _ in range(6)]
        for d in batch:
            body = None
            if d.deliver:
                body = d.message if isinstance(d.message, PackedMessage) \
                    else pack_message(d.message)
            status, sent_at, due = ("queued", None, now) if d.deliver else ("sent", now, None)
            for col, value in zip(cols, (
                    d.subscriber_id, d.period, len(d.paper_pks), d.message_id, d.recipient,
                    status, sent_at, due, d.checked, body.data if body else b"",
                    body.packing if body else 0, body is not None, d.slot_at)):
                col.append(value)
            for i, pk in enumerate(d.paper_pks):
                for col, value in zip(marks, (
                        d.subscriber_id, d.period, pk,
                        why_ids[d.whys[i]] if i < len(d.whys) else None,
                        d.kinds[i] if i < len(d.kinds) else 0, i)):
                    col.append(value)
        return (*cols, now, *marks, now, checked_through)

    def why_ids(self, texts: Iterable[str]) -> dict[str, int]:
        """DigestStore.why_ids in two statements and an array each, instead of an INSERT per
        text and a SELECT per 500: look the texts up, add the ones not there (ON CONFLICT DO
        NOTHING: a text another instance adds at the same time is waited for, then read)."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return {}
        find = "SELECT text, id FROM whys WHERE text = ANY(?::text[])"
        with self.transaction() as db:
            out = dict(db.execute(find, (unique,)).fetchall())
            missing = [t for t in unique if t not in out]
            if missing:
                db.execute("INSERT INTO whys (text) SELECT unnest(?::text[]) "
                           "ON CONFLICT DO NOTHING", (missing,))
                out.update(db.execute(find, (missing,)).fetchall())
        return out

    def mark_sent_many(self, marks: Iterable[tuple[int, str]]) -> int:
        """DigestStore.mark_sent_many in one statement (UPDATE ... FROM unnest of arrays)
        instead of one per digest: a sender's batch of 250s costs the server one
        statement's overhead. A digest given twice is marked once. Outside a transaction
        the statement commits alone (autocommit: atomic all the same), one round trip
        instead of three (BEGIN, UPDATE, COMMIT): a sender commits its 250s this way
        about once per 1.5 digests."""
        ids, ats = [], []
        for did, at in marks:
            ids.append(did)
            ats.append(at)
        if not ids:
            return 0
        return self.db.execute(
            "UPDATE digests d SET status = 'sent', sent_at = u.at, "
            "attempts = d.attempts + 1, last_error = NULL, claimed_by = NULL, "
            "claimed_until = NULL FROM unnest(?::bigint[], ?::text[]) AS u(id, at) "
            "WHERE d.id = u.id AND d.status = 'queued'", (ids, ats)).rowcount

    def schema_version(self) -> int:
        if self.db.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
            return 0
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def migrate(self) -> int:
        """Apply the steps not yet applied, each in its own transaction. Returns how many."""
        applied = 0
        while True:
            with self.transaction() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
                version = self.schema_version()
                if version > SCHEMA_VERSION:
                    raise StoreError(f"store {self.path} has schema version {version}, newer "
                                     f"than this digestd ({SCHEMA_VERSION}); upgrade digestd")
                if version == SCHEMA_VERSION:
                    return applied
                name, sql = MIGRATIONS[version]
                if version == 0:
                    db.execute("CREATE TABLE IF NOT EXISTS schema_version "
                               "(version integer NOT NULL)")
                    db.execute("DELETE FROM schema_version")
                    db.execute("INSERT INTO schema_version (version) VALUES (0)")
                db.execute(sql)
                db.execute("UPDATE schema_version SET version = ?", (version + 1,))
                log.info("event=store_migrated step=%s version=%d", name, version + 1)
                applied += 1


def probe(target: Any, *, timeout: float = 10.0) -> tuple[bool, str]:
    """Whether the PostgreSQL store `target` (as for PostgresStore) can be reached, without
    changing it: (True, its schema version in words) or (False, why not, naming the URL)."""
    url = target if isinstance(target, str) else target.url
    password = None if isinstance(target, str) else (target.password or None)
    from . import without_password

    where = without_password(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)),
                             application_name="digestd",
                             **({"password": password} if password else {})) as conn:
            found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
            version = conn.execute("SELECT version FROM schema_version").fetchone()[0] \
                if found[0] else 0
            server = conn.info.server_version
    except psycopg.Error as e:
        return False, f"cannot reach the PostgreSQL store {where}: {str(e).strip()}"
    state = (f"schema version {version} of {SCHEMA_VERSION}" if version
             else "empty: digestd makes the tables when it first opens it")
    return True, (f"PostgreSQL {server // 10000}.{server % 10000} at {where} reachable, "
                  f"{state}")
