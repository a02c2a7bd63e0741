"""The web app: subscribe with double opt-in, preferences, one-click unsubscribe, each digest's
page, the archive and the private Atom feed, health, metrics.

A Starlette (ASGI) app made by `create_app`, served by uvicorn in the caller's event loop
through `serve_web`. Pages need no JavaScript; /static/app.js only adds a live rule test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import random
import re
import secrets
import socket
import stat
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__
from .config import Config, web_secret
from .errors import ConfigError, DigestdError, NotFound, RuleError
from .match import match_rules
from .models import FREQUENCIES, Paper, Subscriber
from .render import Links, environment, period_label, short_authors, shorten
from .rules import And, Not, Or, Phrase, Prefix, Value, Word, parse, validate
from .store import DeliveredPaper, Store
from .tokens import parse_digest_value, parse_subscriber_value, sign, verify
from .validators import EmailNotValidError, email_address, is_time_zone, mailbox_key, time_zones

log = logging.getLogger("digestd.web")

CONFIRM_TTL = 48 * 3600          # a confirmation link is valid this long
RESEND_AFTER = 10 * 60           # no second mail to one address within this
IP_WINDOW = 3600                 # web.subscribe_per_ip counts requests in this window
ADDRESS_WINDOW = 24 * 3600       # web.mails_per_address counts mails in this window
PENDING_KEPT = timedelta(days=7)  # unconfirmed subscriptions are forgotten after this
TEST_DAYS = 30                   # "test this rule" looks this far back
TEST_EXAMPLES = 5
EXACT_LIMIT = 1500               # papers matched exactly per rule test; more are sampled
TEST_CONCURRENCY = 2             # rule tests are CPU work: at most this many at once
TEST_CACHE_SECONDS = 300         # the last 30 days of papers are reloaded at most this often
TESTS_PER_IP = 600               # rule tests per client and hour (the live test is per keystroke)
MAX_RULES = 20
MAX_BODY = 64 * 1024             # no form of ours is bigger
CSRF_COOKIE = "digestd_csrf"
HONEYPOT = "website"             # a field people never see and bots love to fill
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
TOKEN_PATH = re.compile(r"^(/(?:u|p|d|f|confirm)/)[^/]+")
ARCHIVE_PAGE = 20                # past digests per page of the archive list
FEED_DAYS = 30                   # the feed holds the papers delivered in the last 30 days ...
FEED_ENTRIES = 500               # ... or the last 500 of them, whichever is fewer
FEED_TYPE = "application/atom+xml; charset=utf-8"
STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "favicon.svg": "image/svg+xml"}

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
WEB_EVENTS = ("subscribe_confirmation_queued", "subscribe_manage_link_queued",
              "subscribe_resend_suppressed", "subscribe_address_limited", "subscribe_ip_limited",
              "subscribe_honeypot", "subscribe_invalid", "confirmed", "unsubscribed",
              "preferences_saved", "paused", "resumed", "deleted", "links_reset",
              "csrf_rejected", "token_rejected", "link_replaced", "mail_kick_failed",
              "digest_page", "feed_full", "feed_not_modified")

Mailer = Callable[[], Awaitable[Any]]
Clock = Callable[[], float]


class PageError(Exception):
    """Stops a request with a rendered page (a bad link, a rate limit ...)."""

    def __init__(self, response: Response) -> None:
        self.response = response


# -- forms ---------------------------------------------------------------------------------------

@dataclass
class RuleTest:
    """What one rule would have matched over the last TEST_DAYS days."""

    rule: str
    error: str | None = None
    column: int | None = None
    matches: int = 0
    examples: list[dict] = field(default_factory=list)
    estimated: bool = False  # counted on a sample: the rule matches very many papers

    def as_json(self, days: int) -> dict:
        return {"rule": self.rule, "ok": self.error is None, "error": self.error,
                "column": self.column, "matches": self.matches, "days": days,
                "estimated": self.estimated,
                "per_day": round(self.matches / days, 1), "examples": self.examples}


@dataclass
class RuleTests:
    by_input: dict[int, RuleTest]
    together: int
    papers: int
    days: int = TEST_DAYS
    estimated: bool = False


@dataclass
class SubscriptionForm:
    """The fields of the subscribe and preferences forms, as typed, and their errors."""

    email: str = ""
    rules: list[str] = field(default_factory=list)  # one per input box, blanks included
    send_at: str = "07:00"
    timezone: str = "UTC"
    frequency: str = "daily"
    weekday: int = 0
    send_empty: bool = False
    feed_only: bool = False  # the preferences form's "Feed only, no email"
    errors: dict[str, str] = field(default_factory=dict)  # field (or "rule-N") -> message
    error_columns: dict[int, int] = field(default_factory=dict)  # input N -> 1-based column

    @classmethod
    def of(cls, sub: Subscriber) -> SubscriptionForm:
        return cls(email=sub.email, rules=list(sub.rules), send_at=sub.send_at,
                   timezone=sub.timezone, frequency=sub.frequency, weekday=sub.weekday,
                   send_empty=sub.send_empty, feed_only=sub.feed_only)

    @classmethod
    def parse(cls, form: FormData, defaults: SubscriptionForm, *, with_email: bool
              ) -> SubscriptionForm:
        """Read and validate a submitted form; problems go into `errors`, never raise."""
        f = cls(email=str(form.get("email", "")).strip() if with_email else defaults.email,
                rules=[str(r) for r in form.getlist("rule")][:MAX_RULES + 5],
                send_at=str(form.get("send_at", defaults.send_at)).strip()[:5],
                timezone=str(form.get("timezone", defaults.timezone)).strip(),
                frequency=str(form.get("frequency", defaults.frequency)),
                send_empty=form.get("send_empty") == "on",
                feed_only=form.get("delivery") == "feed")
        try:
            f.weekday = int(str(form.get("weekday", defaults.weekday)))
        except ValueError:
            f.weekday = -1
        if with_email:
            if not f.email:
                f.errors["email"] = "Enter your email address."
            else:
                try:
                    f.email = email_address(f.email)  # the rule of the CLI and the config
                except EmailNotValidError as e:
                    f.errors["email"] = f"This is not a valid email address: {e}"
        for i, rule in enumerate(f.rules):
            if not rule.strip():
                continue
            try:
                validate(rule)
            except RuleError as e:
                f.errors[f"rule-{i}"] = str(e)
                if e.column:
                    f.error_columns[i] = e.column
        if not f.clean_rules:
            f.errors["rules"] = "Add at least one rule, e.g. diffusion or \"noisy labels\"."
        elif len(f.clean_rules) > MAX_RULES:
            f.errors["rules"] = f"At most {MAX_RULES} rules, please."
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", f.send_at):
            f.errors["send_at"] = "Give the time as HH:MM, e.g. 07:30."
        if not is_time_zone(f.timezone):
            f.errors["timezone"] = "Pick a time zone from the list, e.g. Europe/Berlin."
        if f.frequency not in FREQUENCIES:
            f.errors["frequency"] = "Pick daily, weekdays or weekly."
        if not 0 <= f.weekday <= 6:
            f.errors["weekday"] = "Pick a day of the week."
        return f

    @property
    def clean_rules(self) -> list[str]:
        """The non-blank rules, stripped, each once, in the order typed."""
        return list(dict.fromkeys(r.strip() for r in self.rules if r.strip()))

    def boxes(self, spare: int = 2) -> list[str]:
        """What the rule inputs show: the rules typed plus `spare` empty boxes (3 at least)."""
        shown = list(self.rules)
        while shown and not shown[-1].strip():
            shown.pop()
        return shown + [""] * max(spare, 3 - len(shown))


def lowered(paper: Paper) -> tuple[str | None, ...]:
    """The paper's title, abstract, authors, categories and source lowercased, for quick
    substring tests; None where the text is not plain ASCII (there lowercasing is not the
    rule language's normalization, so no quick test applies)."""
    def low(text: str) -> str | None:
        return text.lower() if text.isascii() else None
    return (low(paper.title), low(paper.abstract), low("\n".join(paper.authors)),
            low("\n".join(" ".join(c.split()) for c in paper.categories)),
            low(" ".join(paper.source.split())))


_FIELD_SLOTS = {"title": (0,), "abstract": (1,), None: (0, 1), "author": (2,),
                "category": (3,), "source": (4,)}


def _needs(node: Any) -> tuple | None:
    """What a paper's text must contain for `node` to match it: ("sub", field slots,
    strings), ("and", needs) or ("or", needs); None when nothing can be required."""
    if isinstance(node, Word):
        return ("sub", _FIELD_SLOTS[node.field], (node.word,))
    if isinstance(node, Prefix):
        return ("sub", _FIELD_SLOTS[node.field], (node.prefix,))
    if isinstance(node, Phrase):
        return ("sub", _FIELD_SLOTS[node.field], node.words)
    if isinstance(node, Value):
        return ("sub", _FIELD_SLOTS[node.field], (node.value,))
    if isinstance(node, And):
        parts = [n for n in (_needs(c) for c in node.children) if n is not None]
        return ("and", parts) if parts else None
    if isinstance(node, Or):
        parts = [_needs(c) for c in node.children]
        return None if any(n is None for n in parts) else ("or", parts)
    assert isinstance(node, Not)
    return None  # a negation requires nothing to be present


def _may_match(need: tuple, text: tuple[str | None, ...]) -> bool:
    """False only when the paper cannot match: the atom's words are missing from its text."""
    kind = need[0]
    if kind == "sub":
        for slot in need[1]:
            found = text[slot]
            if found is None or all(s in found for s in need[2]):
                return True
        return False
    if kind == "and":
        return all(_may_match(n, text) for n in need[1])
    return any(_may_match(n, text) for n in need[1])


def try_rules(rules: Sequence[str], papers: Sequence[Paper],
              texts: Sequence[tuple] | None = None, *, days: int = TEST_DAYS,
              exact_limit: int = EXACT_LIMIT) -> RuleTests:
    """Match each rule (by input position; blanks skipped) against `papers`: counts, the
    newest examples, and how many papers all valid rules together would have matched.

    `texts` are the papers' `lowered()` forms (computed here when not given). When more
    than `exact_limit` papers could match, an even sample of them is matched and the counts
    are scaled up and marked estimated: a rule that broad is too broad for a digest anyway.
    """
    tests: dict[int, RuleTest] = {}
    valid: list[tuple[int, str]] = []
    needs = []
    for i, rule in enumerate(rules):
        if not rule.strip():
            continue
        try:
            node = parse(rule)
        except RuleError as e:
            tests[i] = RuleTest(rule, error=str(e), column=e.column)
            continue
        tests[i] = RuleTest(rule)
        valid.append((i, rule))
        needs.append(_needs(node))
    result = RuleTests(tests, 0, len(papers), days)
    if not valid or not papers:
        return result
    # Splitting a paper into words costs ~0.25 ms, too much for 30 days of papers per
    # keystroke: a substring test that never rejects a match leaves the few worth it.
    candidates: Sequence[Paper] = papers
    if all(n is not None for n in needs):
        texts = texts if texts is not None else [lowered(p) for p in papers]
        candidates = [p for p, t in zip(papers, texts) if any(_may_match(n, t) for n in needs)]
    scale = 1.0
    if len(candidates) > exact_limit:
        scale = len(candidates) / exact_limit
        # a fixed seed: the same rule gives the same estimate on every keystroke
        picked = sorted(random.Random(0).sample(range(len(candidates)), exact_limit))
        candidates = [candidates[k] for k in picked]
        result.estimated = True
    matches = match_rules([r for _, r in valid], candidates)
    result.together = round(len(matches) * scale)
    for m in sorted(matches, key=lambda m: m.paper.published, reverse=True):
        for rm in m.rules:
            t = tests[valid[rm.index][0]]
            t.matches += 1
            if len(t.examples) < TEST_EXAMPLES:
                t.examples.append(_example(m.paper, rm))
    if result.estimated:
        for i, _rule in valid:
            tests[i].matches = round(tests[i].matches * scale)
            tests[i].estimated = True
    return result


def _example(paper: Paper, rm) -> dict:
    return {"title": paper.title, "url": paper.url, "published": paper.published[:10],
            "source": paper.source, "authors": short_authors(paper.authors),
            "abstract": shorten(paper.abstract, 200),
            "why": ", ".join(str(h) for h in rm.hits)}


# -- the app -------------------------------------------------------------------------------------

class Web:
    """The request handlers and what they share: config, store, secret, templates, counters."""

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
        self.proxies = _networks(config.web.trusted_proxies)
        self.mailer = mailer or self._send_outbox
        self.send_lock = asyncio.Lock()
        self.events: Counter[str] = Counter({e: 0 for e in WEB_EVENTS})
        self.test_hits: dict[str, deque] = {}
        self.papers_cache: RecentPapers | None = None
        self.papers_lock = asyncio.Lock()
        self.test_slots = asyncio.Semaphore(TEST_CONCURRENCY)
        self.last_prune = 0.0

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

    def keyed(self, kind: str, value: str) -> str:
        """A keyed hash: rate limits are counted without storing addresses or IPs."""
        return hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

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

    async def read_form(self, request: Request) -> FormData:
        try:
            return await request.form(max_files=0, max_fields=MAX_RULES + 40,
                                      max_part_size=16 * 1024)
        except HTTPException as e:
            raise self.fail(400, "That form did not arrive whole", str(e.detail)) from None

    def token(self, purpose: str, token: str) -> str:
        """The value signed in a link's token; a page saying what is wrong with it otherwise."""
        value = verify(self.secret, purpose, token, now=self.clock())
        if value is not None:
            return value
        self.count("token_rejected")
        if verify(self.secret, purpose, token, now=0) is not None:
            raise self.fail(400, "This link has expired",
                            "Confirmation links are valid for 48 hours. Fill in the form again "
                            "to get a new one.", link=("Subscribe again", self.url("/")))
        raise self.fail(400, "This link is not valid",
                        "It may have been cut off or changed on the way (some mail programs "
                        "break long links). Copy the whole link from the email, or use the "
                        "link in your latest digest. Nothing was changed.",
                        link=("Go to the start page", self.url("/")))

    def subscriber(self, subscriber_id: int | str) -> Subscriber:
        try:
            return self.store.get_subscriber(int(subscriber_id))
        except (NotFound, ValueError):
            raise self.fail(404, "No such subscription",
                            "This subscription does not exist (any more): it was deleted, so "
                            "nothing more is sent to it.",
                            link=("Subscribe again", self.url("/"))) from None

    def linked_subscriber(self, purpose: str, token: str, *, any_generation: bool = False
                          ) -> Subscriber:
        """The subscriber a /p/, /u/ or /f/ link names: 400 for a forged or cut link, 404 for
        a deleted subscriber, 410 for a link retired by "reset my links" (unless
        `any_generation`: old unsubscribe links keep working)."""
        parsed = parse_subscriber_value(self.token(purpose, token))
        if parsed is None:  # signed by us, but not a subscriber link: never made
            raise self.fail(400, "This link is not valid", "Nothing was changed.",
                            link=("Go to the start page", self.url("/")))
        sub = self.subscriber(parsed[0])
        if parsed[1] != sub.link_gen and not any_generation:
            self.count("link_replaced")
            raise self.fail(410, "This link was replaced",
                            "New links were made for this subscription (\"Reset my links\"), "
                            "so this one no longer works. Use the links in your newest digest.",
                            link=("Go to the start page", self.url("/")))
        return sub

    def prefs_token(self, sub: Subscriber) -> str:
        return self.links.preferences_token(sub.id, sub.link_gen)

    def form_defaults(self) -> SubscriptionForm:
        d = self.config.digest
        return SubscriptionForm(send_at=d.send_at, timezone=d.timezone, frequency=d.frequency)

    # -- csrf ----------------------------------------------------------------------------------

    def csrf(self, request: Request, sid: int) -> tuple[str, str | None]:
        """(the form's CSRF value, a new cookie value to set or None): the value is bound to
        this browser's random cookie and to the subscriber."""
        cookie = request.cookies.get(CSRF_COOKIE)
        new = None
        if not cookie or len(cookie) > 100:
            cookie = new = secrets.token_urlsafe(24)
        value = hmac.new(self.secret, f"csrf:{cookie}:{sid}".encode(), hashlib.sha256)
        return value.hexdigest()[:40], new

    def check_csrf(self, request: Request, form: FormData, sid: int, token: str) -> None:
        cookie = request.cookies.get(CSRF_COOKIE)
        expected = self.csrf(request, sid)[0] if cookie else ""
        sent = str(form.get("csrf", ""))
        if (request.headers.get("sec-fetch-site") == "cross-site" or not cookie
                or not hmac.compare_digest(sent.encode(), expected.encode())):
            self.count("csrf_rejected")
            log.warning("event=csrf_rejected subscriber=%d", sid)
            raise self.fail(403, "This form has expired",
                            "For your safety the preferences page only accepts forms it showed "
                            "in this browser (cookies must be on). Reload the page and try "
                            "again.", link=("Reload the preferences page",
                                            self.url(f"/p/{token}")))

    def with_cookie(self, response: Response, cookie: str | None) -> Response:
        if cookie:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict",
                                secure=self.secure_cookies, path=self.prefix or "/")
        return response

    # -- rule tests ----------------------------------------------------------------------------

    async def recent_papers(self) -> RecentPapers:
        """The last TEST_DAYS days of papers, cached for a few minutes and dropped when
        nobody tests rules; read in a worker thread by a connection of its own, so a large
        store never blocks the event loop."""
        async with self.papers_lock:
            cached = self.papers_cache
            if cached and time.monotonic() - cached.loaded < TEST_CACHE_SECONDS:
                cached.used = time.monotonic()
                return cached
            since = (datetime.fromtimestamp(self.clock(), timezone.utc)
                     - timedelta(days=TEST_DAYS)).isoformat(timespec="seconds")
            if self.store.path == ":memory:":
                recent = RecentPapers.of(self.store.papers_since(since))
            else:
                recent = await anyio.to_thread.run_sync(_recent_papers, self.store.path, since)
            self.papers_cache = recent
            asyncio.get_running_loop().call_later(TEST_CACHE_SECONDS, self._drop_idle_cache)
            return recent

    def _drop_idle_cache(self) -> None:
        cached = self.papers_cache
        if cached is None:
            return
        idle = time.monotonic() - cached.used
        if idle >= TEST_CACHE_SECONDS - 1:
            self.papers_cache = None  # 30 days of papers is memory worth giving back
        else:
            asyncio.get_running_loop().call_later(TEST_CACHE_SECONDS - idle,
                                                  self._drop_idle_cache)

    async def run_tests(self, rules: Sequence[str]) -> RuleTests:
        recent = await self.recent_papers()
        async with self.test_slots:
            return await anyio.to_thread.run_sync(try_rules, list(rules), recent.papers,
                                                  recent.texts)

    def allow_test(self, request: Request) -> None:
        who = self.client(request)
        hits = self.test_hits.setdefault(who, deque())
        now = time.monotonic()
        while hits and hits[0] < now - IP_WINDOW:
            hits.popleft()
        if len(hits) >= TESTS_PER_IP:
            raise self.fail(429, "Too many rule tests",
                            "Please wait a few minutes before testing more rules.",
                            headers={"Retry-After": "600"})
        hits.append(now)
        if len(self.test_hits) > 10_000:  # forget idle clients
            for key in [k for k, v in self.test_hits.items() if not v or v[-1] < now - 600]:
                del self.test_hits[key]

    # -- mail ----------------------------------------------------------------------------------

    async def _send_outbox(self) -> Any:
        from .jobs import send_outbox
        return await send_outbox(self.config, self.store)

    async def kick_mailer(self) -> None:
        """Deliver what was just queued now rather than at the sender's next round."""
        async with self.send_lock:
            try:
                await self.mailer()
            except Exception as e:  # the message stays in the outbox and is retried later
                self.count("mail_kick_failed")
                log.warning("event=mail_kick_failed error=%r", str(e))

    def mail(self, sub: Subscriber, kind: str, link: str) -> tuple[str, bytes]:
        """(Message-ID, bytes) of a confirmation ("confirm") or preferences-link ("manage")
        email: a text part and an HTML part from templates/web/KIND_email.*."""
        context = {"email": sub.email, "rules": sub.rules, "link": link, "sub": sub,
                   "hours": CONFIRM_TTL // 3600, "base_url": self.config.web.base_url}
        text = self.env.get_template(f"web/{kind}_email.txt").render(context)
        html = self.env.get_template(f"web/{kind}_email.html").render(context)
        title = self.config.web.title
        msg = EmailMessage()
        msg["From"] = self.config.delivery.from_
        msg["To"] = sub.email
        msg["Subject"] = (f"Confirm your subscription to {title}" if kind == "confirm"
                          else f"Your {title} subscription")
        msg["Date"] = format_datetime(datetime.fromtimestamp(self.clock(), timezone.utc))
        domain = parseaddr(self.config.delivery.from_)[1].rpartition("@")[2] or "localhost"
        message_id = make_msgid(f"{kind}.{sub.id}", domain=domain)
        msg["Message-ID"] = message_id
        if self.config.delivery.reply_to:
            msg["Reply-To"] = self.config.delivery.reply_to
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return message_id, msg.as_bytes()

    def maybe_prune(self) -> None:
        now = self.clock()
        if now - self.last_prune < 600:
            return
        self.last_prune = now
        before = (datetime.fromtimestamp(now, timezone.utc) - PENDING_KEPT)
        events, subs = self.store.prune_web(events_before=now - ADDRESS_WINDOW,
                                            pending_before=before.isoformat(timespec="seconds"))
        if events or subs:
            log.info("event=web_pruned rate_events=%d unconfirmed_subscribers=%d", events, subs)

    # -- pages: subscribe ----------------------------------------------------------------------

    def subscribe_page(self, form: SubscriptionForm, *, status: int = 200,
                       tests: RuleTests | None = None) -> HTMLResponse:
        sources = [s for s in self.config.sources if s.enabled]
        return self.page("subscribe", status=status, form=form, tests=tests,
                         sources=sources, time_zones=time_zones(), test_days=TEST_DAYS)

    async def home(self, request: Request) -> Response:
        return self.subscribe_page(self.form_defaults())

    async def subscribe(self, request: Request) -> Response:
        raw = await self.read_form(request)
        form = SubscriptionForm.parse(raw, self.form_defaults(), with_email=True)
        if raw.get("action") == "test":
            self.allow_test(request)
            form.errors = {k: v for k, v in form.errors.items() if k.startswith("rule")}
            return self.subscribe_page(form, tests=await self.run_tests(form.rules))
        if raw.get(HONEYPOT):
            # look exactly like success, so the bot learns nothing
            self.count("subscribe_honeypot")
            log.info("event=subscribe result=honeypot")
            return self.page("check_inbox", email=form.email, hours=CONFIRM_TTL // 3600)
        if form.errors:
            self.count("subscribe_invalid")
            return self.subscribe_page(form, status=400)
        now = self.clock()
        ip_key = self.keyed("ip", self.client(request))
        if self.store.count_events("ip", ip_key, now - IP_WINDOW) >= \
                self.config.web.subscribe_per_ip:
            self.count("subscribe_ip_limited")
            log.warning("event=subscribe result=ip_limited")
            raise self.fail(429, "Too many requests",
                            "Too many subscriptions were asked for from your network in the "
                            "last hour. Please try again later.", headers={"Retry-After": "3600"})
        self.store.add_event("ip", ip_key, now)
        self.maybe_prune()
        sub, nonce = self.store.request_subscription(
            form.email, form.clean_rules, nonce=secrets.token_urlsafe(9),
            timezone=form.timezone, send_at=form.send_at, frequency=form.frequency,
            weekday=form.weekday, now=self.now_iso())
        background = self.queue_web_mail(sub, nonce)
        # the same page whatever happened, so nobody can learn who is subscribed
        return self.page("check_inbox", email=form.email, hours=CONFIRM_TTL // 3600,
                         background=background)

    def queue_web_mail(self, sub: Subscriber, nonce: str | None) -> BackgroundTask | None:
        """Queue a confirmation (pending) or preferences-link (already subscribed) email,
        unless this address was mailed in the last 10 minutes or too often today."""
        now = self.clock()
        kind = "confirm" if nonce else "manage"
        last = self.store.web_mail_at(sub.id)
        if last and now - datetime.fromisoformat(last).timestamp() < RESEND_AFTER:
            self.count("subscribe_resend_suppressed")
            log.info("event=subscribe result=resend_suppressed subscriber=%d", sub.id)
            return None
        # plus-tags ("victim+1@", "victim+2@" ...) and Gmail's dots are one mailbox: one limit
        address_key = self.keyed("address", mailbox_key(sub.email))
        if self.store.count_events("address", address_key, now - ADDRESS_WINDOW) >= \
                self.config.web.mails_per_address:
            self.count("subscribe_address_limited")
            log.warning("event=subscribe result=address_limited subscriber=%d", sub.id)
            return None
        if nonce:
            token = sign(self.secret, "confirm", f"{sub.id}.{nonce}", ttl=CONFIRM_TTL,
                         now=now)
            link = f"{self.config.web.base_url.rstrip('/')}/confirm/{token}"
        else:
            link = self.links.preferences(sub.id, sub.link_gen)
        message_id, message = self.mail(sub, kind, link)
        did = self.store.queue_message(sub.id, kind, recipient=sub.email,
                                       message_id=message_id, message=message, now=now)
        if did is None:
            return None
        self.store.add_event("address", address_key, now)
        event = "subscribe_confirmation_queued" if nonce else "subscribe_manage_link_queued"
        self.count(event)
        log.info("event=subscribe result=%s subscriber=%d outbox=%d", kind, sub.id, did)
        return BackgroundTask(self.kick_mailer)

    async def rule_test_json(self, request: Request) -> Response:
        """GET /rules/test?rule=...: what the live test on the forms shows, as JSON."""
        self.allow_test(request)
        rules = [r[:1000] for r in request.query_params.getlist("rule")][:MAX_RULES]
        tests = await self.run_tests(rules)
        return JSONResponse({"days": tests.days, "papers": tests.papers,
                             "together": tests.together,
                             "rules": [tests.by_input[i].as_json(tests.days)
                                       if i in tests.by_input else None
                                       for i in range(len(rules))]})

    # -- pages: confirm and preferences --------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        value = self.token("confirm", request.path_params["token"])
        sid, _, nonce = value.partition(".")
        sub = self.subscriber(sid)
        if self.store.confirm_subscriber(sub.id, nonce, now=self.now_iso()):
            self.count("confirmed")
            log.info("event=confirmed subscriber=%d", sub.id)
            return self.preferences_page(request, self.store.get_subscriber(sub.id),
                                         self.prefs_token(sub), notice="welcome")
        if sub.status == "active" and self.store.confirm_nonce(sub.id) == nonce:
            return self.preferences_page(request, sub, self.prefs_token(sub),
                                         notice="already")
        raise self.fail(410, "This link was already used",
                        "This confirmation link was used before or replaced by a newer one, "
                        "so it changes nothing now. To manage your subscription, use the link "
                        "at the bottom of any digest, or subscribe again.",
                        link=("Go to the start page", self.url("/")))

    def preferences_page(self, request: Request, sub: Subscriber, token: str, *,
                         form: SubscriptionForm | None = None, status: int = 200,
                         notice: str | None = None, tests: RuleTests | None = None,
                         delete_error: str | None = None, page: int = 1) -> Response:
        csrf, cookie = self.csrf(request, sub.id)
        digests, total = self.store.digest_archive(sub.id, limit=ARCHIVE_PAGE,
                                                   offset=(page - 1) * ARCHIVE_PAGE)
        archive = [{"label": period_label(d.period), "url": self.links.digest(sub.id, d.period),
                    "built": d.created_at[:10], "papers": d.papers, "checked": d.checked,
                    "status": d.status} for d in digests]
        pages = max(1, -(-total // ARCHIVE_PAGE))
        response = self.page(
            "preferences", status=status, sub=sub, form=form or SubscriptionForm.of(sub),
            token=token, csrf=csrf, notice=notice, tests=tests, delete_error=delete_error,
            time_zones=time_zones(), test_days=TEST_DAYS,
            unsubscribe_url=self.url(f"/u/{self.links.unsubscribe_token(sub.id, sub.link_gen)}"),
            feed_url=self.links.feed(sub.id, sub.link_gen), archive=archive,
            archive_total=total, archive_page=page, archive_pages=pages,
            feed_days=FEED_DAYS, feed_entries=FEED_ENTRIES)
        return self.with_cookie(response, cookie)

    def prefs_subscriber(self, request: Request) -> tuple[Subscriber, str]:
        token = request.path_params["token"]
        return self.linked_subscriber("prefs", token), token

    async def preferences(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        notice = request.query_params.get("done")
        try:
            page = max(1, min(int(request.query_params.get("page", "1")), 10**6))
        except ValueError:
            page = 1
        return self.preferences_page(request, sub, token, page=page,
                                     notice=notice if notice in NOTICES else None)

    async def save_preferences(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        raw = await self.read_form(request)
        self.check_csrf(request, raw, sub.id, token)
        form = SubscriptionForm.parse(raw, SubscriptionForm.of(sub), with_email=False)
        if raw.get("action") == "test":
            self.allow_test(request)
            form.errors = {k: v for k, v in form.errors.items() if k.startswith("rule")}
            return self.preferences_page(request, sub, token, form=form,
                                         tests=await self.run_tests(form.rules))
        if form.errors:
            return self.preferences_page(request, sub, token, form=form, status=400)
        self.store.update_preferences(sub.id, form.clean_rules, timezone=form.timezone,
                                      send_at=form.send_at, frequency=form.frequency,
                                      weekday=form.weekday, send_empty=form.send_empty,
                                      feed_only=form.feed_only)
        self.count("preferences_saved")
        log.info("event=preferences_saved subscriber=%d rules=%d feed_only=%d", sub.id,
                 len(form.clean_rules), form.feed_only)
        return self.done(token, "saved")

    def done(self, token: str, what: str) -> Response:
        # Post/Redirect/Get: a reload does not submit twice
        return RedirectResponse(self.url(f"/p/{token}?done={what}"), status_code=303)

    async def pause(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        self.check_csrf(request, await self.read_form(request), sub.id, token)
        if sub.status == "active":
            self.store.set_status(sub.id, "paused")
            self.count("paused")
            log.info("event=paused subscriber=%d", sub.id)
        return self.done(token, "paused")

    async def resume(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        self.check_csrf(request, await self.read_form(request), sub.id, token)
        if sub.status != "active":
            # the signed link proves the mailbox is theirs: no new confirmation needed
            self.store.resume_subscriber(sub.id)
            self.count("resumed")
            log.info("event=resumed subscriber=%d from=%s", sub.id, sub.status)
        return self.done(token, "resumed")

    async def delete(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        raw = await self.read_form(request)
        self.check_csrf(request, raw, sub.id, token)
        if raw.get("confirm") != "yes":
            return self.preferences_page(
                request, sub, token, status=400,
                delete_error="Tick the box to confirm that everything should be deleted.")
        self.store.remove_subscriber(sub.email)
        self.count("deleted")
        log.info("event=deleted subscriber=%d", sub.id)
        return self.message(200, "Your data is deleted",
                            "Your address, your rules and the history of what we sent you are "
                            "gone. No more email will come from us, and the links in old "
                            "emails no longer work.",
                            link=("Subscribe again", self.url("/")))

    async def reset_links(self, request: Request) -> Response:
        """POST /p/TOKEN/reset: new /p/, /f/ and /u/ links; the old /p/ and /f/ links stop
        working (410), old /u/ links still unsubscribe. Goes on to the new /p/ link."""
        sub, token = self.prefs_subscriber(request)
        self.check_csrf(request, await self.read_form(request), sub.id, token)
        generation = self.store.reset_links(sub.id)
        self.count("links_reset")
        log.info("event=links_reset subscriber=%d generation=%d", sub.id, generation)
        return self.done(self.links.preferences_token(sub.id, generation), "links_reset")

    async def export(self, request: Request) -> Response:
        sub, _token = self.prefs_subscriber(request)
        data = self.store.subscriber_export(sub.id)
        data["exported_at"] = self.now_iso()
        return JSONResponse(data, headers={
            "Content-Disposition": 'attachment; filename="digestd-my-data.json"'})

    # -- pages: unsubscribe --------------------------------------------------------------------

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET /u/TOKEN never unsubscribes: link scanners and previews fetch it."""
        token = request.path_params["token"]
        sub = self.linked_subscriber("unsub", token, any_generation=True)
        return self.page("unsubscribe", sub=sub, token=token, done=False,
                         preferences_url=self.url(f"/p/{self.prefs_token(sub)}"))

    async def unsubscribe(self, request: Request) -> Response:
        """POST /u/TOKEN: RFC 8058 one-click (and the button): no cookie, no CSRF token, 200."""
        token = request.path_params["token"]
        sub = self.linked_subscriber("unsub", token, any_generation=True)
        if not await _is_one_click(request):
            raise self.fail(400, "Not unsubscribed",
                            "This address unsubscribes with the body "
                            "List-Unsubscribe=One-Click (RFC 8058), as the button on the "
                            "unsubscribe page sends. Nothing was changed.",
                            link=("Go to the unsubscribe page", self.url(f"/u/{token}")))
        if sub.status != "unsubscribed":
            self.store.set_status(sub.id, "unsubscribed")
            self.count("unsubscribed")
            log.info("event=unsubscribed subscriber=%d from=%s", sub.id, sub.status)
        return self.page("unsubscribe", sub=sub, token=token, done=True,
                         preferences_url=self.url(f"/p/{self.prefs_token(sub)}"))

    # -- pages: a digest and the feed ----------------------------------------------------------

    async def digest_page(self, request: Request) -> Response:
        """GET /d/TOKEN: every paper of one digest (or its "nothing matched" note), in the
        digest's order, read from the store: it works after the message was pruned."""
        parsed = parse_digest_value(self.token("digest", request.path_params["token"]))
        if parsed is None:
            raise self.fail(400, "This link is not valid", "Nothing was changed.",
                            link=("Go to the start page", self.url("/")))
        sub = self.subscriber(parsed[0])
        digest = self.store.digest_of(sub.id, parsed[1])
        if digest is None:
            raise self.fail(404, "No such digest",
                            "This digest is not kept (any more).",
                            link=("Go to the start page", self.url("/")))
        papers = self.store.digest_papers(digest)
        self.count("digest_page")
        url = self.links.digest(sub.id, digest.period)
        return self.page("digest", digest=digest, label=period_label(digest.period),
                         papers=[_PaperPage.of(d, url, n) for n, d in enumerate(papers, 1)])

    async def feed(self, request: Request) -> Response:
        """GET /f/TOKEN.atom: the subscriber's private Atom feed (RFC 4287), one entry per
        paper delivered in the last FEED_DAYS days (at most FEED_ENTRIES). Conditional
        requests (RFC 9110 13.1: If-None-Match, If-Modified-Since) are answered 304 from one
        indexed query, before anything is rendered."""
        name = request.path_params["name"]
        if not name.endswith(".atom"):
            raise HTTPException(404)
        parsed = parse_subscriber_value(self.token("feed", name[:-len(".atom")]))
        if parsed is None:
            raise self.fail(400, "This link is not valid", "Nothing was changed.")
        sid, generation = parsed
        found = self.store.feed_validators(sid)
        if found is None:
            self.subscriber(sid)  # the 404 page
        link_gen, delivered, last_sent = found
        if generation != link_gen:
            self.count("link_replaced")
            raise self.fail(410, "This feed address was replaced",
                            "New links were made for this subscription (\"Reset my links\"). "
                            "The preferences page shows the new feed address.")
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        # the window moves once a day, at midnight UTC: the feed changes then, or when a
        # digest is delivered, or when the links are reset
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - timedelta(days=FEED_DAYS)
        modified = max(today, datetime.fromisoformat(last_sent).astimezone(timezone.utc)) \
            if last_sent else today
        version = hashlib.sha256(f"{link_gen}:{delivered}:{last_sent}:{since.date()}".encode())
        etag = f'W/"{version.hexdigest()[:20]}"'
        headers = {"ETag": etag, "Last-Modified": format_datetime(modified, usegmt=True),
                   "Cache-Control": "private, no-cache"}
        if _not_modified(request, etag, modified):
            self.count("feed_not_modified")
            return Response(status_code=304, headers=headers)
        entries = self.store.feed_entries(sid, since=since.isoformat(timespec="seconds"),
                                          limit=FEED_ENTRIES)
        self.count("feed_full")
        # one signed link per digest, not per paper
        pages = {period: self.links.digest(sid, period) for period in {e.period for e in entries}}
        xml = self.env.get_template("web/feed.xml").render(
            entries=[_PaperPage.of(e, pages[e.period]) for e in entries], subscriber_id=sid,
            self_url=self.links.feed(sid, link_gen),
            updated=_rfc3339(last_sent) if last_sent else _rfc3339(modified.isoformat()),
            tag=_tag_authority(self.config.web.base_url))
        return Response(xml, media_type=FEED_TYPE, headers=headers)

    # -- operations ----------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        try:
            schema = self.store.schema_version()
            states = {s.name: s for s in self.store.source_states()}
            outbox = self.store.outbox_stats()
        except Exception as e:  # sqlite3.Error and anything else: the store is not usable
            log.error("event=healthz store=unreachable error=%r", str(e))
            return JSONResponse({"status": "error", "store": {"ok": False, "error": str(e)}},
                                status_code=503)
        sources = []
        for src in self.config.sources:
            st = states.get(src.name)
            sources.append({
                "name": src.name, "kind": src.kind, "enabled": src.enabled,
                "last_poll": st.last_poll if st else None,
                "last_success": st.last_success if st else None,
                "last_error": st.last_error if st else None,
                "last_error_at": st.last_error_at if st else None,
                "consecutive_errors": st.consecutive_errors if st else 0})
        totals = {k: sum(v[k] for v in outbox.values())
                  for k in ("queued", "deferred", "due", "failed")}
        return JSONResponse({
            "status": "ok", "version": __version__,
            "store": {"ok": True, "schema_version": schema},
            "sources": sources,
            "outbox": {"backlog": totals["queued"] + totals["deferred"], **totals,
                       "by_kind": outbox}})

    async def metrics(self, request: Request) -> Response:
        states = self.store.source_states()
        outbox = self.store.outbox_stats()
        subscribers, bounces = self.store.subscriber_counts()
        m = _Metrics()
        m.add("digestd_papers_stored", "gauge", "Papers in the store: every paper seen, once.",
              [({}, self.store.count_papers())])
        m.add("digestd_source_papers_seen_total", "counter",
              "New papers each source brought in.",
              [({"source": s.name}, s.papers_seen) for s in states])
        m.add("digestd_source_polls_total", "counter", "Polls per source.",
              [({"source": s.name}, s.polls) for s in states])
        m.add("digestd_source_errors_total", "counter", "Failed polls per source.",
              [({"source": s.name}, s.errors_total) for s in states])
        m.add("digestd_source_consecutive_errors", "gauge",
              "Failed polls in a row per source (0 when the last poll worked).",
              [({"source": s.name}, s.consecutive_errors) for s in states])
        m.add("digestd_source_last_success_timestamp_seconds", "gauge",
              "When each source was last polled successfully.",
              [({"source": s.name}, _unix(s.last_success)) for s in states if s.last_success])
        digests = outbox.get("digest", {})
        m.add("digestd_digests", "gauge",
              "Digests in the outbox by state: queued (first try pending), deferred "
              "(retrying after a temporary error), sent, failed (delivery gave up), "
              "build_failed (could not be built: see `digestd outbox --failed`).",
              [({"state": k}, digests.get(k, 0) or 0)
               for k in ("queued", "deferred", "sent", "failed", "build_failed")])
        m.add("digestd_web_mails", "gauge",
              "Confirmation and preferences-link emails in the outbox by kind and state.",
              [({"kind": kind, "state": k}, v or 0) for kind, row in sorted(outbox.items())
               if kind != "digest" for k, v in row.items() if k not in ("due", "build_failed")])
        m.add("digestd_outbox_due", "gauge", "Outbox messages due to be sent now.",
              [({}, sum(v["due"] or 0 for v in outbox.values()))])
        m.add("digestd_subscribers", "gauge", "Subscribers by status.",
              [({"status": s}, subscribers.get(s, 0))
               for s in ("pending", "active", "paused", "unsubscribed", "bouncing")])
        m.add("digestd_bounces", "gauge", "Hard bounces counted over all subscribers.",
              [({}, bounces)])
        m.add("digestd_web_events_total", "counter",
              "Web events since this process started.",
              [({"event": e}, n) for e, n in sorted(self.events.items())])
        return Response(m.text(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPException(404)
        body, etag = self.static[name]
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
            return self.message(404, "Page not found", "There is nothing at this address.",
                                link=("Go to the start page", self.url("/")))
        if exc.status_code == 405:
            return self.message(405, "Method not allowed",
                                "This address does not take that kind of request.",
                                headers=exc.headers)
        return self.message(exc.status_code, "Request not understood", str(exc.detail),
                            headers=exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        # outside our middleware: add the security headers here
        log.error("event=web_error path=%s error=%r", redact(request.url.path), str(exc))
        response = self.message(500, "Something went wrong",
                                "The error was logged. Please try again in a minute.")
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode()] = value.decode()
        return response


NOTICES = ("saved", "paused", "resumed", "welcome", "already", "links_reset")


@dataclass(frozen=True)
class _PaperPage:
    """One paper as a digest's page and the feed show it: everything, the abstract whole."""

    id: str
    title: str
    url: str
    pdf_url: str
    authors: str
    author_list: tuple[str, ...]
    source: str
    categories: tuple[str, ...]
    published: str  # YYYY-MM-DD or ""
    published_rfc3339: str  # for Atom; "" when the source gave no usable date
    upvotes: int | None
    abstract: str
    why: str
    sent_rfc3339: str
    period: str
    number: int  # 1-based place in its digest
    page_url: str  # its place on the digest's page

    @classmethod
    def of(cls, d: DeliveredPaper, digest_url: str, number: int = 0) -> _PaperPage:
        """`digest_url`: the page of the digest `d` is in; `number` its place there (else
        from its stored position)."""
        p = d.paper
        number = number or (d.position or 0) + 1
        return cls(id=p.id, title=_xml_text(p.title), url=p.url, pdf_url=p.pdf_url,
                   authors=short_authors(p.authors, shown=30),
                   author_list=tuple(_xml_text(a) for a in p.authors[:100]),
                   source=p.source, categories=p.categories, published=(p.published or "")[:10],
                   published_rfc3339=_rfc3339(p.published), upvotes=p.upvotes,
                   abstract=_xml_text(p.abstract), why=d.why,
                   sent_rfc3339=_rfc3339(d.sent_at) if d.sent_at else "", period=d.period,
                   number=number, page_url=f"{digest_url}#paper-{number}")


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Text without the control characters XML 1.0 cannot carry, even as references."""
    return _NOT_XML.sub("", text or "")


def _rfc3339(stamp: str | None) -> str:
    """An ISO date or time as an RFC 3339 date-time (UTC); "" if it is not one."""
    if not stamp:
        return ""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tag_authority(base_url: str) -> str:
    """The authority of the feed's tag: URIs (RFC 4151), from web.base_url."""
    host = urlsplit(base_url).hostname or "localhost"
    return f"{host},2026"


def _not_modified(request: Request, etag: str, modified: datetime) -> bool:
    """RFC 9110 13.1.2 and 13.1.3: If-None-Match (weak comparison) decides when present,
    else If-Modified-Since."""
    match = request.headers.get("if-none-match")
    if match is not None:
        if match.strip() == "*":
            return True
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        return etag.removeprefix("W/") in tags
    since = request.headers.get("if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return modified.replace(microsecond=0) <= when


@dataclass
class RecentPapers:
    """The papers "test this rule" runs on, with their lowered() texts."""

    papers: list[Paper]
    texts: list[tuple]
    loaded: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, papers: list[Paper]) -> RecentPapers:
        return cls(papers, [lowered(p) for p in papers])


def _recent_papers(path: str, since: str) -> RecentPapers:
    with Store(path) as store:
        return RecentPapers.of(store.papers_since(since))


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


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


async def _is_one_click(request: Request) -> bool:
    """Whether the body says List-Unsubscribe=One-Click, urlencoded or multipart (RFC 8058
    allows either), or bare when a client sends no content type."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        try:
            form = await request.form(max_files=0, max_fields=20, max_part_size=4096)
        except HTTPException:
            return False
        return str(form.get("List-Unsubscribe", "")).strip() == "One-Click"
    body = await request.body()
    return body.strip() == b"List-Unsubscribe=One-Click"


class _Metrics:
    """Prometheus text exposition format, version 0.0.4."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help: str,
            samples: Sequence[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            shown = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            value = float(value)
            number = str(int(value)) if value.is_integer() else repr(value)
            self.lines.append(f"{name}{{{shown}}} {number}" if shown else f"{name} {number}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def redact(path: str) -> str:
    """A path fit for logs: the token in /u/, /p/ and /confirm/ links is left out."""
    return TOKEN_PATH.sub(r"\1<token>", path)


# -- middleware ----------------------------------------------------------------------------------

class _Guard:
    """Outermost layer of our own: strips the base_url path prefix, refuses big bodies, adds
    the security headers, and logs each request without its token."""

    def __init__(self, app: ASGIApp, web: Web) -> None:
        self.app = app
        self.web = web

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        prefix = self.web.prefix
        path = scope["path"]
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            # a proxy that passes /papers/... on unchanged works as well as one that strips it
            scope = dict(scope, path=path[len(prefix):] or "/", raw_path=None)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > MAX_BODY:
            response = self.web.message(413, "Too much data", "That request is too large.")
            await response(scope, receive, self._with_headers(send, scope, [0]))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:
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


# -- factory and server --------------------------------------------------------------------------

def create_app(config: Config, store: Store, *, mailer: Mailer | None = None,
               clock: Clock | None = None) -> Starlette:
    """The web app over `store`.

    `mailer` is awaited (in the background, after the response) whenever a confirmation or
    preferences-link email was queued in the outbox; it should deliver the outbox now. By
    default it runs jobs.send_outbox itself; a process that already has a sender (the
    daemon) passes a function that wakes that sender instead, so two senders never race.
    `clock` returns the Unix time (tests move it to expire links and rate limits).
    """
    web = Web(config, store, mailer=mailer, clock=clock or time.time)
    routes = [
        Route("/", web.home, methods=["GET"]),
        Route("/", web.subscribe, methods=["POST"]),
        Route("/rules/test", web.rule_test_json, methods=["GET"]),
        Route("/confirm/{token}", web.confirm, methods=["GET"]),
        Route("/p/{token}", web.preferences, methods=["GET"]),
        Route("/p/{token}", web.save_preferences, methods=["POST"]),
        Route("/p/{token}/pause", web.pause, methods=["POST"]),
        Route("/p/{token}/resume", web.resume, methods=["POST"]),
        Route("/p/{token}/delete", web.delete, methods=["POST"]),
        Route("/p/{token}/data.json", web.export, methods=["GET"]),
        Route("/p/{token}/reset", web.reset_links, methods=["POST"]),
        Route("/d/{token}", web.digest_page, methods=["GET"]),
        Route("/f/{name}", web.feed, methods=["GET"]),
        Route("/u/{token}", web.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", web.unsubscribe, methods=["POST"]),
        Route("/healthz", web.healthz, methods=["GET"]),
        Route("/metrics", web.metrics, methods=["GET"]),
        Route("/static/{name}", web.static_file, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(_Guard, web=web)],
                    exception_handlers={PageError: web.page_error,
                                        HTTPException: web.http_error,
                                        Exception: web.server_error})
    app.state.web = web
    return app


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
                    stop: asyncio.Event | None = None) -> None:
    """Serve `app` with uvicorn in the running event loop until `stop` is set (or the task is
    cancelled). `ready` is set once the socket listens; app.state.listening then holds the
    address ("127.0.0.1:8080", with the real port when `listen` asked for port 0).

    Raises DigestdError when the address cannot be bound. uvicorn's access log stays off
    (paths carry tokens); requests are logged at debug level with tokens left out.
    """
    sock = _bind(listen)
    app.state.listening = listening_address(sock)
    uvicorn_log = logging.getLogger("uvicorn.error")
    if uvicorn_log.level == logging.NOTSET:
        uvicorn_log.setLevel(logging.WARNING)  # its start/stop lines are not key=value
    config = uvicorn.Config(app, access_log=False, log_config=None, lifespan="off", ws="none",
                            server_header=False, proxy_headers=False,
                            timeout_graceful_shutdown=5, timeout_keep_alive=5)
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
