"""A real HTTP server on 127.0.0.1 that serves recorded payloads and misbehaves on demand."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
FIXED_LAST_MODIFIED = "Mon, 27 Apr 2026 04:00:02 GMT"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    """What the server answers. `body` may be an iterable of chunks: sent chunked, without
    Content-Length, so the client cannot know the size in advance."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (cut short when the server stops)


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased


Route = Callable[[Request], Reply]


class FixtureServer:
    """ThreadingHTTPServer in a thread; routes by exact path, or by prefix for keys ending in *."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like real servers

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                req = Request(parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                              {k.lower(): v for k, v in self.headers.items()})
                server.requests.append(req)
                route = server.find(parts.path)
                reply = route(req) if route else Reply(404, b"not found")
                if reply.delay and server.stopping.wait(reply.delay):
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                if isinstance(reply.body, (bytes, bytearray)):
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in reply.body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:  # the client gave up on a huge body: that is the point
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            # The default backlog of 5 drops the SYNs of concurrent polls, and the kernel
            # retries them only after a second: a fake timeout.
            request_queue_size = 128

            def handle_error(self, request, client_address) -> None:
                pass  # clients hanging up mid-answer are expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={
            "poll_interval": 0.02}, daemon=True)

    def start(self) -> FixtureServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def find(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        for key, route in self.routes.items():
            if key.endswith("*") and path.startswith(key[:-1]):
                return route
        return None

    def hits(self, prefix: str = "") -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- route builders ----------------------------------------------------------------------

    def route(self, path: str, route: Route) -> None:
        self.routes[path] = route

    def replies(self, path: str, *replies: Reply) -> None:
        """Answer with each reply in turn, then keep answering with the last one."""
        queue = list(replies)

        def next_reply(_req: Request) -> Reply:
            return queue.pop(0) if len(queue) > 1 else queue[0]
        self.routes[path] = next_reply

    def payload(self, path: str, body: bytes, content_type: str, *, validators: bool = True
                ) -> None:
        """Serve `body` with an ETag and Last-Modified, answering 304 when they match."""
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'

        def serve(req: Request) -> Reply:
            if validators:
                if req.headers.get("if-none-match") == etag or (
                        "if-none-match" not in req.headers
                        and req.headers.get("if-modified-since") == FIXED_LAST_MODIFIED):
                    return Reply(304, b"", {"ETag": etag})
                headers = {"ETag": etag, "Last-Modified": FIXED_LAST_MODIFIED}
            else:
                headers = {}
            return Reply(200, body, {"Content-Type": content_type, **headers})
        self.routes[path] = serve

    def file(self, path: str, name: str, content_type: str = "application/xml", *,
             validators: bool = True) -> None:
        self.payload(path, fixture_bytes(name), content_type, validators=validators)


@pytest.fixture(name="server")
def server_fixture():
    """A FixtureServer, stopped after the test (import this into a test module to use it)."""
    srv = FixtureServer().start()
    yield srv
    srv.stop()
