"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that can be told to refuse."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple | None = None  # the client's (host, port): one per connection
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's, e.g. BODY=8BITMIME
    at: float = field(default_factory=time.monotonic)  # when it was accepted (monotonic s)

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class Handler:
    received: list[Received] = field(default_factory=list)
    # scripted answers, consumed one per DATA ("250 OK" when empty), e.g. "421 try later"
    data_answers: deque = field(default_factory=deque)
    # recipient -> answer for RCPT TO, e.g. {"gone@example.org": "550 5.1.1 user unknown"}
    rcpt_answers: dict = field(default_factory=dict)
    # seconds to think before answering DATA, as a slow or distant server does
    delay: float = 0.0
    # a server from before RFC 6152: EHLO does not announce 8BITMIME
    without_8bitmime: bool = False
    # EHLO announces PIPELINING (RFC 2920), as Postfix, Exim and the big providers do; the
    # client then writes MAIL, RCPT and DATA at once (aiosmtpd reads them one by one)
    pipelining: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    # crash tests: once `hold_after` messages were accepted, every further DATA waits for
    # release(); with `hold_accepts` the message is recorded first (the server has it, the
    # client has not heard 250 yet), else it is answered 451 and not recorded
    hold_after: int | None = None
    hold_accepts: bool = False
    parked: int = 0
    # a relay's limit of messages per connection (RFC 5321 3.8 lets a server end a session):
    # past it, MAIL is answered `per_session_answer`, or with "drop" the connection is closed
    per_session: int | None = None
    per_session_answer: str = "421 4.7.0 Too many messages in this connection"
    # the answer to EHLO instead of the greeting's capabilities, e.g. "421 4.7.0 busy"
    ehlo_answer: str | None = None
    # answers to MAIL FROM by its number in the server's life (1: the first), e.g.
    # {4: "421 4.3.2 Service shutting down"}
    mail_answers: dict = field(default_factory=dict)
    mails: int = 0
    # a relay's limit of recipients per connection: past it, RCPT is answered this
    rcpt_per_session: int | None = None
    rcpt_per_session_answer: str = "452 4.5.3 Too many recipients"
    # the connection is closed right after the 250 to its Nth message (a relay that hangs up
    # after a number of messages without a word)
    drop_after: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _released: asyncio.Event | None = None

    def release(self) -> None:
        """Let parked DATA commands answer, and stop parking new ones."""
        self.hold_after = None
        if self._loop is not None and self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    async def _hold(self, server, session, envelope):
        if self._released is None:
            self._loop, self._released = asyncio.get_running_loop(), asyncio.Event()
        if self.hold_accepts:
            self._record(session, envelope)
        self.parked += 1
        try:
            await self._released.wait()
        finally:
            self.parked -= 1
        return "250 OK queued" if self.hold_accepts else "451 4.3.0 try again later"

    def _record(self, session, envelope) -> None:
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content),
                                          peer=getattr(session, "peer", None),
                                          mail_options=list(envelope.mail_options)))

    @staticmethod
    def _say(server, answer: str) -> str:
        """`answer`; a 421 closes the connection once it is written, as a server does (RFC
        5321 3.8)."""
        if answer.startswith("421"):
            asyncio.get_running_loop().call_soon(server.transport.close)
        return answer

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self.lock:
            self.mails += 1
            answer = self.mail_answers.get(self.mails)
        if answer:
            return self._say(server, answer)
        if self.per_session is not None:
            taken = getattr(session, "mails", 0)
            if taken >= self.per_session:
                if self.per_session_answer == "drop":
                    server.transport.close()
                    return "421 closing"
                return self._say(server, self.per_session_answer)
            session.mails = taken + 1
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        extra = getattr(server, "extra", None)  # a connection past the server's limit
        if extra == "at_ehlo":  # closed with no answer
            server.transport.close()
            return []
        if extra == "after_ehlo":  # answered, then closed
            asyncio.get_running_loop().call_soon(server.transport.close)
        if self.ehlo_answer:
            return [self._say(server, self.ehlo_answer)]
        session.host_name = hostname
        if self.without_8bitmime:
            responses = [r for r in responses if "8BITMIME" not in r]
        if self.pipelining and responses:
            responses = [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.rcpt_answers.get(address)
        if answer:
            return self._say(server, answer)
        if self.rcpt_per_session is not None:
            taken = getattr(session, "rcpts", 0)
            if taken >= self.rcpt_per_session:
                return self._say(server, self.rcpt_per_session_answer)
            session.rcpts = taken + 1
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.hold_after is not None and len(self.received) >= self.hold_after:
            return await self._hold(server, session, envelope)
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            answer = self.data_answers.popleft() if self.data_answers else None
        if answer == "drop":
            # hang up mid-transaction, as a crashing or overloaded server does
            session.transport.close() if hasattr(session, "transport") else None
            server.transport.close()
            return "421 closing"
        if answer:
            return self._say(server, answer)
        self._record(session, envelope)
        session.taken = getattr(session, "taken", 0) + 1
        if self.drop_after is not None and session.taken >= self.drop_after:
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 OK queued"


class _Server(SMTP):
    """aiosmtpd's server with the connection-level habits of relays in the field. Its
    settings are class attributes of a subclass made for each SmtpSink (SmtpSink.server),
    read at each connection: set them after start(), whose trial connection they would
    otherwise meet."""

    greet_delay = 0.0  # seconds before the greeting (a tarpit, an Exim connect ACL's delay)
    greeting: str | None = None  # said instead of 220, then closed: "554 5.7.1 no service"
    closed_until = 0.0  # until this time.monotonic(), a connection is closed at once
    limit: int | None = None  # sessions at once; past it a connection is refused ...
    refuse = "greeting"  # ... with a 421 greeting, or "after_ehlo", "at_ehlo" (see Handler)
    refuse_delay = 0.0  # seconds before the 421 greeting (a relay that tarpits extra ones)
    release_delay = 0.0  # seconds a session still counts once it ended
    active = 0
    extra: str | None = None  # this connection is past the limit: how it is refused

    async def _handle_client(self):
        cls = type(self)
        if time.monotonic() < cls.closed_until:
            self.transport.close()
            return
        if cls.greet_delay:
            await self._pause(cls.greet_delay)
        if cls.greeting:
            await self.push(cls.greeting)
            self.transport.close()
            return
        if cls.limit is None:
            await super()._handle_client()
            return
        if cls.active >= cls.limit:
            if cls.refuse != "greeting":
                self.extra = cls.refuse
                await super()._handle_client()
                return
            if cls.refuse_delay:
                await self._pause(cls.refuse_delay)
            await self.push("421 4.7.0 Too many concurrent SMTP connections")
            self.transport.close()
            return
        cls.active += 1
        try:
            await super()._handle_client()
        finally:
            if cls.release_delay:  # (not awaited: a lost connection cancels this task)
                asyncio.get_running_loop().call_later(cls.release_delay, cls._release)
            else:
                cls.active -= 1

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:  # the sink stops: its connection ends too
            self.transport.close()
            raise

    @classmethod
    def _release(cls) -> None:
        cls.active -= 1


class SmtpSink:
    def __init__(self, port: int, host: str = "127.0.0.1", *, max_sessions: int | None = None,
                 refuse: str = "greeting", refuse_delay: float = 0.0,
                 release_delay: float = 0.0, **controller_options) -> None:
        """`controller_options` go to aiosmtpd's Controller: tls_context and
        require_starttls for STARTTLS, ssl_context for implicit TLS, authenticator ...
        `max_sessions`: connections beyond that many at once are refused as `refuse` says
        (_Server), a 421 greeting after `refuse_delay` seconds; a session still counts
        `release_delay` seconds after it ended. `server`: the server class of this sink,
        whose other settings a test sets after start()."""
        self.host, self.port = host, port
        self.handler = Handler()
        self.server = type("Server", (_Server,), {
            "limit": max_sessions, "refuse": refuse, "refuse_delay": refuse_delay,
            "release_delay": release_delay, "active": 0})
        server = self.server

        class _Controller(Controller):
            def factory(self):
                return server(self.handler, **self.SMTP_kwargs)

        self.controller = _Controller(self.handler, hostname=host, port=port,
                                      decode_data=False, data_size_limit=50 * 1024 * 1024,
                                      **controller_options)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
