"""What every backend's store is: the classes that hold the SQL (one per part of the data),
joined, plus the plumbing each backend fills in (its connection, transactions, migrations).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .dialect import Dialect
from .cluster import ClusterStore
from .digests import DigestStore
from .feedback import FeedbackStore
from .inbound import InboundStore
from .papers import PaperStore
from .seeds import SeedStore
from .subscribers import SubscriberStore
from .web import WebStore


class BaseStore(PaperStore, SubscriberStore, DigestStore, WebStore, InboundStore,
                FeedbackStore, SeedStore, ClusterStore):
    """The store's methods over one connection, `db`, whose `execute(sql, args)` and
    `executemany(sql, rows)` take `?` placeholders and return a cursor (fetchone, fetchall,
    rowcount, iteration), and whose `insert_id(sql, args, key=, or_none=)` inserts one row
    and returns its key. `sql` spells the phrases that differ between backends."""

    sql: Dialect
    db: Any
    # where the store is, to open another connection to it (a path, or a StoreConfig)
    target: Any
    path: str  # the SQLite file, or the PostgreSQL URL without its password: for messages
    # the path that files kept beside the store start with (deliver/journal.py's sent journals)
    side_files: str

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[Any]:  # pragma: no cover
        raise NotImplementedError
        yield

    @contextmanager
    def checkpoints_in_background(self, every: float = 1.0) -> Iterator[None]:
        """For a burst of writes: what the backend does to keep its commits fast (SQLite
        checkpoints its WAL in a thread; elsewhere nothing)."""
        yield

    @contextmanager
    def fork_safe(self) -> Iterator[None]:
        """Around a fork of this process: no thread of the store's is inside a library
        call that holds a lock (SQLite: the background checkpoint thread waits)."""
        yield

    def schema_version(self) -> int:  # pragma: no cover - each backend has its own
        raise NotImplementedError
