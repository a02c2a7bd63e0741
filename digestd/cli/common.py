"""What the commands share: the config and store they open, counts, JSON, progress."""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..config import (
    Config,
    config_places,
    find_config,
    load_config,
)
from ..errors import StoreNotMade
from ..store import BaseStore, open_store, refuse_to_start_over


def _count(n: int, noun: str) -> str:
    """'1 paper', '2 papers', '0 papers'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def invocation(*, elsewhere: bool = False) -> str:
    """How to type digestd again in this shell: "digestd" when that is on PATH and is this
    program, else the path it was started by (".venv/bin/digestd" after the quick start).
    `elsewhere`: for a command run in another folder (after a `cd`), that path made
    absolute."""
    started = sys.argv[0] if sys.argv and sys.argv[0] else "digestd"
    found = shutil.which("digestd")
    if os.path.basename(started) != "digestd" or (
            found and os.path.realpath(found) == os.path.realpath(started)):
        return "digestd"
    if elsewhere:
        started = os.path.abspath(started)
    return shlex.quote(started)  # as it was typed: right in this shell and folder


def _config(args: argparse.Namespace) -> Config:
    path = find_config(args.config)
    if path is None:
        # a command run in the wrong folder must not look like "every subscriber is gone"
        print(f"digestd: warning: no config file ({config_places()}): using the embedded "
              "defaults, with the store ./digestd.sqlite3", file=sys.stderr)
    return load_config(path)


def _store(config: Config, *, read_only: bool = False) -> BaseStore:
    """The config's store, open. `read_only` (a command that lists, shows or trims what is
    there): a SQLite store that does not exist yet is not made (its folders neither) but
    refused with StoreNotMade, which names the path: a mistyped store.path must not look
    like an empty store."""
    target = config.store
    if read_only and not getattr(target, "url", "") and target.path != ":memory:" and (
            not os.path.exists(target.path)):
        refuse_to_start_over(Path(target.path))  # lost, not new: says so (StoreMissing)
        raise StoreNotMade(
            f"no store at {os.path.abspath(target.path)}: nothing to read, and none was "
            f"made. If it should be there, check store.path in the config; a new setup "
            f"makes it with `{invocation()} init`, or at its first `poll`, `subscribers "
            "add` or `run`.")
    return open_store(target)


def _days_ago(days: int) -> str:
    """The ISO timestamp `days` days ago, as the store compares times."""
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")


def _moment(at: datetime, zone: str = "UTC") -> str:
    """A time to come as a person reads it: in `zone` with its abbreviation, and in UTC
    beside it ("2026-12-02 07:00 CET (06:00 UTC)"; the date too when UTC's differs)."""
    from zoneinfo import ZoneInfo

    utc = at.astimezone(timezone.utc)
    try:
        local = at.astimezone(ZoneInfo(zone))
    except (ValueError, KeyError):
        local = utc
    text = f"{local:%Y-%m-%d %H:%M} {local.tzname()}"
    if local.utcoffset() or local.tzname() != "UTC":
        text += f" ({utc:%H:%M} UTC)" if utc.date() == local.date() else \
            f" ({utc:%Y-%m-%d %H:%M} UTC)"
    return text


def _in(at: datetime, now: datetime) -> str:
    """'in 2 min', 'in 3 h 5 min', 'in 2 days', or 'now' for a time not after `now`."""
    minutes = int((at - now).total_seconds() + 59) // 60
    if minutes <= 0:
        return "now"
    if minutes < 60:
        return f"in {minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"in {hours} h" + (f" {rest} min" if rest else "")
    return f"in {minutes // (24 * 60)} days"


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


def _delivery_summary(config: Config, report, waiting: int = 0) -> str:
    """'3 sent, 1 deferred, 0 failed ...', and how many digests (`waiting`) are still queued."""
    how = "written to " + config.delivery.outbox_dir if config.delivery_method == "outbox" \
        else "sent"
    line = f"{report.sent} {how}, {report.deferred} deferred, {report.failed} failed"
    threshold = config.delivery.bounce_threshold
    details = [f"{n} {what}" for n, what in (
        (report.bounced, f"bounced: the address refused, counted toward "
                         f"delivery.bounce_threshold = {threshold}, once a digest"),
        (report.failed - report.bounced, "not about the address, no bounce counted"),
        (report.cancelled, "cancelled: subscriber no longer active")) if n > 0]
    if details:
        line += f" ({', '.join(details)})"
    if report.stopped:
        line += f"; stopped early: {report.stopped}"
    if report.failed:
        # the papers of a digest are marked sent when it is built: a failed one's are not
        # offered again by the next digest
        line += ("; a failed digest's papers are not offered again: `digestd outbox "
                 "--failed` says why, and `digestd outbox retry --failed` sends them once the "
                 "cause is fixed")
    if waiting:
        line += f"; {waiting} still waiting in the outbox (`digestd outbox` says when and why)"
    return line
