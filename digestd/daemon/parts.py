"""What the daemon runs beside its scheduler: the handler of inbound mail, the trigger of a
source's polls, and the web app's parts (imported only when it is enabled)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from ..config import Config, SourceConfig
from ..inbound import handle_message
from ..schedule import (
    ARXIV_KINDS,
    ARXIV_POLL_HOURS,
    ARXIV_POLL_MINUTE,
    ARXIV_POLL_ZONE,
    poll_first_run,
    poll_jitter,
)
from ..store import BaseStore

log = logging.getLogger("digestd.daemon")

# handle(raw message) -> the kind of what it was ("bounce", "unsubscribe", ...)
InboundHandle = Callable[[bytes], str]

ARXIV_POLL_JITTER = 600.0


def inbound_handler(config: Config, store: BaseStore) -> InboundHandle:
    """The handler of one message read from the [inbound] mailbox, on `store` (a connection
    of the thread the IMAP run is in): digestd.inbound's, which raises InboundTempFail for
    what may work later. Daemon(inbound_handler=...) takes another one (tests)."""
    def handle(raw: bytes) -> str:
        return handle_message(raw, config=config, store=store).kind

    return handle


def poll_trigger(cfg: SourceConfig, every: float, *, jitter: bool = True) -> BaseTrigger:
    """When a source is polled: its `every` with jitter, or for arXiv kinds without one,
    a little after each announcement (arXiv publishes on a US Eastern schedule). Without
    `jitter`: the earliest each poll can be (the jitter only ever adds to it)."""
    if not cfg.every and cfg.kind in ARXIV_KINDS:
        return CronTrigger(hour=",".join(str(h) for h in ARXIV_POLL_HOURS),
                           minute=ARXIV_POLL_MINUTE, timezone=ZoneInfo(ARXIV_POLL_ZONE),
                           jitter=ARXIV_POLL_JITTER if jitter else None)
    return IntervalTrigger(seconds=every, jitter=poll_jitter(every) if jitter else None,
                           timezone=timezone.utc)


def poll_interval(trigger: BaseTrigger, every: float) -> float:
    """Seconds between two polls by `trigger`: `every`, or for arXiv's fixed times their
    mean spacing (what a restart waits for since the last poll: see first_poll)."""
    return 24 * 3600 / len(ARXIV_POLL_HOURS) if isinstance(trigger, CronTrigger) else every


def poll_jitter_of(trigger: BaseTrigger, every: float) -> float:
    """The most seconds the daemon's jitter adds to a poll of `trigger` (see poll_trigger)."""
    return ARXIV_POLL_JITTER if isinstance(trigger, CronTrigger) else poll_jitter(every)


def next_poll(cfg: SourceConfig, every: float, last_poll: str | None,
              now: datetime) -> datetime:
    """The earliest a running daemon polls this source next (jitter may add up to
    poll_jitter_of): `now` when it is overdue, as first_poll says (the daemon polls it at
    once when it starts), else its next turn: arXiv's next fixed time, or `every` since
    the last poll."""
    trigger = poll_trigger(cfg, every, jitter=False)
    due = poll_first_run(last_poll, poll_interval(trigger, every), now)
    if due > now and isinstance(trigger, CronTrigger):
        return trigger.get_next_fire_time(None, now) or due
    return due


def first_poll(trigger: BaseTrigger, last_poll: str | None, every: float,
               now: datetime) -> datetime:
    """When a source is polled first after a start or a reload: schedule.poll_first_run (now
    if overdue, else once `every` seconds since the last poll ran out), or for arXiv's fixed
    times (a CronTrigger) their next one if that comes sooner: a restart or reload must not
    skip an announcement."""
    first = poll_first_run(last_poll, every, now)
    if isinstance(trigger, CronTrigger):
        slot = trigger.get_next_fire_time(None, now)
        if slot is not None and slot < first:
            return slot
    return first


@dataclass
class WebServer:
    """The web app served by digestd.web.serve_web as a task of the daemon's loop."""

    task: asyncio.Task
    stop: asyncio.Event


def web_parts(config: Config) -> tuple[Callable, Callable] | None:
    """(create_app, serve_web) of digestd.web, or None (logged) when the web app is
    disabled or this build has none: digests go on without it."""
    if not config.web.enabled:
        log.info("event=web_disabled reason=config")
        return None
    try:
        from .. import web
    except ModuleNotFoundError as e:
        if e.name != "digestd.web":
            log.error("event=web_unavailable error=%r", str(e))
        else:
            log.warning("event=web_unavailable reason=not_in_this_build")
        return None
    except Exception as e:  # a broken web module must not take the digests down with it
        log.error("event=web_unavailable error=%r", f"{type(e).__name__}: {e}")
        return None
    parts = getattr(web, "create_app", None), getattr(web, "serve_web", None)
    if None in parts:
        log.warning("event=web_unavailable reason=no_create_app_or_serve_web")
        return None
    return parts
