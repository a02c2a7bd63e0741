"""The preferences page (/p/): rules and schedule, pause and resume, delete, export, new
links, and the archive of past digests."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..models import Subscriber
from ..relevance.seeding import MAX_SEEDS
from ..render import period_label
from ..schedule import Schedule, next_slot
from ..validators import time_zones
from .feed import FEED_DAYS, FEED_ENTRIES
from .forms import MIN_SCORES, SubscriptionForm
from .guard import Guard
from .links import Tokens
from .ruletest import TEST_DAYS, RuleTester, RuleTests
from .seeds import MAX_FILE, SeedReports
from .site import Site

log = logging.getLogger("digestd.web")

ARCHIVE_PAGE = 20                # past digests per page of the archive list
NOTICES = ("saved", "paused", "resumed", "welcome", "already", "links_reset",
           "feedback_forgotten")
SEED_NOTICES = ("seeded", "seed_removed", "seed_gone")  # shown in the "Seed papers" card



def min_score_choices(current: float | None) -> list[tuple[str, str]]:
    """The preferences form's min_score options as (value, label): MIN_SCORES, plus the
    subscriber's own value when it is another (set with `subscribers set --min-score`), so
    saving the form keeps it."""
    choices = [("" if v is None else f"{v:g}", label) for v, label in MIN_SCORES]
    if current is not None and f"{current:g}" not in {v for v, _ in choices}:
        choices.append((f"{current:g}", f"Leave out matches less similar than {current:g} "
                                        "(as set for you)"))
    return choices

class PreferencePages:
    """GET and POST /p/TOKEN and its actions: /pause, /resume, /delete, /reset, /data.json."""

    def __init__(self, site: Site, guard: Guard, tokens: Tokens, tester: RuleTester) -> None:
        self.site = site
        self.guard = guard
        self.tokens = tokens
        self.tester = tester
        self.seed_reports = SeedReports(site.clock)

    def next_digest(self, sub: Subscriber) -> str:
        """When the subscriber's next digest is due, in their own words and zone:
        "tomorrow (Monday 30 November) at 07:00 Europe/Berlin"; '' if it cannot be told."""
        schedule = Schedule.of(sub)
        now = datetime.fromtimestamp(self.site.clock(), timezone.utc)
        try:
            at = next_slot(schedule, now).at.astimezone(schedule.zone)
        except (ValueError, KeyError):
            return ""
        today = now.astimezone(schedule.zone).date()
        ahead = (at.date() - today).days
        day = f"{at:%A} {at.day} {at:%B}"
        when = {0: f"today ({day})", 1: f"tomorrow ({day})"}.get(ahead, f"on {day}")
        return f"{when} at {at:%H:%M} {sub.timezone}"

    def preferences_page(self, request: Request, sub: Subscriber, token: str, *,
                         form: SubscriptionForm | None = None, status: int = 200,
                         notice: str | None = None, tests: RuleTests | None = None,
                         delete_error: str | None = None, page: int = 1,
                         seed_notice: str | None = None, seed_report: str | None = None,
                         seed_error: str | None = None) -> Response:
        csrf, cookie = self.guard.csrf(request, sub.id)
        digests, total = self.site.store.digest_archive(sub.id, limit=ARCHIVE_PAGE,
                                                        offset=(page - 1) * ARCHIVE_PAGE)
        links = self.site.links
        archive = [{"label": period_label(d.period),
                    "url": links.digest(sub.id, d.period, sub.link_gen),
                    "built": d.created_at[:10], "papers": d.brought, "left_out": d.left_out,
                    "checked": d.checked,
                    "status": d.status} for d in digests]
        pages = max(1, -(-total // ARCHIVE_PAGE))
        next_digest = self.next_digest(sub) if notice in ("welcome", "resumed", "saved") else ""
        response = self.site.page(
            "preferences", status=status, sub=sub, form=form or SubscriptionForm.of(sub),
            token=token, csrf=csrf, notice=notice, tests=tests, delete_error=delete_error,
            time_zones=time_zones(), test_days=TEST_DAYS,
            unsubscribe_url=self.site.url(f"/u/{links.unsubscribe_token(sub.id, sub.link_gen)}"),
            feed_url=links.feed(sub.id, sub.link_gen), archive=archive,
            archive_total=total, archive_page=page, archive_pages=pages,
            feed_days=FEED_DAYS, feed_entries=FEED_ENTRIES, next_digest=next_digest,
            min_scores=min_score_choices(sub.min_score),
            feedback=self.site.store.feedback_counts(sub.id),
            seeds=self.site.store.seeds(sub.id), seed_notice=seed_notice,
            seed_report=self.seed_reports.get(seed_report, sub.id), seed_error=seed_error,
            max_seeds=MAX_SEEDS, max_seed_file_mb=MAX_FILE // (1024 * 1024))
        return self.guard.with_cookie(response, cookie)

    def prefs_subscriber(self, request: Request) -> tuple[Subscriber, str]:
        token = request.path_params["token"]
        return self.tokens.linked_subscriber("prefs", token), token

    async def preferences(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        notice = request.query_params.get("done")
        try:
            page = max(1, min(int(request.query_params.get("page", "1")), 10**6))
        except ValueError:
            page = 1
        return self.preferences_page(request, sub, token, page=page,
                                     notice=notice if notice in NOTICES else None,
                                     seed_notice=notice if notice in SEED_NOTICES else None,
                                     seed_report=request.query_params.get("report"))

    async def save_preferences(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        raw = await self.site.read_form(request)
        self.guard.check_csrf(request, raw, sub.id, token)
        form = SubscriptionForm.parse(raw, SubscriptionForm.of(sub), with_email=False)
        if raw.get("action") == "test":
            self.guard.allow_test(request)
            form.errors = {k: v for k, v in form.errors.items() if k.startswith("rule")}
            return self.preferences_page(request, sub, token, form=form,
                                         tests=await self.tester.run_tests(form.rules))
        if form.errors:
            return self.preferences_page(request, sub, token, form=form, status=400)
        self.site.store.update_preferences(sub.id, form.clean_rules, timezone=form.timezone,
                                           send_at=form.send_at, frequency=form.frequency,
                                           weekday=form.weekday, send_empty=form.send_empty,
                                           feed_only=form.feed_only)
        self.site.store.set_relevance(sub.id, recommend=form.recommend,
                                      min_score=form.min_score,
                                      clear_min_score=form.min_score is None)
        self.site.count("preferences_saved")
        log.info("event=preferences_saved subscriber=%d rules=%d feed_only=%d", sub.id,
                 len(form.clean_rules), form.feed_only)
        return self.done(token, "saved")

    def done(self, token: str, what: str) -> Response:
        # Post/Redirect/Get: a reload does not submit twice
        return RedirectResponse(self.site.url(f"/p/{token}?done={what}"), status_code=303)

    async def pause(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        self.guard.check_csrf(request, await self.site.read_form(request), sub.id, token)
        if sub.status == "active":
            self.site.store.set_status(sub.id, "paused")
            self.site.count("paused")
            log.info("event=paused subscriber=%d", sub.id)
        return self.done(token, "paused")

    async def resume(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        self.guard.check_csrf(request, await self.site.read_form(request), sub.id, token)
        if sub.status != "active":
            # the signed link proves the mailbox is theirs: no new confirmation needed
            self.site.store.resume_subscriber(sub.id)
            self.site.count("resumed")
            log.info("event=resumed subscriber=%d from=%s", sub.id, sub.status)
        return self.done(token, "resumed")

    async def delete(self, request: Request) -> Response:
        sub, token = self.prefs_subscriber(request)
        raw = await self.site.read_form(request)
        self.guard.check_csrf(request, raw, sub.id, token)
        if raw.get("confirm") != "yes":
            return self.preferences_page(
                request, sub, token, status=400,
                delete_error="Tick the box to confirm that everything should be deleted.")
        self.site.store.remove_subscriber(sub.email)
        self.site.count("deleted")
        log.info("event=deleted subscriber=%d", sub.id)
        return self.site.message(200, "Your data is deleted",
                                 "Your address, your rules and the history of what we sent you are "
                                 "gone. No more email will come from us, and the links in old "
                                 "emails no longer work.",
                                 link=("Subscribe again", self.site.url("/")))

    async def reset_links(self, request: Request) -> Response:
        """POST /p/TOKEN/reset: new /p/, /f/ and /u/ links; the old /p/ and /f/ links stop
        working (410), old /u/ links still unsubscribe. Goes on to the new /p/ link."""
        sub, token = self.prefs_subscriber(request)
        self.guard.check_csrf(request, await self.site.read_form(request), sub.id, token)
        generation = self.site.store.reset_links(sub.id)
        self.site.count("links_reset")
        log.info("event=links_reset subscriber=%d generation=%d", sub.id, generation)
        return self.done(self.site.links.preferences_token(sub.id, generation), "links_reset")

    async def export(self, request: Request) -> Response:
        sub, _token = self.prefs_subscriber(request)
        data = self.site.store.subscriber_export(sub.id)
        data["exported_at"] = self.site.now_iso()
        return JSONResponse(data, headers={
            "Content-Disposition": 'attachment; filename="digestd-my-data.json"'})
