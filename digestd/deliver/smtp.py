"""SMTP itself: connecting as configured, one transaction step by step (DATA at C speed),
what a reply means for the message (classify), the shared rate limit, and the doctor's
probe that stops before MAIL FROM.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass, field

import aiosmtplib

from ..config import SmtpConfig

def backoff(attempts: int, base: float = 60.0, cap: float = 6 * 3600.0) -> float:
    """Seconds before the next attempt: 1, 2, 4 ... minutes, at most 6 hours."""
    return min(cap, base * 2 ** max(0, attempts - 1))



def smtp_client(smtp: SmtpConfig) -> aiosmtplib.SMTP:
    """An unconnected client for the configured server, security and timeouts."""
    context = None
    if smtp.security != "none":
        context = ssl.create_default_context(cafile=smtp.ca_file or None)
    return aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
                           use_tls=smtp.security == "tls",
                           start_tls=smtp.security == "starttls", tls_context=context)


async def connect(smtp: SmtpConfig) -> aiosmtplib.SMTP:
    """Connect, EHLO, STARTTLS and log in as configured."""
    client = smtp_client(smtp)
    await client.connect()
    try:
        if client.is_ehlo_or_helo_needed:
            # now, not at the first MAIL: SIZE and 8BITMIME are asked for before it
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError as e:
                if e.code == 421 or not client.is_connected:
                    raise  # the server is closing the connection: its own words, not HELO's
                await client.helo()
        if smtp.username:
            await client.login(smtp.username, smtp.password)
    except BaseException:
        client.close()
        raise
    return client


class RateLimit:
    """At most `per_second` starts per second, shared by every connection (0: no limit)."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


@dataclass(frozen=True)
class Outcome:
    """What the server said about one message."""

    kind: str  # "sent", "deferred", "failed", "bounced"; "again": a new connection takes it
    error: str = ""


# an enhanced status code (RFC 3463) at the start of a reply line: "5.1.1", or on a later line
# of a multi-line reply ("Message rejected" / "5.7.1 Sender blocked by policy")
_ENHANCED = re.compile(r"(?m)^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


def classify(stage: str, e: BaseException) -> Outcome:
    """Map an SMTP error at `stage` (MAIL, RCPT, DATA) to what we do about it, by the
    enhanced status code (RFC 3463) where the reply has one, else by the reply code.

    - 4xx, timeouts and dropped connections: deferred (retried with backoff).
    - MAIL FROM: our sender, the same for every message, so deferred (a fixed config still
      delivers); except a message too big for the server (552, RFC 1870; X.3.4), which no
      retry sends: failed.
    - Deferred however coded: a full mailbox (X.2.2, and 552 without an enhanced code: RFC
      5321 4.5.3.1.10 reads 552 to RCPT as 452); our sender's address refused (X.1.7,
      X.1.8: a configuration to fix).
    - Failed without blaming the address: security or policy (X.7.x: a blocklist, DMARC,
      relaying denied), a message too big (X.2.3, X.3.4), the mail system or the protocol
      (X.3.x, X.5.x, X.6.x), and without an enhanced code anything but 550, 551 and 553.
    - A hard bounce (the address is refused; counted towards `bouncing`): X.1.x, X.2.x and,
      to RCPT, X.4.x (5.4.1 "recipient address rejected", 5.4.4 "unable to route") and
      X.0.x (undefined); without an enhanced code 550, 551 and 553.
    """
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return Outcome(reply_kind(e.code, e.message, stage=stage),
                       f"{stage} {e.code} {_one_line(e.message)}")
    return Outcome("deferred", f"{stage} {type(e).__name__}: {_one_line(str(e))}".rstrip(": "))


def reply_kind(code: int, text: str, *, stage: str = "RCPT") -> str:
    """What a reply (its code, and its text after the code) to `stage` says of the message,
    by classify's rules: "deferred", "failed" or "bounced". Also for the reply a DSN quotes
    in its Diagnostic-Code (inbound/dsn.py), read as an answer to RCPT."""
    if code < 500:
        return "deferred"
    m = _ENHANCED.search(text)
    status = (m[2], m[3]) if m and m[1] == "5" else None
    if stage == "MAIL":
        too_big = code == 552 or status == ("3", "4")
        return "failed" if too_big else "deferred"
    if status is None:
        return "deferred" if code == 552 else "bounced" if code in (550, 551, 553) else "failed"
    return status_kind(*status, to_recipient=stage == "RCPT")


def status_kind(subject: str, detail: str, *, to_recipient: bool = True) -> str:
    """What a permanent enhanced status 5.SUBJECT.DETAIL (RFC 3463) says of a message, for
    classify and for the bounces read back (inbound/dsn.py): "deferred" (a full mailbox,
    X.2.2; our sender's address, X.1.7 and X.1.8), "failed" without blaming the address (a
    message too big, X.2.3 and X.3.4; policy X.7.x; the mail system and the protocol), or
    "bounced", the address refused: X.1.x, X.2.x and, `to_recipient` (an answer to RCPT, a
    DSN), X.4.x and X.0.x."""
    if (subject, detail) in (("2", "2"), ("1", "7"), ("1", "8")):
        return "deferred"
    if (subject, detail) in (("2", "3"), ("3", "4")):
        return "failed"
    blamed = ("0", "1", "2", "4") if to_recipient else ("1", "2")
    return "bounced" if subject in blamed else "failed"


def connect_failure(e: BaseException) -> str:
    """Why connecting failed, said once: "Connection refused", "Name or service not known",
    a timeout... (aiosmtplib's SMTPConnectError repeats the host and port, then the
    socket's error in asyncio's words)."""
    cause = e if isinstance(e, OSError) and not isinstance(e, aiosmtplib.SMTPException) \
        else e.__cause__
    if isinstance(cause, socket.gaierror) and cause.strerror:
        return cause.strerror  # a name that does not resolve
    if isinstance(cause, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        return _one_line(str(cause)) or type(cause).__name__
    if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
        return os.strerror(cause.errno)  # refused, unreachable, reset ...
    text = re.sub(r"^Error connecting to \S+ on port \d+: ", "", str(e))
    return _one_line(text) or type(e).__name__


def _one_line(text: str) -> str:
    """A server's reply text on one line, at most 300 characters, as valid UTF-8 (aiosmtplib
    decodes replies with surrogateescape: a Latin-1 "sp\xe4ter" could be neither stored nor
    logged)."""
    text = str(text)
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())[:300]



# what cannot stand in an envelope address on a command line: white space (CR and LF too),
# angle brackets, quotes, control characters (digestd's addresses are checked at subscribe
# time; this keeps a bad one from ever reaching the server)
_NOT_IN_PATH = re.compile(r'[\s<>"\x00-\x1f\x7f]')


def envelope_path(address: str) -> bytes:
    """`address` as the path of MAIL FROM or RCPT TO (RFC 5321 4.1.2): b"<local@domain>",
    ASCII. Raises ValueError for an address that cannot go on an SMTP command line (white
    space, angle brackets, quotes, control or non-ASCII characters). aiosmtplib's mail()
    and rcpt() parse each address again with email.utils (~20 us a message each); digestd's
    are plain addresses already."""
    if not address or not address.isascii() or _NOT_IN_PATH.search(address):
        raise ValueError(f"the address {address!r} cannot go on an SMTP command line")
    return b"<" + address.encode("ascii") + b">"


async def mail_from(client: aiosmtplib.SMTP, path: bytes, options: list[bytes]) -> None:
    """MAIL FROM:`path` (envelope_path) with ESMTP `options`; raises SMTPSenderRefused
    unless the server answers 250, as aiosmtplib's mail() does."""
    response = await client.execute_command(b"MAIL", b"FROM:" + path, *options)
    if response.code != 250:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message,
                                           path.decode("ascii"))


async def rcpt_to(client: aiosmtplib.SMTP, path: bytes) -> None:
    """RCPT TO:`path`; raises SMTPRecipientRefused unless the server answers 250 or 251
    (RFC 5321 4.2.2), as aiosmtplib's rcpt() does."""
    response = await client.execute_command(b"RCPT", b"TO:" + path)
    if response.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message,
                                              path.decode("ascii"))


async def send_data(client: aiosmtplib.SMTP, message: bytes,
                    done_timeout: float | None = None) -> None:
    """The DATA command and the message. aiosmtplib's data() runs two regular expressions
    over the whole body (line ends, then dot-stuffing), ~0.4 ms for a 30 KB digest, a third
    of the sender's CPU. A message whose every line ends in CRLF, as render.py builds them,
    needs only the dot-stuffing, which one bytes.replace does at C speed; any other
    message goes through data() itself. The answer to the final "." is awaited for
    `done_timeout` seconds (smtp.data_timeout; RFC 5321 4.5.3.2.6 says 10 minutes: a
    message the server took but answered late would be sent again)."""
    protocol = client.protocol
    crlf = message.count(b"\r\n")
    if (protocol is None or message.count(b"\n") != crlf or message.count(b"\r") != crlf
            or not message.endswith(b"\r\n")):
        await client.data(message, timeout=done_timeout)
        return
    if message.startswith(b"."):
        message = b"." + message
    response = await client.execute_command(b"DATA")
    if response.code != 354:
        raise aiosmtplib.SMTPDataError(response.code, response.message)
    try:
        protocol.write(message.replace(b"\r\n.", b"\r\n.."))
        protocol.write(b".\r\n")
        response = await protocol.read_response(timeout=done_timeout or client.timeout)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
        client.close()  # as data() does: the session is out of step
        raise
    if response.code != 250:
        raise aiosmtplib.SMTPDataError(response.code, response.message)


async def _quit(client: aiosmtplib.SMTP) -> None:
    if client.is_connected:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()


# -- doctor ----------------------------------------------------------------------------------------

@dataclass
class Probe:
    """What talking to the SMTP server showed, step by step; no mail is sent."""

    steps: list[tuple[str, bool, str]] = field(default_factory=list)  # (step, ok, detail)
    banner: str = ""
    extensions: dict[str, str] = field(default_factory=dict)  # advertised after TLS/AUTH
    auth_methods: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.steps)


async def probe(smtp: SmtpConfig) -> Probe:
    """Connect, EHLO, STARTTLS and AUTH as configured, and QUIT before any MAIL FROM."""
    result = Probe()
    context = ssl.create_default_context(cafile=smtp.ca_file or None) \
        if smtp.security != "none" else None
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
                             use_tls=smtp.security == "tls", start_tls=False,
                             tls_context=context)
    where = f"{smtp.host}:{smtp.port}"
    try:
        response = await client.connect()
    except (aiosmtplib.SMTPException, OSError) as e:
        result.steps.append(("connect", False, f"{where}: {connect_failure(e)}"))
        return result
    try:
        result.banner = _one_line(response.message)
        tls = " over TLS" if smtp.security == "tls" else ""
        result.steps.append(("connect", True, f"{where}{tls}: {response.code} {result.banner}"))
        await _ehlo(client, result, "EHLO")
        if smtp.security == "starttls":
            if not client.supports_extension("starttls"):
                result.steps.append(("STARTTLS", False, "the server does not offer STARTTLS "
                                     '(set security = "none" only on a trusted network)'))
                return result
            try:
                await client.starttls()
            except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as e:
                result.steps.append(("STARTTLS", False, _one_line(str(e))))
                return result
            result.steps.append(("STARTTLS", True, _tls_info(client)))
            await _ehlo(client, result, "EHLO after STARTTLS")
        elif smtp.security == "tls":
            result.steps.append(("TLS", True, _tls_info(client)))
        if smtp.username:
            try:
                await client.login(smtp.username, smtp.password)
            except (aiosmtplib.SMTPException, OSError) as e:
                detail = f"{e.code} {_one_line(e.message)}" \
                    if isinstance(e, aiosmtplib.SMTPResponseException) else _one_line(str(e))
                result.steps.append(("AUTH", False, f"as {smtp.username}: {detail}"))
                return result
            result.steps.append(("AUTH", True, f"logged in as {smtp.username}"))
        else:
            result.steps.append(("AUTH", True, "no username configured: not logging in"))
    finally:
        await _quit(client)
    return result


async def _ehlo(client: aiosmtplib.SMTP, result: Probe, step: str) -> None:
    response = await client.ehlo()
    result.extensions = dict(client.esmtp_extensions)
    result.auth_methods = list(client.server_auth_methods)
    shown = ", ".join(f"{k.upper()} {v}".strip() for k, v in result.extensions.items())
    result.steps.append((step, response.code == 250, f"{response.code}; advertises: "
                         f"{shown or 'nothing'}"))


def _tls_info(client: aiosmtplib.SMTP) -> str:
    ssl_object = client.get_transport_info("ssl_object")
    if ssl_object is None:
        return "encrypted"
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else ''}, certificate verified".strip()
