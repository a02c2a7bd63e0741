"""Bounces: delivery status notifications (RFC 3464) read field by field, and the
non-standard bounces of real MTAs and providers through flufl.bounce."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import parseaddr

from ..deliver.smtp import status_kind

log = logging.getLogger("digestd.inbound")

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce reports on."""

    address: str  # lowercase; '' when the report does not name one
    status: str  # the enhanced status code (RFC 3463), "5.1.1"; '' when unknown
    permanent: bool  # counts as a hard bounce of the address (permanent_status)
    diagnostic: str = ""  # the remote server's words, for the row's last_error
    refused: bool = False  # failed for a reason not the address (policy_status): not counted


def is_report(msg: Message, report_type: str) -> bool:
    """A multipart/report (RFC 6522) of `report_type` (delivery-status, feedback-report)."""
    return (msg.get_content_type() == "multipart/report"
            and msg.get_param("report-type", "", header="content-type").lower() == report_type)


def permanent_status(status: str) -> bool:
    """Whether a DSN's status counts as a hard bounce of the address: a 5.x.x status that
    deliver.classify would count at RCPT (deliver.smtp.status_kind: 5.0.x, 5.1.x, 5.2.x,
    5.4.x, never X.2.2, X.2.3, X.1.7 or X.1.8)."""
    m = _STATUS.search(status)
    return bool(m) and m[1] == "5" and status_kind(m[2], m[3]) == "bounced"


def policy_status(status: str) -> bool:
    """A 5.x.x status that refused the message for a reason that is not the address:
    security or policy (X.7.x: a blocklist, DMARC), a message too big (X.2.3, X.3.4), our
    sender's address (X.1.7, X.1.8), the mail system or the protocol (X.3.x, X.5.x, X.6.x).
    Not a full mailbox (X.2.2), which the relay keeps trying."""
    m = _STATUS.search(status)
    return bool(m) and m[1] == "5" and status_kind(m[2], m[3]) != "bounced" and (
        m[2], m[3]) != ("2", "2")


def read_dsn(msg: Message) -> list[Failure]:
    """The recipients of a delivery-status report that failed (Action: failed) or are delayed
    (Action: delayed); "delivered", "relayed" and "expanded" are success notices."""
    failures = []
    for part in msg.walk():
        if part.get_content_type() not in ("message/delivery-status",
                                           "message/global-delivery-status"):
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):  # a body the parser did not split into blocks
            blocks = _header_blocks(part.get_payload(decode=True) or b"")
        for block in blocks[1:] if len(blocks) > 1 else blocks:  # [0]: the per-message fields
            action = str(block.get("action", "")).strip().lower()
            if not action.startswith(("failed", "delayed", "error")):
                continue
            m = _STATUS.search(str(block.get("status", "")))
            status = m.group(0) if m else ""
            address = _recipient(block)
            diagnostic = " ".join(str(block.get("diagnostic-code", "")).split())[:300]
            failed = action.startswith(("failed", "error"))
            permanent = failed and (
                permanent_status(status) if status else not _mailbox_full(diagnostic))
            failures.append(Failure(address, status or ("5.0.0" if permanent else "4.0.0"),
                                    permanent, diagnostic, failed and policy_status(status)))
    return failures


def _header_blocks(body: bytes) -> list[Message]:
    from email.parser import BytesHeaderParser

    text = body.replace(b"\r\n", b"\n")
    return [BytesHeaderParser().parsebytes(chunk + b"\n")
            for chunk in re.split(rb"\n\s*\n", text) if chunk.strip()]


def _recipient(block: Message) -> str:
    for field in ("original-recipient", "final-recipient", "x-actual-recipient"):
        value = str(block.get(field, ""))
        kind, _, address = value.partition(";")
        if address.strip() and kind.strip().lower() in ("rfc822", "utf-8"):
            return parseaddr(address.strip())[1].lower()
    return ""


def _mailbox_full(text: str) -> bool:
    return bool(re.search(r"\b[45]\.2\.2\b|mailbox (is )?full|over ?quota|quota exceeded",
                          text, re.IGNORECASE))


def scan_bounce(msg: Message) -> list[Failure]:
    """A bounce in one of the non-standard forms (Exim's, qmail's, old Exchange's, a
    provider's text): flufl.bounce finds the addresses; the status comes from the text, as
    the form has no field for it. A text that says X.2.2 or "mailbox full" is temporary."""
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(msg)
    except Exception as e:  # a detector that chokes on a strange message: nothing found
        log.debug("event=inbound_scan_failed error=%r", type(e).__name__)
        return []
    text = _text_of(msg)
    full = _mailbox_full(text)
    m = _STATUS.search(text)
    status = m.group(0) if m and m[1] == "5" else "5.0.0"
    failures = [Failure(a.decode("ascii", "replace").lower(), status,
                        not full and permanent_status(status),
                        refused=not full and policy_status(status))
                for a in sorted(permanent)]
    failures += [Failure(a.decode("ascii", "replace").lower(), "4.0.0", False)
                 for a in sorted(temporary - permanent)]
    return failures


def _text_of(msg: Message, limit: int = 100_000) -> str:
    """The text parts of a message (not the returned original), for status codes."""
    out = []
    for part in msg.walk():
        if part.get_content_maintype() == "message":
            break
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            out.append(payload[:limit].decode("utf-8", "replace"))
    return "\n".join(out)
