"""Sources and papers: `poll`, `sources`, `papers`."""
from __future__ import annotations

import argparse
import asyncio
from datetime import date, datetime, timezone

from ..config import duration_text
from ..errors import UsageError
from ..schedule import parse_iso
from .common import _config, _count, _moment, _print_json, _store


def cmd_poll(args: argparse.Namespace) -> int:
    from ..jobs import poll_sources

    config = _config(args)
    names = set(args.source) if args.source else None
    with _store(config) as store:
        reports = asyncio.run(poll_sources(config.sources, store, names=names))
    # fetched = new + seen (already in the store, or earlier in this poll: PollResult.
    # repeated) + skipped (dropped on purpose: an announce type left out, no title, an older
    # version, over max_results)
    # took: the source's own time; waited: for its turn at a host other sources share
    print(f"{'source':<20} {'fetched':>7} {'new':>5} {'seen':>5} {'skipped':>7} {'took':>7} "
          f"{'waited':>7}  status")
    for r in reports:
        error = r.error or ""
        if error.startswith(f"{r.source}: "):  # the row names the source already
            error = error[len(r.source) + 2:]
        status = f"error ({r.reason}): {error}" if r.error else (
            "not modified" if r.not_modified else "ok")
        print(f"{r.source:<20} {r.fetched:>7} {r.new:>5} {r.seen:>5} {r.skipped:>7} "
              f"{r.duration_s:>6.1f}s {r.waited_s:>6.1f}s  {status}")
    failed = sum(1 for r in reports if r.error)
    print(f"{_count(len(reports), 'source')} polled, "
          f"{_count(sum(r.new for r in reports), 'new paper')}, {failed} failed")
    return 1 if failed else 0


def cmd_sources(args: argparse.Namespace) -> int:
    from ..daemon.parts import next_poll, poll_jitter_of, poll_trigger
    from ..schedule import iso
    from ..sources import poll_every

    config = _config(args)
    now = datetime.now(timezone.utc)
    with _store(config, read_only=True) as store:
        states = {s.name: s for s in store.source_states()}
    rows = []
    for src in config.sources:
        st = states.get(src.name)
        upcoming, jitter = None, 0.0
        if src.enabled:
            try:
                every = poll_every(src)
            except NotImplementedError:  # a kind not in this build: `run` logs it, polls none
                every = 0.0
            if every:
                # as the daemon schedules it: the jitter may add up to `jitter` seconds
                upcoming = next_poll(src, every, st.last_poll if st else None, now)
                jitter = poll_jitter_of(poll_trigger(src, every), every)
        rows.append({"name": src.name, "kind": src.kind, "enabled": src.enabled,
                     "next_poll_at": iso(upcoming) if upcoming else None,
                     "next_poll_jitter_s": jitter,
                     "last_success": st.last_success if st else None,
                     "last_error": st.last_error if st else None,
                     "last_error_at": st.last_error_at if st else None,
                     "consecutive_errors": st.consecutive_errors if st else 0,
                     "papers_seen": st.papers_seen if st else 0})
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no sources configured: nothing is polled. Add [[sources]] tables to the "
              "config (`digestd config example` shows each kind).")
    for r in rows:
        health = "never polled" if not r["last_success"] and not r["last_error"] else (
            f"{r['consecutive_errors']} consecutive error"
            f"{'s' if r['consecutive_errors'] != 1 else ''}, last: {r['last_error']}"
            if r["consecutive_errors"] else "ok")
        if not r["enabled"]:
            health = f"disabled (enabled = false), {health}"
        upcoming = "-"
        if r["next_poll_at"]:
            at = parse_iso(r["next_poll_at"])
            upcoming = "now (due)" if at <= now else _moment(at)
        print(f"{r['name']:<20} {r['kind']:<10} last success {r['last_success'] or '-':<26} "
              f"next poll {upcoming:<20} papers {r['papers_seen']:>6}  {health}")
    if any(r["next_poll_at"] for r in rows):
        # the daemon adds a little random delay, so that many daemons do not knock at once
        longest = max(r["next_poll_jitter_s"] for r in rows)
        print(f"next poll: the earliest `digestd run` polls, up to "
              f"{duration_text(longest)} later by its random jitter; \"now (due)\": at once "
              "when it runs")
    return 0


def cmd_papers(args: argparse.Namespace) -> int:
    from ..render import shorten

    config = _config(args)
    since = "0000"
    if args.since:
        try:
            since = date.fromisoformat(args.since).isoformat()
        except ValueError:
            raise UsageError(f'--since must be a date as YYYY-MM-DD, got "{args.since}"') from None
    with _store(config, read_only=True) as store:
        papers = store.papers_since(since, with_aliases=True, limit=args.limit,
                                    newest_first=True)
    if args.json:
        # the abstract too: `digestd similar --papers` reads this back. `published` as the
        # source gave it (a date, or a date and time with its offset: the store keeps it so);
        # `published_date` its date alone, one format for every source
        _print_json([{"id": p.id, "ids": list(p.ids), "title": p.title,
                      "abstract": p.abstract, "source": p.source,
                      "published": p.published, "published_date": p.published[:10] or None,
                      "url": p.url, "authors": list(p.authors),
                      "categories": list(p.categories), "upvotes": p.upvotes} for p in papers])
        return 0
    # columns as wide as their longest entry (an id of a feed's item is a whole URL)
    # a long title cut at a word, with "…": 80 columns at most
    rows = [(p.id, p.published[:10] or "-", p.source, shorten(p.title, 79)) for p in papers]
    if rows:
        widths = [max(len(h), *(len(r[i]) for r in rows))
                  for i, h in enumerate(("id", "published", "source"))]
        for row in (("id", "published", "source", "title"), *rows):
            print("  ".join(f"{v:<{w}}" for v, w in zip(row[:3], widths)) + "  " + row[3])
    print(_count(len(papers), "paper"))
    return 0
