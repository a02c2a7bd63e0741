"""The SQLite store: papers and their aliases, source state, subscribers, rules, the outbox.

This is the only module that speaks SQL. Migrations are an ordered list of named
steps; the schema version is the number of steps applied.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from .errors import NotFound, StoreError, StoreFolderReadOnly, StoreMissing, StoreWriteError
from .identity import conflicting, strong_kind, title_key
from .models import Paper, Subscriber

log = logging.getLogger("digestd.store")

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
    ("web", """
        -- double opt-in: the nonce is signed into the confirmation link and cleared when it is
        -- used, so a replayed link changes nothing; web_mail_at throttles mails to one address
        ALTER TABLE subscribers ADD COLUMN confirm_nonce TEXT;
        ALTER TABLE subscribers ADD COLUMN web_mail_at TEXT;
        -- rate-limit bookkeeping for the subscribe form; keys are keyed hashes, never the
        -- address or the IP itself
        CREATE TABLE web_events (
            kind TEXT NOT NULL,   -- 'ip' or 'address'
            key  TEXT NOT NULL,
            at   REAL NOT NULL    -- unix time
        );
        CREATE INDEX web_events_key ON web_events(kind, key, at);
        -- links are signed over subscriber ids, so an id must never be given out twice: a new
        -- subscriber who got a deleted one's id would be controlled by the old links
        CREATE TABLE id_high_water (
            name  TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        );
        CREATE TRIGGER subscribers_high_water AFTER DELETE ON subscribers BEGIN
            INSERT INTO id_high_water (name, value) VALUES ('subscribers', old.id)
            ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value);
        END;
    """),
    ("schedule", """
        -- the scheduled send time (UTC) of the last slot handled: sent, empty, or merged into
        -- the next one because it was too late; a slot at or before it is never due again
        ALTER TABLE subscribers ADD COLUMN last_slot_at TEXT;
        -- papers first seen before this were already matched against the subscriber's rules
        ALTER TABLE subscribers ADD COLUMN last_checked_at TEXT;
    """),
    ("outbox_claims", """
        -- a sender claims the rows it is about to send (owner "host/pid/run", lease end), so
        -- two senders (the daemon and `digestd send`) never send the same row; the claim of a
        -- sender that died is taken over at once when its pid is gone, else when it expires
        ALTER TABLE digests ADD COLUMN claimed_by TEXT;
        ALTER TABLE digests ADD COLUMN claimed_until TEXT;
        CREATE INDEX digests_claimed ON digests(claimed_by) WHERE claimed_by IS NOT NULL;
    """),
    ("sent_resets_bounces", """
        -- hard bounces count in a row: a delivered message starts the count again (a trigger,
        -- so marking a message sent stays one statement: the sender does it after every 250)
        CREATE TRIGGER digests_sent_resets_bounces AFTER UPDATE OF status ON digests
        WHEN new.status = 'sent' BEGIN
            UPDATE subscribers SET bounces = 0 WHERE id = new.subscriber_id AND bounces > 0;
        END;
    """),
    ("message_bodies", """
        -- the message bytes live apart from the row that changes after every attempt: SQLite
        -- rewrites a whole row on UPDATE, and a 50 KB message is nearly all of it. Rows
        -- inserted with their message (queue_message) have it moved here by the trigger.
        CREATE TABLE digest_bodies (
            digest_id INTEGER PRIMARY KEY REFERENCES digests(id) ON DELETE CASCADE,
            message   BLOB NOT NULL
        );
        INSERT INTO digest_bodies (digest_id, message)
            SELECT id, message FROM digests WHERE length(message) > 0;
        UPDATE digests SET message = x'' WHERE length(message) > 0;
        CREATE TRIGGER digests_body_apart AFTER INSERT ON digests
        WHEN length(new.message) > 0 BEGIN
            INSERT INTO digest_bodies (digest_id, message) VALUES (new.id, new.message);
            UPDATE digests SET message = x'' WHERE id = new.id;
        END;
    """),
    ("digest_pages", """
        -- every digest has a web page listing all its papers, in the digest's order and with
        -- why each matched, also after its message was pruned: the order and the reason
        -- live beside the sent mark (NULL for digests built before this step). The sent
        -- table grows by every paper sent, forever, so each reason's text is stored once
        -- (whys) and a mark holds its number: a few bytes instead of ~50.
        CREATE TABLE whys (
            id   INTEGER PRIMARY KEY,
            text TEXT NOT NULL UNIQUE
        );
        ALTER TABLE sent ADD COLUMN position INTEGER;
        ALTER TABLE sent ADD COLUMN why_id INTEGER;   -- whys.id; whys are never deleted
        -- how many papers a digest (or a "nothing matched" note) checked, for its page
        ALTER TABLE digests ADD COLUMN checked INTEGER;
        -- the feed's ETag: what a subscriber got, and when, without reading the rows
        CREATE INDEX digests_delivered ON digests(subscriber_id, sent_at) WHERE status = 'sent';
        -- "feed only": matches are recorded (the feed and the archive fill), no email is sent
        ALTER TABLE subscribers ADD COLUMN feed_only INTEGER NOT NULL DEFAULT 0;
        -- signed into /p/, /f/ and /u/ links: "reset my links" raises it, which retires the
        -- old /p/ and /f/ links (old /u/ links keep unsubscribing)
        ALTER TABLE subscribers ADD COLUMN link_gen INTEGER NOT NULL DEFAULT 0;
    """),
    ("schedule_version", """
        -- bumped by every change that can make a digest due sooner: the daemon skips a
        -- build process on ticks where nothing changed and the next slot is still ahead
        CREATE TABLE schedule_version (value INTEGER NOT NULL);
        INSERT INTO schedule_version (value) VALUES (0);
        CREATE TRIGGER schedule_version_sub_insert AFTER INSERT ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_sub_delete AFTER DELETE ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_sub_update AFTER UPDATE OF timezone, send_at,
            frequency, weekday, send_empty, status ON subscribers BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_rule_insert AFTER INSERT ON rules BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
        CREATE TRIGGER schedule_version_rule_delete AFTER DELETE ON rules BEGIN
            UPDATE schedule_version SET value = value + 1;
        END;
    """),
]

SCHEMA_VERSION = len(MIGRATIONS)


def _names(values: Sequence) -> str:
    """A JSON list of strings: what is not a string (None, a number from a store written
    by hand or a bug) is left out or made a string, so matching never meets it."""
    return json.dumps([v if isinstance(v, str) else str(v) for v in values if v is not None])


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
    claimed_by: str | None = None
    claimed_until: str | None = None


@dataclass(frozen=True)
class ArchivedDigest:
    """One digest (or "nothing matched" note) as its page and the archive list show it."""

    id: int
    subscriber_id: int
    period: str
    created_at: str  # ISO time it was built
    papers: int  # papers it matched, those the email left out included
    status: str  # queued, sent or failed (see the outbox)
    sent_at: str | None
    checked: int | None  # papers it checked; None for digests built before digest pages


@dataclass(frozen=True)
class DeliveredPaper:
    """One paper of a digest, for the digest's page and the feed."""

    paper: Paper
    why: str  # the rules' hits, as the digest said; "" for digests built before digest pages
    position: int | None  # 0-based place in the digest's order
    digest_id: int
    period: str
    sent_at: str | None


@dataclass(frozen=True)
class ScheduleMark:
    """What the scheduler remembers per subscriber (see schedule.py)."""

    last_slot_at: str | None = None  # the last scheduled send time handled, UTC
    last_checked_at: str | None = None  # papers first seen before this were matched already


# What the store's folder holds once digestd has used it (the store's own -wal and -shm aside):
# with these and no store, a fresh store would send every paper again.
SECRET_NAME = "digestd.secret"  # written next to the store by config.web_secret
WHERE_THE_STORE_GOES = ("point [store] path at the state directory, e.g. "
                        "/var/lib/digestd/digestd.sqlite3")


def _refuse_to_start_over(path: Path) -> None:
    """A StoreMissing when the store at `path` is missing or empty (truncated, say) but the
    link secret made next to it, or its write-ahead log, is still there; a brand new setup
    has neither."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return
    for left in (path.with_name(SECRET_NAME), path.with_name(path.name + "-wal")):
        if left.exists():
            state = "empty" if size == 0 else "missing"
            raise StoreMissing(f"the store {path} is {state} but {left} exists: refusing to "
                               f"start over (restore the store from a backup, or remove "
                               f"{left} to start afresh)")


def _read_only_folder(folder: Path) -> Path | None:
    """The folder (or, when it is not made yet, its nearest existing parent) if it cannot
    be written, as /etc under the unit's ProtectSystem=strict; else None."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return None if os.access(folder, os.W_OK) else folder


def _no_space(folder: Path) -> bool:
    """Next to nothing is left on the filesystem of `folder`: SQLite reports a full disk
    as a "disk I/O error" where it maps memory (the -shm file of a store it opens)."""
    try:
        fs = os.statvfs(folder)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < 128 * 1024


def _cannot_write(path: str, e: BaseException) -> StoreWriteError | None:
    """The error to raise for `e`, a failed write to the store at `path`, when it has a
    cause the user can act on (a full disk, a read-only folder or file); else None."""
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+
    text = str(e).lower()
    folder = Path(path).parent
    io_error = code is not None and code & 0xFF == sqlite3.SQLITE_IOERR \
        or "disk i/o error" in text
    if code == sqlite3.SQLITE_FULL or "database or disk is full" in text \
            or getattr(e, "errno", None) == errno.ENOSPC or io_error and _no_space(folder):
        return StoreWriteError(
            f"disk full: the store {path} cannot be written, the filesystem that holds "
            f"{folder} has no space left ({e}). Free space there (or point [store] path at "
            "a larger disk), then run it again: nothing of the failed write was kept")
    read_only = code == sqlite3.SQLITE_READONLY or "readonly database" in text \
        or getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM)
    if not read_only and code != sqlite3.SQLITE_CANTOPEN and "unable to open" not in text:
        return None
    locked = _read_only_folder(folder)
    if locked is not None:
        return StoreFolderReadOnly(
            f"the store {path} cannot be written: the folder {locked} is read-only ({e}). "
            f"The store needs a folder digestd can write to: {WHERE_THE_STORE_GOES} (under "
            "systemd, ProtectSystem=strict leaves /etc read-only and the unit's "
            "StateDirectory writable)")
    if read_only:
        return StoreWriteError(
            f"the store {path} cannot be written: the file is read-only ({e}); make it "
            "writable by the user digestd runs as")
    return None


class _Connection(sqlite3.Connection):
    """A connection whose failed writes say why, in words the user can act on."""

    store_path = ""

    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.OperationalError as e:
            raise _cannot_write(self.store_path, e) or e

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except sqlite3.OperationalError as e:
            raise _cannot_write(self.store_path, e) or e

    def executescript(self, *args):
        try:
            return super().executescript(*args)
        except sqlite3.OperationalError as e:
            raise _cannot_write(self.store_path, e) or e


class Store:
    """A connection to the SQLite file, migrated to the current schema on open."""

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            _refuse_to_start_over(Path(self.path))
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise _cannot_write(self.path, e) or StoreError(
                    f"cannot open store {self.path}: {e}") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                      check_same_thread=False, factory=_Connection)
            self.db.store_path = self.path
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.migrate()
        except StoreWriteError:
            raise
        except sqlite3.DatabaseError as e:
            raise _cannot_write(self.path, e) or StoreError(
                f"cannot open store {self.path}: {e}") from None

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

        Inside an open transaction it joins it: a caller can group many small writes
        (a batch of digests) into one commit, and they commit or roll back together.
        """
        if self.db.in_transaction:
            yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            # SQLite may have rolled back already (a full disk does): a failing ROLLBACK
            # ("cannot rollback - no transaction is active") must not hide the cause
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error as e:
                    log.warning("event=rollback_failed store=%s error=%r", self.path, str(e))
            raise
        try:
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise

    @contextmanager
    def checkpoints_in_background(self, every: float = 1.0) -> Iterator[None]:
        """For a burst of writes (building or sending thousands of digests): this connection
        stops checkpointing the WAL inline, where each checkpoint waits for fsync in the
        middle of the work, and a thread with its own connection checkpoints every `every`
        seconds instead. Commits stay as durable as before (WAL, synchronous=NORMAL)."""
        if self.path == ":memory:":
            yield
            return
        import threading

        stop = threading.Event()

        def checkpoint() -> None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                while not stop.wait(every):
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # pragma: no cover - the inline checkpoints take over
                pass
            finally:
                db.close()

        thread = threading.Thread(target=checkpoint, name="wal-checkpoint", daemon=True)
        self.db.execute("PRAGMA wal_autocheckpoint = 0")
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.db.execute("PRAGMA wal_autocheckpoint = 1000")

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
                    try:
                        self.db.execute("ROLLBACK")
                    except sqlite3.Error:  # the step's own error says more
                        pass
                raise
        return SCHEMA_VERSION - version

    # -- papers --------------------------------------------------------------------------------

    def add_papers(self, papers: Iterable[Paper], *, now: str | None = None) -> list[Paper]:
        """Store papers never seen under any of their ids; return only those, in order.

        A paper known by one of its strong ids (arXiv id, DOI, guid of its feed) is not
        new. One known only by a weak id (its link, its normalized title) is the same paper
        unless the two disagree on a strong id (two DOIs, two arXiv ids, two guids of one
        feed: identity.conflicting). A paper met again has its new aliases recorded and its
        upvotes and version refreshed, so the next source meets it in the same row. Every
        merge is logged at debug with the id that matched.
        """
        now = now or utcnow()
        new: list[Paper] = []
        with self.transaction() as db:
            for paper in papers:
                ids = list(dict.fromkeys(paper.ids))
                key = title_key(paper.title)
                if key and key not in ids:
                    ids.append(key)
                marks = ",".join("?" * len(ids))
                found = dict(db.execute(f"SELECT alias, paper_pk FROM paper_ids "
                                        f"WHERE alias IN ({marks})", ids).fetchall())
                pk = self._same_paper(db, paper, ids, found) if found else None
                if pk is not None:
                    if paper.upvotes is not None or paper.version is not None:
                        db.execute("UPDATE papers SET upvotes = coalesce(?, upvotes), "
                                   "version = max(coalesce(version, 0), coalesce(?, 0)) "
                                   "WHERE pk = ?", (paper.upvotes, paper.version, pk))
                else:
                    if paper.id in found:  # its canonical id names another paper (a conflict)
                        free = [i for i in ids if i not in found and not i.startswith("title:")]
                        if not free:
                            free = [f"{paper.id}#{hashlib.sha256(paper.title.encode()).hexdigest()[:12]}"]
                        paper = replace(paper, id=free[0])
                    pk = db.execute(
                        "INSERT INTO papers (id, title, abstract, authors, categories, source, "
                        "url, pdf_url, published, upvotes, version, first_seen) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (paper.id, paper.title, paper.abstract, _names(paper.authors),
                         _names(paper.categories), paper.source, paper.url, paper.pdf_url,
                         paper.published, paper.upvotes, paper.version, now)).lastrowid
                    new.append(paper)
                db.executemany("INSERT OR IGNORE INTO paper_ids (alias, paper_pk) VALUES (?, ?)",
                               [(alias, pk) for alias in ids])
        return new

    @staticmethod
    def _same_paper(db: sqlite3.Connection, paper: Paper, ids: list[str],
                    found: dict[str, int]) -> int | None:
        """The row of the stored paper that `paper` is, among those its ids `found`, or None.

        Candidates met by a strong id come first; any candidate that disagrees with the
        paper on a strong id of another kind (the same guid, another DOI) is another paper.
        """
        order = sorted((alias for alias in ids if alias in found),
                       key=lambda alias: strong_kind(alias) is None)
        tried: set[int] = set()
        for alias in order:
            pk = found[alias]
            if pk in tried:
                continue
            tried.add(pk)
            theirs = [r[0] for r in db.execute("SELECT alias FROM paper_ids WHERE paper_pk = ?",
                                               (pk,))]
            clash = conflicting(ids, theirs)
            if clash:
                log.debug("paper=%s source=%s not_merged_with=%s shared=%s differs=%s",
                          paper.id, paper.source, pk, alias, clash)
                continue
            log.debug("paper=%s source=%s seen_as=%s matched=%s", paper.id, paper.source, pk,
                      alias)
            return pk
        return None

    _PAPER_COLUMNS = ("p.pk, p.id, p.title, p.abstract, p.authors, p.categories, p.source, "
                      "p.url, p.pdf_url, p.published, p.upvotes, p.version")

    def _paper(self, row: Sequence, aliases: Sequence[str] = ()) -> Paper:
        return Paper(id=row[1], title=row[2], abstract=row[3],
                     authors=tuple(json.loads(row[4])), categories=tuple(json.loads(row[5])),
                     source=row[6], url=row[7], pdf_url=row[8], published=row[9],
                     upvotes=row[10], version=row[11],
                     aliases=tuple(a for a in aliases if a != row[1]))

    def papers_since(self, since: str, *, with_aliases: bool = False,
                     limit: int | None = None, newest_first: bool = False) -> list[Paper]:
        """Papers first seen at or after `since` (ISO timestamp), oldest first (or, with
        `newest_first`, the most recently seen first, so `limit` keeps the newest)."""
        order = "DESC" if newest_first else ""
        sql = (f"SELECT {self._PAPER_COLUMNS} FROM papers p WHERE p.first_seen >= ? "
               f"ORDER BY p.first_seen {order}, p.pk {order}")
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

    def count_subscribers(self, status: str = "active") -> int:
        return self.db.execute("SELECT count(*) FROM subscribers WHERE status = ?",
                               (status,)).fetchone()[0]

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
                    "created_at, last_digest_at, bounces, feed_only, link_gen")

    def _subscriber(self, row: Sequence, rules: Sequence[str]) -> Subscriber:
        (id_, email, status, name, tz, send_at, frequency, weekday, send_empty, created_at,
         last_digest_at, bounces, feed_only, link_gen) = row
        return Subscriber(id=id_, email=email, status=status, rules=tuple(rules), name=name,
                          timezone=tz, send_at=send_at, frequency=frequency, weekday=weekday,
                          send_empty=bool(send_empty), created_at=created_at,
                          last_digest_at=last_digest_at, bounces=bounces,
                          feed_only=bool(feed_only), link_gen=link_gen)

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
                       feed_only: bool = False, now: str | None = None) -> Subscriber:
        now = now or utcnow()
        with self.transaction() as db:
            try:
                # the id is past every id ever used (id_high_water): links signed for a
                # deleted subscriber must never reach a new one
                sid = db.execute(
                    "INSERT INTO subscribers (id, email, status, name, timezone, send_at, "
                    "frequency, weekday, send_empty, created_at, confirmed_at, feed_only) VALUES "
                    "((SELECT max(coalesce((SELECT max(id) FROM subscribers), 0), coalesce("
                    "(SELECT value FROM id_high_water WHERE name = 'subscribers'), 0)) + 1),"
                    "?,?,?,?,?,?,?,?,?,?,?)",
                    (email, status, name, timezone, send_at, frequency, weekday, int(send_empty),
                     now, now if status == "active" else None, int(feed_only))).lastrowid
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
                     message: bytes, paper_pks: Sequence[int], whys: Sequence[str] = (),
                     why_ids: Mapping[str, int] | None = None, checked: int | None = None,
                     deliver: bool = True, now: str | None = None,
                     slot_at: str | None = None, checked_through: str | None = None
                     ) -> int | None:
        """Put one digest in the outbox and mark its papers as sent, in one transaction;
        with `slot_at`, also what mark_slot records (in the same statement).

        `paper_pks` are all the digest's papers in the digest's order (those the email
        leaves out too), `whys` why each matched, in the same order; both are kept for the
        digest's web page and the feed (`why_ids`, from why_ids() in the same transaction,
        saves looking the texts up digest by digest). `checked` is how many papers the
        digest checked.
        With `deliver` False (a feed-only subscriber) nothing is mailed: the row is stored
        as sent at once, without a message.

        Returns the digest id, or None when this subscriber already has a digest for
        this period (so a rebuild after a crash cannot queue a second one); the slot is
        not marked then.
        """
        now = now or utcnow()
        with self.transaction() as db:
            try:
                if deliver:
                    did = db.execute(
                        "INSERT INTO digests (subscriber_id, period, created_at, papers, "
                        "message_id, recipient, message, next_attempt_at, checked) "
                        "VALUES (?,?,?,?,?,?,x'',?,?)",
                        (subscriber_id, period, now, len(paper_pks), message_id, recipient,
                         now, checked)).lastrowid
                else:
                    did = db.execute(
                        "INSERT INTO digests (subscriber_id, period, created_at, papers, "
                        "message_id, recipient, message, status, sent_at, checked) "
                        "VALUES (?,?,?,?,?,?,x'','sent',?,?)",
                        (subscriber_id, period, now, len(paper_pks), message_id, recipient,
                         now, checked)).lastrowid
            except sqlite3.IntegrityError:
                return None
            if deliver:
                db.execute("INSERT INTO digest_bodies (digest_id, message) VALUES (?, ?)",
                           (did, message))
            if whys and why_ids is None:
                why_ids = self.why_ids(whys)
            db.executemany("INSERT OR IGNORE INTO sent (subscriber_id, paper_pk, digest_id, "
                           "position, why_id) VALUES (?,?,?,?,?)",
                           [(subscriber_id, pk, did, i,
                             why_ids[whys[i]] if why_ids is not None and i < len(whys) else None)
                            for i, pk in enumerate(paper_pks)])
            if slot_at is None:
                db.execute("UPDATE subscribers SET last_digest_at = ? WHERE id = ?",
                           (now, subscriber_id))
            else:
                db.execute(f"UPDATE subscribers SET last_digest_at = ?, {self._MARK_SLOT} "
                           "WHERE id = ?", (now, slot_at, checked_through, subscriber_id))
        return did

    # -- the archive: each digest's page, the list of past digests, the feed -----------------

    _ARCHIVED = "id, subscriber_id, period, created_at, papers, status, sent_at, checked"
    # rows of queue_message (confirmation emails ...) are not digests
    _NOT_WEB_MAIL = "NOT (papers = 0 AND period GLOB '[a-z]*-[0-9]*')"

    def digest_of(self, subscriber_id: int, period: str) -> ArchivedDigest | None:
        """The digest of `subscriber_id` for `period`, whatever its status; None if there is
        none (never built, or its subscriber was deleted)."""
        row = self.db.execute(f"SELECT {self._ARCHIVED} FROM digests WHERE subscriber_id = ? "
                              f"AND period = ? AND {self._NOT_WEB_MAIL}",
                              (subscriber_id, period)).fetchone()
        return ArchivedDigest(*row) if row else None

    def digest_archive(self, subscriber_id: int, *, limit: int = 20, offset: int = 0
                       ) -> tuple[list[ArchivedDigest], int]:
        """(a page of the subscriber's digests, newest first; how many there are in all)."""
        rows = self.db.execute(
            f"SELECT {self._ARCHIVED} FROM digests WHERE subscriber_id = ? AND "
            f"{self._NOT_WEB_MAIL} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (subscriber_id, int(limit), int(offset))).fetchall()
        total = self.db.execute(f"SELECT count(*) FROM digests WHERE subscriber_id = ? AND "
                                f"{self._NOT_WEB_MAIL}", (subscriber_id,)).fetchone()[0]
        return [ArchivedDigest(*r) for r in rows], total

    # sent is keyed by (subscriber, paper): these read a subscriber's marks in key order
    # (CROSS JOIN keeps that loop outermost) rather than add an index every build must fill
    _DELIVERED = (f"SELECT {_PAPER_COLUMNS}, coalesce(w.text, ''), s.position, d.id, d.period, "
                  "d.sent_at FROM sent s CROSS JOIN digests d ON d.id = s.digest_id "
                  "JOIN papers p ON p.pk = s.paper_pk LEFT JOIN whys w ON w.id = s.why_id "
                  "WHERE s.subscriber_id = ? ")

    def _delivered(self, row: Sequence) -> DeliveredPaper:
        return DeliveredPaper(self._paper(row), *row[12:])

    def digest_papers(self, digest: ArchivedDigest) -> list[DeliveredPaper]:
        """Every paper of `digest`, in the digest's order (best first), with why it matched.
        Read from the sent marks, so it works after the stored message was pruned."""
        return [self._delivered(r) for r in self.db.execute(
            self._DELIVERED + "AND s.digest_id = ? ORDER BY s.position IS NULL, s.position, "
            "p.pk", (digest.subscriber_id, digest.id))]

    def feed_entries(self, subscriber_id: int, *, since: str, limit: int = 500
                     ) -> list[DeliveredPaper]:
        """The papers of the subscriber's digests delivered (status sent) at or after `since`
        (ISO time), newest digest first and each digest in its order; at most `limit`."""
        return [self._delivered(r) for r in self.db.execute(
            self._DELIVERED + "AND d.status = 'sent' AND d.sent_at >= ? ORDER BY d.sent_at "
            "DESC, d.id DESC, s.position IS NULL, s.position, p.pk LIMIT ?",
            (subscriber_id, since, int(limit)))]

    def feed_validators(self, subscriber_id: int) -> tuple[int, int, str | None] | None:
        """(link generation, digests delivered, when the last one was) for the feed's ETag
        and Last-Modified, from one index; None when there is no such subscriber."""
        return self.db.execute(
            "SELECT link_gen, (SELECT count(*) FROM digests WHERE subscriber_id = s.id AND "
            "status = 'sent'), (SELECT max(sent_at) FROM digests WHERE subscriber_id = s.id "
            "AND status = 'sent') FROM subscribers s WHERE s.id = ?",
            (subscriber_id,)).fetchone()

    def reset_links(self, subscriber_id: int) -> int:
        """Retire the subscriber's /p/ and /f/ links (a new link generation); returns it."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET link_gen = link_gen + 1 WHERE id = ?",
                       (subscriber_id,))
            row = db.execute("SELECT link_gen FROM subscribers WHERE id = ?",
                             (subscriber_id,)).fetchone()
        if row is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        return row[0]

    def why_ids(self, texts: Iterable[str]) -> dict[str, int]:
        """Text -> its number in the whys table, adding the texts not there yet. Call it in
        the transaction that uses the numbers (a build's batch): a rolled-back number may be
        given to another text later."""
        unique = list(dict.fromkeys(texts))
        out: dict[str, int] = {}
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO whys (text) VALUES (?)", [(t,) for t in unique])
            for i in range(0, len(unique), 500):
                chunk = unique[i:i + 500]
                out.update(db.execute(f"SELECT text, id FROM whys WHERE text IN "
                                      f"({','.join('?' * len(chunk))})", chunk))
        return out

    def record_build_failure(self, subscriber_id: int, period: str, *, recipient: str,
                             error: str, papers: int, now: str | None = None,
                             slot_at: str | None = None) -> int | None:
        """Record a digest that could not be built or rendered: an outbox row in state
        failed with the reason and no message (message_id ''), so `digestd outbox --failed`
        and /metrics show it. Its papers are not marked sent and the subscriber's papers stay
        unchecked, so the next digest that builds carries them; with `slot_at` the slot is
        marked handled, so a broken digest is not tried again every minute.

        Returns the row id, or None when the subscriber has a digest for this period.
        """
        now = now or utcnow()
        with self.transaction() as db:
            try:
                did = db.execute(
                    "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                    "recipient, message, status, last_error) VALUES (?,?,?,?,'',?,x'','failed',?)",
                    (subscriber_id, period, now, papers, recipient, error[:500])).lastrowid
            except sqlite3.IntegrityError:
                return None
            if slot_at is not None:
                db.execute(f"UPDATE subscribers SET {self._MARK_SLOT} WHERE id = ?",
                           (slot_at, None, subscriber_id))
        return did

    def has_digest(self, subscriber_id: int, period: str) -> bool:
        return self.db.execute("SELECT 1 FROM digests WHERE subscriber_id = ? AND period = ?",
                               (subscriber_id, period)).fetchone() is not None

    # the message is read from digest_bodies (see the "message_bodies" migration)
    _OUTBOX_COLUMNS = ("id, subscriber_id, period, recipient, message_id, coalesce((SELECT "
                       "b.message FROM digest_bodies b WHERE b.digest_id = digests.id), message), "
                       "status, attempts, next_attempt_at, last_error, papers, claimed_by, "
                       "claimed_until")

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
        self.mark_sent_many([(digest_id, now or utcnow())])

    def mark_sent_many(self, marks: Iterable[tuple[int, str]]) -> int:
        """(digest id, sent at) pairs, in one transaction; rows already marked stay as they
        are, so a mark written twice (a sent journal replayed, see deliver.py) is harmless.
        The bounce count is reset by a trigger. Returns the rows newly marked."""
        with self.transaction() as db:
            return db.executemany(
                "UPDATE digests SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                "last_error = NULL, claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND status = 'queued'", [(at, did) for did, at in marks]).rowcount

    def mark_deferred(self, digest_id: int, error: str, next_attempt_at: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET attempts = attempts + 1, last_error = ?, "
                       "next_attempt_at = ?, claimed_by = NULL, claimed_until = NULL "
                       "WHERE id = ?", (error, next_attempt_at, digest_id))

    def mark_failed(self, digest_id: int, error: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE digests SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                       (error, digest_id))

    def prune_sent(self, before: str, *, chunk: int = 1000) -> int:
        """Drop the message bytes of digests sent before `before` (ISO time). The rows and
        the sent marks stay, so nothing is ever sent twice; the freed pages are reused.
        `chunk` messages per transaction: a sender or build waits for one chunk at most."""
        dropped = 0
        while True:
            with self.transaction() as db:
                # driven by digest_bodies, which holds only the messages not yet dropped
                n = db.execute(
                    "DELETE FROM digest_bodies WHERE digest_id IN (SELECT b.digest_id FROM "
                    "digest_bodies b JOIN digests d ON d.id = b.digest_id WHERE "
                    "d.status = 'sent' AND d.sent_at < ? LIMIT ?)", (before, chunk)).rowcount
            dropped += n
            if n < chunk:
                return dropped

    def digest_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, count(*) FROM digests GROUP BY status"))

    # -- the outbox: claims, bounces and retries (used by deliver.py) ---------------------------

    def claim_outbox(self, owner: str, *, limit: int, lease_s: float,
                     now: datetime | None = None) -> tuple[list[OutboxRow], int]:
        """Claim up to `limit` due rows nobody holds for `owner`, the longest due first.

        Digests (not confirmation mails) of subscribers who are no longer active are
        cancelled instead of claimed: status failed, with the reason. Returns the claimed
        rows and the number cancelled.
        """
        now = now or datetime.now(timezone.utc)
        stamp = now.isoformat(timespec="seconds")
        until = datetime.fromtimestamp(now.timestamp() + lease_s, timezone.utc).isoformat(
            timespec="seconds")
        with self.transaction() as db:
            found = db.execute(
                "SELECT d.id, s.status, d.papers = 0 AND d.period GLOB '[a-z]*-[0-9]*' "
                "FROM digests d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.status = 'queued' AND d.next_attempt_at <= ? "
                "AND (d.claimed_until IS NULL OR d.claimed_until < ?) "
                "ORDER BY d.next_attempt_at, d.id LIMIT ?", (stamp, stamp, limit)).fetchall()
            cancel = [(f"not sent: the subscriber is {status}", did)
                      for did, status, web_mail in found if status != "active" and not web_mail]
            db.executemany("UPDATE digests SET status = 'failed', last_error = ? WHERE id = ?",
                           cancel)
            ids = [did for did, status, web_mail in found if status == "active" or web_mail]
            if not ids:
                return [], len(cancel)
            marks = ",".join("?" * len(ids))
            db.execute(f"UPDATE digests SET claimed_by = ?, claimed_until = ? "
                       f"WHERE id IN ({marks})", (owner, until, *ids))
            rows = [OutboxRow(*r) for r in db.execute(
                f"SELECT {self._OUTBOX_COLUMNS} FROM digests WHERE id IN ({marks}) "
                "ORDER BY next_attempt_at, id", ids)]
        return rows, len(cancel)

    def release_claims(self, owner: str) -> int:
        """Hand back what `owner` claimed and did not finish (nothing is counted as tried)."""
        with self.transaction() as db:
            return db.execute("UPDATE digests SET claimed_by = NULL, claimed_until = NULL "
                              "WHERE claimed_by = ?", (owner,)).rowcount

    def outbox_claimants(self) -> dict[str, int]:
        """Owner -> rows it holds, for the rows claimed right now (live or stale)."""
        return dict(self.db.execute(
            "SELECT claimed_by, count(*) FROM digests WHERE claimed_by IS NOT NULL "
            "GROUP BY claimed_by"))

    def count_due(self, *, now: str | None = None) -> int:
        return self.db.execute("SELECT count(*) FROM digests WHERE status = 'queued' AND "
                               "next_attempt_at <= ?", (now or utcnow(),)).fetchone()[0]

    def record_bounce(self, digest_id: int, error: str, *, threshold: int) -> bool:
        """A hard bounce (5xx for the recipient): the message failed, the subscriber's count
        of bounces in a row goes up, and at `threshold` an active subscriber becomes
        bouncing and gets no more digests. True when this bounce made them bouncing."""
        with self.transaction() as db:
            row = db.execute("SELECT subscriber_id FROM digests WHERE id = ?",
                             (digest_id,)).fetchone()
            db.execute("UPDATE digests SET status = 'failed', attempts = attempts + 1, "
                       "last_error = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
                       (error, digest_id))
            if row is None:
                return False
            db.execute("UPDATE subscribers SET bounces = bounces + 1 WHERE id = ?", (row[0],))
            return db.execute("UPDATE subscribers SET status = 'bouncing' WHERE id = ? AND "
                              "status = 'active' AND bounces >= ?",
                              (row[0], threshold)).rowcount == 1

    def digest_statuses(self, ids: Sequence[int]) -> dict[int, str]:
        """Digest id -> its status (queued, sent, failed), for those of `ids` that exist."""
        marks = ",".join("?" * len(ids))
        return dict(self.db.execute(f"SELECT id, status FROM digests WHERE id IN ({marks})",
                                    [int(i) for i in ids])) if ids else {}

    def retry_outbox(self, ids: Sequence[int] = (), *, failed: bool = False,
                     now: str | None = None) -> int:
        """Make queued rows (and with `failed`, failed ones, attempts reset) due now.
        `ids` limits it to those rows. Returns how many rows changed."""
        now = now or utcnow()
        where = f" AND id IN ({','.join(str(int(i)) for i in ids)})" if ids else ""
        with self.transaction() as db:
            n = db.execute("UPDATE digests SET next_attempt_at = ? WHERE status = 'queued'"
                           + where, (now,)).rowcount
            if failed:  # a digest that was never built has no message to send
                n += db.execute("UPDATE digests SET status = 'queued', attempts = 0, "
                                "next_attempt_at = ? WHERE status = 'failed' "
                                "AND message_id != ''" + where, (now,)).rowcount
        return n

    # -- the schedule: which slot each subscriber had last -------------------------------------

    def schedule_fingerprint(self) -> str:
        """A number that changes whenever something that decides when digests are due
        changes: a subscriber added or removed, a schedule or status changed, a rule added,
        changed or removed (the "schedule_version" migration's triggers). One row read."""
        row = self.db.execute("SELECT value FROM schedule_version").fetchone()
        return str(row[0] if row else 0)

    def schedule_marks(self) -> dict[int, ScheduleMark]:
        """Subscriber id -> the last slot handled and how far their papers were checked."""
        return {sid: ScheduleMark(slot, checked) for sid, slot, checked in self.db.execute(
            "SELECT id, last_slot_at, last_checked_at FROM subscribers")}

    def mark_slot(self, subscriber_id: int, slot_at: str, *,
                  checked_through: str | None = None) -> None:
        """Remember that the slot at `slot_at` was handled (sent, empty or merged into the
        next one), and, if given, that papers up to `checked_through` were matched."""
        with self.transaction() as db:
            db.execute(f"UPDATE subscribers SET {self._MARK_SLOT} WHERE id = ?",
                       (slot_at, checked_through, subscriber_id))

    # max(): a slot handled once never becomes due again, whatever the order of calls
    _MARK_SLOT = ("last_slot_at = max(coalesce(last_slot_at, ''), ?), "
                  "last_checked_at = nullif(max(coalesce(last_checked_at, ''), "
                  "coalesce(?, '')), '')")

    # -- the web: double opt-in, preferences, rate limits, health and metrics -------------------

    def find_subscriber(self, email: str) -> Subscriber | None:
        row = self.db.execute(f"SELECT {self._SUB_COLUMNS} FROM subscribers WHERE email = ?",
                              (email,)).fetchone()
        if row is None:
            return None
        return self._subscriber(row, self._rules_of([row[0]]).get(row[0], []))

    def request_subscription(self, email: str, rules: Sequence[str], *, nonce: str,
                             timezone: str, send_at: str, frequency: str, weekday: int = 0,
                             now: str | None = None) -> tuple[Subscriber, str | None]:
        """A subscription asked for on the web: a new pending subscriber, or an unconfirmed,
        unsubscribed or bouncing one made pending again with these rules and schedule.

        Returns the subscriber and the confirmation nonce to sign into the link; the nonce is
        None when the address is active or paused, whose settings a stranger must not change.
        A pending subscriber keeps its nonce, so an earlier confirmation link stays valid.
        """
        now = now or utcnow()
        with self.transaction() as db:
            row = db.execute("SELECT id, status, confirm_nonce FROM subscribers WHERE email = ?",
                             (email,)).fetchone()
            if row is None:
                sid = None
            elif row[1] in ("active", "paused"):
                return self.get_subscriber(row[0]), None
            else:
                sid = row[0]
                nonce = row[2] if row[1] == "pending" and row[2] else nonce
                db.execute("UPDATE subscribers SET status = 'pending', confirm_nonce = ?, "
                           "timezone = ?, send_at = ?, frequency = ?, weekday = ? WHERE id = ?",
                           (nonce, timezone, send_at, frequency, weekday, sid))
                db.execute("DELETE FROM rules WHERE subscriber_id = ?", (sid,))
                db.executemany("INSERT INTO rules (subscriber_id, position, text) "
                               "VALUES (?,?,?)", [(sid, i, r) for i, r in enumerate(rules)])
        if sid is None:
            sid = self.add_subscriber(email, rules, status="pending", timezone=timezone,
                                      send_at=send_at, frequency=frequency, weekday=weekday,
                                      now=now).id
            with self.transaction() as db:
                db.execute("UPDATE subscribers SET confirm_nonce = ? WHERE id = ?", (nonce, sid))
        return self.get_subscriber(sid), nonce

    def web_mail_at(self, subscriber_id: int) -> str | None:
        """When the web last mailed this subscriber (a confirmation or a preferences link)."""
        row = self.db.execute("SELECT web_mail_at FROM subscribers WHERE id = ?",
                              (subscriber_id,)).fetchone()
        return row[0] if row else None

    def confirm_subscriber(self, subscriber_id: int, nonce: str, *, now: str | None = None
                           ) -> bool:
        """Activate a pending subscriber whose confirmation nonce is `nonce`. False when there
        is nothing to confirm: not pending (a replayed link), or a newer request's nonce.
        The nonce is kept, so a second click can be told apart from a forged link; a new
        request after an unsubscribe gets a new one."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE subscribers SET status = 'active', confirmed_at = ?, bounces = 0 "
                "WHERE id = ? AND status = 'pending' AND confirm_nonce = ?",
                (now or utcnow(), subscriber_id, nonce)).rowcount == 1

    def confirm_nonce(self, subscriber_id: int) -> str | None:
        row = self.db.execute("SELECT confirm_nonce FROM subscribers WHERE id = ?",
                              (subscriber_id,)).fetchone()
        return row[0] if row else None

    def update_preferences(self, subscriber_id: int, rules: Sequence[str], *, timezone: str,
                           send_at: str, frequency: str, weekday: int, send_empty: bool,
                           feed_only: bool | None = None) -> None:
        """Rules and schedule; `feed_only` when given (None leaves it as it is)."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET timezone = ?, send_at = ?, frequency = ?, "
                       "weekday = ?, send_empty = ?, feed_only = coalesce(?, feed_only) "
                       "WHERE id = ?",
                       (timezone, send_at, frequency, weekday, int(send_empty),
                        None if feed_only is None else int(feed_only), subscriber_id))
            db.execute("DELETE FROM rules WHERE subscriber_id = ?", (subscriber_id,))
            db.executemany("INSERT INTO rules (subscriber_id, position, text) VALUES (?,?,?)",
                           [(subscriber_id, i, r) for i, r in enumerate(rules)])

    def resume_subscriber(self, subscriber_id: int) -> None:
        """Active again (after a pause, an unsubscribe or bounces), with the bounce count reset."""
        with self.transaction() as db:
            db.execute("UPDATE subscribers SET status = 'active', bounces = 0, "
                       "confirmed_at = coalesce(confirmed_at, ?) WHERE id = ?",
                       (utcnow(), subscriber_id))

    def queue_message(self, subscriber_id: int, kind: str, *, recipient: str, message_id: str,
                      message: bytes, now: float) -> int | None:
        """Put a single message (a confirmation, say) in the outbox, so the sender delivers and
        retries it like a digest. Unlike queue_digest it marks no papers and leaves
        last_digest_at alone. The period is "KIND-<unix time>"; None if that exists already."""
        stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
        with self.transaction() as db:
            try:
                # due at once by the sender's (real) clock, whatever clock `now` came from
                did = db.execute(
                    "INSERT INTO digests (subscriber_id, period, created_at, papers, message_id, "
                    "recipient, message, next_attempt_at) VALUES (?,?,?,0,?,?,?,?)",
                    (subscriber_id, f"{kind}-{int(now)}", utcnow(), message_id, recipient,
                     message, utcnow())).lastrowid
            except sqlite3.IntegrityError:
                return None
            db.execute("UPDATE subscribers SET web_mail_at = ? WHERE id = ?",
                       (stamp, subscriber_id))
        return did

    def count_events(self, kind: str, key: str, since: float) -> int:
        return self.db.execute("SELECT count(*) FROM web_events WHERE kind = ? AND key = ? "
                               "AND at >= ?", (kind, key, since)).fetchone()[0]

    def add_event(self, kind: str, key: str, at: float) -> None:
        with self.transaction() as db:
            db.execute("INSERT INTO web_events (kind, key, at) VALUES (?,?,?)", (kind, key, at))

    def prune_web(self, *, events_before: float, pending_before: str) -> tuple[int, int]:
        """Forget rate-limit events older than `events_before`, and subscribers who asked before
        `pending_before` and never confirmed. Returns (events, subscribers) removed."""
        with self.transaction() as db:
            events = db.execute("DELETE FROM web_events WHERE at < ?", (events_before,)).rowcount
            subs = db.execute("DELETE FROM subscribers WHERE status = 'pending' AND "
                              "confirmed_at IS NULL AND created_at < ?",
                              (pending_before,)).rowcount
        return events, subs

    def subscriber_export(self, subscriber_id: int) -> dict:
        """Everything stored about one subscriber, for "download my data"."""
        sub = self.get_subscriber(subscriber_id)
        created, confirmed = self.db.execute(
            "SELECT created_at, confirmed_at FROM subscribers WHERE id = ?",
            (subscriber_id,)).fetchone()
        digests = [
            {"period": r[0], "created_at": r[1], "papers": r[2], "status": r[3],
             "sent_at": r[4], "message_id": r[5]}
            for r in self.db.execute(
                "SELECT period, created_at, papers, status, sent_at, message_id FROM digests "
                "WHERE subscriber_id = ? ORDER BY id", (subscriber_id,))]
        papers = [
            {"id": r[0], "title": r[1], "url": r[2], "digest": r[3]}
            for r in self.db.execute(
                "SELECT p.id, p.title, p.url, d.period FROM sent s JOIN papers p "
                "ON p.pk = s.paper_pk JOIN digests d ON d.id = s.digest_id "
                "WHERE s.subscriber_id = ? ORDER BY d.id, p.pk", (subscriber_id,))]
        return {"email": sub.email, "name": sub.name, "status": sub.status,
                "rules": list(sub.rules), "timezone": sub.timezone, "send_at": sub.send_at,
                "frequency": sub.frequency, "weekday": sub.weekday,
                "send_empty": sub.send_empty, "feed_only": sub.feed_only,
                "created_at": created, "confirmed_at": confirmed,
                "last_digest_at": sub.last_digest_at, "bounces": sub.bounces,
                "messages": digests, "papers_sent": papers}

    def outbox_stats(self, *, now: str | None = None) -> dict[str, dict[str, int]]:
        """Outbox rows by kind ("digest", or the kind of queue_message) and state: queued
        (first attempt pending), deferred (retrying), due (either, due now), sent, failed
        (delivery gave up), build_failed (the digest could not be built)."""
        now = now or utcnow()
        out: dict[str, dict[str, int]] = {}
        for kind, queued, deferred, due, sent, failed, unbuilt in self.db.execute(
                "SELECT CASE WHEN papers = 0 AND period GLOB '[a-z]*-[0-9]*' "
                "THEN substr(period, 1, instr(period, '-') - 1) ELSE 'digest' END AS kind, "
                "sum(status = 'queued' AND attempts = 0), sum(status = 'queued' AND attempts > 0), "
                "sum(status = 'queued' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)), "
                "sum(status = 'sent'), sum(status = 'failed' AND message_id != ''), "
                "sum(status = 'failed' AND message_id = '') FROM digests GROUP BY kind",
                (now,)):
            out[kind] = {"queued": queued, "deferred": deferred, "due": due, "sent": sent,
                         "failed": failed, "build_failed": unbuilt}
        return out

    def subscriber_counts(self) -> tuple[dict[str, int], int]:
        """(subscribers by status, hard bounces counted over all subscribers)."""
        counts = dict(self.db.execute("SELECT status, count(*) FROM subscribers GROUP BY status"))
        bounces = self.db.execute("SELECT coalesce(sum(bounces), 0) FROM subscribers").fetchone()
        return counts, bounces[0]
