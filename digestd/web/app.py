"""The app: its routes, the layer around every request (path prefix, body limit, security
headers, logs) and the error pages."""

from __future__ import annotations

import logging
import time

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Config
from ..store import Store
from .digests import DigestPages
from .feed import FeedPages
from .feedback import FeedbackPages
from .guard import Guard
from .links import TOKEN_PATH, Tokens, redact
from .metrics import Monitoring
from .preferences import PreferencePages
from .ruletest import RuleTester
from .seeds import FILE_TOO_BIG, MAX_FILE, SEED_PATH, SeedPages
from .site import STATIC, Clock, Mailer, PageError, Site
from .subscribe import SubscribePages
from .unsubscribe import UnsubscribePages

log = logging.getLogger("digestd.web")

MAX_BODY = 64 * 1024             # no form of ours is bigger, but the seed file's
MAX_SEED_BODY = MAX_FILE + MAX_BODY
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


class Errors:
    """The pages for errors and the static files: what no area of the site owns."""

    def __init__(self, site: Site) -> None:
        self.site = site

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPException(404)
        body, etag = self.site.static[name]
        headers = {"ETag": f'"{etag}"', "Cache-Control": "public, max-age=86400"}
        if request.headers.get("if-none-match") == f'"{etag}"':
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=STATIC[name], headers=headers)

    # -- errors --------------------------------------------------------------------------------

    async def page_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return exc.response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return self.site.message(404, "Page not found", "There is nothing at this address.",
                                     link=("Go to the start page", self.site.url("/")))
        if exc.status_code == 405:
            return self.site.message(405, "Method not allowed",
                                     "This address does not take that kind of request.",
                                     headers=exc.headers)
        return self.site.message(exc.status_code, "Request not understood", str(exc.detail),
                                 headers=exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        # outside our middleware: add the security headers here
        log.error("event=web_error path=%s error=%r", redact(request.url.path), str(exc))
        response = self.site.message(500, "Something went wrong",
                                     "The error was logged. Please try again in a minute.")
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode()] = value.decode()
        return response


# -- middleware ----------------------------------------------------------------------------------

class Envelope:
    """Outermost layer of our own: strips the base_url path prefix, refuses big bodies, adds
    the security headers, and logs each request without its token."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        prefix = self.site.prefix
        path = scope["path"]
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            # a proxy that passes /papers/... on unchanged works as well as one that strips it
            scope = dict(scope, path=path[len(prefix):] or "/", raw_path=None)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        upload = scope["method"] == "POST" and SEED_PATH.match(scope["path"]) is not None
        limit = MAX_SEED_BODY if upload else MAX_BODY
        if not length.isdigit() or int(length) > limit:
            if upload:  # say what the limit is, and the way back to the card
                back = self.site.url(scope["path"].removesuffix("/seeds") + "#seeds")
                response = self.site.message(413, "That file is too large", FILE_TOO_BIG,
                                             link=("Back to your preferences", back))
            else:
                response = self.site.message(413, "Too much data", "That request is too large.")
            await response(scope, receive, self._with_headers(send, scope, [0]))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise HTTPException(413, "That request is too large.")
            return message

        status = [0]
        try:
            await self.app(scope, limited_receive, self._with_headers(send, scope, status))
        finally:
            log.debug("event=http method=%s path=%s status=%d took_ms=%d", scope["method"],
                      redact(scope["path"]), status[0], (time.monotonic() - started) * 1000)

    @staticmethod
    def _with_headers(send: Send, scope: Scope, status: list[int]) -> Send:
        private = TOKEN_PATH.match(scope["path"]) is not None

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"cache-control" not in present:
                    # pages carry tokens and personal data: keep them out of every cache
                    headers.append((b"cache-control", b"no-store"))
                if private:
                    headers.append((b"x-robots-tag", b"noindex, nofollow"))
                message = dict(message, headers=headers)
            await send(message)

        return wrapped


# -- the app -------------------------------------------------------------------------------------

def create_app(config: Config, store: Store, *, mailer: Mailer | None = None,
               clock: Clock | None = None) -> Starlette:
    """The web app over `store`.

    `mailer` is awaited (in the background, after the response) whenever a confirmation or
    preferences-link email was queued in the outbox; it should deliver the outbox now. By
    default it runs jobs.send_outbox itself; a process that already has a sender (the
    daemon) passes a function that wakes that sender instead, so two senders never race.
    `clock` returns the Unix time (tests move it to expire links and rate limits).
    """
    site = Site(config, store, mailer=mailer, clock=clock or time.time)
    guard, tokens = Guard(site), Tokens(site)
    tester = RuleTester(store, site.clock)
    prefs = PreferencePages(site, guard, tokens, tester)
    start = SubscribePages(site, guard, tokens, tester, prefs)
    unsubscribe = UnsubscribePages(site, tokens)
    digests, feeds = DigestPages(site, tokens), FeedPages(site, tokens)
    monitoring, errors = Monitoring(site), Errors(site)
    feedback = FeedbackPages(site, guard, tokens, prefs)
    seeds = SeedPages(site, guard, prefs)
    routes = [
        Route("/", start.home, methods=["GET"]),
        Route("/", start.subscribe, methods=["POST"]),
        Route("/rules/test", start.rule_test_json, methods=["GET"]),
        Route("/confirm/{token}", start.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", start.confirm, methods=["POST"]),
        Route("/p/{token}", prefs.preferences, methods=["GET"]),
        Route("/p/{token}", prefs.save_preferences, methods=["POST"]),
        Route("/p/{token}/pause", prefs.pause, methods=["POST"]),
        Route("/p/{token}/resume", prefs.resume, methods=["POST"]),
        Route("/p/{token}/delete", prefs.delete, methods=["POST"]),
        Route("/p/{token}/data.json", prefs.export, methods=["GET"]),
        Route("/p/{token}/reset", prefs.reset_links, methods=["POST"]),
        Route("/p/{token}/feedback/forget", feedback.forget, methods=["POST"]),
        Route("/p/{token}/seeds", seeds.add, methods=["POST"]),
        Route("/p/{token}/seeds/remove", seeds.remove, methods=["POST"]),
        Route("/d/{token}", digests.digest_page, methods=["GET"]),
        Route("/r/{token}/{place}", feedback.paper_page, methods=["GET"]),
        Route("/r/{token}/{place}/{action}", feedback.choice_page, methods=["GET"]),
        Route("/r/{token}/{place}/{action}", feedback.choose, methods=["POST"]),
        Route("/r/{token}/{place}/a/{author}", feedback.author_page, methods=["GET"]),
        Route("/r/{token}/{place}/a/{author}", feedback.follow, methods=["POST"]),
        Route("/f/{name}", feeds.feed, methods=["GET"]),
        Route("/u/{token}", unsubscribe.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", unsubscribe.unsubscribe, methods=["POST"]),
        Route("/healthz", monitoring.healthz, methods=["GET"]),
        Route("/metrics", monitoring.metrics, methods=["GET"]),
        Route("/static/{name}", errors.static_file, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Envelope, site=site)],
                    exception_handlers={PageError: errors.page_error,
                                        HTTPException: errors.http_error,
                                        Exception: errors.server_error})
    app.state.web = site
    app.state.rule_tests = tester
    return app
