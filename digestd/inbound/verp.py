"""The tokens that name who a message that came back is about: in the address it was sent
to (a VERP return path `bounces+TOKEN@`, a mailto: `unsubscribe+TOKEN@`), in its subject,
and in the headers of our own message that a bounce or a complaint returns."""

from __future__ import annotations

import re
from email.header import Header, decode_header
from email.message import Message
from email.utils import getaddresses

from ..tokens import MailToken, find_mail_tokens, parse_subscriber_value, verify, verify_mail_token

# the headers in which a receiving MTA writes the envelope recipient, most exact first
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
# where our own message, returned inside a bounce or a complaint, names its subscriber
RETURNED_HEADERS = ("Return-Path", "List-Unsubscribe", "X-Original-Return-Path")

_WEB_UNSUB = re.compile(r"/u/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")


def header_text(msg: Message, name: str, *, words: bool = False) -> list[str]:
    """Every value of a header as text; a header the parser cannot decode is left out.
    `words`: RFC 2047 encoded words decoded too ("=?UTF-8?B?...?=" in a subject), and raw
    8-bit text read as UTF-8; not for an address header, whose encoded display name could
    then pass for an address."""
    out = []
    for value in msg.get_all(name, []):
        try:
            out.append(decoded_text(value) if words else str(value))
        except Exception:  # a malformed encoded word: nothing we can read in it
            continue
    return out


def decoded_text(value: object) -> str:
    """A header value as text: RFC 2047 encoded words decoded in their charsets, raw 8-bit
    text (RFC 6532, which Python's parser gives as a Header) read as UTF-8, what cannot be
    read replaced."""
    parts = []
    for chunk, charset in decode_header(value if isinstance(value, (str, Header))
                                        else str(value)):
        if isinstance(chunk, str):
            parts.append(chunk)
            continue
        try:
            parts.append(chunk.decode(charset if charset not in (None, "unknown-8bit")
                                      else "utf-8", "replace"))
        except LookupError:  # a charset Python does not know
            parts.append(chunk.decode("utf-8", "replace"))
    return "".join(parts)


def recipients(msg: Message, recipient: str = "") -> list[str]:
    """The addresses the message was sent to: the envelope recipient the MTA passed
    (`--recipient`) first, then what the recipient headers say."""
    found = [recipient] if recipient else []
    for name in RECIPIENT_HEADERS:
        found += [address for _, address in getaddresses(header_text(msg, name)) if address]
    return found


class Tokens:
    """The tokens found in one message, sorted into those that verify and those that do
    not (forged or cut off)."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.valid: list[MailToken] = []
        self.forged = 0

    def scan(self, text: str) -> None:
        for candidate in find_mail_tokens(text):
            token = verify_mail_token(self.secret, candidate)
            if token is None:
                self.forged += 1
            elif token not in self.valid:
                self.valid.append(token)

    def scan_web_links(self, text: str) -> None:
        """/u/TOKEN links (the one-click unsubscribe URL of List-Unsubscribe) and the
        subject of the mailto: of messages sent before return paths existed."""
        for m in _WEB_UNSUB.finditer(text):
            self.add_web_token(m[1])

    def add_web_token(self, candidate: str) -> None:
        value = verify(self.secret, "unsub", candidate)
        parsed = parse_subscriber_value(value) if value else None
        if parsed is None:
            self.forged += 1
            return
        token = MailToken("unsubscribe", parsed[0])
        if token not in self.valid:
            self.valid.append(token)

    def first(self, kind: str) -> MailToken | None:
        return next((t for t in self.valid if t.kind == kind), None)


def returned_message(msg: Message) -> Message | None:
    """Our own message (or its headers) as a bounce or a complaint returns it."""
    for part in msg.walk():
        if part.get_content_type() in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if part.get_content_type() in ("text/rfc822-headers", "message/global-headers"):
            from email.parser import BytesHeaderParser

            return BytesHeaderParser().parsebytes(part.get_payload(decode=True) or b"")
    return None
