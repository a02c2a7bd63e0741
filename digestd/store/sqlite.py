"""The SQLite store: one connection, migrated to the current schema on open; its
methods come from one class per part of the data (papers, subscribers, digests, web,
mail that comes back, feedback, seeds).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import StoreError, StoreWriteError
from .base import BaseStore
from .dialect import SQLITE
from .files import _cannot_write, _Connection, refuse_to_start_over
from .schema import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger("digestd.store")


class Store(BaseStore):
    """A connection to the SQLite file, migrated to the current schema on open."""

    sql = SQLITE

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.target = self.path
        self._between_calls = threading.Lock()  # the checkpoint thread's (fork_safe)
        self.side_files = self.path
        if self.path != ":memory:":
            if os.path.isdir(self.path):  # SQLite says only "unable to open database file"
                raise StoreError(f"cannot open store {self.path}: it is a folder, not the "
                                 f"store's file (e.g. {Path(self.path) / 'digestd.sqlite3'})")
            refuse_to_start_over(Path(self.path))
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # a new store is its owner's alone (it holds subscribers' addresses), whatever
                # the umask; SQLite gives its -wal and -shm files the same mode
                if not os.path.exists(self.path):
                    with contextlib.suppress(FileExistsError):  # made meanwhile: theirs
                        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                                         0o600))
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

    @contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception. (`exclusive` is for
        PostgreSQL; SQLite has one writer at a time anyway.)

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
        stop = threading.Event()

        def checkpoint() -> None:
            with self._between_calls:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            try:
                while not stop.wait(every):
                    with self._between_calls:  # see fork_safe
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:  # pragma: no cover - the inline checkpoints take over
                pass
            finally:
                with self._between_calls:
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

    @contextmanager
    def fork_safe(self) -> Iterator[None]:
        """Hold the background checkpoint thread between two of its calls while a process
        forks: a fork copies a mutex SQLite holds in another thread as held, with nobody
        to release it, and the child's first SQLite call would wait for ever."""
        with self._between_calls:
            yield

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
