"""Plain values that flow through the pipeline: papers, subscribers, matches, digests. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

SUBSCRIBER_STATUSES = ("pending", "active", "paused", "unsubscribed", "bouncing")
FREQUENCIES = ("daily", "weekdays", "weekly")


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as a source reported it, already cleaned.

    `id` is the canonical id (`arxiv:2401.01234`, `doi:10.1101/...`, `url:...`);
    `aliases` are every other id the paper is known by (another DOI, the HF id,
    the normalized-title key). Text fields are plain text: sources clean at the edge.
    """

    id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    source: str = ""
    url: str = ""
    pdf_url: str = ""
    published: str = ""  # ISO 8601 date or datetime, as precise as the source says
    upvotes: int | None = None
    version: int | None = None
    aliases: tuple[str, ...] = ()

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *(a for a in self.aliases if a != self.id))


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    status: str = "active"
    rules: tuple[str, ...] = ()
    name: str = ""
    timezone: str = "UTC"
    send_at: str = "07:00"
    frequency: str = "daily"
    weekday: int = 0  # for weekly digests: 0 = Monday
    send_empty: bool = False
    created_at: str = ""
    last_digest_at: str | None = None
    bounces: int = 0
    feed_only: bool = False  # matches fill the feed and the archive; no email is sent
    link_gen: int = 0  # signed into /p/, /f/ and /u/ links; "reset my links" raises it
    recommend: int = 0  # "also recommended" papers beyond the rules per digest, 0..10
    min_score: float | None = None  # rule matches less similar than this are left out


@dataclass(frozen=True, slots=True)
class Hit:
    """One piece of evidence: `text` (a word or "a phrase") found in `field`."""

    field: str
    text: str

    def __str__(self) -> str:
        return f"{self.field} {self.text}"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """Rule number `index` (0-based) matched, with the hits that made it match."""

    index: int
    rule: str
    hits: tuple[Hit, ...] = ()

    def explain(self) -> str:
        found = ", ".join(str(h) for h in self.hits)
        text = f"rule {self.index + 1} {quote_rule(self.rule)}"
        return f"{text}: {found}" if found else text


def quote_rule(rule: str) -> str:
    """A rule as messages show it: in double quotes, but a rule that is one quoted phrase
    with its own (as in RULES.md), and one with quotes inside in single quotes, so that no
    quotes are doubled ('rule 1 ""language model""')."""
    if len(rule) > 1 and rule[0] == rule[-1] == '"' and '"' not in rule[1:-1]:
        return rule
    return f"'{rule}'" if '"' in rule else f'"{rule}"'


@dataclass(frozen=True, slots=True)
class PaperMatch:
    """A paper for one subscriber and every rule of theirs that matched it."""

    paper: Paper
    rules: tuple[RuleMatch, ...]

    @property
    def why(self) -> str:
        return "; ".join(r.explain() for r in self.rules)


@dataclass(frozen=True, slots=True)
class Digest:
    """What one subscriber gets for one period, before rendering."""

    subscriber: Subscriber
    period: str  # e.g. "2026-11-23" (daily) or "2026-W48" (weekly); unique per subscriber
    items: tuple[PaperMatch, ...]
    papers_checked: int = 0
    more: int = 0  # matches left out beyond max_papers
    ordered: bool = False  # items are in the digest's order already (render.by_relevance)
    whys: tuple[str, ...] = ()  # why each item matched (render.why_text), if known already
    # "also recommended" papers beyond the rules (PaperMatch without rules), shown after the
    # matches and numbered after all of them, with why each (digestd/ranking.py)
    recommended: tuple[PaperMatch, ...] = ()
    recommended_whys: tuple[str, ...] = ()
    left_out: int = 0  # rule matches min_score left out of the email (on the digest's page)
    extra: dict = field(default_factory=dict, compare=False)
