"""A connection's mail transactions (deliver/session.py): MAIL, RCPT and DATA written at once
to a server that announces PIPELINING (RFC 2920), one by one to one that does not, and every
way a reply can fail, raised at the stage it belongs to."""

from __future__ import annotations

import asyncio

import aiosmtplib
import pytest

from digestd.config import SmtpConfig
from digestd.deliver import Session, TransactionFailed, classify, connect

FROM, TO = b"<digest@example.org>", b"<a@example.org>"
BODY = b"Subject: hi\r\n\r\n.a line with a dot\r\nend\r\n"


class Scripted:
    """A raw SMTP server on 127.0.0.1 that answers as told: `answers` maps a command (MAIL,
    RCPT, DATA, END for the final ".", RSET) to its reply, "close" to hang up instead, or
    "silent" to say nothing. With `pipelining` it announces PIPELINING and, to prove the
    client pipelines, answers MAIL only once RCPT has arrived too."""

    def __init__(self, answers: dict[str, str] | None = None, *, pipelining: bool = True):
        self.answers = answers or {}
        self.pipelining = pipelining
        self.commands: list[bytes] = []  # every command line, in order
        self.messages: list[bytes] = []  # each message's lines between 354 and "."
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> SmtpConfig:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=2.0)

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def _answer(self, command: str, default: str) -> str:
        answer = self.answers.get(command, default)
        return answer if isinstance(answer, str) else answer.pop(0) if answer else default

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        writer.write(b"220 scripted ESMTP\r\n")
        try:
            await reader.readline()  # EHLO
            writer.write(b"250-scripted\r\n250-SIZE 10000000\r\n250-8BITMIME\r\n" +
                         (b"250-PIPELINING\r\n" if self.pipelining else b"") + b"250 HELP\r\n")
            held: list[bytes] = []
            while line := await reader.readline():
                self.commands.append(line.rstrip(b"\r\n"))
                verb = line[:4].upper().decode()
                if self.pipelining and verb == "MAIL":
                    held = [line]  # answered once RCPT is in
                    continue
                if held:
                    lines, held = [*held, line], []
                else:
                    lines = [line]
                for got in lines:
                    verb = got[:4].upper().decode()
                    verb = {"QUIT": "QUIT"}.get(verb, verb)
                    answer = self._answer(verb, {"MAIL": "250 2.1.0 ok", "RCPT": "250 2.1.5 ok",
                                                 "DATA": "354 go on", "RSET": "250 reset",
                                                 "QUIT": "221 bye"}.get(verb, "500 what"))
                    if answer == "close":
                        writer.close()
                        return
                    if answer == "silent":
                        continue
                    writer.write(answer.encode() + b"\r\n")
                    if verb == "DATA" and answer.startswith("354"):
                        body = []
                        while (part := await reader.readline()) not in (b".\r\n", b""):
                            body.append(part)
                        self.messages.append(b"".join(body))
                        end = self._answer("END", "250 2.0.0 queued")
                        if end == "close":
                            writer.close()
                            return
                        if end != "silent":
                            writer.write(end.encode() + b"\r\n")
                if verb == "QUIT":
                    writer.close()
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted():
    servers = []

    async def make(answers=None, *, pipelining=True):
        s = Scripted(answers, pipelining=pipelining)
        config = await s.start()
        servers.append(s)
        return s, Session(await connect(config))

    yield make
    for s in servers:
        await s.stop()


@pytest.mark.parametrize("pipelining", [True, False])
async def test_messages_go_out_pipelined_or_one_command_at_a_time(scripted, pipelining):
    server, session = await scripted(pipelining=pipelining)
    assert session.pipelining is pipelining
    for _ in range(3):
        await session.send(FROM, [b"SIZE=%d" % len(BODY)], TO, BODY)
    await session.quit()
    assert server.messages == [b"Subject: hi\r\n\r\n..a line with a dot\r\nend\r\n"] * 3
    assert server.commands[:3] == [b"MAIL FROM:<digest@example.org> SIZE=%d" % len(BODY),
                                   b"RCPT TO:<a@example.org>", b"DATA"]
    assert not session.is_connected


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("answers, stage, error, kind", [
    # our sender refused: deferred, and the sender stops the run (Outcome.pause)
    ({"MAIL": "550 5.7.1 sender refused", "RCPT": "503 5.5.1 need MAIL",
      "DATA": "503 5.5.1 need RCPT"}, "MAIL", aiosmtplib.SMTPSenderRefused, "deferred"),
    ({"MAIL": "451 4.3.0 rate limited", "RCPT": "503 5.5.1 need MAIL",
      "DATA": "503 5.5.1 need RCPT"}, "MAIL", aiosmtplib.SMTPSenderRefused, "deferred"),
    ({"RCPT": "550 5.1.1 no such user", "DATA": "554 5.5.1 no valid recipients"}, "RCPT",
     aiosmtplib.SMTPRecipientRefused, "bounced"),
    ({"RCPT": "452 4.2.2 mailbox full", "DATA": "554 5.5.1 no valid recipients"}, "RCPT",
     aiosmtplib.SMTPRecipientRefused, "deferred"),
    ({"DATA": "451 4.3.0 not now"}, "DATA", aiosmtplib.SMTPDataError, "deferred"),
    ({"END": "554 5.6.0 content refused"}, "DATA", aiosmtplib.SMTPDataError, "failed"),
])
async def test_a_refusal_is_raised_at_its_stage_and_the_session_goes_on(
        scripted, pipelining, answers, stage, error, kind):
    server, session = await scripted(answers, pipelining=pipelining)
    with pytest.raises(TransactionFailed) as e:
        await session.send(FROM, [], TO, BODY)
    assert (e.value.stage, type(e.value.error)) == (stage, error)
    assert e.value.body_sent == ("END" in answers)
    assert classify(e.value.stage, e.value.error, body_sent=e.value.body_sent).kind == kind
    # the replies are all read: the session is in step, RSET and the next message work
    await session.rset()
    assert session.is_connected
    server.answers = {}
    await session.send(FROM, [], TO, BODY)
    assert len(server.messages) == 1 + ("END" in answers)
    await session.quit()


async def test_data_accepted_after_a_refused_recipient_is_ended_empty(scripted):
    """RFC 2920 3.1: a server may take DATA although every RCPT was refused; the client
    then sends a lone "." rather than the message."""
    server, session = await scripted({"RCPT": "550 5.1.1 no such user", "DATA": "354 go on",
                                      "END": "554 5.5.1 no valid recipients"})
    with pytest.raises(TransactionFailed) as e:
        await session.send(FROM, [], TO, BODY)
    assert e.value.stage == "RCPT" and e.value.error.code == 550
    assert server.messages == [b""]  # no line of the message went out
    server.answers = {}
    await session.send(FROM, [], TO, BODY)
    assert server.messages[1].startswith(b"Subject: hi")
    await session.quit()


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("answers, stage, kind, body_sent", [
    ({"MAIL": "421 4.3.2 shutting down"}, "MAIL", "again", False),  # then it hangs up
    ({"MAIL": "close"}, "MAIL", "again", False),
    ({"RCPT": "close"}, "RCPT", "again", False),
    ({"DATA": "close"}, "DATA", "again", False),
    ({"END": "close"}, "DATA", "deferred", True),  # the server may have the message
    ({"END": "silent"}, "DATA", "deferred", True),  # no answer within the timeout
])
async def test_a_lost_connection_or_silence_is_raised_at_its_stage(
        scripted, pipelining, answers, stage, kind, body_sent):
    if answers.get("MAIL", "").startswith("421"):
        answers = {**answers, "RCPT": "close"}
    server, session = await scripted(answers, pipelining=pipelining)
    with pytest.raises(TransactionFailed) as e:
        await session.send(FROM, [], TO, BODY, done_timeout=0.5)
    assert e.value.stage == stage and e.value.body_sent == body_sent
    assert classify(e.value.stage, e.value.error, body_sent=e.value.body_sent).kind == kind
    await asyncio.sleep(0.05)
    assert not session.is_connected  # lost, closed by a 421 (RFC 5321 3.8) or out of step
    await session.quit()  # and quitting a lost session is quiet


async def test_multiline_replies_and_replies_split_across_packets(scripted):
    server, session = await scripted({
        "MAIL": "250-2.1.0 first line\r\n250-second\r\n250 2.1.0 ok",
        "RCPT": "550-5.1.1 that mailbox\r\n550 5.1.1 does not exist"})
    with pytest.raises(TransactionFailed) as e:
        await session.send(FROM, [], TO, BODY)
    assert e.value.stage == "RCPT"
    assert e.value.error.message == "5.1.1 that mailbox\n5.1.1 does not exist"
    await session.quit()


async def test_a_malformed_reply_ends_the_session(scripted):
    server, session = await scripted({"MAIL": "hello there"})
    with pytest.raises(TransactionFailed) as e:
        await session.send(FROM, [], TO, BODY)
    assert e.value.stage == "MAIL" and "Malformed" in str(e.value.error)
    assert not session.is_connected
    await session.quit()


async def test_the_aiosmtpd_test_server_announces_pipelining(smtp_sink):
    """The test server (tests/smtp_server.py) announces PIPELINING, as real relays do, so
    the sender's tests run the pipelined path; `pipelining=False` runs the other."""
    config = SmtpConfig(host="127.0.0.1", port=smtp_sink.port, security="none")
    session = Session(await connect(config))
    assert session.pipelining
    await session.quit()
    smtp_sink.handler.pipelining = False
    session = Session(await connect(config))
    assert not session.pipelining
    await session.send(FROM, [], TO, BODY)
    await session.quit()
    assert smtp_sink.received[0].data.endswith(b"end\r\n")


async def test_before_data_is_awaited_after_rcpt_and_its_error_sends_no_data(scripted):
    """PostgreSQL's group commit: a connection's next DATA waits for the commit of its last
    250 (sender.SmtpSender._committed); MAIL and RCPT go out meanwhile."""
    server, session = await scripted()
    seen = []

    async def commit():
        seen.append(list(server.commands))

    await session.send(FROM, [], TO, BODY, before_data=commit)
    assert [c[:4] for c in seen[0]] == [b"MAIL", b"RCPT"]

    async def commit_fails():
        raise OSError("the commit failed")

    with pytest.raises(OSError):
        await session.send(FROM, [], TO, BODY, before_data=commit_fails)
    assert [c[:4] for c in server.commands] == [b"MAIL", b"RCPT", b"DATA", b"MAIL", b"RCPT"]
    assert len(server.messages) == 1
    session.close()
