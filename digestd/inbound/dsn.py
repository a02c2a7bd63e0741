"""Bounces: delivery status notifications (RFC 3464) read field by field, and the
non-standard bounces of real MTAs and providers through flufl.bounce."""

from __future__ import annotations

import base64
import logging
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.policy import compat32
from email.utils import parseaddr

from ..deliver.smtp import MAILBOX_FULL, reply_kind, status_kind
from .verp import decoded_text

log = logging.getLogger("digestd.inbound")

# an enhanced status code (RFC 3463), not a piece of an IP address or a version ("4.97.1")
_STATUS = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# the reply a Diagnostic-Code quotes: "smtp; 550 5.1.1 <a@b>: ...", "smtp;552 sorry, ..."
_REPLY = re.compile(r"^\s*(?:[\w-]+\s*;\s*)?([45]\d\d)(?:[ -]|$)(.*)", re.DOTALL)
STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")


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
    5.4.x, never X.2.2, X.2.3, X.1.7, X.1.8, X.4.2, X.4.3 or X.4.5)."""
    m = _STATUS.search(status)
    return bool(m) and m[1] == "5" and status_kind(m[2], m[3]) == "bounced"


def policy_status(status: str) -> bool:
    """A 5.x.x status that refused the message for a reason that is not the address:
    security or policy (X.7.x: a blocklist, DMARC), a message too big (X.2.3, X.3.4), our
    sender's address (X.1.7, X.1.8), the mail system, routing or the protocol (X.3.x, X.4.2,
    X.4.3, X.4.5, X.5.x, X.6.x). Not a full mailbox (X.2.2), which the relay keeps trying."""
    m = _STATUS.search(status)
    return bool(m) and m[1] == "5" and status_kind(m[2], m[3]) != "bounced" and (
        m[2], m[3]) != ("2", "2")


def read_dsn(msg: Message) -> list[Failure]:
    """The recipients of a delivery-status report that failed (Action: failed) or are delayed
    (Action: delayed); "delivered", "relayed" and "expanded" are success notices."""
    failures = []
    for part in msg.walk():
        if part.get_content_type() not in STATUS_TYPES:
            continue
        blocks = _status_blocks(part)
        for block in blocks[1:] if len(blocks) > 1 else blocks:  # [0]: the per-message fields
            action = _field(block, "action").lower()
            if not action.startswith(("failed", "delayed", "error")):
                continue
            m = _STATUS.search(_field(block, "status"))
            status = m.group(0) if m else ""
            address = _recipient(block)
            diagnostic = " ".join(_field(block, "diagnostic-code").split())[:300]
            if not action.startswith(("failed", "error")):
                failures.append(Failure(address, status or "4.0.0", False, diagnostic))
                continue
            status, kind = _failed(status, diagnostic)
            failures.append(Failure(address, status, kind == "bounced", diagnostic,
                                    kind == "failed"))
    return failures


def _failed(status: str, diagnostic: str) -> tuple[str, str]:
    """(the status, what it says: "bounced", "failed" or "deferred") of a recipient whose
    Action is failed. A specific Status says it; a generic one (X.0.0: Exim writes 5.0.0 for
    every failure, Postfix when the reply had no enhanced code) or none leaves it to the
    reply in Diagnostic-Code, read as deliver.classify reads one at RCPT: its enhanced code,
    else its reply code (552 a full mailbox, 550, 551 and 553 the address, any other 5xx
    not the address, 4xx temporary)."""
    m = _STATUS.search(status)
    if m and m[2] != "0":
        return status, _status_says(status)
    reply = _REPLY.match(diagnostic)
    enhanced = _STATUS.match(reply[2].lstrip()) if reply else _STATUS.search(diagnostic)
    if enhanced:
        status, kind = enhanced.group(0), _status_says(enhanced.group(0))
    elif reply:
        kind = reply_kind(int(reply[1]), reply[2])
        status = status or f"{reply[1][0]}.0.0"
    else:
        kind = "deferred" if m and m[1] == "4" else "bounced"
        status = status or "5.0.0"
    if kind == "bounced" and _mailbox_full(diagnostic):
        kind = "deferred"  # a full mailbox, however it is coded
    return status, kind


def _status_says(status: str) -> str:
    """"bounced" (permanent_status), "failed" (policy_status) or "deferred" (4.x.x, X.2.2)."""
    return ("bounced" if permanent_status(status) else "failed" if policy_status(status)
            else "deferred")


def _status_blocks(part: Message) -> list[Message]:
    """The field blocks of a delivery-status part. Its body is read again from the part as
    sent: Python parses message/global-delivery-status (RFC 6533) as one message, with the
    per-recipient fields in its body, and a part that is base64 or quoted-printable
    (against RFC 3464, but some MTAs send one) as fields that are still encoded."""
    try:
        body = part.as_bytes().replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    except Exception:  # noqa: BLE001  (one the generator cannot write back)
        payload = part.get_payload()  # what the parser made of it
        return [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) \
            else []
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "quoted-printable":
        body = quopri.decodestring(body)
    elif encoding == "base64":  # each encoded chunk: some encode only the recipients' blocks
        body = b"\n\n".join(_unbase64(chunk) for chunk in re.split(rb"\n\s*\n", body))
    return _header_blocks(body)


def _unbase64(chunk: bytes) -> bytes:
    if re.fullmatch(rb"[A-Za-z0-9+/=\s]+", chunk):
        try:
            return base64.b64decode(b"".join(chunk.split()), validate=True).replace(
                b"\r\n", b"\n")
        except ValueError:
            pass
    return chunk


def _header_blocks(body: bytes) -> list[Message]:
    from email.parser import BytesHeaderParser

    return [BytesHeaderParser(policy=compat32).parsebytes(chunk + b"\n")
            for chunk in re.split(rb"\n\s*\n", body) if chunk.strip()]


def _field(block: Message, name: str) -> str:
    """A field as text; one in raw UTF-8 (RFC 6533) with what cannot be read replaced."""
    value = block.get(name, "")
    return value if isinstance(value, str) else decoded_text(value)


def _recipient(block: Message) -> str:
    for field in ("original-recipient", "final-recipient", "x-actual-recipient"):
        value = _field(block, field)
        kind, _, address = value.partition(";")
        if address.strip() and kind.strip().lower() in ("rfc822", "utf-8"):
            return parseaddr(address.strip())[1].lower()
    return ""


def _mailbox_full(text: str) -> bool:
    return bool(MAILBOX_FULL.search(text))


def scan_bounce(msg: Message, raw: bytes | None = None) -> list[Failure]:
    """A bounce in one of the non-standard forms (Exim's, qmail's, old Exchange's, a
    provider's text): flufl.bounce finds the addresses (its detectors read `raw` again with
    headers of plain text, when given); where none of them knows the form (old Exchange in
    French, a provider's own words), the addresses the notification's text names, but only
    when it gives a status code. Either way the caller counts no address but a subscriber's
    (inbound._bounce): these are guesses from text.

    The status comes from the text, as the form has no field for it: its first 5.x.x code,
    else 5.0.0. A delay warning (Exim's "has not yet been delivered", "will keep trying"),
    a text whose only codes are 4.x.x, and one that says X.2.2 or "mailbox full" are
    temporary."""
    temporary, permanent = _detected(_plain(raw) if raw is not None else msg)
    text = notification_text(msg)
    codes = [m.group(0) for m in _STATUS.finditer(text) if m[1] in "45"]
    found = {a.decode("ascii", "replace").lower() for a in permanent}
    if not (temporary or permanent):
        if not codes:
            return []
        found = {a.lower() for a in _ADDRESS.findall(text)[:20]}
    first = {cls: next((c for c in codes if c[0] == cls), "") for cls in "45"}
    if _delay_notice(msg, text) or (first["4"] and not first["5"]):
        status, kind = first["4"] or "4.0.0", "deferred"
    else:
        status = first["5"] or "5.0.0"
        kind = _status_says(status)
        if kind == "bounced" and _mailbox_full(text):
            kind = "deferred"
    failures = [Failure(a, status, kind == "bounced", refused=kind == "failed")
                for a in sorted(found)]
    failures += [Failure(a.decode("ascii", "replace").lower(), first["4"] or "4.0.0", False)
                 for a in sorted(temporary - permanent)]
    return failures


def _plain(raw: bytes) -> Message:
    """The message again, its headers plain text: flufl.bounce's detectors call str methods
    on them, and Python's parser gives a header of raw 8-bit text (a UTF-8 display name,
    RFC 6532) as an email.header.Header."""
    from email import message_from_string

    return message_from_string(raw.decode("utf-8", "replace"), policy=compat32)


def _detected(msg: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """(temporary, permanent) failed addresses by flufl.bounce's detectors, in its order,
    the first that finds any answering, as its all_failures has it; but each on its own: one
    that raises on a message it did not expect (an empty From) is skipped, where
    all_failures would raise and leave nothing of the whole scan."""
    detectors = _detectors()
    if detectors is None:  # a flufl.bounce that keeps them elsewhere: its own loop
        return _all_failures(msg)
    for detector in detectors:
        try:
            temporary, permanent = detector().process(msg)
        except Exception as e:  # noqa: BLE001  (a detector's bug is not the message's)
            log.debug("event=inbound_detector_failed detector=%s error=%s",
                      getattr(detector, "__name__", "?"), type(e).__name__)
            continue
        if temporary or permanent:
            return frozenset(temporary), frozenset(permanent)
    return frozenset(), frozenset()


def _detectors() -> list[type] | None:
    """flufl.bounce's detector classes, in the order its all_failures runs them; None for
    a version that keeps them elsewhere (its list is not public API)."""
    try:
        from flufl.bounce._scan import _DETECTORS
    except ImportError:
        return None
    return list(_DETECTORS)


def _all_failures(msg: Message) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """flufl.bounce's own all_failures: all or nothing (one detector that raises loses the
    scan), but without the ERROR and traceback it logs for that."""
    from flufl.bounce import all_failures

    flufl_log = logging.getLogger("flufl.bounce")
    flufl_log.addFilter(_no_traceback)
    try:
        return all_failures(msg)
    except Exception as e:  # noqa: BLE001
        log.debug("event=inbound_scan_failed error=%s", type(e).__name__)
        return frozenset(), frozenset()
    finally:
        flufl_log.removeFilter(_no_traceback)


def _no_traceback(record: logging.LogRecord) -> bool:
    return record.exc_info is None


def notification_text(msg: Message, limit: int = 100_000) -> str:
    """The text of a bounce that is its own, for status codes and the addresses it names:
    its text parts (HTML only where it has no plain text), each in its charset, up to the
    returned message (a message/* part, or a line that says the copy follows)."""
    plain, html = [], []
    for part in msg.walk():
        if part.get_content_maintype() == "message":
            break
        if part.get_content_type() not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload[:limit].decode(charset, "replace")
        except LookupError:  # a charset Python does not know
            text = payload[:limit].decode("utf-8", "replace")
        if part.get_content_type() == "text/plain":
            plain.append(text)
        else:
            html.append(re.sub(r"<[^>]*>", " ", text))
    text = "\n".join(plain or html)
    m = _RETURNED.search(text)
    return text[:m.start()] if m else text


def _delay_notice(msg: Message, text: str) -> bool:
    """A warning that a message is not delivered yet, not a failure."""
    from .verp import header_text

    subject = " ".join(header_text(msg, "Subject", words=True))
    return bool(_DELAY_SUBJECT.search(subject) or _DELAY.search(text))


_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
# where a bounce in one text part goes on with a copy of the message that bounced
_RETURNED = re.compile(r"^[ \t]*-{2,}.*(copy of|original message|below this line|"
                       r"returned (mail|message)|message follows|headers follow)|"
                       r"^(return-path|received):", re.IGNORECASE | re.MULTILINE)
_DELAY = re.compile(r"not yet been delivered|(not|n't) been delivered( to \S+)? yet|"
                    r"will (keep|continue) trying|delivery attempts will continue|"
                    r"continue to be attempted|still being retried|will be retried|"
                    r"this is a warning (message )?only|no action is required",
                    re.IGNORECASE)
# Exim's and sendmail's "Warning: ...", Postfix's, Exchange's, Gmail's (of the bounce, not
# of the message it returns, which follows)
_DELAY_SUBJECT = re.compile(r"^\s*(warning\b|delayed mail|delivery delayed|"
                            r"delivery status notification \(delay\))", re.IGNORECASE)
