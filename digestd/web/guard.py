"""Who a client is (behind trusted proxies), rate limits, CSRF and the honeypot.

With several instances behind one proxy (a PostgreSQL store) every limit is counted in the
store, so a client meets the same limit whichever instance answers; the CSRF value is an
HMAC of the shared link secret (web.secret_file), which any instance checks alike.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ConfigError
from ..models import Subscriber
from ..validators import mailbox_key
from .site import Site

log = logging.getLogger("digestd.web")

IP_WINDOW = 3600                 # web.subscribe_per_ip counts requests in this window
ADDRESS_WINDOW = 24 * 3600       # web.mails_per_address counts mails in this window
TESTS_PER_IP = 600               # rule tests per client and hour (the live test is per keystroke)
FEEDBACK_PER_IP = 300            # feedback POSTs (choices, undos, follows) per client and hour
SEEDS_PER_IP = 300               # seed POSTs (add, remove) per client and hour
SEED_FILES_PER_IP = 30           # of which with a file (up to 2 MB to parse) per client and hour
RATE_WINDOW = 600                # shared limits (PostgreSQL) count in windows of this many s
CSRF_COOKIE = "digestd_csrf"
HONEYPOT = "website"             # a field people never see and bots love to fill


class Guard:
    """The checks a request passes before a page acts on it."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.proxies = _networks(site.config.web.trusted_proxies)
        self.test_hits: dict[str, deque] = {}
        self.feedback_hits: dict[str, deque] = {}
        self.seed_hits: dict[str, deque] = {}
        self.seed_file_hits: dict[str, deque] = {}

    def keyed(self, kind: str, value: str) -> str:
        """A keyed hash: rate limits are counted without storing addresses or IPs."""
        digest = hmac.new(self.site.secret, f"{kind}:{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]

    def client(self, request: Request) -> str:
        """The client's address; behind a trusted proxy, the last untrusted X-Forwarded-For hop.
        IPv6 clients count per /64, since one host usually has a whole /64."""
        peer = request.client.host if request.client else ""
        # a peer that is no IP address came through a unix socket: a local proxy
        if _in(peer, self.proxies) or not _is_ip(peer):
            hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",")]
            for hop in reversed([h for h in hops if h]):
                peer = hop
                if not _in(hop, self.proxies):
                    break
        try:
            ip = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if ip.version == 6:
            if ip.ipv4_mapped:
                return str(ip.ipv4_mapped)
            return str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return str(ip)

    # -- csrf ----------------------------------------------------------------------------------

    def csrf(self, request: Request, sid: int) -> tuple[str, str | None]:
        """(the form's CSRF value, a new cookie value to set or None): the value is bound to
        this browser's random cookie and to the subscriber."""
        cookie = request.cookies.get(CSRF_COOKIE)
        new = None
        if not cookie or len(cookie) > 100:
            cookie = new = secrets.token_urlsafe(24)
        value = hmac.new(self.site.secret, f"csrf:{cookie}:{sid}".encode(), hashlib.sha256)
        return value.hexdigest()[:40], new

    def check_csrf(self, request: Request, form: FormData, sid: int, token: str, *,
                   reload: str | None = None) -> None:
        """A 403 page unless the form's CSRF value is this browser's for this subscriber;
        the page links to `reload` (by default the preferences page of `token`)."""
        cookie = request.cookies.get(CSRF_COOKIE)
        expected = self.csrf(request, sid)[0] if cookie else ""
        sent = str(form.get("csrf", ""))
        if (request.headers.get("sec-fetch-site") == "cross-site" or not cookie
                or not hmac.compare_digest(sent.encode(), expected.encode())):
            self.site.count("csrf_rejected")
            log.warning("event=csrf_rejected subscriber=%d", sid)
            if reload is not None:
                raise self.site.fail(403, "This form has expired",
                                     "For your safety this page only accepts forms it showed "
                                     "in this browser (cookies must be on). Nothing was changed: "
                                     "reload the page and try again.",
                                     link=("Reload the page", reload))
            raise self.site.fail(403, "This form has expired",
                                 "For your safety the preferences page only accepts forms it "
                                 "showed in this browser (cookies must be on). Reload the page and "
                                 "try again.", link=("Reload the preferences page",
                                                    self.site.url(f"/p/{token}")))

    def with_cookie(self, response: Response, cookie: str | None) -> Response:
        if cookie:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict",
                                secure=self.site.secure_cookies, path=self.site.prefix or "/")
        return response

    # -- rate limits and the honeypot -----------------------------------------------------------

    def is_bot(self, form: FormData) -> bool:
        """Whether the form's honeypot field, which people never see, was filled in."""
        return bool(form.get(HONEYPOT))

    def allow_subscribe(self, request: Request) -> None:
        """Counts a subscription asked for by this client; a 429 page past
        web.subscribe_per_ip in the last hour. Clients are counted by keyed hash."""
        now = self.site.clock()
        ip_key = self.keyed("ip", self.client(request))
        if self.site.store.count_events("ip", ip_key, now - IP_WINDOW) >= \
                self.site.config.web.subscribe_per_ip:
            self.site.count("subscribe_ip_limited")
            log.warning("event=subscribe result=ip_limited")
            raise self.site.fail(429, "Too many requests",
                                 "Too many subscriptions were asked for from your network in the "
                                 "last hour. Please try again later.",
                                 headers={"Retry-After": "3600"})
        self.site.store.add_event("ip", ip_key, now)

    def allow_mail_to(self, sub: Subscriber, now: float) -> str | None:
        """The key that counts the emails to `sub`'s mailbox, or None (counted and logged)
        when it got web.mails_per_address of them in the last 24 hours. Plus-tags
        ("victim+1@", "victim+2@" ...) and Gmail's dots are one mailbox: one limit."""
        key = self.keyed("address", mailbox_key(sub.email))
        if self.site.store.count_events("address", key, now - ADDRESS_WINDOW) >= \
                self.site.config.web.mails_per_address:
            self.site.count("subscribe_address_limited")
            log.warning("event=subscribe result=address_limited subscriber=%d", sub.id)
            return None
        return key

    def mailed(self, key: str, now: float) -> None:
        """Counts an email queued for the mailbox `key` (from allow_mail_to)."""
        self.site.store.add_event("address", key, now)

    def allow_test(self, request: Request) -> None:
        self._allow(request, "test", self.test_hits, TESTS_PER_IP, "Too many rule tests",
                    "Please wait a few minutes before testing more rules.")

    def allow_feedback(self, request: Request) -> None:
        """Counts a feedback POST (a choice, an undo, a follow) from this client; a 429 page
        past FEEDBACK_PER_IP in the last hour."""
        self._allow(request, "feedback", self.feedback_hits, FEEDBACK_PER_IP,
                    "Too many requests",
                    "Please wait a few minutes before sending more feedback. Nothing was "
                    "changed.")

    def allow_seeds(self, request: Request) -> None:
        """Counts a seed POST (add or remove) from this client; a 429 page past
        SEEDS_PER_IP in the last hour."""
        self._allow(request, "seeds", self.seed_hits, SEEDS_PER_IP, "Too many requests",
                    "Please wait a few minutes before changing your seed papers again. "
                    "Nothing was changed.")

    def allow_seed_file(self, request: Request) -> None:
        """Counts a seed file uploaded from this client; a 429 page past SEED_FILES_PER_IP
        in the last hour."""
        self._allow(request, "seed_file", self.seed_file_hits, SEED_FILES_PER_IP,
                    "Too many files",
                    "Please wait a while before sending another seed file. Nothing was "
                    "changed.")

    def _allow(self, request: Request, kind: str, clients: dict[str, deque], limit: int,
               heading: str, text: str) -> None:
        """Count a request of `kind` from this client; a 429 page past `limit` in the last
        hour. In this process's memory (`clients`), or in the store when it is shared by
        several instances (PostgreSQL), in windows of RATE_WINDOW seconds."""
        who = self.client(request)
        store = self.site.store
        if store.sql.name == "postgresql":
            if not store.rate_hit(self.keyed(kind, who), limit, now=self.site.clock(),
                                  window_s=RATE_WINDOW, span_s=IP_WINDOW):
                raise self.site.fail(429, heading, text, headers={"Retry-After": "600"})
            return
        hits = clients.setdefault(who, deque())
        now = time.monotonic()
        while hits and hits[0] < now - IP_WINDOW:
            hits.popleft()
        if len(hits) >= limit:
            raise self.site.fail(429, heading, text, headers={"Retry-After": "600"})
        hits.append(now)
        if len(clients) > 10_000:  # forget idle clients
            for key in [k for k, v in clients.items() if not v or v[-1] < now - 600]:
                del clients[key]


def _networks(items: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f'web.trusted_proxies: "{item}" is not an IP address or '
                              "network") from None
    return out


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _in(host: str, networks: Sequence) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip.version == n.version and ip in n for n in networks)
