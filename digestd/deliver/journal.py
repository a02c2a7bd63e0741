"""Who holds a claim, and what outlives a killed sender: the owner names (host/pid/random),
whether an owner on this host is still alive, and the sent journal (a file beside the
SQLite store, one line per 250).
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

def new_owner() -> str:
    """This run's claim owner: host/pid/random, so a dead pid can be recognised."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def running_here(owner: str) -> int | None:
    """The pid of `owner` (HOST/PID/...) when it is a live digestd process on this host, else
    None: a holder known to be running, not one that may be (another host, a pid reused by
    another program)."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return None
    try:
        command = Path(f"/proc/{pid_text}/cmdline").read_bytes()
    except OSError:  # gone, or no /proc to tell: not known
        return None
    return int(pid_text) if b"digestd" in command and owner_alive(owner) else None


def owner_alive(owner: str) -> bool:
    """Whether the sender that holds a claim may still be running. Only a process on this
    host with a pid that no longer exists (or is a zombie nobody reaped) is known to be
    dead; others wait for the lease."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (the daemon's DynamicUser)
        return True
    try:  # Linux: "pid (name) S ...", where Z is a zombie and X a process being reaped
        state = Path(f"/proc/{pid_text}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")



BORN_S = 60.0  # a journal without its owner line is a starting sender's for this long


def _young(path: Path) -> bool:
    """Whether `path` was changed in the last BORN_S seconds (or is gone already)."""
    try:
        return time.time() - path.stat().st_mtime < BORN_S
    except FileNotFoundError:
        return True


class SentJournal:
    """Ids of messages the server accepted, appended one line each ("id sent-at") right
    after its 250, to a file beside the store named after this run. One write() per line:
    once it returns, the mark outlives a killed process (like a WAL commit with
    synchronous=NORMAL, it is not flushed to the disk itself). The first line names the
    owner, so a journal left behind is applied only once its sender is gone."""

    PREFIX = ".sent-journal."

    def __init__(self, store_path: str, owner: str) -> None:
        self.path = Path(store_path + self.PREFIX + owner.replace("/", "_"))
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(self.fd, f"owner {owner}\n".encode())

    def record(self, digest_id: int, at: str) -> None:
        os.write(self.fd, f"{digest_id} {at}\n".encode())

    def close(self, *, remove: bool) -> None:
        os.close(self.fd)
        if remove:
            self.path.unlink(missing_ok=True)

    @classmethod
    def left_behind(cls, store_path: str) -> list[tuple[Path, str, list[tuple[int, str]]]]:
        """(file, owner, marks) of every journal beside the store whose sender is gone."""
        found = []
        folder, name = Path(store_path).parent, Path(store_path).name
        for path in sorted(folder.glob(name + cls.PREFIX + "*")):
            try:
                lines = path.read_text(encoding="ascii", errors="replace").splitlines()
            except FileNotFoundError:  # applied by another sender just now
                continue
            owner = lines[0].removeprefix("owner ") if lines else ""
            if owner and owner_alive(owner):
                continue
            if not owner and _young(path):
                # made a moment ago by a sender that has not written its owner line yet
                continue
            marks = []
            for line in lines[1:]:
                did, _, at = line.partition(" ")
                if did.isdigit() and at:  # a line cut short by the crash is no mark
                    marks.append((int(did), at))
            found.append((path, owner, marks))
        return found


