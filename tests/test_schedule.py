"""When digests are due: time zones, DST days, weekdays/weekly, catch-up, max_lateness. No sleeps:
every test passes its own clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestd.schedule import (
    Schedule,
    current_period,
    decide,
    latest_slot,
    next_slot,
    poll_first_run,
    poll_jitter,
    slot_on,
    slots_between,
)

UTC = timezone.utc
HOURS12 = timedelta(hours=12)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def simulate(schedule: Schedule, start: datetime, end: datetime, *,
             step: timedelta = timedelta(minutes=1), max_lateness: timedelta = HOURS12,
             down: tuple[datetime, datetime] | None = None) -> tuple[list, list]:
    """Tick like the daemon from `start` to `end` (not ticking while `down`), handling each
    decision as build_digests does. Returns (built slots, merged slots)."""
    after, built, merged = start, [], []
    now = start
    while now <= end:
        if not (down and down[0] <= now < down[1]):
            d = decide(schedule, now, after=after, max_lateness=max_lateness)
            if d.late:
                merged.append(d.late)
                after = d.late.at
            if d.slot:
                built.append(d.slot)
                after = d.slot.at
        now += step
    return built, merged


# -- time zones ------------------------------------------------------------------------------

def test_the_slot_is_send_at_in_the_subscribers_own_zone():
    tokyo = Schedule(timezone="Asia/Tokyo", send_at="07:00")
    slot = slot_on(tokyo, date(2026, 6, 10))
    assert slot.at == utc(2026, 6, 9, 22, 0)  # 07:00 JST is 22:00 UTC the day before
    assert slot.period == "2026-06-10"  # the period is the subscriber's local day
    # at 23:00 UTC it is already the 10th, 08:00 in Tokyo: that day's digest is due
    assert latest_slot(tokyo, utc(2026, 6, 9, 23, 0)).period == "2026-06-10"
    la = Schedule(timezone="America/Los_Angeles", send_at="18:30")
    assert slot_on(la, date(2026, 6, 10)).at == utc(2026, 6, 11, 1, 30)
    assert current_period(la, utc(2026, 6, 11, 1, 0)) == "2026-06-10"


def test_due_once_when_send_at_has_passed_and_not_again():
    s = Schedule(timezone="Europe/Berlin", send_at="07:00")
    created = utc(2026, 6, 1, 12, 0)
    assert decide(s, utc(2026, 6, 2, 4, 59), after=created, max_lateness=HOURS12).slot is None
    d = decide(s, utc(2026, 6, 2, 5, 0), after=created, max_lateness=HOURS12)
    assert d.slot and d.slot.period == "2026-06-02" and d.slot.local.hour == 7
    again = decide(s, utc(2026, 6, 2, 5, 1), after=d.slot.at, max_lateness=HOURS12)
    assert again.slot is None and again.late is None
    assert next_slot(s, utc(2026, 6, 2, 5, 1)).period == "2026-06-03"


def test_a_new_subscriber_starts_with_the_next_slot():
    s = Schedule(timezone="UTC", send_at="07:00")
    # subscribed at 09:00, after today's slot: nothing until tomorrow 07:00
    created = utc(2026, 6, 2, 9, 0)
    assert decide(s, utc(2026, 6, 2, 9, 1), after=created, max_lateness=HOURS12).slot is None
    d = decide(s, utc(2026, 6, 3, 7, 0), after=created, max_lateness=HOURS12)
    assert d.slot and d.slot.period == "2026-06-03" and d.missed == 0


# -- DST: every local day exactly once, the slot at the right instant ---------------------------

DST_DAYS = [
    # zone, transition day, send_at, expected UTC instant of that day's slot
    ("Europe/Berlin", date(2026, 3, 29), "07:00", utc(2026, 3, 29, 5, 0)),  # CEST already
    ("Europe/Berlin", date(2026, 3, 29), "02:30", utc(2026, 3, 29, 1, 30)),  # skipped: 03:30
    ("Europe/Berlin", date(2026, 3, 29), "02:00", utc(2026, 3, 29, 1, 0)),  # gap start: 03:00
    ("Europe/Berlin", date(2026, 3, 29), "03:00", utc(2026, 3, 29, 1, 0)),  # first CEST minute
    ("Europe/Berlin", date(2026, 10, 25), "07:00", utc(2026, 10, 25, 6, 0)),  # CET again
    ("Europe/Berlin", date(2026, 10, 25), "02:30", utc(2026, 10, 25, 0, 30)),  # repeated: 1st
    ("America/New_York", date(2026, 3, 8), "07:00", utc(2026, 3, 8, 11, 0)),
    ("America/New_York", date(2026, 3, 8), "02:30", utc(2026, 3, 8, 7, 30)),  # skipped: 03:30
    ("America/New_York", date(2026, 11, 1), "07:00", utc(2026, 11, 1, 12, 0)),
    ("America/New_York", date(2026, 11, 1), "01:30", utc(2026, 11, 1, 5, 30)),  # repeated: 1st
]


@pytest.mark.parametrize("zone,day,send_at,expected", DST_DAYS,
                         ids=[f"{z}-{d}-{t}" for z, d, t, _ in DST_DAYS])
def test_dst_days_have_exactly_one_slot_at_the_right_instant(zone, day, send_at, expected):
    s = Schedule(timezone=zone, send_at=send_at)
    assert slot_on(s, day).at == expected
    # tick every minute from two days before to two days after: one digest per local day,
    # none skipped, none doubled, and the transition day's at the expected instant
    start = datetime.combine(day - timedelta(days=2), datetime.min.time(), ZoneInfo(zone))
    built, merged = simulate(s, start.astimezone(UTC), start.astimezone(UTC) + timedelta(days=5))
    periods = [b.period for b in built]
    assert periods == [(day + timedelta(days=i)).isoformat() for i in range(-2, 3)]
    assert not merged
    (on_the_day,) = [b for b in built if b.period == day.isoformat()]
    assert on_the_day.at == expected


def test_repeated_hour_does_not_send_twice():
    # 02:30 happens twice in Berlin on 2026-10-25; the daemon ticks through both
    s = Schedule(timezone="Europe/Berlin", send_at="02:30")
    first = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    second = utc(2026, 10, 25, 1, 30)  # 02:30 CET, the repeat
    d = decide(s, first, after=utc(2026, 10, 24, 12), max_lateness=HOURS12)
    assert d.slot and d.slot.at == first
    assert decide(s, second, after=first, max_lateness=HOURS12).slot is None


def test_skipped_hour_still_sends_that_day():
    s = Schedule(timezone="America/New_York", send_at="02:30")
    # at 03:29 EDT nothing yet, at 03:30 EDT (02:30 + the lost hour) the digest is due
    after = utc(2026, 3, 7, 12)
    assert decide(s, utc(2026, 3, 8, 7, 29), after=after, max_lateness=HOURS12).slot is None
    d = decide(s, utc(2026, 3, 8, 7, 30), after=after, max_lateness=HOURS12)
    assert d.slot and d.slot.period == "2026-03-08" and d.slot.local.hour == 3


# -- frequencies -------------------------------------------------------------------------------

def test_weekdays_skip_the_weekend():
    s = Schedule(timezone="Europe/Berlin", send_at="08:00", frequency="weekdays")
    # Friday 2026-03-27 to Friday 2026-04-10, across the spring-forward Sunday
    built, _ = simulate(s, utc(2026, 3, 26, 12), utc(2026, 4, 10, 12),
                        step=timedelta(minutes=5))
    days = [date.fromisoformat(b.period) for b in built]
    assert len(days) == 11 and all(d.weekday() < 5 for d in days)
    assert days[0] == date(2026, 3, 27) and days[1] == date(2026, 3, 30)
    # Friday after the slot: the next one is Monday
    assert next_slot(s, utc(2026, 3, 27, 9)).period == "2026-03-30"


def test_weekly_on_a_chosen_day_with_iso_week_periods():
    s = Schedule(timezone="America/New_York", send_at="09:00", frequency="weekly", weekday=2)
    built, _ = simulate(s, utc(2026, 10, 20), utc(2026, 11, 20), step=timedelta(minutes=10))
    assert [b.period for b in built] == ["2026-W43", "2026-W44", "2026-W45", "2026-W46",
                                         "2026-W47"]
    assert all(b.local.weekday() == 2 and b.local.hour == 9 for b in built)
    # the week of the fall-back Sunday (Nov 1) keeps 09:00 local: 14:00 UTC after it
    assert built[2].at == utc(2026, 11, 4, 14, 0)
    assert current_period(s, utc(2026, 12, 31, 12)) == "2026-W53"


# -- downtime ---------------------------------------------------------------------------------

def test_catch_up_after_downtime_builds_one_digest():
    s = Schedule(timezone="Europe/Berlin", send_at="07:00")
    last = slot_on(s, date(2026, 6, 1)).at  # the last digest went out on June 1st
    # down until 09:30 local on June 4th: the slots of the 2nd, 3rd and 4th were missed
    d = decide(s, utc(2026, 6, 4, 7, 30), after=last, max_lateness=HOURS12)
    assert d.slot and d.slot.period == "2026-06-04"
    assert d.missed == 2  # folded into this one
    assert [x.period for x in slots_between(s, last, d.slot.at)] == [
        "2026-06-02", "2026-06-03", "2026-06-04"]


def test_a_digest_later_than_max_lateness_merges_into_the_next():
    s = Schedule(timezone="Europe/Berlin", send_at="07:00")
    last = slot_on(s, date(2026, 6, 1)).at
    # back at 22:00 local on June 2nd: 15 h late is too late, nothing now
    d = decide(s, utc(2026, 6, 2, 20, 0), after=last, max_lateness=HOURS12)
    assert d.slot is None and d.late and d.late.period == "2026-06-02"
    # once marked handled, the next digest is June 3rd's, on time
    assert decide(s, utc(2026, 6, 2, 20, 1), after=d.late.at, max_lateness=HOURS12) == \
        type(d)()
    nxt = decide(s, utc(2026, 6, 3, 5, 0), after=d.late.at, max_lateness=HOURS12)
    assert nxt.slot and nxt.slot.period == "2026-06-03" and nxt.missed == 0
    # exactly max_lateness is still on time
    edge = decide(s, slot_on(s, date(2026, 6, 2)).at + HOURS12, after=last,
                  max_lateness=HOURS12)
    assert edge.slot and edge.slot.period == "2026-06-02"


def test_simulated_downtime_neither_loses_nor_doubles_a_period():
    s = Schedule(timezone="America/New_York", send_at="06:45")
    start, end = utc(2026, 10, 28), utc(2026, 11, 6)
    # down from Oct 30 12:00 UTC to Nov 2 16:00 UTC (9.5 h after that day's slot: catch up)
    built, merged = simulate(s, start, end, step=timedelta(minutes=7),
                             down=(utc(2026, 10, 30, 12), utc(2026, 11, 2, 16)))
    periods = [b.period for b in built]
    assert periods == ["2026-10-28", "2026-10-29", "2026-10-30", "2026-11-02", "2026-11-03",
                       "2026-11-04", "2026-11-05"]
    assert not merged  # Oct 31 - Nov 1 are covered by the Nov 2 digest (catch-up)
    # down past max_lateness: Nov 2 is merged into Nov 3
    built, merged = simulate(s, start, end, step=timedelta(minutes=7),
                             down=(utc(2026, 10, 30, 12), utc(2026, 11, 3, 0)))
    assert [m.period for m in merged] == ["2026-11-02"]
    assert [b.period for b in built][3:] == ["2026-11-03", "2026-11-04", "2026-11-05"]


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata",
         "America/Santiago", "Pacific/Chatham", "Europe/London"]


@settings(max_examples=40, deadline=None)
@given(zone=st.sampled_from(ZONES), hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 45]),
       frequency=st.sampled_from(["daily", "weekdays", "weekly"]), weekday=st.integers(0, 6),
       start_day=st.integers(0, 364))
def test_property_every_send_day_exactly_once(zone, hour, minute, frequency, weekday, start_day):
    """Ticking every 20 minutes through any 3 weeks of 2026 (all DST changes of these zones
    are in there), every send day in the window gets exactly one digest, in order."""
    s = Schedule(timezone=zone, send_at=f"{hour:02d}:{minute:02d}", frequency=frequency,
                 weekday=weekday)
    start = utc(2026, 1, 1) + timedelta(days=start_day)
    end = start + timedelta(days=21)
    built, merged = simulate(s, start, end, step=timedelta(minutes=20))
    assert not merged
    periods = [b.period for b in built]
    assert len(periods) == len(set(periods)) and periods == sorted(periods)
    assert [b.at for b in built] == sorted(b.at for b in built)
    expected = slots_between(s, start, end)
    assert [b.period for b in expected] == periods[:len(expected)]
    assert len(periods) - len(expected) in (0, 1)  # a slot within the last tick's reach


# -- polling ------------------------------------------------------------------------------------

def test_first_poll_after_a_restart_waits_for_the_interval():
    now = utc(2026, 6, 1, 12)
    assert poll_first_run(None, 3600, now) == now
    assert poll_first_run("2026-06-01T11:30:00+00:00", 3600, now) == utc(2026, 6, 1, 12, 30)
    assert poll_first_run("2026-06-01T09:00:00+00:00", 3600, now) == now
    assert poll_jitter(3600) == 300 and poll_jitter(600) == 60


def test_a_restart_or_reload_never_skips_an_arxiv_announcement_poll():
    """A source polled at 04:21 UTC with a 6-hour interval would next be polled at 10:21;
    arXiv's fixed times (00:30 New York: 05:30 UTC in December) come first."""
    from digestd.config.schema import SourceConfig
    from digestd.daemon.parts import first_poll, poll_trigger

    now = utc(2026, 12, 1, 4, 30)
    arxiv = SourceConfig(name="a", kind="arxiv-rss", categories=("cs.LG",))
    first = first_poll(poll_trigger(arxiv, 6 * 3600), "2026-12-01T04:21:00+00:00", 6 * 3600,
                       now)
    assert utc(2026, 12, 1, 5, 30) <= first <= utc(2026, 12, 1, 5, 41)  # + jitter
    # overdue: now
    assert first_poll(poll_trigger(arxiv, 6 * 3600), "2026-11-30T04:00:00+00:00", 6 * 3600,
                      now) == now
    # an interval source keeps its interval since the last poll
    feed = SourceConfig(name="f", kind="feed", url="https://j.example.org/feed.xml")
    assert first_poll(poll_trigger(feed, 3600), "2026-12-01T04:21:00+00:00", 3600,
                      now) == utc(2026, 12, 1, 5, 21)
