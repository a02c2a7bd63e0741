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
from .records import utcnow

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
        """DigestStore.queue_digest in one statement, one round trip to the server instead of
        six (data-modifying CTEs, PostgreSQL manual 7.8.4): the digest row (ON CONFLICT DO
        NOTHING: a second digest for the period is refused, as the savepoint around the
        INSERT used to), its body, its sent marks (unnest of arrays) and the subscriber's
        marks, each only when the digest row went in. A subscriber deleted before the
        statement gets no digest (None); one deleted by another transaction during it fails
        the batch, which the next build makes again."""
        now = now or utcnow()
        if whys and why_ids is None:
            why_ids = self.why_ids(whys)
        status, sent_at, due = ("queued", None, now) if deliver else ("sent", now, None)
        n = len(paper_pks)
        why_of = [why_ids[whys[i]] if why_ids is not None and i < len(whys) else None
                  for i in range(n)]
        kind_of = [kinds[i] if i < len(kinds) else 0 for i in range(n)]
        body = None
        if deliver:
            body = message if isinstance(message, PackedMessage) else pack_message(message)
        if slot_at is None:
            marks, mark_args = "last_digest_at = ?", (now,)
        else:
            marks, mark_args = (f"last_digest_at = ?, {self._mark_slot()}",
                                (now, slot_at, checked_through))
        sql = (
            "WITH d AS (INSERT INTO digests (subscriber_id, period, created_at, papers, "
            "message_id, recipient, message, status, sent_at, next_attempt_at, checked) "
            "SELECT ?::bigint, ?, ?, ?::integer, ?, ?, ?::bytea, ?, ?, ?, ?::integer "
            "WHERE EXISTS (SELECT 1 FROM subscribers WHERE id = ?::bigint) "
            "ON CONFLICT DO NOTHING RETURNING id), "
            "b AS (INSERT INTO digest_bodies (digest_id, message, packing) "
            "SELECT id, ?::bytea, ?::integer FROM d WHERE ?::boolean), "
            "s AS (INSERT INTO sent (subscriber_id, paper_pk, digest_id, position, why_id, kind) "
            "SELECT ?::bigint, u.pk, d.id, u.position - 1, u.why_id, u.kind FROM d, "
            "unnest(?::bigint[], ?::bigint[], ?::integer[]) WITH ORDINALITY "
            "AS u(pk, why_id, kind, position) ON CONFLICT DO NOTHING), "
            f"m AS (UPDATE subscribers SET {marks} WHERE id = ? AND EXISTS (SELECT 1 FROM d)) "
            "SELECT id FROM d")
        args = (subscriber_id, period, now, n, message_id, recipient, b"", status, sent_at,
                due, checked, subscriber_id,
                body.data if body else b"", body.packing if body else 0, body is not None,
                subscriber_id, list(paper_pks), why_of, kind_of,
                *mark_args, subscriber_id)
        self._queued += 1
        with self.transaction() as db:
            row = db.execute(sql, args).fetchone()
        return row[0] if row else None

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
        statement's overhead. A digest given twice is marked once."""
        ids, ats = [], []
        for did, at in marks:
            ids.append(did)
            ats.append(at)
        if not ids:
            return 0
        with self.transaction(exclusive=False) as db:
            return db.execute(
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
