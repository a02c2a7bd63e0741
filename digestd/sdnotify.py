"""The systemd notify protocol (sd_notify(3)) without dependencies: READY, WATCHDOG, STATUS, STOPPING.

Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op, so the daemon calls
these unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("digestd.sdnotify")


NOTIFY_WAIT = 2.0  # seconds a state change may wait for room in systemd's queue


class Notifier:
    """Datagrams to $NOTIFY_SOCKET: a path, or an abstract socket written as "@name"."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if raw.startswith("@"):
            self.address = "\0" + raw[1:]  # Linux abstract namespace
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            log.warning("event=notify_unsupported socket=%r", raw)
        self._sock: socket.socket | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process the watchdog is meant for; a child must not ping
        mine = not pid or pid == str(os.getpid())
        self.watchdog_usec = int(usec) if usec.isdigit() and mine else 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings: half the watchdog timeout, as sd_notify(3) asks;
        None when systemd runs no watchdog for us."""
        if not self.watchdog_usec:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    def send(self, *fields: str) -> bool:
        """Send `KEY=value` fields in one datagram; False if not under systemd or it failed."""
        if self.address is None:
            return False
        data = "\n".join(fields).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                # never block the event loop on a notify socket that is not being read (its
                # queue holds only a few datagrams): a ping dropped now is sent again soon
                self._sock.setblocking(False)
            self._send(data, ping=fields == ("WATCHDOG=1",))
        except BlockingIOError:
            log.debug("event=notify_dropped reason=socket_full fields=%s",
                      ",".join(f.partition("=")[0] for f in fields))
            return False
        except OSError as e:
            log.warning("event=notify_failed error=%r", str(e))
            return False
        return True

    def _send(self, data: bytes, *, ping: bool) -> None:
        """One datagram. A full queue drops a watchdog ping at once (the next comes soon);
        READY, STOPPING, RELOADING and STATUS wait for room, at most NOTIFY_WAIT seconds."""
        assert self._sock is not None and self.address is not None
        deadline = time.monotonic() + (0 if ping else NOTIFY_WAIT)
        while True:
            try:
                self._sock.sendto(data, self.address)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.005)

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *_status(status))

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets Type=notify-reload units tell this reload from an older one
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str = "") -> bool:
        return self.send("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str) -> tuple[str, ...]:
    # one line: a newline would start a new KEY=value field
    return (f"STATUS={' '.join(text.split())}",) if text else ()
