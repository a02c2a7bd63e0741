"""Delivery of queued digests: SMTP through aiosmtplib, or .eml files into an outbox folder.

The package: `sender` (the delivery run: claims, the pool of connections, the outcome of
each message), `marks` (each 250 made durable: the sent journal's marks written to the
store, the group commit on PostgreSQL), `outbox` (the outbox method, the
run's report, the VERP address, the sender's store thread), `smtp` (SMTP
itself: connecting, what a reply means, the doctor's probe), `session` (a connection's
mail transactions, pipelined where the server allows), `journal`
(claim owners, whether one is alive, and the sent journal of the SQLite store). Only this
package talks SMTP; crash safety is explained in `sender`.
"""

from .journal import SentJournal, new_owner, owner_alive
from .marks import GROUP_COMMIT_S, MARKS_EVERY_S, MARKS_PER_WRITE, SentMarks
from .sender import BATCH_PER_CONNECTION, FOLLOW_POLL_S, LEASE_S, SmtpSender, send_smtp
from .outbox import DeliveryReport, StoreThread, verp_address, write_outbox
from .smtp import (
    Outcome,
    Probe,
    RateLimit,
    backoff,
    classify,
    connect,
    probe,
    retry_hint,
    smtp_client,
)
from .session import Session, TransactionFailed

__all__ = ["BATCH_PER_CONNECTION", "DeliveryReport", "FOLLOW_POLL_S", "GROUP_COMMIT_S",
           "LEASE_S", "MARKS_EVERY_S", "MARKS_PER_WRITE", "Outcome", "Probe", "RateLimit",
           "SentJournal", "SentMarks", "Session", "SmtpSender", "StoreThread",
           "TransactionFailed", "backoff", "classify", "connect", "new_owner", "owner_alive",
           "probe", "retry_hint", "send_smtp", "smtp_client", "verp_address", "write_outbox"]
