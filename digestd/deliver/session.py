"""The mail transactions of one SMTP connection, after aiosmtplib has opened it.

aiosmtplib connects, greets, says EHLO, starts TLS and logs in (smtp.connect); then a
Session takes the connection's transport over (asyncio's set_protocol) and runs each
message's transaction itself: MAIL FROM, RCPT TO and DATA written at once when the server
announces PIPELINING (RFC 2920), else one after the other, then the message and its final
".". aiosmtplib reads one reply per command through a lock, a regular expression and
asyncio.wait_for; a message's four replies cost about 0.3 ms of CPU that way, more than half
of what sending it costs (bench/results, docs/performance.md). The replies are read here
from one buffer, and failures are raised as aiosmtplib's exceptions at the stage they
belong to (TransactionFailed), so smtp.classify reads them as before.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

import aiosmtplib

from ..mime import LINE_END, crlf_only

MAX_REPLY = 64 * 1024  # bytes of replies not yet read; more is a server out of step
QUIT_TIMEOUT = 5.0  # seconds for the answer to QUIT (the session is over either way)


class TransactionFailed(Exception):
    """A transaction failed at `stage` ("MAIL", "RCPT", "DATA"); `body_sent`: the message
    went out and the answer to its final "." was awaited; `error`: aiosmtplib's exception
    (SMTPResponseException and its kinds for a reply, SMTPServerDisconnected,
    SMTPReadTimeoutError), for smtp.classify."""

    def __init__(self, stage: str, error: BaseException, *, body_sent: bool = False) -> None:
        super().__init__(f"{stage}: {error}")
        self.stage, self.error, self.body_sent = stage, error, body_sent


class _Replies(asyncio.Protocol):
    """Collects complete SMTP replies (RFC 5321 4.2: "250-..." lines, then "250 ...") as
    (code, text) in arrival order; a waiter asks for the next n."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buffer = bytearray()
        self.lines: list[bytes] = []  # the lines of a reply still coming
        self.replies: collections.deque[tuple[int, str]] = collections.deque()
        self.want = 0
        self.waiter: asyncio.Future | None = None
        self.lost: BaseException | None = None  # why the connection ended, once it did

    def data_received(self, data: bytes) -> None:
        if self.lost is not None:  # out of step already: nothing after it is read
            return
        self.buffer += data
        while (end := self.buffer.find(b"\n")) >= 0:
            line = bytes(self.buffer[:end + 1])
            del self.buffer[:end + 1]
            self.lines.append(line)
            if line[3:4] != b"-":
                self._reply()
                if self.lost is not None:
                    return
        if len(self.buffer) > MAX_REPLY:
            self.buffer.clear()
            self.lost = aiosmtplib.SMTPResponseException(-1, "Response too long")
            self._wake()
            return
        if self.waiter is not None and len(self.replies) >= self.want:
            self._wake()

    def _reply(self) -> None:
        lines, self.lines = self.lines, []
        try:
            code = int(lines[-1][:3])
        except ValueError:
            text = lines[-1].decode("utf-8", "replace").strip()
            self.lost = aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response line: "
                                                             f"{text}")
            self._wake()
            return
        text = b"\n".join(line[4:].strip(b" \t\r\n") for line in lines)
        self.replies.append((code, text.decode("utf-8", "surrogateescape")))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self.lost = aiosmtplib.SMTPServerDisconnected(
                f"Connection lost: {exc}" if exc else "Connection lost")
        self._wake()

    def eof_received(self) -> bool:
        if self.lost is None:
            self.lost = aiosmtplib.SMTPServerDisconnected("Unexpected EOF received")
        self._wake()
        return False  # close the transport

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self, n: int, timeout: float) -> list[tuple[int, str]]:
        """The next `n` replies, or fewer when the connection ended or the server said
        something that is not a reply (then `lost` says why). Raises SMTPReadTimeoutError
        when they do not all come within `timeout` seconds."""
        if len(self.replies) < n and self.lost is None:
            self.want, self.waiter = n, self.loop.create_future()
            waiter = self.waiter
            timer = self.loop.call_later(timeout, lambda: waiter.done() or waiter.set_result(
                "timeout"))
            try:
                if await waiter == "timeout" and len(self.replies) < n and self.lost is None:
                    raise aiosmtplib.SMTPReadTimeoutError(
                        "Timed out waiting for server response")
            finally:
                timer.cancel()
                self.waiter = None
        return [self.replies.popleft() for _ in range(min(n, len(self.replies)))]


class Session:
    """The mail transactions of an aiosmtplib client once connected (smtp.connect): the
    client keeps what EHLO announced (supports_extension), the session owns the socket.

        session = Session(await connect(smtp))
        await session.send(b"<from@example.org>", [b"SIZE=123"], b"<to@example.org>", msg)
        await session.quit()
    """

    def __init__(self, client: aiosmtplib.SMTP) -> None:
        if client.protocol is None or client.protocol.transport is None:
            raise aiosmtplib.SMTPServerDisconnected("Server not connected")
        self.client = client
        self.timeout = client.timeout or 60.0
        self.pipelining = client.supports_extension("pipelining")
        self.transport = client.protocol.transport
        self.replies = _Replies(asyncio.get_running_loop())
        self.transport.set_protocol(self.replies)

    @property
    def is_connected(self) -> bool:
        return self.replies.lost is None and not self.transport.is_closing()

    def supports_extension(self, name: str) -> bool:
        return self.client.supports_extension(name)

    def close(self) -> None:
        self.transport.close()

    def _write(self, data: bytes) -> None:
        if not self.is_connected:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    async def _read(self, n: int, timeout: float | None = None) -> list[tuple[int, str]]:
        try:
            return await self.replies.next(n, timeout or self.timeout)
        except aiosmtplib.SMTPTimeoutError:
            self.close()  # a reply may still come: the session is out of step
            raise

    async def send(self, mail_path: bytes, options: list[bytes], rcpt_path: bytes,
                   message: bytes, *, done_timeout: float | None = None,
                   before_data: Callable[[], Awaitable[object]] | None = None,
                   crlf: bool = False) -> None:
        """One mail transaction (RFC 5321 3.3): MAIL FROM:`mail_path` with ESMTP `options`,
        RCPT TO:`rcpt_path` (both from smtp.envelope_path), DATA, then `message` dot-stuffed
        and its final ".", whose answer is awaited `done_timeout` seconds (smtp.data_timeout)
        and the others the client's timeout. Raises TransactionFailed at the first reply
        that is not a success (250 to MAIL, 250/251 to RCPT, 354 to DATA, 250 at the end),
        with the exception aiosmtplib's mail(), rcpt() and data() raise for it.
        `before_data` is awaited once MAIL and RCPT were accepted, before DATA (its error
        is raised as it is, nothing of the message sent). `crlf`: every line of `message`
        ends in CRLF, and so does the message, as its builder vouched (store.bodies.CRLF):
        its line ends are not checked again.

        With PIPELINING the commands go out in one write (MAIL and RCPT, then DATA when
        `before_data` is given) and their replies are read in order; when MAIL or RCPT
        failed but DATA was accepted all the same, a lone "." ends that empty message (RFC
        2920 3.1) and the failure is raised."""
        steps = [("MAIL", b"MAIL FROM:" + b" ".join([mail_path, *options]) + b"\r\n"),
                 ("RCPT", b"RCPT TO:" + rcpt_path + b"\r\n"), ("DATA", b"DATA\r\n")]
        if not self.pipelining:
            groups = [[step] for step in steps]
        else:
            groups = [steps] if before_data is None else [steps[:2], steps[2:]]
        for group in groups:
            if group[0][0] == "DATA" and before_data is not None:
                await before_data()
            await self._exchange(group, mail_path, rcpt_path)
        try:
            # one write: one system call
            self._write(_dot_stuffed(message, crlf=crlf) + b".\r\n")
            replies = await self._read(1, done_timeout)
        except aiosmtplib.SMTPException as e:
            raise TransactionFailed("DATA", e, body_sent=True) from None
        if not replies:
            self.close()
            raise TransactionFailed("DATA", self._lost(), body_sent=True)
        code, text = replies[0]
        if code != 250:
            raise self._closing(TransactionFailed("DATA", aiosmtplib.SMTPDataError(code, text),
                                                  body_sent=True))

    def _lost(self) -> BaseException:
        """Why the replies stopped: the connection lost, or a reply out of step."""
        return self.replies.lost or aiosmtplib.SMTPServerDisconnected("Connection lost")

    def _closing(self, failed: TransactionFailed) -> TransactionFailed:
        """`failed`, the session closed first if the reply was 421: the server is closing
        the connection (RFC 5321 3.8)."""
        if getattr(failed.error, "code", None) == 421:
            self.close()
        return failed

    async def _exchange(self, group: list[tuple[str, bytes]], mail_path: bytes,
                        rcpt_path: bytes) -> None:
        """Write a group of (stage, command) at once and read their replies in order; raise
        TransactionFailed at the first that is not a success."""
        stages = [stage for stage, _ in group]
        try:
            self._write(b"".join(command for _, command in group))
            replies = await self._read(len(group))
        except aiosmtplib.SMTPException as e:
            # the stage whose reply did not come (those before it were read)
            raise TransactionFailed(stages[min(len(self.replies.replies), len(group) - 1)],
                                    e) from None
        failed: TransactionFailed | None = None
        for stage, reply in zip(stages, replies):
            failed = failed or _refusal(stage, reply, mail_path, rcpt_path)
        if len(replies) < len(group):  # the connection ended (or went out of step) on the way
            self.close()
            raise failed or TransactionFailed(stages[len(replies)], self._lost())
        if failed is not None:
            if stages[-1] == "DATA" and replies[-1][0] == 354:
                # DATA taken after MAIL or RCPT failed (pipelined): end that message empty
                try:
                    self._write(b".\r\n")
                    await self._read(1)
                except aiosmtplib.SMTPException:
                    self.close()
            raise self._closing(failed)

    async def rset(self) -> None:
        """RSET after a refused transaction; a session that does not answer 250 is closed
        (the caller connects again)."""
        try:
            self._write(b"RSET\r\n")
            replies = await self._read(1)
        except aiosmtplib.SMTPException:
            self.close()
            return
        if not replies or replies[0][0] != 250:
            self.close()

    async def quit(self) -> None:
        """QUIT and close, whatever the answer."""
        if self.is_connected:
            try:
                self._write(b"QUIT\r\n")
                await self._read(1, QUIT_TIMEOUT)
            except aiosmtplib.SMTPException:
                pass
        self.close()


def _refusal(stage: str, reply: tuple[int, str], mail_path: bytes,
             rcpt_path: bytes) -> TransactionFailed | None:
    """The failure a reply to `stage` means, as aiosmtplib's mail(), rcpt() and data()
    raise it; None for a success."""
    code, text = reply
    if stage == "MAIL" and code != 250:
        return TransactionFailed(stage, aiosmtplib.SMTPSenderRefused(
            code, text, mail_path.decode("ascii", "replace")))
    if stage == "RCPT" and code not in (250, 251):
        return TransactionFailed(stage, aiosmtplib.SMTPRecipientRefused(
            code, text, rcpt_path.decode("ascii", "replace")))
    if stage == "DATA" and code != 354:
        return TransactionFailed(stage, aiosmtplib.SMTPDataError(code, text))
    return None


def _dot_stuffed(message: bytes, *, crlf: bool = False) -> bytes:
    """`message` with CRLF line ends, ending in CRLF, dot-stuffed (RFC 5321 4.5.2). A
    message whose every line ends in CRLF, as render.py builds them, needs only the
    dot-stuffing, one bytes.replace at C speed; any other has its line ends made CRLF.
    `crlf`: the caller knows the message is so (store.bodies.CRLF), which spares the three
    scans that check it (~0.09 ms of CPU for a 38 KB digest)."""
    if not crlf and not crlf_only(message):
        message = LINE_END.sub(b"\r\n", message)
        if not message.endswith(b"\r\n"):
            message += b"\r\n"
    if message.startswith(b"."):
        message = b"." + message
    return message.replace(b"\r\n.", b"\r\n..")
