"""Rule tests ("test this rule"): what typed rules would have matched over the last 30 days of
papers, counted off the event loop on a cached copy of those papers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio.to_thread

from ..errors import RuleError
from ..match import match_rules
from ..models import Paper
from ..render import short_authors, shorten
from ..rules import And, Not, Or, Phrase, Prefix, Value, Word, parse
from ..store import BaseStore, open_store

TEST_DAYS = 30                   # "test this rule" looks this far back
TEST_EXAMPLES = 5
EXACT_LIMIT = 1500               # papers matched exactly per rule test; more are sampled
TEST_CONCURRENCY = 2             # rule tests are CPU work: at most this many at once
TEST_CACHE_SECONDS = 300         # the last 30 days of papers are reloaded at most this often


@dataclass
class RuleTest:
    """What one rule would have matched over the last TEST_DAYS days."""

    rule: str
    error: str | None = None
    column: int | None = None
    matches: int = 0
    examples: list[dict] = field(default_factory=list)
    estimated: bool = False  # counted on a sample: the rule matches very many papers

    def as_json(self, days: int) -> dict:
        return {"rule": self.rule, "ok": self.error is None, "error": self.error,
                "column": self.column, "matches": self.matches, "days": days,
                "estimated": self.estimated,
                "per_day": round(self.matches / days, 2), "examples": self.examples}


@dataclass
class RuleTests:
    by_input: dict[int, RuleTest]
    together: int
    papers: int
    days: int = TEST_DAYS
    estimated: bool = False


def lowered(paper: Paper) -> tuple[str | None, ...]:
    """The paper's title, abstract, authors, categories and source lowercased, for quick
    substring tests; None where the text is not plain ASCII (there lowercasing is not the
    rule language's normalization, so no quick test applies)."""
    def low(text: str) -> str | None:
        return text.lower() if text.isascii() else None
    return (low(paper.title), low(paper.abstract), low("\n".join(paper.authors)),
            low("\n".join(" ".join(c.split()) for c in paper.categories)),
            low(" ".join(paper.source.split())))


_FIELD_SLOTS = {"title": (0,), "abstract": (1,), None: (0, 1), "author": (2,),
                "category": (3,), "source": (4,)}


def _needs(node: Any) -> tuple | None:
    """What a paper's text must contain for `node` to match it: ("sub", field slots,
    strings), ("and", needs) or ("or", needs); None when nothing can be required."""
    if isinstance(node, Word):
        return ("sub", _FIELD_SLOTS[node.field], (node.word,))
    if isinstance(node, Prefix):
        return ("sub", _FIELD_SLOTS[node.field], (node.prefix,))
    if isinstance(node, Phrase):
        return ("sub", _FIELD_SLOTS[node.field], node.words)
    if isinstance(node, Value):
        return ("sub", _FIELD_SLOTS[node.field], (node.value,))
    if isinstance(node, And):
        parts = [n for n in (_needs(c) for c in node.children) if n is not None]
        return ("and", parts) if parts else None
    if isinstance(node, Or):
        parts = [_needs(c) for c in node.children]
        return None if any(n is None for n in parts) else ("or", parts)
    assert isinstance(node, Not)
    return None  # a negation requires nothing to be present


def _may_match(need: tuple, text: tuple[str | None, ...]) -> bool:
    """False only when the paper cannot match: the atom's words are missing from its text."""
    kind = need[0]
    if kind == "sub":
        for slot in need[1]:
            found = text[slot]
            if found is None or all(s in found for s in need[2]):
                return True
        return False
    if kind == "and":
        return all(_may_match(n, text) for n in need[1])
    return any(_may_match(n, text) for n in need[1])


def try_rules(rules: Sequence[str], papers: Sequence[Paper],
              texts: Sequence[tuple] | None = None, *, days: int = TEST_DAYS,
              exact_limit: int = EXACT_LIMIT) -> RuleTests:
    """Match each rule (by input position; blanks skipped) against `papers`: counts, the
    newest examples, and how many papers all valid rules together would have matched.

    `texts` are the papers' `lowered()` forms (computed here when not given). When more
    than `exact_limit` papers could match, an even sample of them is matched and the counts
    are scaled up and marked estimated: a rule that broad is too broad for a digest anyway.
    """
    tests: dict[int, RuleTest] = {}
    valid: list[tuple[int, str]] = []
    needs = []
    for i, rule in enumerate(rules):
        if not rule.strip():
            continue
        try:
            node = parse(rule)
        except RuleError as e:
            tests[i] = RuleTest(rule, error=str(e), column=e.column)
            continue
        tests[i] = RuleTest(rule)
        valid.append((i, rule))
        needs.append(_needs(node))
    result = RuleTests(tests, 0, len(papers), days)
    if not valid or not papers:
        return result
    # Splitting a paper into words costs ~0.25 ms, too much for 30 days of papers per
    # keystroke: a substring test that never rejects a match leaves the few worth it.
    candidates: Sequence[Paper] = papers
    if all(n is not None for n in needs):
        texts = texts if texts is not None else [lowered(p) for p in papers]
        candidates = [p for p, t in zip(papers, texts) if any(_may_match(n, t) for n in needs)]
    scale = 1.0
    if len(candidates) > exact_limit:
        scale = len(candidates) / exact_limit
        # a fixed seed: the same rule gives the same estimate on every keystroke
        picked = sorted(random.Random(0).sample(range(len(candidates)), exact_limit))
        candidates = [candidates[k] for k in picked]
        result.estimated = True
    matches = match_rules([r for _, r in valid], candidates)
    result.together = round(len(matches) * scale)
    for m in sorted(matches, key=lambda m: m.paper.published, reverse=True):
        for rm in m.rules:
            t = tests[valid[rm.index][0]]
            t.matches += 1
            if len(t.examples) < TEST_EXAMPLES:
                t.examples.append(_example(m.paper, rm))
    if result.estimated:
        for i, _rule in valid:
            tests[i].matches = round(tests[i].matches * scale)
            tests[i].estimated = True
    return result


def _example(paper: Paper, rm) -> dict:
    return {"title": paper.title, "url": paper.url, "published": paper.published[:10],
            "source": paper.source, "authors": short_authors(paper.authors),
            "abstract": shorten(paper.abstract, 200),
            "why": ", ".join(str(h) for h in rm.hits)}


@dataclass
class RecentPapers:
    """The papers "test this rule" runs on, with their lowered() texts."""

    papers: list[Paper]
    texts: list[tuple]
    loaded: float = field(default_factory=time.monotonic)
    used: float = field(default_factory=time.monotonic)

    @classmethod
    def of(cls, papers: list[Paper]) -> RecentPapers:
        return cls(papers, [lowered(p) for p in papers])


def _recent_papers(path: str, since: str) -> RecentPapers:
    with open_store(path) as store:
        return RecentPapers.of(store.papers_since(since))



class RuleTester:
    """Runs rule tests for the pages: at most TEST_CONCURRENCY at once, on the recent papers
    loaded once per TEST_CACHE_SECONDS and forgotten when nobody tests."""

    def __init__(self, store: BaseStore, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock
        self.papers_cache: RecentPapers | None = None
        self.papers_lock = asyncio.Lock()
        self.test_slots = asyncio.Semaphore(TEST_CONCURRENCY)

    async def recent_papers(self) -> RecentPapers:
        """The last TEST_DAYS days of papers, cached for a few minutes and dropped when
        nobody tests rules; read in a worker thread by a connection of its own, so a large
        store never blocks the event loop."""
        async with self.papers_lock:
            cached = self.papers_cache
            if cached and time.monotonic() - cached.loaded < TEST_CACHE_SECONDS:
                cached.used = time.monotonic()
                return cached
            since = (datetime.fromtimestamp(self.clock(), timezone.utc)
                     - timedelta(days=TEST_DAYS)).isoformat(timespec="seconds")
            if self.store.path == ":memory:":
                recent = RecentPapers.of(self.store.papers_since(since))
            else:
                recent = await anyio.to_thread.run_sync(_recent_papers, self.store.target, since)
            self.papers_cache = recent
            asyncio.get_running_loop().call_later(TEST_CACHE_SECONDS, self._drop_idle_cache)
            return recent

    def _drop_idle_cache(self) -> None:
        cached = self.papers_cache
        if cached is None:
            return
        idle = time.monotonic() - cached.used
        if idle >= TEST_CACHE_SECONDS - 1:
            self.papers_cache = None  # 30 days of papers is memory worth giving back
        else:
            asyncio.get_running_loop().call_later(TEST_CACHE_SECONDS - idle,
                                                  self._drop_idle_cache)

    async def run_tests(self, rules: Sequence[str]) -> RuleTests:
        recent = await self.recent_papers()
        async with self.test_slots:
            return await anyio.to_thread.run_sync(try_rules, list(rules), recent.papers,
                                                  recent.texts)

