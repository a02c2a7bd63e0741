"""The SQLite store: papers and their aliases, source state, subscribers, rules, the outbox.

This is the only module that speaks SQL. Migrations are an ordered list of named
steps; the schema version is the number of steps applied.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .errors import NotFound, StoreError
from .models import Paper, Subscriber
from .text import title_key

MIGRATIONS: list[tuple[str, str]] = [
    ("papers", """
        CREATE TABLE papers (
            pk         INTEGER PRIMARY KEY,
            id         TEXT NOT NULL UNIQUE,     -- canonical id, e.g. arxiv:2401.01234
            title      TEXT NOT NULL,
            abstract   TEXT NOT NULL DEFAULT '',
            authors    TEXT NOT NULL DEFAULT '[]',  -- JSON list
            categories TEXT NOT NULL DEFAULT '[]',  -- JSON list
            source     TEXT NOT NULL DEFAULT '',
            url        TEXT NOT NULL DEFAULT '',
            pdf_url    TEXT NOT NULL DEFAULT '',
            published  TEXT NOT NULL DEFAULT '',
            upvotes    INTEGER,
            version    INTEGER,
            first_seen TEXT NOT NULL
        );
        CREATE INDEX papers_first_seen ON papers(first_seen);
        -- every id a paper is known by (canonical id included), so two sources meet in one row
        CREATE TABLE paper_ids (
            alias    TEXT PRIMARY KEY,
            paper_pk INTEGER NOT NULL REFERENCES papers(pk) ON DELETE CASCADE
        ) WITHOUT ROWID;
        CREATE INDEX paper_ids_paper ON paper_ids(paper_pk);
    """),
    ("source_state", """
        CREATE TABLE source_state (
            name               TEXT PRIMARY KEY,
            etag               TEXT,
            last_modified      TEXT,
            cursor             TEXT,
            last_poll          TEXT,
            last_success       TEXT,
            last_error         TEXT,
            last_error_at      TEXT,
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            errors_total       INTEGER NOT NULL DEFAULT 0,
            polls              INTEGER NOT NULL DEFAULT 0,
            papers_seen        INTEGER NOT NULL DEFAULT 0
        );
    """),
    ("subscribers", """
        CREATE TABLE subscribers (
            id             INTEGER PRIMARY KEY,
            email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name           TEXT NOT NULL DEFAULT '',
            status         TEXT NOT NULL DEFAULT 'active'
                           CHECK (status IN ('pending','active','paused','unsubscribed','bouncing')),
            timezone       TEXT NOT NULL DEFAULT 'UTC',
            send_at        TEXT NOT NULL DEFAULT '07:00',
            frequency      TEXT NOT NULL DEFAULT 'daily',
            weekday        INTEGER NOT NULL DEFAULT 0,
            send_empty     INTEGER NOT NULL DEFAULT 0,
            created_at     TEXT NOT NULL,
            confirmed_at   TEXT,
            last_digest_at TEXT,
            bounces        INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX subscribers_status ON subscribers(status);
        CREATE TABLE rules (
            id            INTEGER PRIMARY KEY,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            position      INTEGER NOT NULL,
            text          TEXT NOT NULL
        );
        CREATE INDEX rules_subscriber ON rules(subscriber_id, position);
    """),
    ("outbox", """
        -- one row per subscriber and period: the UNIQUE constraint is what makes a digest
        -- impossible to build twice; status moves to 'sent' only after the server said 250
        CREATE TABLE digests (
            id              INTEGER PRIMARY KEY,
            subscriber_id   INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            period          TEXT NOT NULL,
            created_at      TEXT NOT NULL,
            papers          INTEGER NOT NULL,
            message_id      TEXT NOT NULL,
            recipient       TEXT NOT NULL,
            message         BLOB NOT NULL,
            status          TEXT NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued','sent','failed')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT,
            last_error      TEXT,
            sent_at         TEXT,
            UNIQUE (subscriber_id, period)
        );
        CREATE INDEX digests_pending ON digests(status, next_attempt_at);
        -- a paper goes to a subscriber at most once, ever
        CREATE TABLE sent (
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            paper_pk      INTEGER NOT NULL REFERENCES papers(pk) ON DELETE CASCADE,
            digest_id     INTEGER NOT NULL REFERENCES digests(id) ON DELETE CASCADE,
            PRIMARY KEY (subscriber_id, paper_pk)
        ) WITHOUT ROWID;
        CREATE INDEX sent_paper ON sent(paper_pk);
    """),
]

SCHEMA_VERSION = len(MIGRATIONS)


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SourceState:
    name: str
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    last_poll: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    consecutive_errors: int = 0
    errors_total: int = 0
    polls: int = 0
    papers_seen: int = 0


@dataclass(frozen=True)
class OutboxRow:
    id: int
    subscriber_id: int
    period: str
    recipient: str
    message_id: str
    message: bytes
    status: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    papers: int


class Store:
    """A connection to the SQLite file, migrated to the current schema on open."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                      check_same_thread=False)
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open store {self.path}: {e}") from None

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        """Apply the steps not yet applied, each in its own transaction. Returns how many."""
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {version}, newer than this "
                             f"digestd ({SCHEMA_VERSION}); upgrade digestd")
        for n, (_name, sql) in enumerate(MIGRATIONS[version:], start=version + 1):
            # one script per step, inside one transaction: a step applies whole or not at all
            try:
                self.db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n;PRAGMA user_version = {n};"
                                      "\nCOMMIT;")
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
        return SCHEMA_VERSION - version

    # -- papers --------------------------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper], *, now: str | None = None) -> list[Paper]:
        """Store papers never seen under any of their ids; return only those, in order.

        A paper known under any alias is not new: its new aliases are recorded, and its
        upvotes and version are refreshed, so the next source meets it in the same row.
        """
        now = now or utcnow()
        new: list[Paper] = []
        with self.transaction() as db:
            for paper in papers:
                ids = list(dict.fromkeys([*paper.ids, title_key(paper.title)]))
                marks = ",".join("?" * len(ids))
                row = db.execute(f"SELECT paper_pk FROM paper_ids WHERE alias IN ({marks}) "
                                 "LIMIT 1", ids).fetchone()
                if row:
                    pk = row[0]
                    if paper.upvotes is not None or paper.version is not None:
                        db.execute("UPDATE papers SET upvotes = coalesce(?, upvotes), "
                                   "version = max(coalesce(version, 0), coalesce(?, 0)) "
                                   "WHERE pk = ?", (paper.upvotes, paper.version, pk))
                else:
                    pk = db.execute(
                        "INSERT INTO papers (id, title, abstract, authors, categories, source, "
                        "url, pdf_url, published, upvotes, version, first_seen) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (paper.id, paper.title, paper.abstract, json.dumps(paper.authors),
                         json.dumps(paper.categories), paper.source, paper.url, paper.pdf_url,
                         paper.published, paper.upvotes, paper.version, now)).lastrowid
                    new.append(paper)
                db.executemany("INSERT OR IGNORE INTO paper_ids (alias, paper_pk) VALUES (?, ?)",
                               [(alias, pk) for alias in ids])
        return new

    _PAPER_COLUMNS = ("p.pk, p.id, p.title, p.abstract, p.authors, p.categories, p.source, "
                      "p.url, p.pdf_url, p.published, p.upvotes, p.version")

    def _paper(self, row: Sequence, aliases: Sequence[str] = ()) -> Paper:
        return Paper(id=row[1], title=row[2], abstract=row[3],
                     authors=tuple(json.loads(row[4])), categories=tuple(json.loads(row[5])),
                     source=row[6], url=row[7], pdf_url=row[8], published=row[9],
                     upvotes=row[10], version=row[11],
                     aliases=tuple(a for a in aliases if a != row[1]))

    def papers_since(self, since: str, *, with_aliases: bool = False,
                     limit: int | None = None) -> list[Paper]:
        """Papers first seen at or after `since` (ISO timestamp), oldest first."""
        sql = (f"SELECT {self._PAPER_COLUMNS} FROM papers p WHERE p.first_seen >= ? "
               "ORDER BY p.first_seen, p.pk")
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = self.db.execute(sql, (since,)).fetchall()
        if not with_aliases:
            return [self._paper(r) for r in rows]
        aliases: dict[int, list[str]] = {}
        for alias, pk in self.db.execute(
                "SELECT i.alias, i.paper_pk FROM paper_ids i JOIN papers p ON p.pk = i.paper_pk "
                "WHERE p.first_seen >= ? ORDER BY i.alias", (since,)):
            aliases.setdefault(pk, []).append(alias)
        return [self._paper(r, aliases.get(r[0], ())) for r in rows]

    def first_seen_since(self, since: str) -> list[str]:
        """The first-seen times of `papers_since(since)`, in the same order."""
        return [r[0] for r in self.db.execute(
            "SELECT first_seen FROM papers WHERE first_seen >= ? ORDER BY first_seen, pk",
            (since,))]

    def paper_pks(self, ids: Iterable[str]) -> dict[str, int]:
        """Canonical id -> row key, for the given canonical ids."""
        ids = list(ids)
        out: dict[str, int] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            out.update(self.db.execute(f"SELECT id, pk FROM papers WHERE id IN ({marks})", chunk))
        return out

    def count_papers(self) -> int:
        return self.db.execute("SELECT count(*) FROM papers").fetchone()[0]

    # -- sources -------------------------------------------------------------------------------

    def source_state(self, name: str) -> SourceState:
        row = self.db.execute("SELECT * FROM source_state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return SourceState(name=name)
        return SourceState(*row)

    def source_states(self) -> list[SourceState]:
        return [SourceState(*r) for r in
                self.db.execute("SELECT * FROM source_state ORDER BY name")]

    def record_poll(self, name: str, *, ok: bool, new: int = 0, error: str | None = None,
                    etag: str | None = None, last_modified: str | None = None,
                    cursor: str | None = None, now: str | None = None) -> None:
        """Remember the outcome of one poll: conditional-GET validators on success, the
        error and the consecutive-error count on failure."""
        now = now or utcnow()
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO source_state (name) VALUES (?)", (name,))
            if ok:
                db.execute("UPDATE source_state SET etag = ?, last_modified = ?, "
                           "cursor = coalesce(?, cursor), last_poll = ?, last_success = ?, "
                           "consecutive_errors = 0, polls = polls + 1, "
                           "papers_seen = papers_seen + ? WHERE name = ?",
                           (etag, last_modified, cursor, now, now, new, name))
            else:
                db.execute("UPDATE source_state SET last_poll = ?, last_error = ?, "
                           "last_error_at = ?, consecutive_errors = consecutive_errors + 1, "
                           "errors_total = errors_total + 1, polls = polls + 1 WHERE name = ?",
                           (now, error, now, name))

    # -- subscribers ---------------------------------------------------------------------------

    _SUB_COLUMNS = ("id, email, status, name, timezone, send_at, frequency, weekday, send_empty, "
                    "created_at, last_digest_at, bounces")

    def _subscriber(self, row: Sequence, rules: Sequence[str]) -> Subscriber:
        (id_, email, status, name, tz, send_at, frequency, weekday, send_empty, created_at,
         last_digest_at, bounces) = row
        return Subscriber(id=id_, email=email, status=status, rules=tuple(rules), name=name,
                          timezone=tz, send_at=send_at, frequency=frequency, weekday=weekday,
                          send_empty=bool(send_empty), created_at=created_at,
                          last_digest_at=last_digest_at, bounces=bounces)

    def _rules_of(self, ids: Sequence[int] | None = None) -> dict[int, list[str]]:
        rules: dict[int, list[str]] = {}
        sql = "SELECT subscriber_id, text FROM rules"
        if ids is not None:
            sql += f" WHERE subscriber_id IN ({','.join(str(int(i)) for i in ids) or 'NULL'})"
        for sid, text in self.db.execute(sql + " ORDER BY subscriber_id, position"):
            rules.setdefault(sid, []).append(text)
        return rules

    def add_subscriber(self, email: str, rules: Sequence[str] = (), *, status: str = "active",
                       name: str = "", timezone: str = "UTC", send_at: str = "07:00",
                       frequency: str = "daily", weekday: int = 0, send_empty: bool = False,
                       now: str | None = None) -> Subscriber:
        now = now or utcnow()
        with self.transaction() as db:
            try:
                sid = db.execute(
                    "INSERT INTO subscribers (email, status, name, timezone, send_at, frequency, "
                    "weekday, send_empty, created_at, confirmed_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (email, status, name, timezone, send_at, frequency, weekday, int(send_empty),
                     now, now if status == "active" else None)).lastrowid
            except sqlite3.IntegrityError:
                raise StoreError(f"subscriber {email} exists already") from None
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(sid, i, r) for i, r in enumerate(rules)])
        return self.get_subscriber(email)

    def get_subscriber(self, email_or_id: str | int) -> Subscriber:
        column = "id" if isinstance(email_or_id, int) else "email"
        row = self.db.execute(f"SELECT {self._SUB_COLUMNS} FROM subscribers WHERE {column} = ?",
                              (email_or_id,)).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {email_or_id}")
        return self._subscriber(row, self._rules_of([row[0]]).get(row[0], []))

    def subscribers(self, status: str | None = None) -> list[Subscriber]:
        sql = f"SELECT {self._SUB_COLUMNS} FROM subscribers"
        args: tuple = ()
        if status:
            sql, args = sql + " WHERE status = ?", (status,)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        rules = self._rules_of()
        return [self._subscriber(r, rules.get(r[0], [])) for r in rows]

    def remove_subscriber(self, email: str) -> None:
        with self.transaction() as db:
            if db.execute("DELETE FROM subscribers WHERE email = ?", (email,)).rowcount == 0:
                raise NotFound(f"no subscriber {email}")

    def set_status(self, subscriber_id: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET status = ? WHERE id = ?", (status, subscriber_id))

    def set_rules(self, subscriber_id: int, rules: Sequence[str]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM rules WHERE subscriber_id = ?", (subscriber_id,))
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(subscriber_id, i, r) for i, r in enumerate(rules)])

    def active_rules(self) -> dict[int, list[str]]:
        """Subscriber id -> rules, for every active subscriber with at least one rule."""
        rows = self.db.execute(
            "SELECT r.subscriber_id, r.text FROM rules r JOIN subscribers s "
            "ON s.id = r.subscriber_id WHERE s.status = 'active' "
            "ORDER BY r.subscriber_id, r.position")
        out: dict[int, list[str]] = {}
        for sid, text in rows:
            out.setdefault(sid, []).append(text)
        return out

    # -- the outbox ----------------------------------------------------------------------------

    def sent_among(self, paper_pks: Iterable[int]) -> dict[int, set[int]]:
        """Subscriber id -> those of the given papers already sent (or queued) to them."""
        pks = list(paper_pks)
        out: dict[int, set[int]] = {}
        for i in range(0, len(pks), 500):
            chunk = pks[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for sid, pk in self.db.execute(
                    f"SELECT subscriber_id, paper_pk FROM sent WHERE paper_pk IN ({marks})", chunk):
                out.setdefault(sid, set()).add(pk)
        return out

    def queue_digest(self, subscriber_id: int, period: str, *, recipient: str, message_id: str,
                     message: bytes, paper_pks: Sequence[int], now: str | None = None
                     ) -> int | None:
        """Put one digest in the outbox and mark its papers as sent, in one transaction.

        Returns the digest id, or None when this subscriber already has a digest for
        this period (so a rebuild after a crash cannot queue a second one).
        """
        now = now or utcnow()
        with self.transaction() as db:
            try:
                did = db.execute(
                    "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                    "recipient, message, next_attempt_at) VALUES (?,?,?,?,?,?,?,?)",
                    (subscriber_id, period, now, len(paper_pks), message_id, recipient,
                     message, now)).lastrowid
            except sqlite3.IntegrityError:
                return None
            db.executemany("INSERT OR IGNORE INTO sent (subscriber_id, paper_pk, digest_id) "
                           "VALUES (?,?,?)", [(subscriber_id, pk, did) for pk in paper_pks])
            db.execute("UPDATE subscribers SET last_digest_at = ? WHERE id = ?",
                       (now, subscriber_id))
        return did

    def has_digest(self, subscriber_id: int, period: str) -> bool:
        return self.db.execute("SELECT 1 FROM digests WHERE subscriber_id = ? AND period = ?",
                               (subscriber_id, period)).fetchone() is not None

    _OUTBOX_COLUMNS = ("id, subscriber_id, period, recipient, message_id, message, status, "
                       "attempts, next_attempt_at, last_error, papers")

    def outbox(self, *, due_before: str | None = None, status: str = "queued",
               limit: int | None = None) -> list[OutboxRow]:
        """Digests waiting to be sent (`due_before`: only those whose next attempt is due)."""
        sql = f"SELECT {self._OUTBOX_COLUMNS} FROM digests WHERE status = ?"
        args: list = [status]
        if due_before:
            sql += " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
            args.append(due_before)
        sql += " ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [OutboxRow(*r) for r in self.db.execute(sql, args)]

    def mark_sent(self, digest_id: int, *, now: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                       "last_error = NULL WHERE id = ?", (now or utcnow(), digest_id))

    def mark_deferred(self, digest_id: int, error: str, next_attempt_at: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET attempts = attempts + 1, last_error = ?, "
                       "next_attempt_at = ? WHERE id = ?", (error, next_attempt_at, digest_id))

    def mark_failed(self, digest_id: int, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ? WHERE id = ?", (error, digest_id))

    def digest_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, count(*) FROM digests GROUP BY status"))
