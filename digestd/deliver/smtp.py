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
    """Connect (within smtp.timeout), wait for the greeting (smtp.greeting_timeout), EHLO,
    STARTTLS and log in as configured."""
    client = smtp_client(smtp)
    try:
        await _greeted(client, smtp)
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
        client.close()  # and the socket, which asyncio's transport owns (or closed) by now
        raise
    return client


async def _greeted(client: aiosmtplib.SMTP, smtp: SmtpConfig) -> aiosmtplib.SMTPResponse:
    """Connect `client` within smtp.timeout and wait smtp.greeting_timeout for the greeting
    (with implicit TLS, the handshake too); the greeting, else aiosmtplib's errors."""
    sock = await _tcp_connect(smtp.host, smtp.port, smtp.timeout)
    client.port = None  # the socket is connected already (aiosmtplib wants no port then)
    try:
        return await client.connect(sock=sock, timeout=smtp.greeting_timeout)
    except aiosmtplib.SMTPConnectTimeoutError as e:
        if "ready message" not in str(e):  # aiosmtplib's words for a greeting not come
            raise
        raise aiosmtplib.SMTPConnectTimeoutError(
            f"no greeting within smtp.greeting_timeout ({smtp.greeting_timeout:g} s)") from e


async def _tcp_connect(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to `host`, its addresses tried in turn within `timeout` seconds in
    all (smtp.timeout), for aiosmtplib to greet over: its own connect() would give the TCP
    connection the greeting's much longer wait (RFC 5321 4.5.3.2.1's 5 minutes), and a
    server that drops our packets would hold the run that long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: OSError | None = None
    try:
        found = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        for family, kind, proto, _, address in found:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(sock, address),
                                       max(0.0, deadline - loop.time()))
                return sock
            except OSError as e:  # refused, unreachable, timed out (TimeoutError): the next
                sock.close()
                last = e
            except BaseException:
                sock.close()
                raise
    except TimeoutError as e:  # resolving the name
        last = e
    if isinstance(last, TimeoutError) or last is None:
        raise aiosmtplib.SMTPConnectTimeoutError(
            f"Timed out connecting to {host} on port {port}") from last
    raise aiosmtplib.SMTPConnectError(f"Error connecting to {host} on port {port}: {last}") \
        from last


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

    # "sent", "deferred", "failed", "bounced"; "again": nothing of the message was delivered
    # and a new connection takes it now (classify)
    kind: str
    error: str = ""
    retry_after: float = 0.0  # deferred: the wait the server asked for (retry_hint), seconds
    ended: bool = False  # "again": the server ended the session (else: a new one may do)
    # deferred for a reason that is the relay's or our sender's, not this message's (a 4xx to
    # MAIL FROM: a rate limit, storage; our address refused): every message would meet it.
    # "wait": the run pauses and goes on; "stop": the run stops, the rest stays queued
    pause: str = ""


# an enhanced status code (RFC 3463) at the start of a reply line: "5.1.1", or on a later line
# of a multi-line reply ("Message rejected" / "5.7.1 Sender blocked by policy")
_ENHANCED = re.compile(r"(?m)^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")

# A full mailbox or an exhausted quota, however the reply (or a bounce, inbound/dsn.py) is
# coded: servers in the field say "550 Mailbox full", "552 ... over quota", "554 ... quota
# exceeded". Storage is freed and quotas reset, so it is retried, never a bounce.
MAILBOX_FULL = re.compile(
    r"(?<![\w.])[45]\.2\.2(?!\.?\d)|over ?quota|out of storage|insufficient (system )?storage|"
    r"exceeded storage allocation|mailbox size limit|disk quota|no space left|"
    r"not enough (disk |storage )?space|"
    # "quota exceeded", "quota usage exceeded", "exceeded its quota", "over their quota"
    r"\bquota\b[\w\s-]{0,30}?\b(exceed|reached|full)|\b(exceed|reached|over)\w*[\w\s-]{0,30}?\bquota|"
    # "mailbox full", "inbox is full", "mailbox has exceeded its storage limit"
    r"\b(mail ?box|inbox|mail ?storage|account)\b[\w\s-]{0,20}?\b(full|exhausted|"
    r"exceeded (its|the|their)? ?(storage |size |disk )?(limit|allocation|size))\b",
    re.IGNORECASE)
# an unknown recipient said in words, for the replies whose enhanced code says nothing more
# (X.3.0, X.5.0: sendmail's "553 5.3.0 <x@y>... No such user")
UNKNOWN_USER = re.compile(
    r"user unknown|unknown (user|recipient|mailbox)|no such (user|mailbox|recipient|address|"
    r"account)|(user|mailbox|address|recipient|account)\b[^.;]{0,40}?(does not|doesn't|"
    r"did not) exist|invalid (recipient|mailbox|address)|addressee unknown|"
    r"recipient not found|mailbox unavailable|no mailbox here", re.IGNORECASE)

# the wait a 4xx asks for: "try again in 300 seconds", "come back in 00:05:00", "greylisted
# for 10 minutes"
_RETRY_IN = re.compile(r"(?i)\b(?:in|after|for)\s+(?:(\d{1,2}):(\d\d):(\d\d)\b|(\d{1,5})\s*"
                       r"(s|secs?|seconds?|m|mins?|minutes?|h|hours?)\b)")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}

# What a permanent enhanced status 5.SUBJECT.DETAIL (RFC 3463) says of the message: by
# (subject, detail) where the detail decides, else by the subject. "address": the address
# is refused, a hard bounce where the reply is about the recipient (see status_kind).
_BY_DETAIL = {
    ("1", "7"): "deferred", ("1", "8"): "deferred",  # our sender's address: a config to fix
    ("2", "2"): "deferred",  # mailbox full (RFC 5321 4.5.3.1.10 reads 552 to RCPT as 452)
    ("2", "3"): "failed",  # the message too big for the mailbox: no retry sends it
    ("3", "1"): "deferred",  # mail system full: its storage, "persistent transient"
    ("3", "4"): "failed",  # the message too big for the system
    ("4", "2"): "deferred", ("4", "3"): "deferred",  # bad connection, directory server
    ("4", "5"): "deferred",  # congestion (Gmail's 5.4.5 "daily sending quota exceeded")
    ("5", "3"): "deferred",  # too many recipients (classify: "again" on a used connection)
}
_BY_SUBJECT = {"0": "address", "1": "address", "2": "address", "4": "address",
               "3": "failed", "5": "failed", "6": "failed", "7": "failed"}


def classify(stage: str, e: BaseException, *, body_sent: bool = False) -> Outcome:
    """Map an SMTP error at `stage` (MAIL, RCPT, DATA; `body_sent`: the message went out,
    the answer to its final "." was awaited) to what we do about it: the reply by
    reply_kind, the session and the connection by their own rules.

    - Before the body went out, the session ending (a 421, RFC 5321 3.8, or the connection
      lost) and too many recipients at RCPT (X.5.3: RFC 5321 4.5.3.1.10 sends the rest in a
      new transaction) are "again": nothing of the message was delivered, and a new
      connection takes it in this run (the sender decides what a connection that carried
      nothing yet means).
    - After the body went out, nothing is "again": no answer (a timeout, the connection
      lost) may hide a message the server took, and a 421 defers it as any 4xx does; a
      message is sent again only at its next attempt, with the same Message-ID.
    - A deferral keeps the wait the reply asks for (retry_hint), for the sender's backoff.
    - A deferral that is not about the message (a 4xx to MAIL FROM, RFC 5321 4.2.5: a rate
      limit, the relay's storage; our sender's address refused, X.1.7 and X.1.8 of RFC
      3463) carries `pause`: the sender pauses or stops the run instead of giving every
      queued message an attempt.
    """
    if isinstance(e, aiosmtplib.SMTPResponseException):
        error = f"{stage} {e.code} {_one_line(e.message)}"
        m = _ENHANCED.search(e.message)
        too_many = stage == "RCPT" and bool(m) and (m[2], m[3]) == ("5", "3")
        if not body_sent and (e.code == 421 or too_many):
            return Outcome("again", error, ended=e.code == 421)
        kind = reply_kind(e.code, e.message, stage=stage)
        if kind != "deferred":
            return Outcome(kind, error)
        ours = stage == "MAIL" or bool(m) and (m[2], m[3]) in (("1", "7"), ("1", "8"))
        return Outcome(kind, error, retry_hint(e.message),
                       pause=("wait" if e.code < 500 else "stop") if ours else "")
    error = f"{stage} {type(e).__name__}: {_one_line(str(e))}".rstrip(": ")
    if not body_sent and isinstance(e, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
        return Outcome("again", error, ended=True)
    if body_sent and isinstance(e, (aiosmtplib.SMTPTimeoutError, TimeoutError)):
        error = (f"{stage} {type(e).__name__}: no answer to the end of the message within "
                 "smtp.data_timeout; the server may have it, and the next attempt sends it "
                 "again (the same Message-ID)")
    return Outcome("deferred", error)


def reply_kind(code: int, text: str, *, stage: str = "RCPT") -> str:
    """What a reply (its code, and its text after the code) to `stage` says of the message:
    "deferred", "failed" or "bounced". Also for the reply a DSN quotes in its
    Diagnostic-Code (inbound/dsn.py), read as an answer to RCPT.

    - 4xx: deferred.
    - To MAIL FROM: our sender, the same for every message, so deferred (a fixed config
      still delivers); except a message too big for the server (552, RFC 1870; X.3.4): failed.
    - A 5xx with an enhanced status code (RFC 3463, on any line of a multi-line reply):
      status_kind's table.
    - A 5xx without one: 550, 551 and 553 refuse the address (bounced); 552 is storage
      (RFC 5321 4.5.3.1.10: a full mailbox, deferred); any other 5xx fails the message.
    - Whatever the code, a text that says the mailbox is full or over quota (MAILBOX_FULL)
      is deferred, unless the code says the message is too big: servers say "550 Mailbox
      full" as often as 452, and a full mailbox counted as a hard bounce would end a
      reader's subscription for a few days of a full inbox.
    - To RCPT, an undefined system or protocol status (X.3.0, X.5.0) whose text says the
      recipient is unknown (UNKNOWN_USER) refuses the address: bounced.
    """
    if code < 500:
        return "deferred"
    m = _ENHANCED.search(text)
    status = (m[2], m[3]) if m and m[1] == "5" else None
    too_big = status in (("2", "3"), ("3", "4"))
    if stage == "MAIL":
        return "failed" if code == 552 or too_big else "deferred"
    if status is None:
        kind = "deferred" if code == 552 else "bounced" if code in (550, 551, 553) else "failed"
    else:
        kind = status_kind(*status, to_recipient=stage == "RCPT")
    if kind != "deferred" and not too_big and MAILBOX_FULL.search(text):
        return "deferred"
    if kind == "failed" and stage == "RCPT" and status in (("3", "0"), ("5", "0")) and (
            UNKNOWN_USER.search(text)):
        return "bounced"
    return kind


def status_kind(subject: str, detail: str, *, to_recipient: bool = True) -> str:
    """What a permanent enhanced status 5.SUBJECT.DETAIL (RFC 3463) says of a message, for
    classify and for the bounces read back (inbound/dsn.py), by the table above:

    - "deferred": temporary however coded: a full mailbox (X.2.2) or mail system (X.3.1),
      a bad connection, a directory server, congestion (X.4.2, X.4.3, X.4.5: RFC 3463 has
      them "persistent transient" only), too many recipients (X.5.3), our sender's address
      (X.1.7, X.1.8);
    - "failed", the message fails without blaming the address: too big (X.2.3, X.3.4), the
      mail system (X.3.x), the protocol (X.5.x), the content (X.6.x), security or policy
      (X.7.x: a blocklist, DMARC, relaying denied);
    - "bounced", the address refused: X.1.x, X.2.x and, `to_recipient` (an answer to RCPT, a
      DSN), X.4.x (5.4.1 "recipient address rejected", 5.4.4 "unable to route") and X.0.x
      (undefined); after DATA those two fail the message instead."""
    kind = _BY_DETAIL.get((subject, detail)) or _BY_SUBJECT.get(subject, "failed")
    if kind == "address":
        blamed = ("0", "1", "2", "4") if to_recipient else ("1", "2")
        return "bounced" if subject in blamed else "failed"
    return kind


def retry_hint(text: str) -> float:
    """The wait a temporary reply asks for, in seconds (at most 6 hours; 0: it names none):
    "Greylisted, try again in 300 seconds", "please come back in 00:05:00"."""
    m = _RETRY_IN.search(text)
    if not m:
        return 0.0
    if m[1]:
        seconds = int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])
    else:
        seconds = int(m[4]) * _UNIT_S[m[5][0].lower()]
    return float(min(seconds, 6 * 3600))


def connect_failure(e: BaseException) -> str:
    """Why connecting failed, said once: "Connection refused", "Name or service not known",
    a timeout... (aiosmtplib's SMTPConnectError repeats the host and port, then the
    socket's error in asyncio's words)."""
    if isinstance(e, aiosmtplib.SMTPResponseException):  # a refusing greeting, EHLO, AUTH
        return f"{e.code} {_one_line(e.message)}"
    cause = e if isinstance(e, OSError) and not isinstance(e, aiosmtplib.SMTPException) \
        else e.__cause__
    if isinstance(cause, socket.gaierror) and cause.strerror:
        return cause.strerror  # a name that does not resolve
    if isinstance(cause, ssl.SSLError):  # its errno is OpenSSL's, not the system's
        said = _one_line(str(cause)) or type(cause).__name__
        if "WRONG_VERSION_NUMBER" in said or "wrong version number" in said:
            # a plain SMTP port (587, 25) met with TLS from the first byte
            return (f"the server does not speak TLS on this port ({said}): security = "
                    '"tls" wants a port that does from the start (465); for 587 or 25 set '
                    'security = "starttls"')
        return said
    if isinstance(cause, OSError) and cause.errno and cause.errno > 0:
        return os.strerror(cause.errno)  # refused, unreachable, reset ...
    text = re.sub(r"^Error connecting to \S+ on port (\d+|None): ", "", str(e))
    if text.strip() in ("Unexpected EOF received", "Connection lost"):
        # something took the connection and closed it without SMTP's 220 greeting
        return (f"no SMTP greeting: the server closed the connection without a word ({text}); "
                "is this an SMTP port?")
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
        response = await _greeted(client, smtp)
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
