"""The store: papers and their aliases, source state, subscribers, rules, the outbox.

This is the only package that speaks SQL. Two backends share one set of SQL: SQLite (the
default, a file) and PostgreSQL (`[store] url`). Each backend's migrations are an ordered
list of named steps; the schema version is the number of steps applied.

The package: one class per part of the data, holding its SQL (`papers`, `subscribers`,
`digests`, `web`, `inbound`, `feedback`, `seeds`, `cluster`: leases, build shards and rate
windows of several instances), joined in `base.BaseStore`; `dialect`
(the few phrases the backends spell differently); `records` (what the store returns);
`bodies` (how a queued message is packed); `sqlite.Store` with `schema` (its migrations)
and `files` (the file on disk and its failure modes); `postgres.PostgresStore` with
`postgres_schema`. `open_store` picks the backend.
"""

import os
import re

from .bodies import PackedMessage, pack_message, unpack_message
from .files import SECRET_NAME, WHERE_THE_STORE_GOES, refuse_to_start_over
from .records import (
    LEFT_OUT,
    MATCH,
    RECOMMENDED,
    ArchivedDigest,
    DeliveredPaper,
    OutboxRow,
    QueuedDigest,
    ScheduleMark,
    SourceState,
    StoredSeed,
    utcnow,
)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .base import BaseStore
from .sqlite import Store

__all__ = ["LEFT_OUT", "MATCH", "RECOMMENDED",
           "ArchivedDigest", "BaseStore", "DeliveredPaper", "MIGRATIONS", "OutboxRow",
           "PackedMessage", "QueuedDigest", "SCHEMA_VERSION", "SECRET_NAME", "ScheduleMark",
           "SourceState", "Store", "StoredSeed", "WHERE_THE_STORE_GOES", "is_postgres_url", "open_store",
           "pack_message", "refuse_to_start_over", "unpack_message", "utcnow", "without_password"]


def without_password(url: str) -> str:
    """`url` (a libpq URL) with its password, if any, replaced by ***: for messages and logs."""
    return re.sub(r"^(postgres(?:ql)?://[^:@/]*):[^@/]*@", r"\1:***@", url)


def is_postgres_url(text: str) -> bool:
    """Whether `text` names a PostgreSQL database (postgresql:// or postgres://), not a file."""
    return text.startswith(("postgresql://", "postgres://"))


def open_store(target, *, timeout: float = 30.0) -> BaseStore:
    """The store `target` names, open and migrated: a StoreConfig (its `url` selects
    PostgreSQL, else its `path` is the SQLite file), a libpq URL, or a SQLite path.

    `timeout` (seconds) is how long a write waits for another's lock (and, for PostgreSQL,
    for the server to answer the connection). Raises StoreError (and its kinds) when the
    store cannot be opened: a missing or unwritable file, an unreachable server.
    """
    if isinstance(target, (str, os.PathLike)):
        where = os.fspath(target)
        if not is_postgres_url(where):
            return Store(where, timeout=timeout)
    elif not getattr(target, "url", ""):
        return Store(target.path, timeout=timeout)
    from .postgres import PostgresStore  # psycopg is loaded only when it is used

    return PostgresStore(target, timeout=timeout)
