"""What every page shares: config, store, secret, templates, event counters, and the helpers
that render a page or stop a request with one."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from .. import __version__
from ..config import Config, web_secret
from ..models import FREQUENCIES
from ..render import Links, environment
from ..store import Store
from .forms import MAX_RULES, SubscriptionForm

log = logging.getLogger("digestd.web")

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
WEB_EVENTS = ("subscribe_confirmation_queued", "subscribe_manage_link_queued",
              "subscribe_resend_suppressed", "subscribe_address_limited", "subscribe_ip_limited",
              "subscribe_honeypot", "subscribe_invalid", "confirmed", "unsubscribed",
              "preferences_saved", "paused", "resumed", "deleted", "links_reset",
              "csrf_rejected", "token_rejected", "link_replaced", "mail_kick_failed",
              "digest_page", "feed_full", "feed_not_modified", "feedback_more",
              "feedback_less", "feedback_undone", "feedback_forgotten", "author_followed",
              "author_unfollowed", "seeds_added", "seeds_removed", "seeds_refused")

Mailer = Callable[[], Awaitable[Any]]
Clock = Callable[[], float]


class PageError(Exception):
    """Stops a request with a rendered page (a bad link, a rate limit ...)."""

    def __init__(self, response: Response) -> None:
        self.response = response


class Site:
    """The state the pages share and the helpers they render with."""

    def __init__(self, config: Config, store: Store, *, mailer: Mailer | None, clock: Clock
                 ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.secret = web_secret(config)
        self.links = Links(config.web.base_url, self.secret,
                           archive_url=config.digest.archive_url)
        base = urlsplit(config.web.base_url)
        self.prefix = base.path.rstrip("/")
        self.secure_cookies = base.scheme == "https"
        self.env = environment(config.digest.templates_dir)
        self.env.globals.update(url=self.url, site_title=config.web.title,
                                version=__version__, weekdays=WEEKDAYS,
                                frequencies=FREQUENCIES, max_rules=MAX_RULES)
        self.static = {name: self._static(name) for name in STATIC}
        self.env.globals["static"] = lambda name: self.url(
            f"/static/{name}?v={self.static[name][1]}")
        self.mailer = mailer or self._send_outbox
        self.send_lock = asyncio.Lock()
        self.events: Counter[str] = Counter({e: 0 for e in WEB_EVENTS})

        self._dkim: list = []  # [signer or None], made on the first mail

    def dkim(self):
        """The DKIM signer of [dkim] for the web's emails (None without one); the key is
        read once."""
        if not self._dkim:
            from ..jobs import make_dkim

            self._dkim.append(make_dkim(self.config))
        return self._dkim[0]

    # -- plumbing ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """A path under the public base URL (behind a proxy at /papers: /papers/p/...)."""
        return self.prefix + path

    def _static(self, name: str) -> tuple[bytes, str]:
        source = self.env.loader.get_source(self.env, f"web/{name}")[0].encode()
        return source, hashlib.sha256(source).hexdigest()[:12]

    def now_iso(self) -> str:
        return datetime.fromtimestamp(self.clock(), timezone.utc).isoformat(timespec="seconds")

    def page(self, name: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
             background: BackgroundTask | None = None, **context: Any) -> HTMLResponse:
        html = self.env.get_template(f"web/{name}.html").render(**context)
        return HTMLResponse(html, status_code=status, headers=headers, background=background)

    def message(self, status: int, heading: str, text: str, *, link: tuple[str, str] | None
                = None, headers: Mapping[str, str] | None = None) -> HTMLResponse:
        return self.page("message", status=status, headers=headers, heading=heading, text=text,
                         link=link)

    def fail(self, status: int, heading: str, text: str, **kw) -> PageError:
        return PageError(self.message(status, heading, text, **kw))

    def count(self, event: str) -> None:
        self.events[event] += 1

    async def read_form(self, request: Request) -> FormData:
        try:
            return await request.form(max_files=0, max_fields=MAX_RULES + 40,
                                      max_part_size=16 * 1024)
        except HTTPException as e:
            raise self.fail(400, "That form did not arrive whole", str(e.detail)) from None

    def form_defaults(self) -> SubscriptionForm:
        d = self.config.digest
        return SubscriptionForm(send_at=d.send_at, timezone=d.timezone, frequency=d.frequency)

    # -- mail ----------------------------------------------------------------------------------

    async def _send_outbox(self) -> Any:
        from ..jobs import send_outbox
        return await send_outbox(self.config, self.store)

    async def kick_mailer(self) -> None:
        """Deliver what was just queued now rather than at the sender's next round."""
        async with self.send_lock:
            try:
                await self.mailer()
            except Exception as e:  # the message stays in the outbox and is retried later
                self.count("mail_kick_failed")
                log.warning("event=mail_kick_failed error=%r", str(e))
