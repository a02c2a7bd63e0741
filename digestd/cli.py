"""The command line: argparse subcommands, each a thin call into jobs and the store."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import shutil
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import __version__
from .config import (Config, DeliveryConfig, StoreConfig, default_source, example_config,
                     find_config, load_config)
from .errors import DigestdError
from .store import Store

log = logging.getLogger("digestd")

DEMO_SUBSCRIBERS = (
    ("ada@example.org", "Ada", ('"language models" reasoning', "diffusion", "reinforcement")),
    ("grace@example.org", "Grace", ('"object detection"', "segmentation", "3D")),
)

STARTER_CONFIG = """\
# digestd configuration: see config.example.toml for every setting and its default.
# Check it with: digestd config check

[store]
path = "digestd.sqlite3"

[delivery]
# "outbox" writes .eml files; add an [smtp] table (or method = "smtp") to send email.
outbox_dir = "outbox"
from = "Paper digest <digest@example.org>"

[web]
base_url = "http://127.0.0.1:8080"

[[sources]]
name = "sample"
kind = "sample"

# [[sources]]
# name = "arxiv-ml"
# kind = "arxiv-rss"
# categories = ["cs.LG", "stat.ML"]
"""


# -- helpers -----------------------------------------------------------------------------------

class KeyValueFormatter(logging.Formatter):
    """One line per event: `time level logger message`, the message itself key=value."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = f"{stamp} level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config(args.config))


def _store(config: Config) -> Store:
    return Store(config.store.path)


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _progress_line(report) -> None:
    if sys.stderr.isatty():
        print(f"\r  sent {report.sent}  deferred {report.deferred}  failed {report.failed}",
              end="", file=sys.stderr, flush=True)


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
    print("next: digestd --config", path, "subscribers add you@example.org --rule 'diffusion'")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Everything offline: bundled papers, two subscribers, digests written as .eml files."""
    from .jobs import build_digests, poll_sources, send_outbox

    if not args.log_level:
        logging.getLogger().setLevel(logging.WARNING)  # the summary below says it all
    folder = Path(args.dir).resolve()
    outbox = folder / "outbox"
    # the demo starts from scratch each time, removing only what it made itself
    for name in ("digestd.sqlite3", "digestd.sqlite3-wal", "digestd.sqlite3-shm"):
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


def cmd_config_check(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    config = load_config(path)
    where = str(config.path) if config.path else "embedded defaults (no config file found)"
    print(f"config OK: {where}")
    print(f"  store     {config.store.path}")
    print(f"  delivery  {config.delivery_method}"
          + (f" via {config.smtp.host}:{config.smtp.port} ({config.smtp.security})"
             if config.smtp and config.delivery_method == "smtp"
             else f" into {config.delivery.outbox_dir}"))
    print(f"  web       {config.web.listen} (links use {config.web.base_url})")
    print(f"  sources   {len(config.sources)}: "
          + ", ".join(f"{s.name} ({s.kind})" for s in config.sources))
    return 0


def cmd_config_example(args: argparse.Namespace) -> int:
    sys.stdout.write(example_config())
    return 0


def cmd_poll(args: argparse.Namespace) -> int:
    from .jobs import poll_sources

    config = _config(args)
    names = set(args.source) if args.source else None
    if names:
        unknown = names - {s.name for s in config.sources}
        if unknown:
            raise DigestdError(f"no source named {', '.join(sorted(unknown))} in the config")
    with _store(config) as store:
        reports = asyncio.run(poll_sources(config.sources, store, names=names))
    print(f"{'source':<20} {'fetched':>7} {'new':>5} {'skipped':>7} {'took':>7}  status")
    for r in reports:
        status = f"error ({r.reason}): {r.error}" if r.error else (
            "not modified" if r.not_modified else "ok")
        print(f"{r.source:<20} {r.fetched:>7} {r.new:>5} {r.skipped:>7} {r.duration_s:>6.1f}s  "
              f"{status}")
    failed = sum(1 for r in reports if r.error)
    print(f"{len(reports)} sources polled, {sum(r.new for r in reports)} new papers, "
          f"{failed} failed")
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
        print(f"{r['name']:<20} {r['kind']:<10} last success {r['last_success'] or '-':<26} "
              f"papers {r['papers_seen']:>6}  {health}")
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    config = _config(args)
    since = args.since or "0000"
    with _store(config) as store:
        papers = store.papers_since(since, with_aliases=True, limit=args.limit)
    if args.json:
        _print_json([{"id": p.id, "ids": list(p.ids), "title": p.title, "source": p.source,
                      "published": p.published, "url": p.url, "authors": list(p.authors),
                      "categories": list(p.categories), "upvotes": p.upvotes} for p in papers])
        return 0
    for p in papers:
        print(f"{p.id:<28} {p.published[:10]:<10} {p.source:<12} {p.title[:80]}")
    print(f"{len(papers)} papers")
    return 0


def cmd_subscribers_add(args: argparse.Namespace) -> int:
    from .rules import validate

    config = _config(args)
    for rule in args.rule:
        validate(rule)
    with _store(config) as store:
        sub = store.add_subscriber(args.email, args.rule, name=args.name or "",
                                   timezone=args.timezone or config.digest.timezone,
                                   send_at=args.send_at or config.digest.send_at,
                                   frequency=args.frequency or config.digest.frequency)
    print(f"added {sub.email} (active) with {len(sub.rules)} rule(s)")
    return 0


def cmd_subscribers_list(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        subs = store.subscribers(args.status)
    if args.json:
        _print_json([{"email": s.email, "name": s.name, "status": s.status, "rules": list(s.rules),
                      "timezone": s.timezone, "send_at": s.send_at, "frequency": s.frequency,
                      "last_digest_at": s.last_digest_at, "bounces": s.bounces} for s in subs])
        return 0
    for s in subs:
        print(f"{s.email:<30} {s.status:<12} {s.frequency} {s.send_at} {s.timezone}  "
              + " | ".join(s.rules))
    print(f"{len(subs)} subscribers")
    return 0


def cmd_subscribers_remove(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        store.remove_subscriber(args.email)
    print(f"removed {args.email} and their history")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from .jobs import build_digests, send_outbox

    config = _config(args)
    with _store(config) as store:
        if args.dry_run:
            built = build_digests(config, store, force=args.now, dry_run=True)
            for email, n in built.matches.items():
                print(f"would send {email}: {n} papers")
            print(f"{built.digests} digests would be built ({built.papers_checked} papers "
                  "checked); nothing queued or sent")
            return 0
        built = build_digests(config, store, force=args.now)
        print(f"built {built.digests} digests ({built.papers_checked} papers checked)")
        report = asyncio.run(send_outbox(config, store, progress=_progress_line))
        if sys.stderr.isatty():
            print(file=sys.stderr)
    how = "written to " + config.delivery.outbox_dir if config.delivery_method == "outbox" \
        else "sent"
    print(f"{report.sent} {how}, {report.deferred} deferred, {report.failed} failed")
    return 1 if report.failed else 0


def cmd_outbox(args: argparse.Namespace) -> int:
    config = _config(args)
    with _store(config) as store:
        rows = store.outbox() + store.outbox(status="failed")
    for r in rows:
        state = "failed" if r.status == "failed" else (
            f"retry at {r.next_attempt_at}" if r.attempts else "queued")
        print(f"{r.id:>6} {r.recipient:<30} {r.period:<12} {r.papers:>3} papers  {state}"
              + (f"  last error: {r.last_error}" if r.last_error else ""))
    print(f"{len(rows)} digests waiting or failed")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run

    config = _config(args)
    return run(config)


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

    def add(name: str, func: Callable, help: str, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("init", cmd_init, "write a starter digestd.toml and create the store")
    p.add_argument("--dir", default=".", help="where to write digestd.toml (default: here)")
    p = add("demo", cmd_demo, "run the whole pipeline offline on bundled sample papers")
    p.add_argument("--dir", default="digestd-demo",
                   help="folder for the demo store and outbox (default: ./digestd-demo)")

    config = add("config", None, "check the config or print an example").add_subparsers(
        dest="config_command", metavar="SUBCOMMAND", required=True)
    add("check", cmd_config_check, "validate the config file and summarize it", config)
    add("example", cmd_config_example, "print a config documenting every setting", config)

    p = add("poll", cmd_poll, "poll the sources now and store new papers")
    p.add_argument("--source", action="append", metavar="NAME",
                   help="poll only this source (repeatable)")
    p = add("sources", cmd_sources, "list sources with last success, errors, papers seen")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("papers", cmd_papers, "list stored papers")
    p.add_argument("--since", metavar="DATE", help="first seen on or after DATE (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, metavar="N", help="at most N papers")
    p.add_argument("--json", action="store_true", help="print JSON")

    subs = add("subscribers", None, "add, list and remove subscribers").add_subparsers(
        dest="subscribers_command", metavar="SUBCOMMAND", required=True)
    p = add("add", cmd_subscribers_add, "add an active subscriber (no confirmation)", subs)
    p.add_argument("email")
    p.add_argument("--rule", action="append", required=True, metavar="RULE",
                   help="a keyword rule (repeatable), e.g. 'title:(prun* OR sparsit*) -survey'")
    p.add_argument("--name", help="display name")
    p.add_argument("--timezone", metavar="TZ", help="IANA time zone, e.g. Europe/Berlin")
    p.add_argument("--send-at", metavar="HH:MM", help="local time of the digest")
    p.add_argument("--frequency", choices=("daily", "weekdays", "weekly"))
    p = add("list", cmd_subscribers_list, "list subscribers", subs)
    p.add_argument("--status", choices=("pending", "active", "paused", "unsubscribed",
                                        "bouncing"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("remove", cmd_subscribers_remove, "remove a subscriber and their history", subs)
    p.add_argument("email")

    p = add("send", cmd_send, "build the digests that are due and deliver the outbox")
    p.add_argument("--now", action="store_true",
                   help="build for every active subscriber with unsent matches, "
                        "whatever their schedule")
    p.add_argument("--dry-run", action="store_true",
                   help="show what would be built; queue and send nothing")
    add("outbox", cmd_outbox, "list digests waiting to be sent, and why")
    add("run", cmd_run, "run as a service: poll, build and send on schedule")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        level = args.log_level
        if level is None:
            try:
                level = load_config(find_config(args.config)).log.level
            except DigestdError:
                level = "info"
        setup_logging(level)
        return args.func(args)
    except DigestdError as e:
        print(f"digestd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
