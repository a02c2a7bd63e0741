"""The CPU of one SMTP connection's mail transactions: digestd's Session (deliver/session.py,
pipelined where the server announces PIPELINING) against aiosmtplib's commands as the sender
used them before (execute_command for MAIL FROM, RCPT TO and DATA, then the message written
on aiosmtplib's protocol), in one process, in turn, to the same sink.

    python bench/session.py                 # 4,000 messages of 38 KB, 4 rounds
    python bench/session.py -n 2000 --rounds 2 --json

The sink is Postfix's smtp-sink when installed (it announces PIPELINING), else aiosmtpd in a
thread (which does not, so the Session goes one command at a time). Reported: CPU ms per
message of each side in each round, their ratio in each round (lower: the Session costs
less) and the median ratio. The machine's load moves both sides alike within a round;
compare the ratios, not the times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
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
        # as root smtp-sink wants a user to run as; as anyone else it runs as that user
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        proc = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "256"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(50):
            try:
                with aiosmtplib_probe(port):
                    return "smtp-sink", proc.kill
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
        proc.kill()
        why = (proc.stderr.read() or b"").decode(errors="replace").strip() if proc.stderr \
            else ""
        print(f"smtp-sink did not start ({why or 'no greeting'}); using aiosmtpd",
              file=sys.stderr)
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return "aiosmtpd", controller.stop


class aiosmtplib_probe:  # noqa: N801 (a context manager named for what it does)
    """Connect to the sink and read its greeting (raises OSError when there is none)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=1.0)

    def __enter__(self):
        self.sock.settimeout(1.0)
        if not self.sock.recv(512).startswith(b"220"):
            self.sock.close()
            raise OSError("no SMTP greeting")
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()


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
    ratios = [b / a for a, b in zip(old, new)]
    result = {"sink": sink, "messages": args.n, "message_bytes": len(MESSAGE),
              "pipelined": pipelined, "aiosmtplib_cpu_ms": [round(x, 3) for x in old],
              "session_cpu_ms": [round(x, 3) for x in new],
              "cpu_ratio_per_round": [round(r, 3) for r in ratios],
              "cpu_ratio_median": round(statistics.median(ratios), 3)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.n} messages of {len(MESSAGE) / 1000:.0f} KB a round over one connection to "
          f"{sink} ({'pipelined' if pipelined else 'one command at a time'}); CPU a message, "
          "lower is better:")
    for i, (a, b) in enumerate(zip(old, new), 1):
        print(f"  round {i}: aiosmtplib's commands {a:.3f} ms, Session {b:.3f} ms: the Session "
              f"costs {b / a:.2f}x")
    print(f"  median of the rounds: the Session costs {result['cpu_ratio_median']:.2f}x the CPU "
          "of aiosmtplib's commands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
