"""Mail: `send`, `outbox` (list, retry, prune) and `doctor`."""
from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import datetime, timezone

from ..errors import NotFound
from ..schedule import parse_iso
from ..store.records import LEFT_OUT, MATCH, RECOMMENDED
from .common import (
    Progress,
    _config,
    _count,
    _days_ago,
    _delivery_summary,
    _in,
    _moment,
    _print_json,
    _store,
)


def cmd_send(args: argparse.Namespace) -> int:
    from ..jobs import build_and_send, build_digests
    from ..render import check_templates

    config = _config(args)
    check_templates(config.digest.templates_dir, web=False)  # before anything is built
    with _store(config) as store:
        if args.dry_run:
            now = datetime.now(timezone.utc)
            built = build_digests(config, store, force=args.now, dry_run=True, now=now)
            for email, n in built.matches.items():
                print(f"would send {email}: {_count(n, 'paper')}")
            waiting = store.digest_counts().get("queued", 0)
            print(f"{_count(built.digests, 'digest')} would be built "
                  f"({_count(built.papers_checked, 'paper')} checked)"
                  + (f"; {waiting} already waiting in the outbox would be sent when due "
                     "(`digestd outbox`)" if waiting else "") + "; nothing queued or sent")
            if built.quiet:  # due, and no email: not a fault
                print(f"{_count(built.quiet, 'digest')} due now without new matches: no email "
                      "(`digestd subscribers set EMAIL --send-empty` sends a short note then)")
            if not built.digests and built.next_due:  # none to send now: say when one is
                at = parse_iso(built.next_due)
                print(f"{'no other' if built.quiet or built.feed_only else 'none'} is due now: "
                      f"the next digest is due at {_moment(at)} ({_in(at, now)}; "
                      "`digestd subscribers list` shows each subscriber's)")
            return 0
        # building and sending overlap: the first digests go out while the rest render
        progress = Progress()
        try:
            built, report = asyncio.run(build_and_send(config, store, force=args.now,
                                                       progress=progress))
        finally:
            progress.close()
        waiting = store.digest_counts().get("queued", 0)
    print(f"built {_count(built.digests, 'digest')} ({_count(built.papers_checked, 'paper')} "
          "checked)"
          + (f"; {built.feed_only} for feed-only subscribers (no email)" if built.feed_only
             else "")
          + (f"; {built.failed} could not be built (`digestd outbox --failed` says why)"
             if built.failed else ""))
    print(_delivery_summary(config, report, waiting))
    return 1 if report.failed or report.stopped or built.failed else 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from ..deliver import owner_alive
    from ..store import utcnow

    config = _config(args)
    with _store(config, read_only=True) as store:
        waiting = store.outbox()
        failed = store.outbox(status="failed") if args.failed or args.json else []
        sent = store.outbox(status="sent", limit=args.limit or None,
                            newest_first=True) if args.sent else []
        counts = store.digest_counts()
        kinds = store.digest_kinds([r.id for r in waiting + failed + sent if r.papers])
    now = utcnow()

    def state(r) -> str:
        at = f" {r.sent_at}" if r.sent_at else ""
        if r.status == "sent" and (r.last_error or "").startswith("bounced after delivery"):
            return f"sent{at}, then {r.last_error}"  # a DSN came back (digestd inbound)
        if r.status == "sent" and not r.message_id:
            # a feed-only subscriber's, or every match left out by min_score and no note
            # wanted: recorded for the page and the feed, never mailed
            return f"recorded{at}, no email"
        if r.status == "sent":
            return f"sent{at}"
        if r.status == "failed" and not r.message_id:
            return "could not be built"  # record_build_failure: no message, nothing to retry
        if r.status == "failed":
            return r.status
        if r.claimed_by and r.claimed_until and r.claimed_until >= now:
            alive = owner_alive(r.claimed_by)
            return ("sending" if alive else "in flight when its sender died: resent next run")
        of = f"attempt {r.attempts + 1} of {max(config.delivery.max_attempts, r.attempts + 1)}"
        if r.next_attempt_at and r.next_attempt_at > now:
            return f"retry at {r.next_attempt_at} ({of})"
        return "due now" if not r.attempts else f"due now ({of})"

    rows = waiting + failed + sent
    if args.json:
        _print_json([{"id": r.id, "recipient": r.recipient, "period": r.period,
                      "papers": r.papers, "matched": kinds.get(r.id, {}).get(MATCH, 0),
                      "recommended": kinds.get(r.id, {}).get(RECOMMENDED, 0),
                      "left_out": kinds.get(r.id, {}).get(LEFT_OUT, 0),
                      "status": r.status, "state": state(r),
                      "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                      "sent_at": r.sent_at,
                      "last_error": r.last_error, "message_id": r.message_id,
                      "bytes": len(r.message)} for r in rows])
        return 0
    for r in rows[: args.limit] if args.limit else rows:
        print(f"{r.id:>6} {r.recipient:<30} {_what(r, kinds.get(r.id))}  {state(r)}"
              + (f"  last error: {r.last_error}" if r.last_error and r.status != "sent"
                 else ""))
    shown = min(len(rows), args.limit) if args.limit else len(rows)
    if shown < len(rows):
        print(f"... {len(rows) - shown} more (--limit 0 shows all)")
    print(f"{len(waiting)} waiting, {counts.get('failed', 0)} failed"
          + ("" if args.failed else " (--failed lists them)")
          + f", {counts.get('sent', 0)} sent in all"
          + ("" if args.sent else " (--sent lists the last)"))
    unbuilt = counts.get("build_failed", 0)
    if counts.get("failed", 0) > unbuilt:
        print("a failed digest's papers are not offered again: once the cause is fixed, "
              "`digestd outbox retry --failed` sends them (or `retry --failed ID ...`)")
    if unbuilt:
        print(_UNBUILT_HINT.format(digests=_count(unbuilt, "digest")))
    return 0


# what resolves a build failure (store.record_build_failure): no message was made, so there is
# nothing to retry; its papers were not marked sent and wait for the subscriber's next digest
_UNBUILT_HINT = ("{digests} could not be built (no message: `outbox retry` has nothing to "
                 "send): their papers wait for the next digest. Fix what the last error "
                 "names (a template of digest.templates_dir, an address), then `digestd send "
                 "--now` builds it; a failure a later digest superseded is no longer counted")


_WEB_MAIL = re.compile(r"([a-z][a-z_]*)-\d+")  # queue_message's periods: "confirm-1700000000"
_WEB_MAIL_NAMES = {"confirm": "confirm email", "manage": "preferences link",
                   "unsubscribed": "unsubscribe notice"}


def _what(row, kinds: dict[int, int] | None = None) -> str:
    """A row's period and papers, or what web mail it is ("confirm email") for the rows of
    queue_message (confirmations, unsubscribe notices), which carry no papers. The papers
    are those its email brings, as its subject counts them (the rule matches kept and the
    recommendations, `kinds` from store.digest_kinds), and those min_score left out (on
    its page only)."""
    found = _WEB_MAIL.fullmatch(row.period) if not row.papers else None
    if found:
        return f"{_WEB_MAIL_NAMES.get(found[1], found[1] + ' email'):<23}"
    kinds = kinds if kinds is not None else {MATCH: row.papers}  # a digest from before kinds
    brings = kinds.get(MATCH, 0) + kinds.get(RECOMMENDED, 0)
    left = f" ({kinds[LEFT_OUT]} left out)" if kinds.get(LEFT_OUT) else ""
    return f"{row.period:<12} {brings:>3} {'paper ' if brings == 1 else 'papers'}{left}"


def cmd_outbox_show(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config, read_only=True) as store:
        message = store.stored_message(args.id)
        waiting = message and store.digest_statuses([args.id]).get(args.id) == "queued"
        subscriber_id = store.digest_subscriber(args.id) if waiting else None
    if message is not None and subscriber_id is not None and config.delivery.return_path:
        from ..config import web_secret
        from ..deliver.outbox import return_path_header

        # as a final delivery adds it: the VERP address the message will go out from (the
        # envelope of one sent already is not kept: the config may have changed since)
        message = return_path_header(config.delivery.return_path, web_secret(config),
                                     args.id, subscriber_id) + message
    if message is None:
        print(f"digestd: no stored message for digest {args.id} (ids from `digestd outbox`; "
              "a sent digest's message is dropped after store.keep_sent_days)",
              file=sys.stderr)
        return 1
    sys.stdout.flush()
    sys.stdout.buffer.write(message)  # the bytes as sent: CRLF line ends, 8bit text
    sys.stdout.buffer.flush()
    return 0


def cmd_outbox_prune(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.days is None:
        args.days = config.store.keep_sent_days
        if args.days == 0:  # the config's 0: keep them forever
            print("store.keep_sent_days = 0 keeps the messages of sent digests forever: "
                  "nothing dropped (give --days N to drop those older than N days)")
            return 0
    before = _days_ago(args.days)
    with _store(config, read_only=True) as store:
        dropped = store.prune_sent(before)
    print(f"dropped the message of {dropped} digest{'s' if dropped != 1 else ''} sent more "
          f"than {args.days} day{'s' if args.days != 1 else ''} ago (their history and sent "
          "marks stay)")
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    from ..jobs import send_outbox

    config = _config(args)
    with _store(config) as store:
        if args.id:
            known = store.digest_statuses(args.id)
            unknown = [str(i) for i in args.id if i not in known]
            if unknown:
                # as every "not found" (errors.NotFound): exit status 1
                raise NotFound(f"no such id in the outbox: {', '.join(unknown)} "
                                 "(`digestd outbox --failed` lists them)")
            done = [str(i) for i in args.id if known[i] == "sent"]
            if done:
                print(f"already sent, not sent again: {', '.join(done)}")
            failed = [str(i) for i in args.id if known[i] == "failed"]
            if failed and not args.failed:
                print(f"failed, left as they are (add --failed to try again): "
                      f"{', '.join(failed)}")
        # a digest that could not be built has no message to make due again
        unbuilt = [r for r in store.outbox(status="failed") if not r.message_id
                   and (not args.id or r.id in args.id)] if args.failed else []
        n = store.retry_outbox(args.id or (), failed=args.failed)
        print(f"{n} message{'s' if n != 1 else ''} due now", flush=True)
        if unbuilt:
            print(_UNBUILT_HINT.format(digests=_count(len(unbuilt), "digest"))
                  + f" (ids {', '.join(str(r.id) for r in unbuilt)})")
        if args.no_send or not n:
            return 0
        progress = Progress()
        try:
            report = asyncio.run(send_outbox(config, store, progress=progress))
        finally:
            progress.close()
        waiting = store.digest_counts().get("queued", 0)
    print(_delivery_summary(config, report, waiting))
    return 1 if report.failed or report.stopped else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..doctor import run_checks

    config = _config(args)
    checks = asyncio.run(run_checks(config))
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "info": "info"}
    for c in checks:
        print(f"{marks[c.status]}  {c.name:<22} {c.detail}")
    failed = sum(1 for c in checks if c.status == "fail")
    warned = sum(1 for c in checks if c.status == "warn")
    print(f"{failed} failed, {warned} warnings")
    return 1 if failed else 0
