"""Building the digests that are due: which subscribers' slots are due (schedule.py), their
matches (match.py), each digest's order (ranking.py), rendering (render.py) and one commit
per batch of digests with their sent marks (the store).

jobs.py re-exports what the scheduler and the CLI call (build_digests, make_renderer ...).
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from . import forked
from .config import Config, web_secret
from .match import Matcher
from .mime import DkimSigner
from .models import Digest, Paper, PaperMatch, Subscriber
from .ranking import (
    Ranking,
    Wanted,
    profiles_of,
    rank_day,
    todays_order,
)
from .render import Links, Renderer
from .schedule import (
    Decision,
    Schedule,
    Slot,
    current_period,
    decide,
    iso,
    next_slot,
    parse_iso,
)
from .store import (
    LEFT_OUT,
    MATCH,
    RECOMMENDED,
    QueuedDigest,
    ScheduleMark,
    Store,
    StoredSeed,
    open_store,
    pack_message,
)

log = logging.getLogger("digestd.jobs")

# A new subscriber's first digest looks back this far; later ones start where the last
# check ended, however long ago that was (catch-up after downtime loses nothing).
FIRST_LOOKBACK = timedelta(days=1)
# digests rendered between two looks at `stop` while building (see build_digests)
BUILD_BATCH = 50
# digests committed together. A commit writes every page it changed, whole, to the WAL
# (and a checkpoint copies it to the store file), and a batch's sent marks and reasons land
# all over their indexes (the marks' key: a subscriber's marks sit together; and, before
# schema step sent_by_digest, sent_paper: a paper's marks sit together, a digest's papers do
# not), so the pages written per commit hardly grow with the batch: at 20,000 subscribers
# x 1,000 papers, building wrote 29 KB per digest with 50 a commit, 15 KB with 500 (9 KB
# of it the packed message, twice); at 100,000 x 3,000 (17 papers a digest), 56 KB with
# 500 and 44 KB with 1,000. The write lock is held ~0.1 s per 500 digests of 6 papers,
# which a sender on another connection waits out with the rows it has claimed.
COMMIT_BATCH = 1000


@dataclass
class BuildReport:
    digests: int = 0  # messages queued, "nothing matched" notes included
    feed_only: int = 0  # digests recorded for feed-only subscribers: no message, no email
    papers_checked: int = 0
    # email -> papers their email brings, as its subject counts them: the rule matches kept
    # and the recommendations (not those min_score left out, which only its page lists)
    matches: dict[str, int] = field(default_factory=dict)
    empty: int = 0  # "nothing matched" notes (subscribers with send_empty)
    failed: int = 0  # digests that could not be built (see Store.record_build_failure)
    quiet: int = 0  # due, nothing matched, no note wanted: no email
    merged: int = 0  # slots missed by more than max_lateness, merged into the next digest
    caught_up: int = 0  # due digests that also cover slots missed while the daemon was down
    match_s: float = 0.0  # seconds spent matching, ranking and rendering (bench/cycle.py)
    rank_s: float = 0.0  # the ranking's own wall time (in a forked process: there)
    rank_wait_s: float = 0.0  # how long the build waited for the readers built apart
    render_s: float = 0.0
    ranked: int = 0  # digests ordered by the reader's profile (seeds, feedback)
    recommended: int = 0  # "also recommended" papers added beyond the rules
    left_out: int = 0  # rule matches min_score left out of the emails
    stopped: bool = False  # cut short by a stop (shutdown): the rest is built next run
    next_due: str | None = None  # ISO time of the earliest slot after this build (scheduled runs)
    took_s: float = 0.0  # wall time of the build (set by build_and_send)
    # what the build process spent building, as getrusage counts it (set by a build run in
    # its own process, for bench/cycle.py): CPU seconds, and bytes it wrote to storage (the
    # store's WAL, its checkpoints into the store file: ru_oublock x 512, as Linux counts)
    cpu_s: float = 0.0
    written_bytes: int = 0

    def add(self, other: BuildReport) -> None:
        """Fold in the report of another shard of the same build."""
        for name in ("digests", "feed_only", "empty", "quiet", "merged", "caught_up", "failed",
                     "ranked", "recommended", "left_out", "cpu_s", "written_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.papers_checked = max(self.papers_checked, other.papers_checked)
        self.matches.update(other.matches)
        self.match_s = max(self.match_s, other.match_s)
        self.render_s += other.render_s
        self.rank_s = max(self.rank_s, other.rank_s)
        self.rank_wait_s = max(self.rank_wait_s, other.rank_wait_s)
        self.stopped = self.stopped or other.stopped
        if other.next_due is not None:
            self.next_due = other.next_due if self.next_due is None \
                else min(self.next_due, other.next_due)
        self.took_s = max(self.took_s, other.took_s)


def _window_start(sub: Subscriber, mark: ScheduleMark | None) -> str:
    """The first-seen time from which papers are new to this subscriber: where the last
    check ended, else the last digest, else a day before they subscribed."""
    if mark and mark.last_checked_at:
        return mark.last_checked_at
    if sub.last_digest_at:
        return sub.last_digest_at
    return iso(parse_iso(sub.created_at) - FIRST_LOOKBACK)


def return_path(config: Config) -> dict:
    """send_smtp's VERP arguments: the return path and the secret that signs its tokens."""
    if not config.delivery.return_path:
        return {}
    return {"return_path": config.delivery.return_path, "secret": web_secret(config)}


def make_dkim(config: Config) -> DkimSigner | None:
    """The DKIM signer of [dkim], None when it is not set."""
    from email.utils import parseaddr

    if not config.dkim.selector:
        return None
    domain = config.dkim.domain or parseaddr(config.delivery.from_)[1].rpartition("@")[2]
    return DkimSigner(config.dkim.selector, domain, config.dkim.private_key)


def make_renderer(config: Config) -> Renderer:
    """The renderer of one run: templates, styles and the DKIM key load once."""
    dkim = make_dkim(config)
    return Renderer(links=Links(config.web.base_url, web_secret(config),
                                archive_url=config.digest.archive_url),
                    from_addr=config.delivery.from_, reply_to=config.delivery.reply_to,
                    max_papers=config.digest.max_papers,
                    templates_dir=config.digest.templates_dir,
                    feedback_id=config.delivery.feedback_id,
                    unsubscribe_mailto=config.delivery.unsubscribe_mailto,
                    return_path=config.delivery.return_path, dkim=dkim)


def due_slots(config: Config, store: Store, subs: dict[int, Subscriber], now: datetime, *,
              dry_run: bool = False, report: BuildReport | None = None,
              marks: dict[int, ScheduleMark] | None = None) -> dict[int, Slot]:
    """Subscriber id -> the slot whose digest is due now (see schedule.decide).

    Slots missed by more than max_lateness are marked handled (merged into the next
    digest), and so are slots whose period has a digest already. `marks` are the store's
    schedule_marks for (at least) `subs`, read here when not given.
    """
    report = report if report is not None else BuildReport()
    marks = store.schedule_marks() if marks is None else marks
    lateness = timedelta(seconds=config.digest.max_lateness)
    due: dict[int, Slot] = {}
    # subscribers share schedules and last slots: each pair is decided once per run
    decided: dict[tuple[Schedule, str], Decision] = {}
    for sid, sub in subs.items():
        mark = marks.get(sid)
        after = mark.last_slot_at if mark and mark.last_slot_at else sub.created_at
        schedule = Schedule.of(sub)
        try:
            decision = decided.get((schedule, after))
            if decision is None:
                decision = decided[schedule, after] = decide(
                    schedule, now, after=parse_iso(after), max_lateness=lateness)
        except (ValueError, KeyError) as e:  # an unknown zone, a malformed send_at
            # one subscriber's bad schedule must not hold up everybody else's digest
            log.error("event=schedule_invalid subscriber=%d timezone=%r send_at=%r error=%r",
                      sid, sub.timezone, sub.send_at, str(e))
            continue
        if decision.late:
            report.merged += 1
            if not dry_run:
                store.mark_slot(sid, decision.late.at_iso)
                log.info("event=digest_merged subscriber=%d period=%s late_min=%d reason=%s",
                         sid, decision.late.period, (now - decision.late.at).total_seconds() // 60,
                         "max_lateness")
        slot = decision.slot
        if slot is None:
            continue
        if store.has_digest(sid, slot.period):
            # built before a crash, or by `digestd send --now`: the period is done
            if not dry_run:
                store.mark_slot(sid, slot.at_iso)
            continue
        if decision.missed:
            report.caught_up += 1
            log.debug("event=catch_up subscriber=%d period=%s missed=%d", sid, slot.period,
                      decision.missed)
        due[sid] = slot
    return due


def next_digests(config: Config, store: Store, subs: Iterable[Subscriber],
                 now: datetime) -> dict[int, Slot]:
    """Subscriber id -> their next digest's slot, as the daemon's build decides it: the one
    due now (at or before `now`: built by the next check) or the first after `now`. Only
    active subscribers with rules get one; a bad schedule (logged) none. Writes nothing."""
    subs = {s.id: s for s in subs if s.status == "active" and s.rules}
    out: dict[int, Slot] = dict(due_slots(config, store, subs, now, dry_run=True))
    for sid, sub in subs.items():
        if sid not in out:
            try:
                out[sid] = next_slot(Schedule.of(sub), now)
            except (ValueError, KeyError):  # a bad schedule: due_slots has logged it
                continue
    return out


def _next_due(subs: Iterable[Subscriber], now: datetime) -> str | None:
    """The earliest slot after `now` among these subscribers' schedules (each distinct
    schedule looked at once), as an ISO time; None for nobody."""
    found: datetime | None = None
    for schedule in {Schedule.of(sub) for sub in subs}:
        try:
            at = next_slot(schedule, now).at
        except (ValueError, KeyError):  # a bad schedule: due_slots has logged it
            continue
        found = at if found is None or at < found else found
    return iso(found) if found is not None else None


def build_digests(config: Config, store: Store, *, now: datetime | None = None,
                  force: bool = False, dry_run: bool = False,
                  renderer: Renderer | None = None,
                  stop: Callable[[], bool] | None = None,
                  shard: tuple[int, int] = (0, 1), rank_apart: bool = False) -> BuildReport:
    """Queue one digest for every subscriber whose slot is due (schedule.py says when).

    A due digest covers every paper not yet checked for the subscriber, however many
    slots were missed while the daemon was down. A due subscriber without matches gets
    a short "nothing matched" note if they asked for one (send_empty), else no email.
    `force` builds for every active subscriber with unsent matches, whatever the
    schedule; `dry_run` counts what would be built and writes nothing. `stop` is asked
    between batches of BUILD_BATCH digests: once it says yes, the batches committed so
    far stay and the rest is built by the next run (report.stopped).

    `rank_apart` (the build process of jobs.py): the subscribers with a profile (seeds,
    "more like this") are built in a forked process (BuiltApart), the build's steps for
    them alone, ranking included, while this one builds everyone else's digests: ranking
    then costs the cycle little wall time where a core is free. Without it, or where
    fork() is missing, everyone is built here and ranking runs first.
    """
    now = now or datetime.now(timezone.utc)
    apart: BuiltApart | None = None
    exclude: frozenset[int] = frozenset()
    if rank_apart and store.target != ":memory:" and forked.available():
        profiled = frozenset(store.subscribers_with_positives(_sharded(shard)))
        if profiled:
            # forked first, while this process holds little: the pages both processes share
            # are copied as soon as either writes to them (reference counts)
            with store.fork_safe():
                apart = BuiltApart(config, store.target, now=now, force=force,
                                   dry_run=dry_run, shard=shard, subscribers=profiled)
            exclude = profiled
    try:
        # with the readers who have a profile built apart, nobody here needs ranking
        report = _build(config, store, now=now, force=force, dry_run=dry_run,
                        renderer=renderer, stop=stop, shard=shard, exclude=exclude,
                        rank=apart is None)
        if apart is not None and not report.stopped:
            apart.join(config, store, report, renderer=renderer, stop=stop)
    finally:
        if apart is not None:
            apart.cancel()  # stopped: what it committed stays, the rest is built next run
    return report


def _build(config: Config, store: Store, *, now: datetime, force: bool, dry_run: bool,
           renderer: Renderer | None, stop: Callable[[], bool] | None, shard: tuple[int, int],
           only: frozenset[int] | None = None, exclude: frozenset[int] = frozenset(),
           rank: bool = True) -> BuildReport:
    """build_digests's steps for the active subscribers of `shard`, `only` those given
    (None: all) and not those in `exclude`; `rank` False: everyone in today's order."""
    report = BuildReport()
    # shard (k, n): only subscribers whose id is k modulo n (the store reads just those), so
    # n processes split a build
    subs = {s.id: s for s in store.subscribers("active", shard=_sharded(shard))
            if s.rules and s.id not in exclude and (only is None or s.id in only)}
    marks = store.schedule_marks(_sharded(shard))
    if force:
        due: dict[int, Slot | None] = dict.fromkeys(subs)
    else:
        due = dict(due_slots(config, store, subs, now, dry_run=dry_run, report=report,
                             marks=marks))
        report.next_due = _next_due(subs.values(), now)
    if not due:
        return report
    starts = {sid: _window_start(subs[sid], marks.get(sid)) for sid in due}
    since = min(starts.values())
    papers = store.papers_since(since)
    # papers come oldest first: a subscriber's window is a suffix of the list
    seen_at = store.first_seen_since(since)
    report.papers_checked = len(papers)
    checked_through = seen_at[-1] if seen_at else None
    pks = store.paper_pks(p.id for p in papers)
    by_pk = {pk: pid for pid, pk in pks.items()}
    sent = {sid: {by_pk[pk] for pk in got}
            for sid, got in store.sent_among(pks.values(), _sharded(shard)).items()}
    started = time.perf_counter()
    matched = Matcher({sid: subs[sid].rules for sid in due}).match(papers, exclude=sent) \
        if papers else {}
    report.match_s = time.perf_counter() - started
    renderer = renderer or make_renderer(config)
    position = {p.id: i for i, p in enumerate(papers)}
    first_index = {sid: bisect.bisect_left(seen_at, starts[sid]) for sid in due}
    ranked: dict[int, Ranking] = {}
    if rank:
        started = time.perf_counter()
        ranked = _rankings(store, {sid: subs[sid] for sid in due}, papers, matched, position,
                           first_index, sent, method=config.relevance.method,
                           keep=not dry_run, shard=shard)
        report.rank_s = time.perf_counter() - started
        report.ranked = len(ranked)
    day = _Day(subs, papers, matched, position, first_index, pks, now, checked_through)
    _build_batches(config, store, report, day, list(due.items()), ranked, renderer,
                   dry_run=dry_run, stop=stop)
    return report


def _sharded(shard: tuple[int, int]) -> tuple[int, int] | None:
    """`shard` for the store's reads (which then read that shard's rows only), None for the
    whole (0, 1)."""
    return shard if shard[1] > 1 else None


@dataclass
class _Day:
    """What one build read and matched, which rendering and queueing use."""

    subs: dict[int, Subscriber]
    papers: list[Paper]  # oldest first
    matched: dict[int, list[PaperMatch]]
    position: dict[str, int]  # paper id -> index in papers
    first_index: dict[int, int]  # subscriber id -> index of the first paper of their window
    pks: dict[str, int]
    now: datetime
    checked_through: str | None

    def items(self, sid: int) -> list[PaperMatch]:
        """The subscriber's matches within their window."""
        start = self.first_index[sid]
        return [m for m in self.matched.get(sid, ()) if self.position[m.paper.id] >= start]


def _build_batches(config: Config, store: Store, report: BuildReport, day: _Day,
                   batch: list[tuple[int, Slot | None]], ranked: dict[int, Ranking],
                   renderer: Renderer, *, dry_run: bool,
                   stop: Callable[[], bool] | None) -> None:
    """build_digests's rendering and queueing, in batches (see build_digests)."""
    # rendered, not committed yet: one commit per COMMIT_BATCH digests (see COMMIT_BATCH)
    subs, now = day.subs, day.now
    pending: list[tuple[int, Slot | None, tuple | None]] = []
    not_built = 0
    for first in range(0, len(batch), BUILD_BATCH):
        if stop is not None and stop():
            report.stopped = True
            not_built = len(batch) - first
            break
        # the batches are rendered first and then written in one short transaction: the
        # write lock is held for the inserts only, never during rendering, so a sender on
        # another connection (the daemon's event loop) waits a moment, not a whole batch
        # (subscriber, slot, (period, items, whys, message_id, message, checked) or None: the
        # slot only); a feed-only digest has no message_id and message
        writes: list[tuple[int, Slot | None, tuple | None]] = []
        failures: list[tuple[int, Slot | None, str, str, int]] = []
        for sid, slot in batch[first:first + BUILD_BATCH]:
            sub = subs[sid]
            start_index = day.first_index[sid]
            items = day.items(sid)
            # with a profile: the profile's order, recommendations, what min_score left out
            ranking = ranked.get(sid)
            left_out = ranking.left_out if ranking is not None else []
            if slot is None:  # forced
                if not items:
                    continue
                period = current_period(Schedule.of(sub), now)
                if store.has_digest(sid, period):
                    period = now.astimezone(ZoneInfo(sub.timezone)).isoformat(timespec="seconds")
            else:
                period = slot.period
            if not items and (not sub.send_empty or sub.feed_only):
                report.quiet += 1
                if not dry_run:
                    writes.append((sid, slot, None))
                continue
            kept = ranking.items if ranking is not None else items
            recs = ranking.recommended if ranking is not None else []
            if dry_run:
                report.recommended += len(recs)
                report.left_out += len(left_out)
                if not kept and not sub.send_empty and not sub.feed_only:
                    report.quiet += 1  # every match left out: recorded, no email
                    continue
                report.digests += 1
                if kept:
                    report.matches[sub.email] = len(kept) + len(recs)
                else:
                    report.empty += 1
                continue
            try:
                # the digest's order, best first, is also its page's and the feed's
                if ranking is None:
                    ranking = todays_order(items)
                digest = Digest(subscriber=sub, period=period, items=tuple(ranking.items),
                                papers_checked=len(day.papers) - start_index, ordered=True,
                                whys=tuple(ranking.whys),
                                recommended=tuple(ranking.recommended),
                                recommended_whys=tuple(ranking.recommended_whys),
                                left_out=len(ranking.left_out))
                # every paper is stored: the matches, then the recommendations (so feedback
                # link N names the N-th paper shown), then the matches left out
                stored = (ranking.items + ranking.recommended + ranking.left_out,
                          ranking.whys + ranking.recommended_whys + ranking.left_out_whys,
                          [MATCH] * len(ranking.items) + [RECOMMENDED] * len(ranking.recommended)
                          + [LEFT_OUT] * len(ranking.left_out))
                # left out all (min_score) and no note wanted: recorded, so they are never
                # offered again and the page lists them, but no email
                silent = not ranking.items and not sub.send_empty
                if sub.feed_only or silent:  # recorded for the feed and the archive
                    writes.append((sid, slot, (period, stored, "", b"",
                                               digest.papers_checked)))
                    continue
                started = time.perf_counter()
                message_id, message = renderer.message(digest, now=now)  # no items: the note
                report.render_s += time.perf_counter() - started
                # packed here, so the write lock is not held while zstd runs; its lines end
                # in CRLF (mime.build_alternative), which the sender then need not check
                message = pack_message(message, crlf=True)
            except Exception as e:  # noqa: BLE001 (one broken digest must not stop the others)
                # a bad address, a template error on one paper, a paper with broken data:
                # this digest fails alone, with its reason on its outbox row; the log names
                # the subscriber by id only
                report.failed += 1
                log.error("event=digest_build_failed subscriber=%d period=%s error_type=%s",
                          sid, period, type(e).__name__)
                failures.append((sid, slot, period, f"{type(e).__name__}: {e}", len(items)))
                continue
            writes.append((sid, slot, (period, stored, message_id, message,
                                       digest.papers_checked)))
        for sid, slot, period, error, count in failures:
            store.record_build_failure(sid, period, recipient=subs[sid].email, error=error,
                                       papers=count, now=iso(now),
                                       slot_at=slot.at_iso if slot is not None else None)
        pending += writes
        if len(pending) >= COMMIT_BATCH:
            _queue(store, pending, subs, day.pks, now, day.checked_through, report)
            pending = []
    if pending:  # what was rendered before the end or a stop
        _queue(store, pending, subs, day.pks, now, day.checked_through, report)
    if report.stopped:
        log.info("event=build_stopped built=%d not_built=%d", report.digests, not_built)


def _queue(store: Store, writes: list[tuple[int, Slot | None, tuple | None]],
           subs: dict[int, Subscriber], pks: dict[str, int], now: datetime,
           checked_through: str | None, report: BuildReport) -> None:
    """Queue rendered digests (and mark the slots of those with no email) in one
    transaction: each digest's outbox row and its sent marks commit together, and a crash
    loses at most these, rebuilt on restart."""
    with store.transaction():
        why_ids = store.why_ids(w for _, _, queued in writes if queued for w in queued[1][1])
        for sid, slot, queued in writes:
            if queued is None:
                store.mark_slot(sid, slot.at_iso, checked_through=checked_through)
        built = [(sid, slot, queued) for sid, slot, queued in writes if queued is not None]
        ids = store.queue_digests([QueuedDigest(
            sid, period, recipient=subs[sid].email, message_id=message_id, message=message,
            paper_pks=[pks[m.paper.id] for m in items], whys=whys, kinds=kinds,
            checked=checked, deliver=bool(message_id),
            slot_at=slot.at_iso if slot is not None else None)
            for sid, slot, (period, (items, whys, kinds), message_id, message, checked)
            in built], why_ids=why_ids, now=iso(now), checked_through=checked_through)
        for (sid, slot, queued), did in zip(built, ids):
            period, (items, whys, kinds), message_id, message, checked = queued
            sub = subs[sid]
            if did is not None:
                matches = kinds.count(MATCH)
                report.recommended += kinds.count(RECOMMENDED)
                report.left_out += kinds.count(LEFT_OUT)
                if sub.feed_only:
                    report.feed_only += 1
                elif not message_id:  # every match left out, no note wanted: no email
                    report.quiet += 1
                else:
                    report.digests += 1
                if matches:
                    report.matches[sub.email] = matches + kinds.count(RECOMMENDED)
                elif message_id:
                    report.empty += 1
                log.debug("event=digest_queued digest=%d subscriber=%d period=%s papers=%d",
                          did, sid, period, len(items))
            elif slot is not None:  # built before: the slot is done all the same
                store.mark_slot(sid, slot.at_iso, checked_through=checked_through)


def _rankings(store: Store, due: dict[int, Subscriber], papers: list[Paper],
              matched: dict[int, list[PaperMatch]], position: dict[str, int],
              first_index: dict[int, int], sent: dict[int, set[str]], *,
              method: str = "tfidf", keep: bool = True,
              shard: tuple[int, int] = (0, 1)) -> dict[int, Ranking]:
    """Subscriber id -> their digest ranked by their profile (ranking.py) in the text space
    `method` ([relevance] method), for the due subscribers (of this shard) with seeds or
    "more like this" papers; the others are not in it and keep today's order. With the
    semantic space, seed texts embedded by an earlier build are read back (seed_vectors)
    and, with `keep`, the ones embedded now are stored."""
    if not papers or not due:
        return {}
    ids = list(due)
    seeds, seed_texts = store.seed_texts_of(ids)
    # one read: a list of 100,000 ids would pass SQLite's limit of bound variables
    feedback = {sid: marks for sid, marks in store.feedback_values(shard=_sharded(shard)).items()
                if sid in due}
    if not seeds and not any(v > 0 for marks in feedback.values() for v in marks.values()):
        return {}  # nobody has a profile: nothing to read or vectorize
    liked = store.papers_by_pk({pk for marks in feedback.values() for pk in marks})
    profiles = profiles_of(ids, seeds, feedback, liked)
    wanted = {}
    for sid in profiles:
        start = first_index[sid]
        items = [m for m in matched.get(sid, ()) if position[m.paper.id] >= start]
        if not items:  # nothing to order, and recommendations ride along with matches only
            continue
        sub = due[sid]
        wanted[sid] = Wanted(items=items, start=start, sent=sent.get(sid, set()),
                             recommend=sub.recommend, min_score=sub.min_score)
    known, remember = None, None
    if method == "semantic" and wanted:
        known, remember = _seed_vectors(store, seed_texts, keep)
    ranked = rank_day(papers, profiles, wanted, method=method, known=known, remember=remember)
    log.info("event=ranked profiles=%d ranked=%d papers=%d", len(wanted), len(ranked),
             len(papers))
    return ranked


class BuiltApart:
    """build_digests for the `subscribers` given (those with a profile), ranking included,
    in a forked process (forked.Forked) over a connection of its own to the store at
    `target` (a connection must not cross a fork), while the caller builds the others'.
    `join` waits for it and adds its report; if it failed or died, the caller builds them
    itself, in today's order (a digest queued already is never queued twice)."""

    def __init__(self, config: Config, target: str, *, now: datetime, force: bool,
                 dry_run: bool, shard: tuple[int, int], subscribers: frozenset[int]) -> None:
        self.subscribers = subscribers
        self._args = {"now": now, "force": force, "dry_run": dry_run, "shard": shard}
        self._done = False

        def work() -> BuildReport:
            with open_store(target) as store:
                return _build(config, store, renderer=None, stop=None, only=subscribers,
                              **self._args)

        self._work = forked.Forked(work, name="digestd-ranked")

    def join(self, config: Config, store: Store, report: BuildReport, *,
             renderer: Renderer | None, stop: Callable[[], bool] | None) -> None:
        """Wait for the forked build (asking `stop` meanwhile: once it says yes, it is
        killed and report.stopped set) and fold its report into `report`."""
        waited = time.perf_counter()
        try:
            got: BuildReport | None = self._work.result(stop=stop)
        except forked.ForkStopped:
            report.stopped = True
            return
        except forked.ForkFailed as e:
            log.error("event=ranking_failed scope=process error=%r", str(e)[:200])
            got = None
        finally:
            self._done = True
            report.rank_wait_s += time.perf_counter() - waited
        if got is None:  # without their ranking: today's order, built here
            got = _build(config, store, renderer=renderer, stop=stop, only=self.subscribers,
                         rank=False, **self._args)
        report.add(got)

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._work.cancel()


def _seed_vectors(store: Store, texts: dict[int, StoredSeed], keep: bool):
    """(the semantic vectors kept for these seed texts, by (title, abstract); a function
    that stores new ones, or None without `keep`)."""
    import numpy as np

    from .relevance.semantic import MODEL_KEY

    stored = store.seed_vectors(texts, MODEL_KEY)
    known = {(texts[tid].title, texts[tid].abstract): np.frombuffer(v, "<f4")
             for tid, v in stored.items()}
    text_id = {(s.title, s.abstract): tid for tid, s in texts.items() if tid not in stored}

    def remember(embedded) -> None:
        store.add_seed_vectors(MODEL_KEY, {text_id[ident]: v.astype("<f4").tobytes()
                                           for ident, v in embedded.items() if ident in text_id})

    return known, (remember if keep else None)
