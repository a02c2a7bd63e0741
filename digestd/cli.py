"""The command line: argparse subcommands, each a thin call into jobs and the store."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from . import __version__
from .config import (
    Config,
    DeliveryConfig,
    LogConfig,
    StoreConfig,
    default_source,
    duration_text,
    example_config,
    find_config,
    load_config,
)
from .errors import DigestdError, RuleError, UsageError
from .logs import setup_logging
from .store import Store

log = logging.getLogger("digestd")

DEMO_SUBSCRIBERS = (
    ("ada@example.org", "Ada", ('"language models" reasoning', "diffusion", "reinforcement")),
    ("grace@example.org", "Grace", ('"object detection"', "segmentation", "3D")),
)

STARTER_CONFIG = """\
# digestd configuration: `digestd config example` prints every setting and its default.
# Check it with: digestd config check

[store]
path = "digestd.sqlite3"

[delivery]
# "outbox" writes .eml files; add an [smtp] table (or method = "smtp") to send email.
outbox_dir = "outbox"
from = "Paper digest <digest@example.org>"

[web]
# where subscribers open their links; a public https URL once digests go out by SMTP
base_url = "http://127.0.0.1:8080"

# arXiv's daily announcements of these categories (polled shortly after arXiv announces)
[[sources]]
name = "arxiv-ml"
kind = "arxiv-rss"
categories = ["cs.LG", "stat.ML"]

# The bundled sample papers, for trying rules offline (`digestd demo` uses them too):
# [[sources]]
# name = "sample"
# kind = "sample"
"""


# -- helpers -----------------------------------------------------------------------------------

def _count(n: int, noun: str) -> str:
    """'1 paper', '2 papers', '0 papers'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _config(args: argparse.Namespace) -> Config:
    path = find_config(args.config)
    if path is None:
        # a command run in the wrong folder must not look like "every subscriber is gone"
        print("digestd: warning: no config file (--config, $DIGESTD_CONFIG, ./digestd.toml): "
              "using the embedded defaults, with the store ./digestd.sqlite3", file=sys.stderr)
    return load_config(path)


def _store(config: Config) -> Store:
    return Store(config.store.path)


def _days_ago(days: int) -> str:
    """The ISO timestamp `days` days ago, as the store compares times."""
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


class Progress:
    """A progress bar on stderr when it is a terminal (rich: done/total, rate, time left,
    and how many were sent, deferred and failed); silent otherwise (the command prints one
    summary line at the end)."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.bar = None  # made on the first report, when the total is known
        self.task = None

    def __call__(self, report) -> None:
        if not self.enabled:
            return
        total = max(report.total, report.done, 1)
        if self.bar is None:
            self.bar, self.task = _rich_bar(self.stream, total)
        self.bar.update(self.task, completed=report.done, total=total, sent=report.sent,
                        deferred=report.deferred, failed=report.failed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()  # draws the last state and ends the line
            self.bar = None


def _rich_bar(stream, total: int):
    """A started rich.progress bar with one task on `stream`, redrawn 10 times a second."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as Bar
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.0f}/s" if task.speed else "", style="progress.data.speed")

    bar = Bar(BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
              TextColumn("sent {task.fields[sent]}  deferred {task.fields[deferred]}  "
                         "failed {task.fields[failed]}"),
              console=Console(file=stream), refresh_per_second=10,
              redirect_stdout=False, redirect_stderr=False)
    task = bar.add_task("send", total=total, sent=0, deferred=0, failed=0)
    bar.start()
    return bar, task


def _progress_line(report) -> None:  # kept for callers of the old name
    bar = Progress()
    bar(report)
    bar.close()


def _delivery_summary(config: Config, report) -> str:
    how = "written to " + config.delivery.outbox_dir if config.delivery_method == "outbox" \
        else "sent"
    line = f"{report.sent} {how}, {report.deferred} deferred, {report.failed} failed"
    details = [f"{n} {what}" for n, what in ((report.bounced, "bounced"),
                                             (report.cancelled, "cancelled: subscriber "
                                                                "no longer active")) if n]
    if details:
        line += f" ({', '.join(details)})"
    if report.stopped:
        line += f"; stopped early: {report.stopped}"
    return line


# -- commands ----------------------------------------------------------------------------------

def cmd_init(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "digestd.toml"
    if path.exists():
        print(f"{path} exists already; not overwritten.", file=sys.stderr)
    else:
        path.write_text(STARTER_CONFIG, encoding="utf-8")
        print(f"wrote {path}")
    config = load_config(path)
    with _store(config) as store:
        print(f"store ready: {store.path} (schema version {store.schema_version()})")
    shown = shlex.quote(str(path))
    print("next:")
    for step in ("config check", "subscribers add you@example.org --rule 'diffusion'",
                 "poll", "send --now"):
        print(f"  digestd --config {shown} {step}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Everything offline: bundled papers, two subscribers, digests written as .eml files."""
    from .jobs import build_digests, poll_sources, send_outbox

    if not args.log_level:
        logging.getLogger().setLevel(logging.WARNING)  # the summary below says it all
    folder = Path(args.dir).resolve()
    outbox = folder / "outbox"
    # the demo starts from scratch each time, removing only what it made itself
    for name in ("digestd.sqlite3", "digestd.sqlite3-wal", "digestd.sqlite3-shm",
                 "digestd.secret"):
        (folder / name).unlink(missing_ok=True)
    if outbox.is_dir():
        shutil.rmtree(outbox)
    base = load_config(None)
    config = dataclasses.replace(
        base, store=StoreConfig(path=str(folder / "digestd.sqlite3")),
        delivery=DeliveryConfig(method="outbox", outbox_dir=str(outbox)), smtp=None,
        sources=(default_source(),))
    print("digestd demo: offline, bundled sample papers, nothing is emailed.\n")
    with _store(config) as store:
        reports = asyncio.run(poll_sources(config.sources, store))
        for email, name, rules in DEMO_SUBSCRIBERS:
            store.add_subscriber(email, rules, name=name)
        built = build_digests(config, store, force=True)
        delivered = asyncio.run(send_outbox(config, store))
        papers = store.count_papers()
    new = sum(r.new for r in reports)
    print(f"  papers stored   {papers} ({new} new from the bundled sample)")
    print(f"  subscribers     {len(DEMO_SUBSCRIBERS)}")
    for email, _name, rules in DEMO_SUBSCRIBERS:
        print(f"    {email:<20} {built.matches.get(email, 0):>3} papers matched   rules: "
              + " | ".join(rules))
    print(f"  digests written {delivered.sent}")
    for path in delivered.written:
        print(f"    {path}")
    print(f"\nLook at them: open an .eml file in a mail client, or `less {outbox}/*.eml`.")
    print(f"The store is {folder / 'digestd.sqlite3'}. Start your own setup with `digestd init`.")
    return 0


# the systemd credentials digestd reads (read_secret's first argument in config.py)
CREDENTIALS = ("smtp-password", "secret", "dkim-key", "imap-password")


def _credentials_hidden() -> bool:
    """$CREDENTIALS_DIRECTORY is set but this process may not look into it: systemd runs a
    unit's ExecReload= that way, the directory masked (v252) or not mounted (v256)."""
    found = os.environ.get("CREDENTIALS_DIRECTORY")
    return bool(found) and not os.access(found, os.R_OK | os.X_OK)


def cmd_config_check(args: argparse.Namespace) -> int:
    from .config import check_dkim_key

    path = find_config(args.config)
    hidden = _credentials_hidden()
    if hidden:
        # the unit's `systemctl reload` check: the file is what can be wrong here; the
        # credentials are the ones the running daemon reads, and it reads them on SIGHUP
        with tempfile.TemporaryDirectory() as stand_in:
            for name in CREDENTIALS:
                Path(stand_in, name).write_text("not checked\n", encoding="utf-8")
            config = load_config(path, env={**os.environ, "CREDENTIALS_DIRECTORY": stand_in})
    else:
        config = load_config(path)
        check_dkim_key(config, path)  # signs a test message, as `send` does before its first
    if args.quiet:
        for warning in config.warnings:
            print(f"digestd: warning: {warning}", file=sys.stderr)
        return 0
    where = str(config.path) if config.path else "embedded defaults (no config file found)"
    print(f"config OK: {where}")
    if hidden:
        print("  credentials not readable here (as under ExecReload=): not checked")
    print(f"  store     {config.store.path}")
    print(f"  delivery  {config.delivery_method}"
          + (f" via {config.smtp.host}:{config.smtp.port} ({config.smtp.security})"
             if config.smtp and config.delivery_method == "smtp"
             else f" into {config.delivery.outbox_dir}"))
    print(f"  web       {config.web.listen} (links use {config.web.base_url})")
    print(f"  sources   {len(config.sources)}: "
          + ", ".join(f"{s.name} ({s.kind})" for s in config.sources))
    inbound = config.inbound
    print("  inbound   " + (f"IMAP {inbound.username}@{inbound.imap_host}:{inbound.port} "
                            f"({inbound.imap_security}), folder {inbound.folder!r}, every "
                            f"{duration_text(inbound.every)}" if inbound.enabled else "off"))
    for warning in config.warnings:
        print(f"digestd: warning: {warning}", file=sys.stderr)
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_config())
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from .jobs import poll_sources

    config = _config(args)
    names = set(args.source) if args.source else None
    with _store(config) as store:
        reports = asyncio.run(poll_sources(config.sources, store, names=names))
    print(f"{'source':<20} {'fetched':>7} {'new':>5} {'skipped':>7} {'took':>7}  status")
    for r in reports:
        status = f"error ({r.reason}): {r.error}" if r.error else (
            "not modified" if r.not_modified else "ok")
        print(f"{r.source:<20} {r.fetched:>7} {r.new:>5} {r.skipped:>7} {r.duration_s:>6.1f}s  "
              f"{status}")
    failed = sum(1 for r in reports if r.error)
    print(f"{_count(len(reports), 'source')} polled, "
          f"{_count(sum(r.new for r in reports), 'new paper')}, {failed} failed")
    return 1 if failed else 0


def cmd_sources(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        states = {s.name: s for s in store.source_states()}
    rows = []
    for src in config.sources:
        st = states.get(src.name)
        rows.append({"name": src.name, "kind": src.kind, "enabled": src.enabled,
                     "last_success": st.last_success if st else None,
                     "last_error": st.last_error if st else None,
                     "last_error_at": st.last_error_at if st else None,
                     "consecutive_errors": st.consecutive_errors if st else 0,
                     "papers_seen": st.papers_seen if st else 0})
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        health = "never polled" if not r["last_success"] and not r["last_error"] else (
            f"{r['consecutive_errors']} consecutive errors, last: {r['last_error']}"
            if r["consecutive_errors"] else "ok")
        if not r["enabled"]:
            health = f"disabled (enabled = false), {health}"
        print(f"{r['name']:<20} {r['kind']:<10} last success {r['last_success'] or '-':<26} "
              f"papers {r['papers_seen']:>6}  {health}")
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    config = _config(args)
    since = "0000"
    if args.since:
        try:
            since = date.fromisoformat(args.since).isoformat()
        except ValueError:
            raise UsageError(f'--since must be a date as YYYY-MM-DD, got "{args.since}"') from None
    with _store(config) as store:
        papers = store.papers_since(since, with_aliases=True, limit=args.limit,
                                    newest_first=True)
    if args.json:
        _print_json([{"id": p.id, "ids": list(p.ids), "title": p.title, "source": p.source,
                      "published": p.published, "url": p.url, "authors": list(p.authors),
                      "categories": list(p.categories), "upvotes": p.upvotes} for p in papers])
        return 0
    for p in papers:
        print(f"{p.id:<28} {p.published[:10]:<10} {p.source:<12} {p.title[:80]}")
    print(_count(len(papers), "paper"))
    return 0


def cmd_subscribers_add(args: argparse.Namespace) -> int:
    from .rules import validate
    from .validators import EmailNotValidError, email_address

    config = _config(args)
    try:
        email = email_address(args.email)  # as the web form checks it (no DNS lookup)
    except EmailNotValidError as e:
        raise UsageError(f'"{args.email}" is not a valid email address: {e}') from None
    for n, rule in enumerate(args.rule, start=1):
        try:
            validate(rule)
        except RuleError as e:  # say which one: there may be several --rule
            raise RuleError(f'rule {n} "{rule}": {e}', e.column) from None
    schedule = _schedule_args(args, config)
    with _store(config) as store:
        sub = store.add_subscriber(email, args.rule, name=args.name or "",
                                   feed_only=args.feed_only, **schedule)
    print(f"added {sub.email} (active{', feed only' if sub.feed_only else ''}) with "
          f"{len(sub.rules)} rule(s)")
    return 0


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _schedule_args(args: argparse.Namespace, config: Config) -> dict:
    """--timezone/--send-at/--frequency/--weekday/--send-empty, checked like the config is."""
    import re

    from .validators import is_time_zone

    tz = args.timezone or config.digest.timezone
    if not is_time_zone(tz):  # the rule of the config and the web form
        raise UsageError(f'--timezone must be an IANA time zone name such as "Europe/Berlin" '
                           f'(or "UTC"), as the web form offers them, got "{tz}"')
    send_at = args.send_at or config.digest.send_at
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", send_at):
        raise UsageError(f'--send-at must be a time as "HH:MM", got "{send_at}"')
    return {"timezone": tz, "send_at": send_at,
            "frequency": args.frequency or config.digest.frequency,
            "weekday": WEEKDAYS.index(args.weekday), "send_empty": args.send_empty}


def cmd_subscribers_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        subs = store.subscribers(args.status)
    if args.json:
        _print_json([{"email": s.email, "name": s.name, "status": s.status, "rules": list(s.rules),
                      "timezone": s.timezone, "send_at": s.send_at, "frequency": s.frequency,
                      "weekday": WEEKDAYS[s.weekday], "send_empty": s.send_empty,
                      "last_digest_at": s.last_digest_at, "bounces": s.bounces,
                      "feed_only": s.feed_only} for s in subs])
        return 0
    for s in subs:
        # a bouncing subscriber gets no digests until they subscribe again on the web
        status = f"{s.status} ({s.bounces} hard bounces)" if s.status == "bouncing" else (
            f"{s.status} ({s.bounces} bounce{'s' if s.bounces != 1 else ''})" if s.bounces
            else s.status)
        status += " (feed only)" if s.feed_only else ""
        when = f"{s.frequency}{' ' + WEEKDAYS[s.weekday] if s.frequency == 'weekly' else ''}"
        when += " +empty" if s.send_empty else ""
        print(f"{s.email:<30} {status:<12} {when} {s.send_at} {s.timezone}  "
              + " | ".join(s.rules))
    print(_count(len(subs), "subscriber"))
    bouncing = sum(1 for s in subs if s.status == "bouncing")
    if bouncing:
        print(f"{bouncing} bouncing: their server refused mail for the address; they get no "
              "digests until they subscribe again")
    return 0


def cmd_subscribers_set(args: argparse.Namespace) -> int:
    """Change a subscriber's schedule; what is not given stays as it is."""
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        merged = argparse.Namespace(
            timezone=args.timezone or sub.timezone, send_at=args.send_at or sub.send_at,
            frequency=args.frequency or sub.frequency,
            weekday=args.weekday or WEEKDAYS[sub.weekday],
            send_empty=sub.send_empty if args.send_empty is None else args.send_empty)
        schedule = _schedule_args(merged, config)
        store.update_preferences(sub.id, sub.rules, **schedule)
    day = f" on {WEEKDAYS_LONG[schedule['weekday']]}" if schedule["frequency"] == "weekly" else ""
    print(f"{sub.email}: {schedule['frequency']}{day} at {schedule['send_at']} "
          f"{schedule['timezone']}, "
          f"{'a note' if schedule['send_empty'] else 'no email'} on days without matches")
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if sub.status == status:
            print(f"{sub.email} is already {status}")
            return 0
        if status == "active" and sub.status in ("unsubscribed", "pending") \
                and not getattr(args, "force", False):
            raise UsageError(f"{sub.email} is {sub.status}: resuming mails someone who did not "
                             "ask (or no longer asks) for digests. Add --force if they asked "
                             "you to; otherwise let them subscribe again on the web page.")
        if status == "active":
            store.resume_subscriber(sub.id)
        else:
            store.set_status(sub.id, status)
    print(f"{sub.email}: {sub.status} -> {status} (rules and history kept)")
    return 0


def cmd_subscribers_pause(args: argparse.Namespace) -> int:
    return _set_status(args, "paused")


def cmd_subscribers_resume(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_subscribers_unsubscribe(args: argparse.Namespace) -> int:
    return _set_status(args, "unsubscribed")


def cmd_subscribers_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        store.remove_subscriber(args.email)
    print(f"removed {args.email} and their history")
    return 0


def _papers_from_file(path: str) -> list:
    """Papers from a JSON array of objects (title, abstract, authors, categories, source)."""
    from .models import Paper

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise DigestdError(f"cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise DigestdError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, list):
        raise DigestdError(f"{path}: expected a JSON array of paper objects")
    papers = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or not isinstance(rec.get("title"), str):
            raise DigestdError(f"{path}: item {i} is not a paper object with a title")

        def strings(value) -> tuple[str, ...]:
            items = value if isinstance(value, list) else []
            return tuple(x if isinstance(x, str) else str(x.get("name", "")) if isinstance(
                x, dict) else str(x) for x in items)

        papers.append(Paper(id=str(rec.get("id") or f"file:{i}"), title=rec["title"],
                            abstract=rec.get("abstract") or "",
                            authors=strings(rec.get("authors")),
                            categories=strings(rec.get("categories")),
                            source=str(rec.get("source") or ""), url=str(rec.get("url") or ""),
                            published=str(rec.get("published") or "")))
    return papers


def cmd_rules_test(args: argparse.Namespace) -> int:
    from .match import match_rules
    from .rules import validate

    validate(args.rule)
    if args.papers:
        papers, where = _papers_from_file(args.papers), args.papers
    else:
        config = _config(args)
        since = _days_ago(args.days)
        with _store(config) as store:
            papers = store.papers_since(since)
        where = f"papers stored in the last {args.days} days"
    matches = match_rules([args.rule], papers)
    if args.json:
        _print_json([{"id": m.paper.id, "title": m.paper.title, "source": m.paper.source,
                      "url": m.paper.url, "why": m.why,
                      "hits": [{"field": h.field, "text": h.text}
                               for r in m.rules for h in r.hits]} for m in matches])
        return 0
    for m in matches:
        print(m.paper.title)
        print(f"    matched: {', '.join(str(h) for r in m.rules for h in r.hits)}")
    print(f"{len(matches)} of {len(papers)} {where} match {args.rule}")
    return 0


def cmd_rules_add(args: argparse.Namespace) -> int:
    from .rules import validate

    validate(args.rule)
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        store.set_rules(sub.id, [*sub.rules, args.rule])
    print(f"rule {len(sub.rules) + 1} added for {sub.email}: {args.rule}")
    return 0


def cmd_rules_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
    for i, rule in enumerate(sub.rules, 1):
        print(f"{i:>3}  {rule}")
    if not sub.rules:
        print(f"{sub.email} has no rules: they get no digests")
    return 0


def cmd_rules_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        sub = store.get_subscriber(args.email)
        if not 1 <= args.n <= len(sub.rules):
            raise DigestdError(f"{sub.email} has {len(sub.rules)} rule(s); "
                               f"no rule {args.n} (see `digestd rules list {sub.email}`)")
        rules = list(sub.rules)
        removed = rules.pop(args.n - 1)
        store.set_rules(sub.id, rules)
    print(f"removed rule {args.n} of {sub.email}: {removed}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from .jobs import build_and_send, build_digests

    config = _config(args)
    with _store(config) as store:
        if args.dry_run:
            built = build_digests(config, store, force=args.now, dry_run=True)
            for email, n in built.matches.items():
                print(f"would send {email}: {_count(n, 'paper')}")
            print(f"{built.digests} digests would be built ({built.papers_checked} papers "
                  "checked); nothing queued or sent")
            return 0
        # building and sending overlap: the first digests go out while the rest render
        progress = Progress()
        try:
            built, report = asyncio.run(build_and_send(config, store, force=args.now,
                                                       progress=progress))
        finally:
            progress.close()
    print(f"built {_count(built.digests, 'digest')} ({_count(built.papers_checked, 'paper')} "
          "checked)"
          + (f"; {built.feed_only} for feed-only subscribers (no email)" if built.feed_only
             else "")
          + (f"; {built.failed} could not be built (`digestd outbox --failed` says why)"
             if built.failed else ""))
    print(_delivery_summary(config, report))
    return 1 if report.failed or report.stopped or built.failed else 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from .deliver import owner_alive
    from .store import utcnow

    config = _config(args)
    with _store(config) as store:
        waiting = store.outbox()
        failed = store.outbox(status="failed") if args.failed or args.json else []
        counts = store.digest_counts()
    now = utcnow()

    def state(r) -> str:
        if r.status == "failed":
            return "failed"
        if r.claimed_by and r.claimed_until and r.claimed_until >= now:
            alive = owner_alive(r.claimed_by)
            return ("sending" if alive else "in flight when its sender died: resent next run")
        if r.next_attempt_at and r.next_attempt_at > now:
            return f"retry at {r.next_attempt_at} (attempt {r.attempts + 1})"
        return "due now" if not r.attempts else f"due now (attempt {r.attempts + 1})"

    rows = waiting + failed
    if args.json:
        _print_json([{"id": r.id, "recipient": r.recipient, "period": r.period,
                      "papers": r.papers, "status": r.status, "state": state(r),
                      "attempts": r.attempts, "next_attempt_at": r.next_attempt_at,
                      "last_error": r.last_error, "message_id": r.message_id,
                      "bytes": len(r.message)} for r in rows])
        return 0
    for r in rows[: args.limit] if args.limit else rows:
        print(f"{r.id:>6} {r.recipient:<30} {r.period:<12} {r.papers:>3} papers  {state(r)}"
              + (f"  last error: {r.last_error}" if r.last_error else ""))
    shown = min(len(rows), args.limit) if args.limit else len(rows)
    if shown < len(rows):
        print(f"... {len(rows) - shown} more (--limit 0 shows all)")
    print(f"{len(waiting)} waiting, {counts.get('failed', 0)} failed"
          + ("" if args.failed else " (--failed lists them)")
          + f", {counts.get('sent', 0)} sent in all")
    return 0


def cmd_outbox_prune(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.days is None:
        args.days = config.store.keep_sent_days
    before = _days_ago(args.days)
    with _store(config) as store:
        dropped = store.prune_sent(before)
    print(f"dropped the message of {dropped} digests sent more than {args.days} days ago "
          "(their history and sent marks stay)")
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    from .jobs import send_outbox

    config = _config(args)
    with _store(config) as store:
        if args.id:
            known = store.digest_statuses(args.id)
            unknown = [str(i) for i in args.id if i not in known]
            if unknown:
                raise UsageError(f"no such id in the outbox: {', '.join(unknown)} "
                                 "(`digestd outbox --failed` lists them)")
            done = [str(i) for i in args.id if known[i] == "sent"]
            if done:
                print(f"already sent, not sent again: {', '.join(done)}")
            failed = [str(i) for i in args.id if known[i] == "failed"]
            if failed and not args.failed:
                print(f"failed, left as they are (add --failed to try again): "
                      f"{', '.join(failed)}")
        n = store.retry_outbox(args.id or (), failed=args.failed)
        print(f"{n} message{'s' if n != 1 else ''} due now", flush=True)
        if args.no_send or not n:
            return 0
        progress = Progress()
        try:
            report = asyncio.run(send_outbox(config, store, progress=progress))
        finally:
            progress.close()
    print(_delivery_summary(config, report))
    return 1 if report.failed or report.stopped else 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import run_checks

    config = _config(args)
    checks = asyncio.run(run_checks(config))
    marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "info": "info"}
    for c in checks:
        print(f"{marks[c.status]}  {c.name:<22} {c.detail}")
    failed = sum(1 for c in checks if c.status == "fail")
    warned = sum(1 for c in checks if c.status == "warn")
    print(f"{failed} failed, {warned} warnings")
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run

    config = _config(args)
    return run(config)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the web app alone (subscribe, preferences, unsubscribe, /healthz, /metrics)."""
    from .web import create_app, serve_web

    config = _config(args)
    listen = args.listen or config.web.listen

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ready = asyncio.Event()
        with _store(config) as store:
            app = create_app(config, store)
            server = asyncio.ensure_future(serve_web(app, listen, ready=ready, stop=stop))
            waiter = asyncio.ensure_future(ready.wait())
            await asyncio.wait({server, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if ready.is_set():
                print(f"serving on {app.state.listening}; links in emails use "
                      f"{config.web.base_url}. Ctrl-C stops.", file=sys.stderr, flush=True)
            await server

    asyncio.run(serve())
    return 0


# -- the parser --------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digestd",
        description="An email digest daemon for research papers: polls paper sources, matches "
                    "each subscriber's keyword rules, and sends one digest email per period.",
        epilog="Try it offline: `digestd demo`. Config file: --config, $DIGESTD_CONFIG, "
               "./digestd.toml, or $CONFIGURATION_DIRECTORY/config.toml; without one, "
               "embedded defaults are used.")
    parser.add_argument("--config", "-c", metavar="PATH", help="the config file (TOML)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        help="override [log] level")
    parser.add_argument("--version", action="version", version=f"digestd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # --config and --log-level work after the subcommand too ("digestd send --config x");
    # SUPPRESS keeps a value given before the subcommand when none is given after it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="PATH", default=argparse.SUPPRESS,
                        help="the config file (TOML)")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=argparse.SUPPRESS, help="override [log] level")

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "write a starter digestd.toml and create the store")
    p.add_argument("--dir", default=".", help="where to write digestd.toml (default: here)")
    p = add("demo", cmd_demo, "run the whole pipeline offline on bundled sample papers")
    p.add_argument("--dir", default="digestd-demo",
                   help="folder for the demo store and outbox (default: ./digestd-demo)")

    config = add("config", None, "check the config or print an example").add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", required=True)
    p = add("check", cmd_config_check, "validate the config file and summarize it", config)
    p.add_argument("--quiet", "-q", action="store_true",
                   help="print only errors (the unit's ExecReload= check)")
    add("example", cmd_config_example, "print a config documenting every setting", config)

    p = add("poll", cmd_poll, "poll the sources now and store new papers")
    p.add_argument("--source", action="append", metavar="NAME",
                   help="poll only this source (repeatable)")
    p = add("sources", cmd_sources, "list sources with last success, errors, papers seen")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("papers", cmd_papers, "list stored papers, the most recently seen first")
    p.add_argument("--since", metavar="DATE", help="first seen on or after DATE (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, metavar="N", help="the N most recently seen papers")
    p.add_argument("--json", action="store_true", help="print JSON")

    subs = add("subscribers", None, "add, list, change, pause, resume, unsubscribe and remove "
               "subscribers").add_subparsers(
        dest="subscribers_command", metavar="SUBCOMMAND", required=True)
    p = add("add", cmd_subscribers_add, "add an active subscriber (no confirmation)", subs)
    p.add_argument("email")
    p.add_argument("--rule", action="append", required=True, metavar="RULE",
                   help="a keyword rule (repeatable), e.g. 'title:(prun* OR sparsit*) -survey'; "
                        "a rule that starts with - is written --rule=-RULE")
    p.add_argument("--name", help="display name")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--send-at", metavar="HH:MM", help="local time of the digest")
    p.add_argument("--frequency", choices=("daily", "weekdays", "weekly"))
    p.add_argument("--weekday", choices=WEEKDAYS, default="mon",
                   help="the day of a weekly digest (default: mon)")
    p.add_argument("--send-empty", action="store_true",
                   help='on days without matches, send a short "nothing matched" note '
                        "instead of no email")
    p.add_argument("--feed-only", action="store_true",
                   help="send no email: matches go into the subscriber's Atom feed and list of "
                        "past digests only (see the preferences page)")
    p = add("list", cmd_subscribers_list, "list subscribers", subs)
    p.add_argument("--status", choices=("pending", "active", "paused", "unsubscribed",
                                        "bouncing"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("set", cmd_subscribers_set, "change a subscriber's schedule (what is not given "
            "stays)", subs)
    p.add_argument("email")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--send-at", metavar="HH:MM", help="local time of the digest")
    p.add_argument("--frequency", choices=("daily", "weekdays", "weekly"))
    p.add_argument("--weekday", choices=WEEKDAYS, help="the day of a weekly digest")
    p.add_argument("--send-empty", action=argparse.BooleanOptionalAction, default=None,
                   help='send a short "nothing matched" note on days without matches '
                        "(--no-send-empty: no email on such days)")
    for name, func, what in (
            ("pause", cmd_subscribers_pause, "stop sending digests for now (rules and "
             "history kept; resume undoes it)"),
            ("resume", cmd_subscribers_resume, "send digests again (after pause, "
             "unsubscribe or bounces)"),
            ("unsubscribe", cmd_subscribers_unsubscribe, "unsubscribe, keeping the rules and "
             "the history (unlike remove)")):
        p = add(name, func, what, subs)
        p.add_argument("email")
        if name == "resume":
            p.add_argument("--force", action="store_true",
                           help="also resume an unsubscribed (or unconfirmed) address: only "
                                "when the person asked you to")
    p = add("remove", cmd_subscribers_remove, "remove a subscriber and all their history "
            "(unsubscribe keeps it)", subs)
    p.add_argument("email")

    rules = add("rules", None, "test a rule, or add, list and remove a subscriber's rules"
                ).add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    p = add("test", cmd_rules_test, "backtest a rule: which papers would it have matched, and why",
            rules)
    p.add_argument("rule", metavar="RULE", help="e.g. 'title:(prun* OR sparsit*) -survey' "
                   "(write -- before a rule that starts with -)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--days", type=int, default=30, metavar="N",
                       help="papers stored in the last N days (default 30)")
    which.add_argument("--papers", metavar="FILE",
                       help="a JSON array of papers (title, abstract, authors, categories, "
                            "source) instead of the store")
    p.add_argument("--json", action="store_true", help="print JSON (title, why, hits, ...)")
    p = add("add", cmd_rules_add, "add a rule to a subscriber (validated first)", rules)
    p.add_argument("email")
    p.add_argument("rule", metavar="RULE")
    p = add("list", cmd_rules_list, "list a subscriber's rules, numbered", rules)
    p.add_argument("email")
    p = add("remove", cmd_rules_remove, "remove a subscriber's rule N (see rules list)", rules)
    p.add_argument("email")
    p.add_argument("n", type=int, metavar="N")

    p = add("send", cmd_send, "build the digests that are due and deliver the outbox")
    p.add_argument("--now", action="store_true",
                   help="build for every active subscriber with unsent matches, whatever "
                        "their schedule; a second --now on the same day builds a second "
                        "digest of what matched since (a paper is still sent only once)")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be built; queue and send nothing")
    p = add("outbox", cmd_outbox, "list digests waiting to be sent, and why")
    p.add_argument("--failed", action="store_true", help="list failed ones too")
    p.add_argument("--limit", type=int, default=200, metavar="N",
                   help="show at most N rows (default 200; 0: all)")
    p.add_argument("--json", action="store_true", help="print JSON (waiting and failed)")
    outbox = p.add_subparsers(dest="outbox_command", metavar="SUBCOMMAND")
    p = add("retry", cmd_outbox_retry, "make waiting digests due now and send them", outbox)
    p.add_argument("id", nargs="*", type=int, help="only these digests (ids from `outbox`)")
    p.add_argument("--failed", action="store_true",
                   help="also requeue failed digests, with their attempts reset")
    p.add_argument("--no-send", action="store_true",
                   help="only make them due; the service sends them at its next round")
    p = add("prune", cmd_outbox_prune, "drop the stored message of digests sent long ago "
            "(keeps the store small; history and sent marks stay)", outbox)
    p.add_argument("--days", type=int, metavar="N",
                   help="older than N days (default: store.keep_sent_days, 30)")
    add("doctor", cmd_doctor, "check the SMTP server (EHLO, STARTTLS, AUTH; no mail is sent), "
        "the [inbound] mailbox (login; nothing read or moved), the DKIM key and the From "
        "domain's SPF/DKIM/DMARC records")
    add("run", cmd_run, "run as a service: poll, build and send on schedule; SIGTERM stops "
        "cleanly, SIGHUP reloads the config")
    p = add("web", cmd_web, "serve only the web app: subscribe, confirm, preferences, "
             "one-click unsubscribe, /healthz and /metrics (the service runs it too)")
    p.add_argument("--listen", metavar="ADDR",
                   help='address to listen on, e.g. "127.0.0.1:8080", "[::]:8080" or '
                        '"unix:/run/digestd/web.sock" (default: [web] listen)')
    return parser


def _stop_before_the_daemon_listens(signum: int, _frame: object) -> None:
    # A SIGTERM before the daemon's own handlers are in place (loading the config, opening
    # the store) is a stop like any other: exit 0, nothing has started that needs ending.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE") and argv is None:
        # `digestd papers --json | head`: the reader went away, stop quietly as Unix tools do
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.func is cmd_run:
        signal.signal(signal.SIGTERM, _stop_before_the_daemon_listens)
    try:
        level = args.log_level
        if level is None:
            # the services log what they do; an interactive command prints a summary, and
            # logs only what went wrong unless asked for more
            service = args.func in (cmd_run, cmd_web)
            try:
                level = load_config(find_config(args.config)).log.level_for(service)
            except (DigestdError, OSError):  # the command itself says what is wrong
                level = LogConfig().level_for(service)
        setup_logging(level)
        return args.func(args)
    except DigestdError as e:
        print(f"digestd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
