"""What both delivery methods share, and the outbox method itself: the run's
DeliveryReport, the VERP address of an outbox row, write_outbox (each queued digest as an
.eml file, the `delivery.method = "outbox"` of the config), and the StoreThread in which the
SMTP sender's store calls run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..store import BaseStore, OutboxRow, open_store
from ..tokens import bounce_token, plus_address


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0  # 4xx or network error: retried later with backoff
    failed: int = 0  # given up: 5xx, max_attempts reached, or cancelled
    bounced: int = 0  # of the failed: hard bounces (5xx for the recipient)
    cancelled: int = 0  # of the failed: the subscriber unsubscribed or bounces
    total: int = 0  # rows that were due when the run started
    stopped: str | None = None  # why the run ended early (the server is unreachable ...)
    handed_back: int = 0  # claimed rows never started (a stop was requested): still queued
    written: list[str] = field(default_factory=list)  # .eml paths, for the outbox method

    @property
    def done(self) -> int:
        return self.sent + self.deferred + self.failed

    def add(self, other: DeliveryReport) -> None:
        """Fold in the report of another sender of the same run (a build process that
        helped once its build was done). Both counted the same due rows in `total`: the
        rows tried by either are the total now, unless there were more."""
        for name in ("sent", "deferred", "failed", "bounced", "cancelled", "handed_back"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.total = max(self.total, other.total, self.done)
        self.stopped = self.stopped or other.stopped


def _file_name(row: OutboxRow) -> str:
    who = re.sub(r"[^A-Za-z0-9._-]+", "_", row.recipient)
    period = re.sub(r"[^A-Za-z0-9._-]+", "_", row.period)
    return f"{row.id:06d}-{period}-{who}.eml"


def verp_address(return_path: str, secret: bytes, row: OutboxRow) -> str:
    """The envelope sender of one outbox row: `return_path` with the row's signed bounce
    token, "bounces+TOKEN@domain" (tokens.bounce_token)."""
    return _verp(return_path, secret, row.id, row.subscriber_id)


def return_path_header(return_path: str, secret: bytes, digest_id: int,
                       subscriber_id: int) -> bytes:
    """The Return-Path header line (CRLF-ended) a final delivery adds to the message of
    outbox row `digest_id` (RFC 5321 4.4): its VERP address (verp_address)."""
    return f"Return-Path: <{_verp(return_path, secret, digest_id, subscriber_id)}>\r\n".encode()


def _verp(return_path: str, secret: bytes, digest_id: int, subscriber_id: int) -> str:
    return plus_address(return_path, bounce_token(secret, digest_id, subscriber_id))


def write_outbox(store: BaseStore, outbox_dir: str | Path, *, rows: list[OutboxRow] | None = None,
                 stop: Callable[[], bool] | None = None, return_path: str = "",
                 secret: bytes = b"") -> DeliveryReport:
    """Write each queued digest as an .eml file, atomically, then mark it sent.

    `stop` is asked before each file: once it says yes, the rest stays queued. With
    `return_path` (and the `secret` of its tokens) each file starts with the Return-Path
    header a final delivery adds (RFC 5321 4.4): the VERP address SMTP would have sent it
    from, so a bounce can be written (or tested) for it."""
    report = DeliveryReport()
    folder = Path(outbox_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # every digest stays queued for the next run
        report.stopped = f"cannot make the outbox folder {folder}: {e.strerror or e}"
        return report
    for row in rows if rows is not None else store.outbox():
        if stop is not None and stop():
            break
        if not row.message:  # its stored message does not unpack (Store.outbox says why)
            store.mark_failed(row.id, row.last_error or "no message stored")
            report.failed += 1
            continue
        path = folder / _file_name(row)
        tmp = path.with_suffix(".tmp")
        head = b""
        if return_path:
            head = return_path_header(return_path, secret, row.id, row.subscriber_id)
        tmp.write_bytes(head + row.message)
        os.replace(tmp, path)
        store.mark_sent(row.id)
        report.sent += 1
        report.written.append(str(path))
    return report



class StoreThread:
    """Runs store methods in one thread with a connection of its own, so a write waiting
    for the lock (a build committing) never blocks the event loop. A ":memory:" store has
    no second connection: its methods run in the caller's thread."""

    def __init__(self, store: BaseStore) -> None:
        self.target = store.target
        self.inline = store if store.path == ":memory:" else None
        self.store: BaseStore | None = None
        self.checkpoints = contextlib.ExitStack()
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="digestd-store")

    async def __call__(self, method: str, *args, **kwargs):
        if self.inline is not None:
            return getattr(self.inline, method)(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, lambda: getattr(self._open(), method)(*args, **kwargs))

    def _open(self) -> BaseStore:
        if self.store is None:
            self.store = open_store(self.target)
            # the sender commits ~20 times a second (its marks, its claims): checkpointing
            # after each of them, as SQLite does once the WAL holds 1,000 pages (all the time
            # while a build writes), copies the pages a build keeps changing (the sent
            # marks' index) into the store file again and again; once a second copies each
            # of them once
            self.checkpoints.enter_context(self.store.checkpoints_in_background())
        return self.store

    async def close(self) -> None:
        def close() -> None:
            if self.store is not None:
                self.checkpoints.close()
                self.store.close()
        await asyncio.get_running_loop().run_in_executor(self.pool, close)
        self.pool.shutdown(wait=False)
