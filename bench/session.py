"""The CPU of one SMTP connection's mail transactions: digestd's Session (deliver/session.py,
pipelined where the server announces PIPELINING) against aiosmtplib's commands as the sender
used them before (execute_command for MAIL FROM, RCPT TO and DATA, then the message written
on aiosmtplib's protocol), in one process, in turn, to the same sink.

    python bench/session.py                 # 4,000 messages of 38 KB, 4 rounds
    python bench/session.py -n 2000 --rounds 2 --json

The sink is Postfix's smtp-sink when installed (it announces PIPELINING), else aiosmtpd in a
thread (which does not, so the Session goes one command at a time). Reported: CPU ms per
message of each side in each round, the best of each, and their ratio. The machine's load
moves both sides alike within a round; compare the ratio, not the times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402

from digestd.deliver.session import Session, _dot_stuffed  # noqa: E402
from digestd.deliver.smtp import envelope_path  # noqa: E402

LINE = b"Some line of text of a digest, about 70 characters long, and so on. \r\n"
MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\n" + LINE * 540


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port: int):
    """(the sink's name, a function that stops it)."""
    sink = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink"
                                         if Path("/usr/sbin/smtp-sink").exists() else None)
    if sink:
        proc = subprocess.Popen([sink, "-u", "nobody", f"127.0.0.1:{port}", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        return "smtp-sink", proc.kill
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return "aiosmtpd", controller.stop


async def _client(port: int) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
    await client.connect()
    await client.ehlo()
    return client


async def with_aiosmtplib(port: int, n: int) -> float:
    """CPU seconds for n transactions through aiosmtplib's execute_command."""
    client = await _client(port)
    sender, recipient = envelope_path("a@example.org"), envelope_path("b@example.org")
    started = time.process_time()
    for _ in range(n):
        for args, code in (((b"MAIL", b"FROM:" + sender, b"SIZE=%d" % len(MESSAGE)), 250),
                           ((b"RCPT", b"TO:" + recipient), 250), ((b"DATA",), 354)):
            reply = await client.execute_command(*args)
            assert reply.code == code, reply
        # the same checks of the line ends and dot-stuffing as the Session's
        client.protocol.write(_dot_stuffed(MESSAGE) + b".\r\n")
        reply = await client.protocol.read_response(timeout=30)
        assert reply.code == 250, reply
    cpu = time.process_time() - started
    await client.quit()
    return cpu


async def with_session(port: int, n: int) -> tuple[float, bool]:
    """(CPU seconds for n transactions through Session.send, whether it pipelined)."""
    session = Session(await _client(port))
    sender, recipient = envelope_path("a@example.org"), envelope_path("b@example.org")
    started = time.process_time()
    for _ in range(n):
        await session.send(sender, [b"SIZE=%d" % len(MESSAGE)], recipient, MESSAGE)
    cpu = time.process_time() - started
    await session.quit()
    return cpu, session.pipelining


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=4000, help="messages per side and round (4000)")
    ap.add_argument("--rounds", type=int, default=4, help="rounds, each side in turn (4)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    port = free_port()
    sink, stop = start_sink(port)
    try:
        old, new, pipelined = [], [], False
        for _ in range(args.rounds):
            old.append(1000 * asyncio.run(with_aiosmtplib(port, args.n)) / args.n)
            cpu, pipelined = asyncio.run(with_session(port, args.n))
            new.append(1000 * cpu / args.n)
    finally:
        stop()
    result = {"sink": sink, "messages": args.n, "message_bytes": len(MESSAGE),
              "pipelined": pipelined, "aiosmtplib_cpu_ms": [round(x, 3) for x in old],
              "session_cpu_ms": [round(x, 3) for x in new],
              "ratio_of_best": round(min(new) / min(old), 3)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.n} messages of {len(MESSAGE) / 1000:.0f} KB a round over one connection to "
          f"{sink} ({'pipelined' if pipelined else 'one command at a time'}):")
    for i, (a, b) in enumerate(zip(old, new), 1):
        print(f"  round {i}: aiosmtplib's commands {a:.3f} ms of CPU a message, "
              f"Session {b:.3f} ms ({b / a:.2f}x)")
    print(f"  best: {min(old):.3f} against {min(new):.3f} ms: the Session costs "
          f"{result['ratio_of_best']:.2f}x aiosmtplib's commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
