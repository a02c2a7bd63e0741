"""The [inbound] mailbox over IMAP: fetch the unread mail that came back, hand each message
to the handler, and file it away so that it is handled once.

One run (`fetch_and_handle`) logs in, searches the folder for unread messages, and for each
one, oldest first:

- fetches it with BODY.PEEK[], which leaves it unread: whatever goes wrong before it is
  filed away, the next run sees it again;
- calls `handle(raw)`, which returns the kind of what it found ("bounce", "unsubscribe", ...);
- marks it read and moves it into `digestd-processed`; or, when it is not ours
  ("unrecognized": a reader's reply, an out-of-office, someone else's bounce), leaves it
  where it is, unread, for the person who reads the folder, with the keyword
  `digestd-unrecognized` that keeps the next runs from reading it again (on a server that
  takes no keywords, the caller's `left` remembers it); or, when the handler raised
  InboundTempFail (the store is busy, say), leaves it where it is, unread, for the next
  run; or, when the handler raised anything else (a message it cannot make sense of, a
  bug), moves it into `digestd-failed`, unread, where it waits for a look and is not tried
  again every few minutes (move it back into the folder, unread, to have it handled again).

The two folders are made when first needed, under the server's personal namespace
("INBOX." on some servers). MOVE (RFC 6851) where the server has it, else COPY, \\Deleted
and UID EXPUNGE (or EXPUNGE without UIDPLUS). A handled message is marked read at once
(one command), then moved: only a connection lost between the handler's return and that
flag has a message handled a second time at the next run, so the handler must still be
idempotent (at-least-once, never lost). One lost between the flag and the move leaves it
read in the folder, handled, as a message a person read is.

The calls block: the daemon runs a whole run in a thread (asyncio.to_thread).
"""

from __future__ import annotations

import imaplib
import logging
import os
import re
import ssl
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import LoginError

from ..config import InboundConfig
from ..errors import InboundTempFail

log = logging.getLogger("digestd.inbound")

PROCESSED = "digestd-processed"
FAILED = "digestd-failed"
LEFT = "digestd-unrecognized"  # the keyword of a message not ours, left where it was
LEFT_KINDS = frozenset({"unrecognized"})  # what handle() returns for one
UNREAD = ["UNSEEN", "UNDELETED", "UNKEYWORD", LEFT]  # the messages a run handles
# a bounce quotes at most the digest it returns (well under 1 MB); a message this big is
# not one, and is not read into memory
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
NO_PASSWORD = ("no IMAP password: set inbound.password_file, the environment variable "
               'DIGESTD_IMAP_PASSWORD or the systemd credential "imap-password"')
SIZES_AT_ONCE = 200  # messages whose sizes one FETCH asks for (a short command line)


@dataclass
class InboundRun:
    """What one run did. `error` is why the run itself failed (connect, login, folder);
    the counts are of the messages it got to before that."""

    folder: str = ""
    fetched: int = 0  # unread messages found and read
    handled: int = 0  # handled and moved into digestd-processed
    left: int = 0  # not ours (unrecognized): left where they were, unread
    retry: int = 0  # InboundTempFail: left unread where they were, for the next run
    failed: int = 0  # the handler raised (or too big): moved into digestd-failed
    kinds: Counter = field(default_factory=Counter)  # handled or left, by handle()'s kind
    error: str | None = None
    stopped: bool = False  # the daemon is stopping: the rest waits for the next run
    took_s: float = 0.0

    def log_fields(self) -> str:
        """The key=value tail of the daemon's event=inbound_run line."""
        kinds = ",".join(f"{k}:{n}" for k, n in sorted(self.kinds.items())) or "-"
        return (f"folder={self.folder!r} fetched={self.fetched} handled={self.handled} "
                f"retry={self.retry} failed={self.failed} kinds={kinds} "
                f"took_ms={self.took_s * 1000:.0f} left={self.left}")


def connect(cfg: InboundConfig) -> IMAPClient:
    """A connection to cfg's server, TLS as cfg.imap_security asks (not logged in yet)."""
    context = None
    if cfg.imap_security != "none":
        context = ssl.create_default_context(cafile=cfg.ca_file or None)
    client = IMAPClient(cfg.imap_host, port=cfg.port, ssl=cfg.imap_security == "tls",
                        ssl_context=context, timeout=cfg.timeout)
    if cfg.imap_security == "starttls":
        try:
            client.starttls(context)
        except BaseException:
            _close(client)
            raise
    return client


def fetch_and_handle(cfg: InboundConfig, password: str, handle: Callable[[bytes], str], *,
                     stop: Callable[[], bool] = lambda: False,
                     connect: Callable[[InboundConfig], IMAPClient] = connect,
                     left: set[tuple[str, int, int]] | None = None) -> InboundRun:
    """One run over cfg.folder (see the module's docstring). Never raises for the server
    or a message: what went wrong is in the result (and logged, one line per message).
    `left`: where a server takes no keyword of ours, the messages left as not ours,
    (folder, UIDVALIDITY, UID), kept by the caller from one run to the next."""
    began = time.monotonic()
    run = InboundRun(folder=cfg.folder)
    where = f"{cfg.username}@{cfg.imap_host}:{cfg.port}"
    if not password:
        run.error = NO_PASSWORD
        return run
    client = None
    try:
        client = connect(cfg)
        try:
            client.login(cfg.username, password)
        except LoginError as e:
            run.error = f"the IMAP server refused the login of {where}: {_text(e)}"
            return run
        _handle_unread(client, cfg.folder, handle, run, stop,
                       set() if left is None else left)
    except (imaplib.IMAP4.error, OSError) as e:
        run.error = _failed(cfg, e)
    finally:
        if client is not None:
            _close(client)
        run.took_s = time.monotonic() - began
    return run


def probe(cfg: InboundConfig, password: str) -> tuple[bool, str]:
    """`digestd doctor`'s check: log in and look at the folder read-only (EXAMINE); no
    message is read, marked or moved. (ok, one line saying what was found or what failed)."""
    if not password:
        return False, NO_PASSWORD
    client = None
    try:
        client = connect(cfg)
        try:
            client.login(cfg.username, password)
        except LoginError as e:
            return False, f"the server refused the login of {cfg.username}: {_text(e)}"
        status = client.select_folder(cfg.folder, readonly=True)
        unread = len(client.search(UNREAD))
        moves = "MOVE" if client.has_capability("MOVE") else "COPY and EXPUNGE (no MOVE)"
        return True, (f"logged in as {cfg.username} at {cfg.imap_host}:{cfg.port} "
                      f"({cfg.imap_security}); {cfg.folder!r} holds {status[b'EXISTS']} "
                      f"messages, {unread} unread (to be handled); moves by {moves}; nothing "
                      "was read or moved")
    except (imaplib.IMAP4.error, OSError) as e:
        return False, _failed(cfg, e)
    finally:
        if client is not None:
            _close(client)


def _failed(cfg: InboundConfig, e: BaseException) -> str:
    """What a connection, TLS or IMAP error means, in one line."""
    if isinstance(e, TimeoutError):
        why = f"no answer within {cfg.timeout:g} s"
    elif isinstance(e, OSError):
        why = e.strerror or str(e) or type(e).__name__
    else:
        why = _text(e)
    return f"IMAP {cfg.username}@{cfg.imap_host}:{cfg.port} ({cfg.imap_security}): {why}"


def _handle_unread(client: IMAPClient, folder: str, handle: Callable[[bytes], str],
                   run: InboundRun, stop: Callable[[], bool],
                   left: set[tuple[str, int, int]]) -> None:
    folders = _Folders(client)
    selected = client.select_folder(folder)
    validity = int(selected.get(b"UIDVALIDITY", 0) or 0)
    flags = selected.get(b"PERMANENTFLAGS", ())
    keyword = b"\\*" in flags or LEFT.encode() in flags  # a keyword of ours is kept

    def leave(uid: int) -> None:
        if keyword:
            try:
                client.add_flags([uid], [LEFT], silent=True)  # not \Seen: still unread
                return
            except imaplib.IMAP4.error:  # refused after all (too many keywords, say)
                pass
        left.add((folder, validity, uid))

    unread = sorted(client.search(UNREAD))
    # forget what was left and has since been read, moved or deleted: `left` stays small
    current = {(folder, validity, uid) for uid in unread}
    left -= {k for k in left if k[0] == folder and k not in current}
    uids = [uid for uid in unread if (folder, validity, uid) not in left]
    for start in range(0, len(uids), SIZES_AT_ONCE):
        chunk = uids[start:start + SIZES_AT_ONCE]
        sizes = client.fetch(chunk, ["RFC822.SIZE"])
        for uid in chunk:
            if stop():
                run.stopped = True
                return
            _handle_one(client, folders, folder, uid,
                        sizes.get(uid, {}).get(b"RFC822.SIZE", 0), handle, run, leave)


def _handle_one(client: IMAPClient, folders: _Folders, folder: str, uid: int, size: int,
                handle: Callable[[bytes], str], run: InboundRun,
                leave: Callable[[int], None]) -> None:
    if size > MAX_MESSAGE_BYTES:
        run.failed += 1
        log.error("event=inbound_message_failed folder=%r uid=%d error=%r action=moved_to_%s",
                  folder, uid, f"{size} bytes, more than a bounce or complaint ever is", FAILED)
        folders.move(uid, FAILED)
        return
    raw = client.fetch([uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]")
    if raw is None:  # expunged by another client meanwhile
        return
    run.fetched += 1
    try:
        kind = handle(raw)
    except InboundTempFail as e:
        run.retry += 1
        log.warning("event=inbound_message_retry folder=%r uid=%d error=%r action=left_unread",
                    folder, uid, str(e))
        return
    # one message that breaks the handler must not stop the rest
    except Exception as e:  # noqa: BLE001
        run.failed += 1
        log.error("event=inbound_message_failed folder=%r uid=%d error=%r where=%r "
                  "action=moved_to_%s", folder, uid, f"{type(e).__name__}: {e}", _where(e),
                  FAILED)
        folders.move(uid, FAILED)
        return
    run.kinds[str(kind)] += 1
    if kind in LEFT_KINDS:
        # not ours (a reader's reply, an out-of-office): it stays where a person sees it,
        # unread, and is marked so that the next runs do not read (and count) it again
        run.left += 1
        leave(uid)
        return
    run.handled += 1
    # read first: should the move not happen (the connection lost), the message stays
    # here, and a read one is not handled again
    client.add_flags([uid], [SEEN], silent=True)
    folders.move(uid, PROCESSED)


class _Folders:
    """digestd's folders on one connection: named under the personal namespace, made when
    first needed, messages moved into them from the selected folder."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        self.ready: dict[str, str] = {}  # our name -> the folder's name on this server
        self.prefix = ""
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
            if personal:
                prefix = personal[0][0]
                self.prefix = prefix.decode() if isinstance(prefix, bytes) else prefix

    def _folder(self, name: str) -> str:
        if name not in self.ready:
            full = self.prefix + name
            if not self.client.folder_exists(full):
                try:
                    self.client.create_folder(full)
                except imaplib.IMAP4.error:
                    if not self.client.folder_exists(full):  # else made by another client
                        raise
                try:  # so that a mail client shows it
                    self.client.subscribe_folder(full)
                except imaplib.IMAP4.error:
                    pass
            self.ready[name] = full
        return self.ready[name]

    def move(self, uid: int, name: str) -> None:
        folder = self._folder(name)
        if self.client.has_capability("MOVE"):
            self.client.move([uid], folder)
            return
        self.client.copy([uid], folder)
        self.client.add_flags([uid], [DELETED], silent=True)
        if self.client.has_capability("UIDPLUS"):
            self.client.expunge([uid])  # UID EXPUNGE: only this message
        else:
            self.client.expunge()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        try:
            client.shutdown()
        except (imaplib.IMAP4.error, OSError):
            pass


def _text(e: BaseException) -> str:
    """An imaplib error's text: its args are often bytes, or bytes shown as a string
    ("b'[AUTHENTICATIONFAILED] ...'", as imapclient's LoginError has it)."""
    parts = []
    for arg in e.args:
        if isinstance(arg, str) and re.fullmatch(r"b'[^'\\]*'|b\"[^\"\\]*\"", arg):
            arg = arg[2:-1]
        parts.append(arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg))
    return " ".join(p for p in parts if p) or str(e)


def _where(e: BaseException) -> str:
    """The innermost frame of a handler's exception, "file.py:LINE in function": enough to
    find a bug, without the message's text that a full traceback might quote."""
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return "-"
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno} in {last.name}"
