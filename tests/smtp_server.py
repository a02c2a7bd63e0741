"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that can be told to refuse."""

from __future__ import annotations

import email
import email.policy
import threading
from collections import deque
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

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
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.rcpt_answers.get(address)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            answer = self.data_answers.popleft() if self.data_answers else None
        if answer == "drop":
            # hang up mid-transaction, as a crashing or overloaded server does
            session.transport.close() if hasattr(session, "transport") else None
            server.transport.close()
            return "421 closing"
        if answer:
            return answer
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          bytes(envelope.original_content or envelope.content)))
        return "250 OK queued"


class SmtpSink:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port
        self.handler = Handler()
        self.controller = Controller(self.handler, hostname=host, port=port,
                                     decode_data=False, data_size_limit=50 * 1024 * 1024)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
