"""The start page: the subscribe form and its rule tests, the confirmation (or preferences
link) email it queues, and the confirmation link."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..mime import notice_message
from ..models import Subscriber
from ..tokens import sign
from ..validators import time_zones
from .forms import MAX_RULES, SubscriptionForm
from .guard import ADDRESS_WINDOW, Guard
from .links import Tokens
from .preferences import PreferencePages
from .ruletest import TEST_DAYS, RuleTester, RuleTests
from .site import Site

log = logging.getLogger("digestd.web")

CONFIRM_TTL = 48 * 3600          # a confirmation link is valid this long
RESEND_AFTER = 10 * 60           # no second mail to one address within this
PENDING_KEPT = timedelta(days=7)  # unconfirmed subscriptions are forgotten after this


class SubscribePages:
    """GET and POST /, GET /rules/test, GET /confirm/TOKEN."""

    def __init__(self, site: Site, guard: Guard, tokens: Tokens, tester: RuleTester,
                 prefs: PreferencePages) -> None:
        self.site = site
        self.guard = guard
        self.tokens = tokens
        self.tester = tester
        self.prefs = prefs
        self.last_prune = 0.0

    # -- mail ----------------------------------------------------------------------------------

    def mail(self, sub: Subscriber, kind: str, link: str) -> tuple[str, bytes]:
        """(Message-ID, bytes) of a confirmation ("confirm") or preferences-link ("manage")
        email: a text part and an HTML part from templates/web/KIND_email.*, built as digests
        are (CRLF, the same headers, DKIM-signed when [dkim] is set)."""
        context = {"email": sub.email, "rules": sub.rules, "link": link, "sub": sub,
                   "hours": CONFIRM_TTL // 3600, "base_url": self.site.config.web.base_url}
        text = self.site.env.get_template(f"web/{kind}_email.txt").render(context)
        html = self.site.env.get_template(f"web/{kind}_email.html").render(context)
        title = self.site.config.web.title
        delivery = self.site.config.delivery
        return notice_message(
            from_addr=delivery.from_, to=sub.email,
            subject=(f"Confirm your subscription to {title}" if kind == "confirm"
                     else f"Your {title} subscription"),
            text=text, html=html, kind=kind, reply_to=delivery.reply_to,
            feedback_id=delivery.feedback_id, dkim=self.site.dkim(),
            now=datetime.fromtimestamp(self.site.clock(), timezone.utc))

    def maybe_prune(self) -> None:
        now = self.site.clock()
        if now - self.last_prune < 600:
            return
        self.last_prune = now
        before = (datetime.fromtimestamp(now, timezone.utc) - PENDING_KEPT)
        events, subs = self.site.store.prune_web(events_before=now - ADDRESS_WINDOW,
                                                 pending_before=before.isoformat(timespec="seconds"))
        if events or subs:
            log.info("event=web_pruned rate_events=%d unconfirmed_subscribers=%d", events, subs)

    # -- the form ------------------------------------------------------------------------------

    def subscribe_page(self, form: SubscriptionForm, *, status: int = 200,
                       tests: RuleTests | None = None) -> HTMLResponse:
        sources = [s for s in self.site.config.sources if s.enabled]
        return self.site.page("subscribe", status=status, form=form, tests=tests,
                              sources=sources, time_zones=time_zones(), test_days=TEST_DAYS)

    async def home(self, request: Request) -> Response:
        return self.subscribe_page(self.site.form_defaults())

    async def subscribe(self, request: Request) -> Response:
        raw = await self.site.read_form(request)
        form = SubscriptionForm.parse(raw, self.site.form_defaults(), with_email=True)
        if raw.get("action") == "test":
            self.guard.allow_test(request)
            form.errors = {k: v for k, v in form.errors.items() if k.startswith("rule")}
            return self.subscribe_page(form, tests=await self.tester.run_tests(form.rules))
        if self.guard.is_bot(raw):
            # look exactly like success, so the bot learns nothing
            self.site.count("subscribe_honeypot")
            log.info("event=subscribe result=honeypot")
            return self.site.page("check_inbox", email=form.email, hours=CONFIRM_TTL // 3600)
        if form.errors:
            self.site.count("subscribe_invalid")
            return self.subscribe_page(form, status=400)
        self.guard.allow_subscribe(request)
        self.maybe_prune()
        sub, nonce = self.site.store.request_subscription(
            form.email, form.clean_rules, nonce=secrets.token_urlsafe(9),
            timezone=form.timezone, send_at=form.send_at, frequency=form.frequency,
            weekday=form.weekday, now=self.site.now_iso())
        background = self.queue_web_mail(sub, nonce)
        # the same page whatever happened, so nobody can learn who is subscribed
        return self.site.page("check_inbox", email=form.email, hours=CONFIRM_TTL // 3600,
                              background=background)

    def queue_web_mail(self, sub: Subscriber, nonce: str | None) -> BackgroundTask | None:
        """Queue a confirmation (pending) or preferences-link (already subscribed) email,
        unless this address was mailed in the last 10 minutes or too often today."""
        now = self.site.clock()
        kind = "confirm" if nonce else "manage"
        last = self.site.store.web_mail_at(sub.id)
        if last and now - datetime.fromisoformat(last).timestamp() < RESEND_AFTER:
            self.site.count("subscribe_resend_suppressed")
            log.info("event=subscribe result=resend_suppressed subscriber=%d", sub.id)
            return None
        address_key = self.guard.allow_mail_to(sub, now)
        if address_key is None:
            return None
        if nonce:
            token = sign(self.site.secret, "confirm", f"{sub.id}.{nonce}", ttl=CONFIRM_TTL,
                         now=now)
            link = f"{self.site.config.web.base_url.rstrip('/')}/confirm/{token}"
        else:
            link = self.site.links.preferences(sub.id, sub.link_gen)
        message_id, message = self.mail(sub, kind, link)
        did = self.site.store.queue_message(sub.id, kind, recipient=sub.email,
                                            message_id=message_id, message=message, now=now)
        if did is None:
            return None
        self.guard.mailed(address_key, now)
        event = "subscribe_confirmation_queued" if nonce else "subscribe_manage_link_queued"
        self.site.count(event)
        log.info("event=subscribe result=%s subscriber=%d outbox=%d", kind, sub.id, did)
        return BackgroundTask(self.site.kick_mailer)

    async def rule_test_json(self, request: Request) -> Response:
        """GET /rules/test?rule=...: what the live test on the forms shows, as JSON."""
        self.guard.allow_test(request)
        rules = [r[:1000] for r in request.query_params.getlist("rule")][:MAX_RULES]
        tests = await self.tester.run_tests(rules)
        return JSONResponse({"days": tests.days, "papers": tests.papers,
                             "together": tests.together,
                             "rules": [tests.by_input[i].as_json(tests.days)
                                       if i in tests.by_input else None
                                       for i in range(len(rules))]})

    # -- confirm ---------------------------------------------------------------------------------
    async def confirm_page(self, request: Request) -> Response:
        """GET /confirm/TOKEN: a button that confirms (POST). Link scanners and previews
        open the links of a mail, and a subscription must be confirmed by its reader, as
        unsubscribe needs its POST; a link used before answers as confirm does."""
        token = request.path_params["token"]
        value = self.tokens.value("confirm", token)
        sid, _, nonce = value.partition(".")
        sub = self.tokens.subscriber(sid)
        if sub.status == "pending" and self.site.store.confirm_nonce(sub.id) == nonce:
            return self.site.page("confirm", sub=sub, token=token)
        return await self.confirm(request)

    async def confirm(self, request: Request) -> Response:
        """POST /confirm/TOKEN: the subscription confirmed (double opt-in), then the
        preferences page; a link used before or replaced: 410."""
        value = self.tokens.value("confirm", request.path_params["token"])
        sid, _, nonce = value.partition(".")
        sub = self.tokens.subscriber(sid)
        if request.method == "POST" and self.site.store.confirm_subscriber(sub.id, nonce, now=self.site.now_iso()):
            self.site.count("confirmed")
            log.info("event=confirmed subscriber=%d", sub.id)
            return self.prefs.preferences_page(request, self.site.store.get_subscriber(sub.id),
                                               self.tokens.prefs_token(sub), notice="welcome")
        if sub.status == "active" and self.site.store.confirm_nonce(sub.id) == nonce:
            return self.prefs.preferences_page(request, sub, self.tokens.prefs_token(sub),
                                               notice="already")
        raise self.site.fail(410, "This link was already used",
                             "This confirmation link was used before or replaced by a newer one, "
                             "so it changes nothing now. To manage your subscription, use the link "
                             "at the bottom of any digest, or subscribe again.",
                             link=("Go to the start page", self.site.url("/")))

