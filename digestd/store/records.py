"""What the store hands back: plain frozen records, and the helpers its writers share."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from ..models import Paper

# the kinds of a digest's papers (sent.kind): a rule match, recommended beyond the rules,
# a rule match min_score left out of the email (its page lists it)
MATCH, RECOMMENDED, LEFT_OUT = 0, 1, 2

# a paper's columns, in the order PaperStore._paper reads them
PAPER_COLUMNS = ("p.pk, p.id, p.title, p.abstract, p.authors, p.categories, p.source, "
                 "p.url, p.pdf_url, p.published, p.upvotes, p.version")


def _names(values: Sequence) -> str:
    """A JSON list of strings: what is not a string (None, a number from a store written
    by hand or a bug) is left out or made a string, so matching never meets it."""
    return json.dumps([v if isinstance(v, str) else str(v) for v in values if v is not None])


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class QueuedDigest:
    """One digest for DigestStore.queue_digests: what queue_digest takes per digest (see
    there); `message` packed or not, `paper_pks`, `whys` and `kinds` in the digest's order."""
    subscriber_id: int
    period: str
    recipient: str
    message_id: str
    message: bytes | object
    paper_pks: Sequence[int]
    whys: Sequence[str] = ()
    kinds: Sequence[int] = ()
    checked: int | None = None
    deliver: bool = True
    slot_at: str | None = None


@dataclass(frozen=True)
class SourceState:
    name: str
    etag: str | None = None
    last_modified: str | None = None
    cursor: str | None = None
    last_poll: str | None = None
    last_success: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None
    consecutive_errors: int = 0
    errors_total: int = 0
    polls: int = 0
    papers_seen: int = 0


@dataclass(frozen=True)
class OutboxRow:
    id: int
    subscriber_id: int
    period: str
    recipient: str
    message_id: str
    message: bytes
    status: str
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    papers: int
    claimed_by: str | None = None
    claimed_until: str | None = None
    sent_at: str | None = None  # when its 250 came (ISO time); None until it is sent
    # every line of `message` ends in CRLF, as its builder vouched (store.bodies.CRLF): the
    # sender need not check its line ends
    crlf: bool = False


@dataclass(frozen=True)
class ArchivedDigest:
    """One digest (or "nothing matched" note) as its page and the archive list show it."""

    id: int
    subscriber_id: int
    period: str
    created_at: str  # ISO time it was built
    papers: int  # papers it matched, those the email left out included
    status: str  # queued, sent or failed (see the outbox)
    sent_at: str | None
    checked: int | None  # papers it checked; None for digests built before digest pages
    left_out: int = 0  # of `papers`, the rule matches min_score left out of the email

    @property
    def brought(self) -> int:
        """The papers its email brought (the rule matches kept and the recommendations), as
        its subject counts them: what the list of past digests says."""
        return self.papers - self.left_out


@dataclass(frozen=True)
class DeliveredPaper:
    """One paper of a digest, for the digest's page and the feed."""

    paper: Paper
    why: str  # the rules' hits, as the digest said; "" for digests built before digest pages
    position: int | None  # 0-based place in the digest's order
    digest_id: int
    period: str
    sent_at: str | None
    kind: int = 0  # 0 a rule match, 1 recommended beyond the rules, 2 left out by min_score


@dataclass(frozen=True)
class ScheduleMark:
    """What the scheduler remembers per subscriber (see schedule.py)."""

    last_slot_at: str | None = None  # the last scheduled send time handled, UTC
    last_checked_at: str | None = None  # papers first seen before this were matched already


@dataclass(frozen=True)
class StoredSeed:
    """A subscriber's seed paper: `paper_id` is the canonical id (`arxiv:...`, `doi:...`,
    `url:...`) or `title:<words>` for an entry that named none; the text is kept with it
    (from the seed file, else from the stored paper), so it outlives the paper's row."""

    paper_id: str
    title: str
    abstract: str = ""
    origin: str = ""  # the file it came from; "" for ids given on the command line
    added_at: str = ""


def lease_end(now: datetime, lease_s: float) -> str:
    """The ISO time (whole seconds, UTC) `lease_s` seconds after `now`: a claim's end."""
    return datetime.fromtimestamp(now.timestamp() + lease_s, timezone.utc).isoformat(
        timespec="seconds")


def shard_args(shard: tuple[int, int]) -> tuple[int, int]:
    """(n, k): the parameters of SQL's `id % ? = ?` for shard (k, n), the ids that are k
    modulo n (a build's shard, jobs_cluster.py). Raises ValueError for a shard that does
    not exist."""
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard {k} of {n} does not exist")
    return n, k
