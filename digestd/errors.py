"""The exception types of digestd, each with a message a user can act on."""

from __future__ import annotations

import sqlite3


class DigestdError(Exception):
    """Base class: the message is meant for the user, without a traceback."""

    exit_code = 1


class ConfigError(DigestdError):
    """The configuration file is missing, unreadable or invalid.

    The message names the file, the line where known, and the key.
    """

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.path, self.line, self.key = path, line, key
        self.message = message  # without the file and line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


class UsageError(DigestdError):
    """A command-line argument is invalid (an email address, say); exit 2, as argparse's
    own usage errors do."""

    exit_code = 2


class StoreError(DigestdError):
    """The SQLite store cannot be opened or migrated."""


class StoreMissing(StoreError):
    """The store file is gone or empty while what was made with it (the link secret) is
    still there: starting over would send every paper again, so digestd refuses."""

    exit_code = 2


class StoreInUse(StoreError):
    """Another live `digestd run` holds the SQLite store (its running lease)."""

    exit_code = 2


class StoreNotMade(StoreError):
    """A command that only reads found no store where the config says it is: a mistyped
    store.path, or a setup that never ran. Nothing is made there."""

    exit_code = 2


class StoreWriteError(StoreError, sqlite3.OperationalError):
    """The store cannot be written: its disk is full, or its folder or file is read-only.

    Also an sqlite3.OperationalError, so code that retries or reports store errors still
    catches it; the message names the cause, the store and what to do.
    """


class StoreFolderReadOnly(StoreWriteError):
    """The store's folder cannot be written (/etc under systemd's ProtectSystem=strict): a
    setup mistake that no restart mends, so exit 2 (the unit's RestartPreventExitStatus)."""

    exit_code = 2


class SourceError(DigestdError):
    """A paper source failed; the poll of the other sources goes on.

    `reason` is short and stable (timeout, http-503, bad-xml, ...) so it can be counted.
    """

    def __init__(self, message: str, *, reason: str = "error") -> None:
        self.reason = reason
        super().__init__(message)


class RuleError(DigestdError, ValueError):
    """A keyword rule does not parse. `column` is 1-based. On the command line a usage
    error: exit 2."""

    exit_code = 2

    def __init__(self, message: str, column: int | None = None) -> None:
        self.column = column
        super().__init__(message)


class DeliveryError(DigestdError):
    """A digest could not be handed to the mail server.

    `permanent` is true for 5xx answers (the recipient is refused), false for 4xx
    and network errors, which are retried.
    """

    def __init__(self, message: str, *, permanent: bool = False, code: int | None = None) -> None:
        self.permanent = permanent
        self.code = code
        super().__init__(message)


class NotFound(DigestdError):
    """A subscriber, rule or other object named on the command line does not exist."""


class InboundTempFail(DigestdError):
    """A message that came back cannot be handled now, but may be later (the store is busy,
    say). Raised by the inbound handler: the message stays where it is, unread, and the
    next run tries it again. Anything else the handler raises counts as failed for good.
    Exit code 75 (EX_TEMPFAIL): an MTA that pipes the message in keeps it and tries again."""

    exit_code = 75
