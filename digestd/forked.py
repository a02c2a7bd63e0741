"""Work done in a forked process while this one goes on (the build ranks its readers' digests
there while it renders the others').

A fork shares the caller's memory as it is at that moment (copy-on-write), so the work's
inputs are never pickled; only its result comes back, pickled over a pipe. The forked
process must not touch the caller's store connection or sockets: it opens what it needs.
Linux and other systems with fork() only; `available()` says whether it can be used.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("digestd.forked")

T = TypeVar("T")


def available() -> bool:
    """True where fork() exists (a forked process sees the caller's memory)."""
    return "fork" in multiprocessing.get_all_start_methods()


def die_with(parent: int | None) -> None:
    """SIGKILL this process when `parent` ends (Linux's PR_SET_PDEATHSIG, prctl(2)): work
    done for a process that was killed must end too. Elsewhere: nothing (the work ends
    when it is done)."""
    if parent is None:
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


class ForkFailed(RuntimeError):
    """The forked work raised (the message names the exception) or its process died."""


class ForkStopped(Exception):
    """The caller's stop came before the forked work was done (the child was killed)."""


class Forked(Generic[T]):
    """`work()` running in a forked child from construction on; `result()` waits for it.

    Raises ForkFailed from result() when the work raised or its process died (killed, out
    of memory): the caller decides what to do without it. `cancel()` kills the child.
    """

    def __init__(self, work: Callable[[], T], *, name: str = "digestd-forked") -> None:
        ctx = multiprocessing.get_context("fork")
        self._receive, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(target=_run, args=(work, send, os.getpid()), name=name,
                                    daemon=True)
        self._process.start()
        send.close()  # the child's end: EOF here once the child is gone
        self.pid = self._process.pid

    def result(self, *, stop: Callable[[], bool] | None = None, every: float = 0.2) -> T:
        """The work's return value. `stop`, asked every `every` seconds while waiting: once
        it says yes, the child is killed and ForkStopped raised."""
        if stop is not None:
            while not self._receive.poll(every):
                if stop():
                    self.cancel()
                    raise ForkStopped("stopped while the forked work ran")
        try:
            kind, value = self._receive.recv()
        except (EOFError, OSError):
            self._process.join()
            raise ForkFailed(f"the forked process ended without a result "
                             f"(exit code {self._process.exitcode})") from None
        finally:
            self._receive.close()
        self._process.join()
        if kind != "ok":
            raise ForkFailed(value)
        return value

    def cancel(self) -> None:
        """Kill the child (if it still runs) and reap it."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        self._receive.close()


def _run(work: Callable[[], object], send, parent: int) -> None:
    die_with(parent)
    # a SIGTERM meant for the caller (a shutdown) is the caller's to act on: it cancels
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        result = ("ok", work())
    except BaseException as e:  # noqa: BLE001 (handed to the caller, which logs it)
        result = ("error", f"{type(e).__name__}: {e}")
    try:
        send.send(result)
    finally:
        send.close()
