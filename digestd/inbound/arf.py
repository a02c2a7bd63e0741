"""Complaints: abuse reports in the Abuse Reporting Format (RFC 5965), as Yahoo, AOL,
Microsoft (JMRP) and others send them through their feedback loops."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from .dsn import is_report


@dataclass(frozen=True)
class Complaint:
    feedback_type: str  # "abuse", "fraud", "not-spam", ... (RFC 5965 7.3), lowercase
    original_mail_from: str  # the envelope sender of our message: the VERP return path
    original_rcpt_to: str  # often redacted by the provider


def read_complaint(msg: Message) -> Complaint | None:
    """The machine-readable part of a feedback report; None if `msg` is not one."""
    if not is_report(msg, "feedback-report"):
        return None
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        fields = part.get_payload()
        if isinstance(fields, list) and fields:  # the parser reads it as one header block
            block = fields[0]
        else:
            from email.parser import BytesHeaderParser

            block = BytesHeaderParser().parsebytes(part.get_payload(decode=True) or b"")
        return Complaint(str(block.get("feedback-type", "")).strip().lower(),
                         str(block.get("original-mail-from", "")),
                         str(block.get("original-rcpt-to", "")))
    return Complaint("", "", "")
