"""Units of work: poll sources, build the digests that are due, send the outbox.

The scheduler and the CLI both call these, so each is testable alone.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from .config import Config, SourceConfig, web_secret
from .deliver import DeliveryReport, send_smtp, write_outbox
from .errors import SourceError
from .match import Matcher
from .models import Digest, Subscriber
from .render import Links, Renderer
from .sources import Http, make_source
from .store import Store

log = logging.getLogger("digestd.jobs")

# A new subscriber's first digest looks back this far; later ones start at the last digest.
FIRST_LOOKBACK = timedelta(days=1)
MAX_LOOKBACK = timedelta(days=7)


# -- poll ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PollReport:
    source: str
    fetched: int = 0
    new: int = 0
    skipped: int = 0
    not_modified: bool = False
    duration_s: float = 0.0
    error: str | None = None
    reason: str | None = None


async def poll_sources(sources: Sequence[SourceConfig], store: Store, *, http: Http | None = None,
                       names: Collection[str] | None = None) -> list[PollReport]:
    """Poll sources one after another; a failing source is logged, recorded and skipped."""
    own = http is None
    http = http or Http()
    reports = []
    try:
        for cfg in sources:
            if names is not None and cfg.name not in names:
                continue
            if names is None and not cfg.enabled:
                continue
            reports.append(await _poll_one(cfg, store, http))
    finally:
        if own:
            await http.aclose()
    return reports


async def _poll_one(cfg: SourceConfig, store: Store, http: Http) -> PollReport:
    started = time.monotonic()
    state = store.source_state(cfg.name)
    try:
        result = await make_source(cfg, http).poll(state)
    except SourceError as e:
        store.record_poll(cfg.name, ok=False, error=str(e))
        log.warning("source=%s reason=%s error=%r", cfg.name, e.reason, str(e))
        return PollReport(cfg.name, error=str(e), reason=e.reason,
                          duration_s=time.monotonic() - started)
    new = store.add_papers(result.papers)
    store.record_poll(cfg.name, ok=True, new=len(new), etag=result.etag,
                      last_modified=result.last_modified, cursor=result.cursor)
    took = time.monotonic() - started
    log.info("source=%s fetched=%d new=%d skipped=%d took_ms=%d", cfg.name, len(result.papers),
             len(new), result.skipped, took * 1000)
    return PollReport(cfg.name, fetched=len(result.papers), new=len(new), skipped=result.skipped,
                      not_modified=result.not_modified, duration_s=took)


# -- build ---------------------------------------------------------------------------------------

@dataclass
class BuildReport:
    digests: int = 0
    papers_checked: int = 0
    matches: dict[str, int] = field(default_factory=dict)  # email -> papers in their digest


def period_of(sub: Subscriber, now: datetime) -> str:
    """The period a digest built at `now` belongs to, in the subscriber's own time zone."""
    local = now.astimezone(ZoneInfo(sub.timezone))
    if sub.frequency == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.date().isoformat()


def is_due(sub: Subscriber, now: datetime) -> bool:
    """Whether the subscriber's send time has passed today (their time zone and frequency)."""
    local = now.astimezone(ZoneInfo(sub.timezone))
    if sub.frequency == "weekdays" and local.weekday() >= 5:
        return False
    if sub.frequency == "weekly" and local.weekday() != sub.weekday:
        return False
    return local.strftime("%H:%M") >= sub.send_at


def _window_start(sub: Subscriber, now: datetime) -> str:
    floor = now - MAX_LOOKBACK
    if sub.last_digest_at:
        start = datetime.fromisoformat(sub.last_digest_at)
    else:
        start = datetime.fromisoformat(sub.created_at) - FIRST_LOOKBACK
    return max(start, floor).isoformat(timespec="seconds")


def make_renderer(config: Config) -> Renderer:
    return Renderer(links=Links(config.web.base_url, web_secret(config)),
                    from_addr=config.delivery.from_, reply_to=config.delivery.reply_to,
                    max_papers=config.digest.max_papers,
                    templates_dir=config.digest.templates_dir)


def build_digests(config: Config, store: Store, *, now: datetime | None = None,
                  force: bool = False, dry_run: bool = False,
                  renderer: Renderer | None = None) -> BuildReport:
    """Match new papers for every subscriber that is due and queue one digest each.

    `force` builds for every active subscriber with unsent matches, whatever the schedule;
    `dry_run` counts what would be built and writes nothing.
    """
    now = now or datetime.now(timezone.utc)
    report = BuildReport()
    subs = {s.id: s for s in store.subscribers("active") if s.rules}
    due = {sid: s for sid, s in subs.items()
           if force or (is_due(s, now) and not store.has_digest(sid, period_of(s, now)))}
    if not due:
        return report
    starts = {sid: _window_start(s, now) for sid, s in due.items()}
    papers = store.papers_since(min(starts.values()))
    report.papers_checked = len(papers)
    if not papers:
        return report
    pks = store.paper_pks(p.id for p in papers)
    by_pk = {pk: pid for pid, pk in pks.items()}
    sent = {sid: {by_pk[pk] for pk in got} for sid, got in store.sent_among(pks.values()).items()}
    matcher = Matcher({sid: s.rules for sid, s in due.items()})
    renderer = renderer or make_renderer(config)
    # papers come oldest first: a subscriber's window is a suffix of the list
    seen_at = store.first_seen_since(min(starts.values()))
    position = {p.id: i for i, p in enumerate(papers)}
    for sid, items in matcher.match(papers, exclude=sent).items():
        sub = due[sid]
        start_index = bisect.bisect_left(seen_at, starts[sid])
        items = [m for m in items if position[m.paper.id] >= start_index]
        if not items:
            continue
        period = period_of(sub, now)
        if force and store.has_digest(sid, period):
            period = now.astimezone(ZoneInfo(sub.timezone)).isoformat(timespec="seconds")
        if dry_run:
            report.digests += 1
            report.matches[sub.email] = len(items)
            continue
        digest = Digest(subscriber=sub, period=period, items=tuple(items),
                        papers_checked=len(papers))
        message_id, message = renderer.message(digest, now=now)
        did = store.queue_digest(sid, period, recipient=sub.email, message_id=message_id,
                                 message=message, paper_pks=[pks[m.paper.id] for m in items])
        if did is not None:
            report.digests += 1
            report.matches[sub.email] = len(items)
    return report



# -- send ----------------------------------------------------------------------------------------

async def send_outbox(config: Config, store: Store, *, progress=None) -> DeliveryReport:
    """Deliver every queued digest that is due, by the configured method."""
    if config.delivery_method == "outbox":
        return write_outbox(store, config.delivery.outbox_dir)
    assert config.smtp is not None
    return await send_smtp(store, config.smtp, config.delivery.from_,
                           max_attempts=config.delivery.max_attempts, progress=progress)
