"""The SQLite store: papers and their aliases, source state, subscribers, rules, the outbox.

This is the only module that speaks SQL. Migrations are an ordered list of named
steps; the schema version is the number of steps applied.

The package: `schema` (the migrations), `records` (what the store returns), `files` (the file
on disk and its failure modes), `bodies` (how a queued message is packed), and one class per
part of the data (`papers`, `subscribers`, `digests`, `web`, `inbound`, `feedback`, `seeds`),
joined in `sqlite.Store`.
"""

from .bodies import PackedMessage, pack_message, unpack_message
from .files import SECRET_NAME, WHERE_THE_STORE_GOES
from .records import (
    ArchivedDigest,
    DeliveredPaper,
    OutboxRow,
    ScheduleMark,
    SourceState,
    StoredSeed,
    utcnow,
)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .sqlite import Store

__all__ = ["ArchivedDigest", "DeliveredPaper", "MIGRATIONS", "OutboxRow", "PackedMessage",
           "SCHEMA_VERSION", "SECRET_NAME", "ScheduleMark", "SourceState", "Store", "StoredSeed",
           "WHERE_THE_STORE_GOES", "pack_message", "unpack_message", "utcnow"]
