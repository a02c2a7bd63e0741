"""Delivery of queued digests: SMTP through aiosmtplib, or .eml files into an outbox folder."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr
from pathlib import Path

import aiosmtplib

from .config import SmtpConfig
from .errors import DeliveryError
from .store import OutboxRow, Store, utcnow

log = logging.getLogger("digestd.deliver")


@dataclass
class DeliveryReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    written: list[str] = field(default_factory=list)  # .eml paths, for the outbox method


def _file_name(row: OutboxRow) -> str:
    who = re.sub(r"[^A-Za-z0-9._-]+", "_", row.recipient)
    period = re.sub(r"[^A-Za-z0-9._-]+", "_", row.period)
    return f"{row.id:06d}-{period}-{who}.eml"


def write_outbox(store: Store, outbox_dir: str | Path, *, rows: list[OutboxRow] | None = None
                 ) -> DeliveryReport:
    """Write each queued digest as an .eml file, atomically, then mark it sent."""
    report = DeliveryReport()
    folder = Path(outbox_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows if rows is not None else store.outbox():
        path = folder / _file_name(row)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(row.message)
        os.replace(tmp, path)
        store.mark_sent(row.id)
        report.sent += 1
        report.written.append(str(path))
    return report


def backoff(attempts: int, base: float = 60.0, cap: float = 6 * 3600.0) -> float:
    """Seconds before the next attempt: 1, 2, 4 ... minutes, at most 6 hours."""
    return min(cap, base * 2 ** max(0, attempts - 1))


async def send_smtp(store: Store, smtp: SmtpConfig, sender: str, *, max_attempts: int = 8,
                    rows: list[OutboxRow] | None = None,
                    progress: Callable[[DeliveryReport], None] | None = None) -> DeliveryReport:
    """Send queued digests over one SMTP connection; a row is marked sent only after 250."""
    report = DeliveryReport()
    rows = rows if rows is not None else store.outbox(due_before=utcnow())
    if not rows:
        return report
    envelope_from = parseaddr(sender)[1]
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
                             use_tls=smtp.security == "tls",
                             start_tls=True if smtp.security == "starttls" else False)
    try:
        await client.connect()
        if smtp.username:
            await client.login(smtp.username, smtp.password)
    except (aiosmtplib.SMTPException, OSError) as e:
        for row in rows:
            _defer(store, row, f"connect: {e}", max_attempts, report)
        return report
    try:
        for row in rows:
            try:
                errors, _ = await client.sendmail(envelope_from, [row.recipient], row.message)
            except aiosmtplib.SMTPRecipientsRefused as e:
                error = DeliveryError(str(e), permanent=_permanent(e), code=_code(e))
            except aiosmtplib.SMTPResponseException as e:
                error = DeliveryError(f"{e.code} {e.message}", permanent=e.code >= 500,
                                      code=e.code)
            except (aiosmtplib.SMTPException, OSError) as e:
                error = DeliveryError(str(e))
            else:
                store.mark_sent(row.id)
                report.sent += 1
                if progress:
                    progress(report)
                continue
            if error.permanent:
                store.mark_failed(row.id, str(error))
                report.failed += 1
            else:
                _defer(store, row, str(error), max_attempts, report)
            if not client.is_connected:
                await client.connect()
            if progress:
                progress(report)
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
    return report


def _code(e: aiosmtplib.SMTPRecipientsRefused) -> int | None:
    return e.recipients[0].code if e.recipients else None


def _permanent(e: aiosmtplib.SMTPRecipientsRefused) -> bool:
    return bool(e.recipients) and all(r.code >= 500 for r in e.recipients)


def _defer(store: Store, row: OutboxRow, error: str, max_attempts: int,
           report: DeliveryReport) -> None:
    if row.attempts + 1 >= max_attempts:
        store.mark_failed(row.id, error)
        report.failed += 1
        return
    when = datetime.now(timezone.utc) + timedelta(seconds=backoff(row.attempts + 1))
    store.mark_deferred(row.id, error, when.isoformat(timespec="seconds"))
    report.deferred += 1
    log.warning("digest=%s to=%s deferred error=%r", row.id, row.recipient, error)
