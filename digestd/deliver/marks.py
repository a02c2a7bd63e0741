"""The sent marks of one delivery run, made durable right after each server's 250 (why that
order keeps every digest sent once: sender.py).

- SQLite (one machine): the row's id is appended to the run's sent journal at once
  (journal.py), and the journaled marks reach the store every MARKS_EVERY_S, or as soon as
  MARKS_PER_WRITE wait, from the sender's store thread.
- PostgreSQL (several machines, no shared file): the 250s that arrive until a connection
  needs the commit to go on (at most GROUP_COMMIT_S) are committed together (a group
  commit), and that connection sends its next DATA only once the commit is done.
- A ":memory:" store (no crash to survive): each mark is written at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from ..store import BaseStore
from .journal import SentJournal
from .outbox import StoreThread

MARKS_EVERY_S = 0.05  # how often the sent journal's new marks are written to the store
MARKS_PER_WRITE = 256  # ... or as soon as this many are waiting
# PostgreSQL: how long a 250 waits at most for others to share its commit. The commit starts
# sooner, as soon as a connection is ready to send DATA and waits for it (its MAIL FROM and
# RCPT TO went out meanwhile), so no connection waits longer than one commit; the 250s that
# arrive while a commit runs share the next one. Larger commits cost the server less per mark
# (a microbench: a third of the CPU at 4 marks per commit against 1); against a sink as fast
# as the bench's, groups rarely form and commits stay about one per digest.
GROUP_COMMIT_S = 0.02


class SentMarks:
    """The marks of one run (its `owner`), written through `db` (the run's StoreThread):
    `record` each 250, run `writer()` beside the workers, and `store_all` then `close` at
    the end, before the run's claims are handed back."""

    def __init__(self, store: BaseStore, db: StoreThread, owner: str) -> None:
        self.store = store
        self.db = db
        self.group_commit = store.sql.name == "postgresql"
        self.journal: SentJournal | None = None
        if db.inline is None and not self.group_commit:
            self.journal = SentJournal(store.side_files, owner)
        self.marks: list[tuple[int, str]] = []  # (row id, sent at): not yet in the store
        # PostgreSQL: each 250 waits here for the next group commit, with its future
        self.pending: list[tuple[int, str, asyncio.Future]] = []
        self.commit_error: BaseException | None = None  # the group commit failed: no more
        self.due = asyncio.Event()  # marks wait to be written
        self.wanted = asyncio.Event()  # a connection waits for the group commit

    def record(self, row_id: int, at: str) -> asyncio.Future | None:
        """Make the 250 of `row_id` (at ISO time `at`) durable: in the journal at once
        (SQLite), or in the next group commit, whose future is returned (PostgreSQL: the
        connection awaits it, `committed`, before its next DATA). Raises the group commit's
        error once one failed (the mark is kept for the final attempt, store_all)."""
        if self.group_commit:
            if self.commit_error is not None:
                self.marks.append((row_id, at))
                raise self.commit_error
            # this connection's next DATA waits for the commit: a kill loses at most this
            # one message's mark per connection
            done = asyncio.get_running_loop().create_future()
            self.pending.append((row_id, at, done))
            self.due.set()
            return done
        if self.journal is None:  # a ":memory:" store: no crash to survive
            self.store.mark_sent(row_id, now=at)
            return None
        self.journal.record(row_id, at)
        self.marks.append((row_id, at))
        if len(self.marks) >= MARKS_PER_WRITE:
            self.due.set()
        return None

    async def committed(self, committing: asyncio.Future) -> None:
        """Wait for the group commit of a mark, starting that commit now if it waits."""
        if not committing.done():
            self.wanted.set()
        await committing

    def writer(self) -> Awaitable[None]:
        """What runs beside the workers until cancelled: the group commit (PostgreSQL), or
        the writes of the journaled marks."""
        return self._commit() if self.group_commit else self._write()

    async def _write(self) -> None:
        """Write the journaled marks to the store every MARKS_EVERY_S, or sooner when
        MARKS_PER_WRITE are waiting."""
        while True:
            try:
                await asyncio.wait_for(self.due.wait(), MARKS_EVERY_S)
            except asyncio.TimeoutError:
                pass
            self.due.clear()
            await self.store_all()

    async def store_all(self) -> None:
        """Write every mark not yet in the store (and those of a group commit that never
        ran: their workers were cancelled)."""
        self.marks.extend((did, at) for did, at, _ in self.pending)
        self.pending = []
        # the marks leave `marks` only once stored: the writer is cancelled as the run ends,
        # and a write of its still waiting for the store thread then never runs; its marks
        # go in the final write, before the claims are handed back (else those rows are
        # free again, and another sender sends them a second time)
        while self.marks:
            marks = self.marks[:]
            await self.db("mark_sent_many", marks)
            del self.marks[:len(marks)]

    async def _commit(self) -> None:
        """The group commit (PostgreSQL): once a 250 is waiting, gather the others that come
        until a connection waits for the commit (`wanted`) or for GROUP_COMMIT_S at most,
        commit them in one transaction and wake their workers. A failed commit fails those
        workers' runs: the marks stay for the final attempt."""
        while True:
            await self.due.wait()
            try:
                await asyncio.wait_for(self.wanted.wait(), GROUP_COMMIT_S)
            except asyncio.TimeoutError:
                pass
            self.wanted.clear()
            self.due.clear()
            batch, self.pending = self.pending, []
            if not batch:
                continue
            try:
                await self.db("mark_sent_many", [(did, at) for did, at, _ in batch])
            except BaseException as e:
                self.commit_error = e
                self.marks.extend((did, at) for did, at, _ in batch)
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(e if isinstance(e, Exception)
                                           else asyncio.CancelledError())
                raise
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)

    def close(self, *, stored: bool) -> None:
        """End the run's journal: removed once its marks are all `stored`, else kept for
        the next sender to apply."""
        if self.journal is not None:
            self.journal.close(remove=stored)
