"""The store's file on disk: refusing to start over on a lost store, and failed writes
explained in words the user can act on (full disk, read-only folder or file).
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from ..errors import StoreFolderReadOnly, StoreMissing, StoreWriteError

# What the store's folder holds once digestd has used it (the store's own -wal and -shm aside):
# with these and no store, a fresh store would send every paper again.
SECRET_NAME = "digestd.secret"  # written next to the store by config.web_secret
WHERE_THE_STORE_GOES = ("point [store] path at the state directory, e.g. "
                        "/var/lib/digestd/digestd.sqlite3")


def refuse_to_start_over(path: Path) -> None:
    """A StoreMissing when the store at `path` is missing or empty (truncated, say) but the
    link secret made next to it, or its write-ahead log, is still there; a brand new setup
    has neither."""
    problem = start_over_problem(path)
    if problem:
        raise StoreMissing(problem)


def start_over_problem(path: Path) -> str | None:
    """Why refuse_to_start_over refuses the store at `path`, or None. When the link secret
    beside it was made for another store of the same folder, it names that store, or all of
    them when there are several (the secret does not say which one it was made for)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    if size:
        return None
    for left in (path.with_name(SECRET_NAME), path.with_name(path.name + "-wal")):
        if left.exists():
            state = "empty" if size == 0 else "missing"
            others = stores_beside(path)
            if left.name == SECRET_NAME and others:
                owner = (f"the store {others[0]}" if len(others) == 1 else
                         "one of the stores " + ", ".join(map(str, others))
                         + " (digestd cannot tell which)")
                return (f"the store {path} is {state}, and the link secret {left} beside it "
                        f"belongs to {owner} in the same folder: give each store a folder of "
                        f"its own (or, if {path} was lost, restore it from a backup)")
            return (f"the store {path} is {state} but {left} exists: refusing to start over "
                    f"(restore the store from a backup, or remove {left} to start afresh)")
    return None


def stores_beside(path: Path) -> list[Path]:
    """The other SQLite stores in the folder of `path` (files named *.sqlite3 that begin as
    a SQLite database does), by name: they share the link secret made beside a store."""
    found = []
    try:
        for other in sorted(path.parent.glob("*.sqlite3")):
            if other.name != path.name and other.is_file():
                with open(other, "rb") as f:
                    if f.read(16) == b"SQLite format 3\0":
                        found.append(other)
    except OSError:  # a folder or file we may not read: nothing known about it
        pass
    return found


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

    def insert_id(self, sql: str, args=(), *, key: str = "id", or_none: bool = False
                  ) -> int | None:
        """INSERT one row; its `key` (the INTEGER PRIMARY KEY: SQLite's rowid). With
        `or_none`, None when a constraint refused the row (a UNIQUE key that exists, a
        missing foreign key), and the transaction goes on."""
        try:
            return self.execute(sql, args).lastrowid
        except sqlite3.IntegrityError:
            if or_none:
                return None
            raise

    def executescript(self, *args):
        try:
            return super().executescript(*args)
        except sqlite3.OperationalError as e:
            raise _cannot_write(self.store_path, e) or e
