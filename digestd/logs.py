"""Logging: one line per event, key=value, to stderr (journald adds its own time stamp)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

# Libraries whose routine lines (httpx's "HTTP Request: GET ..." for every fetch) would drown
# digestd's own: only their warnings and errors are shown.
QUIET_LIBRARIES = ("httpx", "httpcore", "hpack", "aiosmtplib", "apscheduler", "asyncio",
                   "uvicorn", "flufl.bounce")


class KeyValueFormatter(logging.Formatter):
    """One line per event: `time level logger message`, the message itself key=value.

    `stamp=False` leaves out the time, for journald, which records its own (systemd sets
    JOURNAL_STREAM for a service whose stderr goes to the journal, systemd.exec(5)).
    """

    def __init__(self, *, stamp: bool = True) -> None:
        super().__init__()
        self.stamp = stamp

    def format(self, record: logging.LogRecord) -> str:
        line = f"level={record.levelname.lower()} logger={record.name} {record.getMessage()}"
        if self.stamp:
            stamp = datetime.fromtimestamp(record.created, timezone.utc)
            line = f"{stamp.strftime('%Y-%m-%dT%H:%M:%SZ')} {line}"
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return line


def under_journald() -> bool:
    """True when stderr is the journal (JOURNAL_STREAM names its device and inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str | int) -> None:
    """Send every log line to stderr at `level` (a name such as "info", or a number)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter(stamp=not under_journald()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if isinstance(level, str) else level)
    quiet_libraries()


def quiet_libraries() -> None:
    """Libraries' own lines at warning at least (or the root's level, if higher)."""
    quiet = max(logging.WARNING, logging.getLogger().level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(quiet)


# the library loggers that speak in the daemon, each a logger that records are made on
FOREIGN_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default", "uvicorn.error")


class LibraryLines(logging.Filter):
    """Library log lines in our key=value shape. APScheduler's "skipped: maximum number of
    running instances reached" is dropped: with max_instances=1 a long run (a big outbox,
    a slow source) just delays the next one, by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "maximum number of running instances reached" in text:
            return False
        record.msg = "event=%s message=%s"
        record.args = (record.name.partition(".")[0], json.dumps(text))
        return True


def quiet_daemon_libraries() -> None:
    """quiet_libraries, and the lines the daemon's libraries still log (FOREIGN_LOGGERS)
    in our key=value shape."""
    # their INFO lines say nothing our own lines do not
    quiet_libraries()
    for name in FOREIGN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, LibraryLines) for f in logger.filters):
            logger.addFilter(LibraryLines())
