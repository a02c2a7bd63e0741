"""The message itself: MIME assembly, transfer encodings, header encoding, DKIM signing, and
the short notices (confirmations, preferences links, unsubscribe notices) built as digests
are (RFC 5322, RFC 2045-2047, RFC 6376).

The MIME bytes are assembled here by hand rather than with `email.message`: the stdlib's
quoted-printable encoder is pure Python and costs ~14 ms for a 35 KB body, which would make
rendering the slowest step of the daily cycle. `binascii.b2a_qp` does the same in C.
"""

from __future__ import annotations

import binascii
import functools
import re
import secrets
from datetime import datetime, timezone
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr

import numpy as np

# RFC 6376 lets the signer choose; these are the headers a forger would want to change, plus
# the RFC 8058 pair, which MUST be signed for one-click unsubscribe to be honoured, the
# Feedback-ID that complaints are grouped by, and the MIME headers that say how to read the
# body (a body re-labelled with another Content-Type would still verify otherwise). A header
# a message lacks (List-Id in a confirmation) is signed as absent: it cannot be added later.
DKIM_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
                "List-Unsubscribe-Post", "Feedback-ID", "MIME-Version", "Content-Type")


class DkimSigner:
    """DKIM-signs finished messages (dkimpy, rsa-sha256 or ed25519-sha256, relaxed/relaxed)."""

    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        import dkim  # imported here: only needed when DKIM is configured

        self._dkim = dkim
        self.selector = selector.encode("ascii")
        self.domain = domain.encode("ascii")
        self.key = private_key
        self.algorithm = (b"ed25519-sha256" if b"PRIVATE KEY" not in private_key
                          else b"rsa-sha256")
        # fail at startup, not on the first digest, when the key is unusable
        self.sign(b"From: a@" + self.domain + b"\r\nTo: b@" + self.domain + b"\r\n\r\nx\r\n")

    def sign(self, message: bytes) -> bytes:
        header = self._dkim.sign(message, self.selector, self.domain, self.key,
                                 canonicalize=(b"relaxed", b"relaxed"),
                                 signature_algorithm=self.algorithm,
                                 include_headers=[h.encode() for h in DKIM_HEADERS])
        if not crlf_only(header):  # build_alternative's promise (dkimpy writes CRLF)
            header = LINE_END.sub(b"\r\n", header)
        return header + message


def notice_message(*, from_addr: str, to: str, subject: str, text: str, html: str, kind: str,
                   reply_to: str = "", feedback_id: str = "", dkim: DkimSigner | None = None,
                   now: datetime | None = None) -> tuple[str, bytes]:
    """(Message-ID, RFC 5322 bytes) of a short message that is not a digest (a
    confirmation, a preferences link, an unsubscribe notice), built as digests are: CRLF line
    ends, the same From, Date, Message-ID, Auto-Submitted and Feedback-ID headers, a text and
    an HTML part, DKIM-signed when `dkim` is given. `kind` names it in the Message-ID and
    the Feedback-ID ("confirm", "manage", "unsubscribed")."""
    name, address = parseaddr(from_addr)
    domain = address_domain(address)
    message_id = f"<{safe_token(kind)}.{secrets.token_hex(10)}@{domain}>"
    headers = [
        ("From", address_header(name, address)),
        ("To", address_header("", to)),
        ("Subject", encode_text(subject)),
        ("Date", format_datetime(now or datetime.now(timezone.utc))),
        ("Message-ID", message_id),
    ]
    if reply_to:
        headers.append(("Reply-To", address_header(*parseaddr(reply_to))))
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("Feedback-ID", f"{safe_token(kind)}:notice:digestd:"
                        f"{one_line(feedback_id) or sender_id(domain)}"),
    ]
    raw = build_alternative(headers, text, ascii_html(html), eight_bit=dkim is None)
    if dkim is not None:
        raw = dkim.sign(raw)
    return message_id, raw


@functools.lru_cache(maxsize=64)  # a build stamps all its digests with the same time
def date_header(when: datetime) -> str:
    """The Date header of `when` (RFC 5322 3.3), e.g. "Mon, 30 Nov 2026 07:00:00 +0000"."""
    return format_datetime(when)


def ascii_html(html: str) -> str:
    """`html` in ASCII: other characters as numeric character references (&#252;)."""
    # C speed, and the same document for every HTML parser (the text part keeps its UTF-8)
    return html if html.isascii() else html.encode("ascii", "xmlcharrefreplace").decode("ascii")


# -- MIME ----------------------------------------------------------------------------------------

def build_alternative(headers: list[tuple[str, str]], text: str | bytes, html: str | bytes,
                      *, eight_bit: bool = False) -> bytes:
    """A multipart/alternative message (text first, then HTML) from already-safe headers.
    Each body is a str, or bytes already in UTF-8 with LF line ends only (lf_bytes).

    Bodies are 7bit when they are plain ASCII with short lines, else 8bit UTF-8 when
    `eight_bit` allows it, else quoted-printable (C speed via binascii). The boundary
    starts with "=_", which quoted-printable can never produce, and is checked against
    7bit and 8bit bodies.

    Every line of the message ends in CRLF, and so does the message (RFC 5322 2.1): the
    outbox records that (store.bodies.CRLF) and the sender relies on it. Raises ValueError
    for a header value with a CR or LF that does not start a folded line (a header that
    would be cut in two: a caller's bug, never sent).
    """
    text_cte, text_body = (encode_lines(text, eight_bit=eight_bit) if isinstance(text, bytes)
                           else encode_body(text, eight_bit=eight_bit))
    html_cte, html_body = (encode_lines(html, eight_bit=eight_bit) if isinstance(html, bytes)
                           else encode_body(html, eight_bit=eight_bit))
    boundary = "=_digestd_" + secrets.token_hex(12)
    marker = boundary.encode("ascii")
    while marker in text_body or marker in html_body:  # pragma: no cover - 2**-96
        boundary = "=_digestd_" + secrets.token_hex(12)
        marker = boundary.encode("ascii")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    if not crlf_only(head) or any(_UNFOLDED.search(value) for _, value in headers
                                  if "\r" in value):
        raise ValueError("a header value has a line end that does not fold it")
    head += ("MIME-Version: 1.0\r\n"
             f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n')
    return b"".join((
        head.encode("ascii"),
        b"--", marker, b"\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
        b"Content-Transfer-Encoding: ", text_cte, b"\r\n\r\n", text_body, b"\r\n",
        b"--", marker, b"\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
        b"Content-Transfer-Encoding: ", html_cte, b"\r\n\r\n", html_body, b"\r\n",
        b"--", marker, b"--\r\n",
    ))


def encode_body(text: str, *, eight_bit: bool = False) -> tuple[bytes, bytes]:
    """(Content-Transfer-Encoding, body bytes with CRLF line ends and lines <= 998 octets):
    7bit for ASCII, 8bit UTF-8 where `eight_bit` allows (RFC 6152), else quoted-printable;
    any line longer than RFC 5322 2.1.1's 998 octets, or a NUL, makes it quoted-printable."""
    return encode_lines(lf_bytes(text), eight_bit=eight_bit)


def lf_bytes(text: str) -> bytes:
    """`text` in UTF-8 with every line end a LF (a CRLF or a lone CR made one): what
    encode_lines takes. Pieces made with it can be joined into a body (lines may be cut
    anywhere but inside a CRLF, which no piece has any more)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.encode("utf-8")


def encode_lines(data: bytes, *, eight_bit: bool = False) -> tuple[bytes, bytes]:
    """encode_body of a body already in UTF-8 with LF line ends and no CR (lf_bytes, or
    pieces of it joined): the same (Content-Transfer-Encoding, body bytes).

    The lines are measured as bytes, at C speed (lines_fit)."""
    if b"\0" not in data and lines_fit(data, 998):
        if data.isascii():
            return b"7bit", data.replace(b"\n", b"\r\n")
        if eight_bit:
            return b"8bit", data.replace(b"\n", b"\r\n")
    # b2a_qp keeps the CRLF line ends it finds, encodes "=", non-ASCII bytes and trailing
    # white space, and soft-breaks lines at 76 characters
    body = binascii.b2a_qp(data.replace(b"\n", b"\r\n"), istext=True)
    if b"\r\n" not in body:
        # no line end to copy (a one-line body): b2a_qp soft-breaks with a bare LF
        body = body.replace(b"\n", b"\r\n")
    if not crlf_only(body + b"\r\n"):  # b2a_qp's line ends, made sure of (a rare path)
        body = LINE_END.sub(b"\r\n", body)
    return b"quoted-printable", body


def lines_fit(data: bytes, limit: int) -> bool:
    """Whether no line of `data` (lines end in LF, which is not counted) is longer than
    `limit` bytes.

    A line longer than `limit` holds a whole cell of the grid of cells of (limit + 1) // 2
    bytes from the start of `data`: so if every cell holds a LF, no line is too long, and
    that is one bytes.find per cell (~8 us for a 30 KB digest, where longest_line's numpy
    calls take ~30). Only a cell without a LF has longest_line measure the lines."""
    step = max((limit + 1) // 2, 1)
    find = data.find
    for start in range(0, len(data) - step + 1, step):
        if find(b"\n", start, start + step) < 0:
            return longest_line(data) <= limit
    return True


def longest_line(data: bytes) -> int:
    """The length in bytes of the longest line of `data` (lines end in LF, which is not
    counted)."""
    if len(data) <= 998:  # nothing to find: no line can be longer than the whole
        return max(map(len, data.split(b"\n")))
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    if not len(ends):
        return len(data)
    # each line runs from after one LF to the next: the first from 0, the last to the end
    inner = int(np.diff(ends).max()) - 1 if len(ends) > 1 else 0
    return max(int(ends[0]), inner, len(data) - int(ends[-1]) - 1)


LINE_END = re.compile(rb"\r\n|\r|\n")  # any line end, to make it CRLF
_UNFOLDED = re.compile(r"\r\n(?![ \t])")  # a line end in a header value that starts a header


def crlf_only(data: str | bytes) -> bool:
    """Whether every CR and LF in `data` is part of a CRLF and `data` ends in one (three
    scans at C speed: ~0.09 ms for 38 KB): how SMTP carries a message (RFC 5321 2.3.8)."""
    cr, lf, crlf = ("\r", "\n", "\r\n") if isinstance(data, str) else (b"\r", b"\n", b"\r\n")
    ends = data.count(crlf)
    return data.count(lf) == ends and data.count(cr) == ends and data.endswith(crlf)


def to_7bit(message: bytes) -> bytes:
    """The message with its 8bit parts made quoted-printable, for a server that does not
    announce 8BITMIME (RFC 6152 forbids sending 8bit data to it). Rare, so the stdlib's
    parser does the walking; the text of every part stays the same."""
    if message.isascii():
        return message
    import email
    import email.policy

    msg = email.message_from_bytes(message, policy=email.policy.SMTP)
    for part in msg.walk():
        if part.is_multipart() or part.get("Content-Transfer-Encoding", "").lower() != "8bit":
            continue
        body = part.get_payload(decode=True).replace(b"\r\n", b"\n")
        part.set_payload(binascii.b2a_qp(body, istext=True).decode("ascii"))
        part.replace_header("Content-Transfer-Encoding", "quoted-printable")
    return msg.as_bytes()


# -- headers ------------------------------------------------------------------------------------

_ADDR = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[A-Za-z0-9.-]+")


def check_address(address: str) -> str:
    """Refuse anything that is not a plain addr-spec: no CR/LF, spaces or brackets can slip
    through into a header or the SMTP envelope."""
    if not _ADDR.fullmatch(address) or not address.isascii():
        raise ValueError(f"not a usable email address: {address!r}")
    return address


def address_header(name: str, address: str) -> str:
    """`Name <addr>` with the name quoted or RFC 2047-encoded as needed; CR/LF never survive."""
    check_address(address)
    name = one_line(name)
    if not name:
        return address
    return _fold(formataddr((name, address), charset="utf-8"))


def encode_text(text: str) -> str:
    """Unstructured header text on one line, RFC 2047-encoded when not ASCII."""
    text = one_line(text)
    if text.isascii() and len(text) < 900:
        return text
    return _fold(Header(text, "utf-8").encode())


def _fold(value: str) -> str:
    # email.header folds with bare "\n "; on the wire a header continues after CRLF + space
    return value.replace("\r\n", "\n").replace("\n", "\r\n")


def one_line(text: str) -> str:
    """User-supplied header text on one line: CR/LF can never start a new header."""
    return re.sub(r"[\r\n\t\x00-\x1f\x7f\u2028\u2029\x85]+", " ", text).strip()


def sender_id(domain: str) -> str:
    """The Feedback-ID sender id made from the From domain: its first label, 5 to 15
    characters as Google advises ("example" for example.org, "ab-mail" for ab.io)."""
    label = re.sub(r"[^a-z0-9-]", "", domain.lower().partition(".")[0])[:15] or "digestd"
    return label if len(label) >= 5 else f"{label}-mail"


def address_domain(address: str) -> str:
    """The domain of an address, for Message-IDs and List-Id; "localhost" if unusable."""
    domain = address.rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9.-]+", domain or "") else "localhost"


def safe_token(text: str) -> str:
    """`text` with anything but letters, digits, "." and "-" made "-" (for Message-IDs)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text)
