"""When each subscriber's digest is due, and when sources are polled: pure functions of the clock.

A subscriber's *slots* are the instants their digest is scheduled for: `send_at` on
each send day (daily, weekdays, or one weekday) in their own IANA time zone. A slot
belongs to a *period* ("2026-03-29" for daily and weekdays, "2026-W13" for weekly)
that is unique per subscriber, which is what keeps a digest from being built twice.

Nothing here reads the wall clock or the store: callers pass `now` and what the store
remembers (the last slot handled), so every case, DST days included, is testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

from .models import Subscriber

FREQUENCIES = ("daily", "weekdays", "weekly")
# Longest stretch without a slot is a week; a few days more covers any time-zone offset.
_SEARCH_DAYS = 9

# arXiv announces new papers at 20:00 US Eastern (Sunday to Thursday) and refreshes its
# RSS feeds around midnight Eastern: a source of an arXiv kind without its own `every`
# is polled shortly after both, plus twice more as a safety net.
ARXIV_KINDS = ("arxiv-rss", "arxiv-api")
ARXIV_POLL_ZONE = "America/New_York"
ARXIV_POLL_HOURS = (0, 6, 12, 20)
ARXIV_POLL_MINUTE = 30


@dataclass(frozen=True)
class Schedule:
    """When one subscriber wants their digest."""

    timezone: str = "UTC"
    send_at: str = "07:00"  # local HH:MM
    frequency: str = "daily"  # daily, weekdays, weekly
    weekday: int = 0  # weekly only: 0 = Monday

    @classmethod
    def of(cls, sub: Subscriber) -> Schedule:
        return cls(timezone=sub.timezone, send_at=sub.send_at, frequency=sub.frequency,
                   weekday=sub.weekday)

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def is_send_day(self, day: date) -> bool:
        if self.frequency == "weekdays":
            return day.weekday() < 5
        if self.frequency == "weekly":
            return day.weekday() == self.weekday
        return True


@dataclass(frozen=True)
class Slot:
    """One scheduled digest: the instant it is due (UTC) and the period it covers."""

    at: datetime
    period: str
    local: datetime  # `at` in the subscriber's zone, for logs and tests

    @property
    def at_iso(self) -> str:
        return iso(self.at)


@dataclass(frozen=True)
class Decision:
    """What to do for one subscriber at `now`.

    `slot`: build this digest now (covering everything since the last one), or None.
    `late`: the newest slot that was missed by more than max_lateness; it is not sent
    late at night but merged into the next digest (mark it handled). `missed`: how many
    slots since the last one handled are folded into `slot` (catch-up after downtime).
    """

    slot: Slot | None = None
    late: Slot | None = None
    missed: int = 0


def iso(moment: datetime) -> str:
    """The store's timestamp format: UTC, seconds, `+00:00`."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_of(schedule: Schedule, day: date) -> str:
    """The period a digest for the subscriber's local `day` belongs to."""
    if schedule.frequency == "weekly":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def current_period(schedule: Schedule, now: datetime) -> str:
    """The period of the subscriber's local day (or ISO week) at `now`."""
    return period_of(schedule, now.astimezone(schedule.zone).date())


def slot_on(schedule: Schedule, day: date) -> Slot:
    """The slot of a local day, whether or not it is a send day.

    On a spring-forward day a send time inside the skipped hour moves forward by the
    length of the gap (02:30 becomes 03:30); on a fall-back day a send time inside the
    repeated hour means its first occurrence. Either way each day has exactly one slot.
    """
    hour, minute = (int(x) for x in schedule.send_at.split(":"))
    # fold=0 is the PEP 495 reading of both cases above
    local = datetime.combine(day, time(hour, minute), tzinfo=schedule.zone)
    at = local.astimezone(timezone.utc)
    return Slot(at=at, period=period_of(schedule, day), local=at.astimezone(schedule.zone))


def latest_slot(schedule: Schedule, now: datetime) -> Slot | None:
    """The newest slot at or before `now`."""
    today = now.astimezone(schedule.zone).date()
    for back in range(_SEARCH_DAYS):
        day = today - timedelta(days=back)
        if schedule.is_send_day(day):
            slot = slot_on(schedule, day)
            if slot.at <= now:
                return slot
    return None


def next_slot(schedule: Schedule, now: datetime) -> Slot:
    """The first slot strictly after `now`."""
    today = now.astimezone(schedule.zone).date()
    for ahead in range(-1, _SEARCH_DAYS):
        day = today + timedelta(days=ahead)
        if schedule.is_send_day(day):
            slot = slot_on(schedule, day)
            if slot.at > now:
                return slot
    raise ValueError(f"no slot within {_SEARCH_DAYS} days for {schedule}")  # pragma: no cover


def slots_between(schedule: Schedule, start: datetime, end: datetime, *,
                  limit: int = 1000) -> list[Slot]:
    """Slots with start < at <= end, oldest first (at most `limit`)."""
    out: list[Slot] = []
    day = start.astimezone(schedule.zone).date() - timedelta(days=1)
    last = end.astimezone(schedule.zone).date() + timedelta(days=1)
    while day <= last and len(out) < limit:
        if schedule.is_send_day(day):
            slot = slot_on(schedule, day)
            if start < slot.at <= end:
                out.append(slot)
        day += timedelta(days=1)
    return out


def decide(schedule: Schedule, now: datetime, *, after: datetime,
           max_lateness: timedelta) -> Decision:
    """Whether a digest is due at `now`, given the last slot handled (`after`).

    `after` is the instant of the last slot that was handled (sent, empty, or merged),
    or, for a subscriber who never had one, the moment they subscribed: slots before
    that are not theirs. At most one digest is due however long the daemon was down;
    it covers everything since the last one.
    """
    slot = latest_slot(schedule, now)
    if slot is None or slot.at <= after:
        return Decision()
    missed = len(slots_between(schedule, after, slot.at, limit=400)) - 1
    if now - slot.at > max_lateness:
        return Decision(late=slot, missed=missed)
    return Decision(slot=slot, missed=missed)


# -- polling ---------------------------------------------------------------------------------

def poll_jitter(every: float) -> float:
    """Seconds of random jitter for a poll interval: a tenth of it, at most five minutes,
    so many daemons (and sources on one host) do not all knock at the same second."""
    return min(every / 10, 300.0)


def poll_first_run(last_poll: str | None, every: float, now: datetime) -> datetime:
    """When to poll a source first after start: now if it is overdue (or never polled),
    else when its interval since the last poll runs out, so restarts do not hammer it."""
    if not last_poll:
        return now
    due = parse_iso(last_poll) + timedelta(seconds=every)
    return max(now, due)
