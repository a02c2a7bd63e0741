"""The few SQL phrases that differ between the store's backends, each under one name, so the
store's classes (papers.py, digests.py, ...) keep one copy of their SQL for both.

The rest of their SQL is written to mean the same on SQLite (3.35 or newer) and PostgreSQL
(13 or newer): `?` placeholders (the PostgreSQL connection turns them into `%s`),
`INSERT ... ON CONFLICT DO NOTHING`, `count(*) FILTER (WHERE ...)`, bytes as parameters.
A new phrase that differs goes here, as a field both dialects fill.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """One backend's spelling of the phrases that differ."""

    name: str  # "sqlite" or "postgresql"
    greatest: str  # the larger of two values (not the aggregate): SQLite's max(a, b)
    # joins that keep the left table's loop outermost: SQLite's CROSS JOIN ... ON; PostgreSQL
    # plans joins itself and has no ON for CROSS JOIN
    ordered_join: str
    # `period` looks like "confirm-1700000000": a web mail's row (queue_message), not a digest
    web_mail_period: str
    # the kind of such a row ("confirm"), from its period
    web_mail_kind: str
    # the store's clock in seconds since the epoch (a float): leases are judged by it, so the
    # clocks of the machines that share the store need not agree
    epoch_now: str
    # after a SELECT of the rows to claim (digests as `d`, or build_shards): lock them and
    # pass over those another transaction holds (PostgreSQL); SQLite has one writer anyway
    skip_locked: str
    skip_locked_digests: str

    def larger(self, a: str, b: str) -> str:
        """SQL for the larger of the expressions `a` and `b` (neither is NULL)."""
        return f"{self.greatest}({a}, {b})"


SQLITE = Dialect(
    name="sqlite",
    greatest="max",
    ordered_join="CROSS JOIN",
    web_mail_period="period GLOB '[a-z]*-[0-9]*'",
    web_mail_kind="substr(period, 1, instr(period, '-') - 1)",
    epoch_now="((julianday('now') - 2440587.5) * 86400.0)",
    skip_locked="",
    skip_locked_digests="",
)

POSTGRESQL = Dialect(
    name="postgresql",
    greatest="greatest",
    ordered_join="JOIN",
    # ~ is a regular expression match
    web_mail_period="period ~ '^[a-z].*-[0-9]'",
    web_mail_kind="split_part(period, '-', 1)",
    epoch_now="extract(epoch from clock_timestamp())::float8",
    skip_locked="FOR UPDATE SKIP LOCKED",
    skip_locked_digests="FOR UPDATE OF d SKIP LOCKED",
)
