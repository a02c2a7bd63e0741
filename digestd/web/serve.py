"""Serving the app: the listen address, the socket, and uvicorn in the caller's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import stat
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from ..errors import ConfigError, DigestdError

log = logging.getLogger("digestd.web")

HEADER_TIMEOUT = 10.0  # seconds a connection may take to send a request's headers


class _HeaderDeadline:
    """Closes a connection that has not sent a whole request head within `header_timeout`
    seconds of connecting or of its last response (slowloris: a client that sends a header
    byte every few seconds would otherwise hold the connection, and a slot, for ever).

    uvicorn 0.54 has no such setting: `timeout_keep_alive` only runs while a kept-alive
    connection is silent, and any byte stops it. Both of its HTTP/1.1 protocols (h11 and
    httptools) make a new RequestResponseCycle when a request's headers are complete, so a
    connection whose cycle is unchanged (none yet, or the last one answered) when the timer
    fires is still waiting for headers. Request bodies are not timed here: MAX_BODY bounds
    them and the app reads them itself.
    """

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()  # the next request's head has the same time

    def connection_lost(self, exc) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        old = getattr(self, "_header_deadline", None)
        if old is not None:
            old.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late,
                                                     self.cycle)

    def _headers_late(self, cycle) -> None:
        waiting = self.cycle is cycle and (cycle is None or cycle.response_complete)
        if waiting and not self.transport.is_closing():
            log.info("event=http_header_timeout seconds=%g", self.header_timeout)
            self.transport.close()


def _http_protocol(header_timeout: float) -> type:
    """uvicorn's HTTP/1.1 protocol ("auto": httptools when installed, else h11) with the
    header deadline."""
    return type("HeaderDeadlineProtocol", (_HeaderDeadline, AutoHTTPProtocol),
                {"header_timeout": header_timeout})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the process that runs us owns the signals; uvicorn must not take them over
        yield


def parse_listen(listen: str) -> tuple[str, int] | str:
    """Where to listen: "127.0.0.1:8080", "[::1]:8080", ":8080" (all interfaces) -> (host, port);
    "unix:/run/digestd/web.sock" -> the socket path."""
    if listen.startswith("unix:"):
        return listen[5:]
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)", listen.strip())
    if not m:
        raise ConfigError(f'web.listen must be "HOST:PORT", "[IPv6]:PORT" or "unix:PATH", '
                          f'got "{listen}"')
    host = m[1] if m[1] is not None else (m[3] or "0.0.0.0")
    port = int(m[2] or m[4])
    if port > 65535:
        raise ConfigError(f"web.listen: port {port} is out of range")
    return host, port


def _bind(listen: str) -> socket.socket:
    where = parse_listen(listen)
    sock = None
    try:
        if isinstance(where, str):
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(where).st_mode):
                    os.unlink(where)  # a stale socket from an earlier run
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(where)
            os.chmod(where, 0o660)
        else:
            host, port = where
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as e:
        if sock is not None:
            sock.close()
        raise DigestdError(f"cannot listen on {listen}: {e.strerror or e}") from None
    return sock


def listening_address(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_web(app: Starlette, listen: str, *, ready: asyncio.Event | None = None,
                    stop: asyncio.Event | None = None,
                    header_timeout: float = HEADER_TIMEOUT) -> None:
    """Serve `app` with uvicorn in the running event loop until `stop` is set (or the task is
    cancelled). `ready` is set once the socket listens; app.state.listening then holds the
    address ("127.0.0.1:8080", with the real port when `listen` asked for port 0).

    Raises DigestdError when the address cannot be bound. uvicorn's access log stays off
    (paths carry tokens); requests are logged at debug level with tokens left out. A
    connection that takes longer than `header_timeout` seconds to send a request's headers
    is closed (see _HeaderDeadline); an idle kept-alive one after 5 seconds.
    """
    sock = _bind(listen)
    app.state.listening = listening_address(sock)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if uvicorn_log.level == logging.NOTSET:
        uvicorn_log.setLevel(logging.WARNING)  # its start/stop lines are not key=value
    config = uvicorn.Config(app, access_log=False, log_config=None, lifespan="off", ws="none",
                            server_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=5, timeout_keep_alive=5,
                            http=_http_protocol(header_timeout))
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            await task
            return
        log.info("event=web_listening listen=%s base_url=%s", app.state.listening,
                 app.state.web.config.web.base_url if hasattr(app.state, "web") else "")
        if ready is not None:
            ready.set()
        waiter = asyncio.ensure_future(stop.wait() if stop else asyncio.Event().wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        server.should_exit = True
        await task
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
        raise
    finally:
        sock.close()
        if isinstance(parse_listen(listen), str):
            with contextlib.suppress(OSError):
                os.unlink(parse_listen(listen))
        log.info("event=web_stopped")
