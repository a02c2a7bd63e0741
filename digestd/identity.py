"""Paper identity: which ids say that two items are one paper (strong ids, conflicts, the title key).

The rules are in the README ("Paper identity"); sources produce the ids (sources/ids.py),
the store applies these rules when it meets a paper again.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .text import words

# Titles that name a kind of item, not a paper: many different items share them, so they can
# never say that two items are one paper. Matched as whole words at the start of a title.
GENERIC_TITLES = tuple(tuple(t.split()) for t in (
    "correction", "corrections", "corrigendum", "corrigenda", "erratum", "errata", "addendum",
    "editorial", "editorials", "guest editorial", "editor s note", "editors note",
    "editorial board", "reply", "response", "authors reply", "author s reply", "comment",
    "commentary", "retraction", "retraction notice", "notice of retraction", "retracted",
    "withdrawn", "expression of concern", "front matter", "frontmatter", "back matter",
    "backmatter", "issue information", "table of contents", "contents", "masthead", "cover",
    "cover image", "cover picture", "index", "author index", "subject index", "preface",
    "foreword", "introduction", "acknowledgment", "acknowledgments", "acknowledgement",
    "acknowledgements", "acknowledgement to reviewers", "reviewers", "list of reviewers",
    "list of referees", "thanks to reviewers", "in this issue", "this issue", "issue highlights",
    "highlights", "news", "book review", "book reviews", "letter to the editor", "letters",
    "announcement", "announcements", "obituary", "in memoriam", "untitled", "abstracts",
    "call for papers", "calendar", "volume", "issue", "letter from the editor",
    "from the editor", "message from the editor", "note from the editor", "editor s choice",
    "information for authors", "instructions for authors", "guide for authors",
    "author guidelines", "notes for contributors", "notes on contributors", "contributors",
    "thank you to our reviewers", "thanks to our reviewers", "reviewer acknowledgement",
    "reviewer acknowledgment", "graphical contents list", "graphical abstracts",
    "graphical abstract", "special issue editorial", "special issue", "subscription information",
    "copyright", "advertisement", "erratum to", "publisher s note", "publishers note",
    "correction notice", "list of contents", "contents list"))
_LEADS: dict[str, list[tuple[str, ...]]] = {}
for _lead in sorted(GENERIC_TITLES, key=len, reverse=True):  # the longest lead-in first
    _LEADS.setdefault(_lead[0], []).append(_lead)
MIN_TITLE_WORDS = 3  # words that are not numbers, after a generic lead-in is set aside
MIN_TITLE_CHARS = 20


def title_key(title: str) -> str | None:
    """The last-resort identity of a paper across sources: its normalized title words,
    `title:words of the title`; None for a title too short or generic to be one.

    The rule (README, "Paper identity"): a title is an identity only with at least
    MIN_TITLE_WORDS words that are not numbers and MIN_TITLE_CHARS characters once
    generic lead-ins ("Correction", "Editorial", "Reply", "Front matter", "Issue
    information", ... in GENERIC_TITLES, repeated, with a following "to"/"on"/"of") are
    set aside. "Correction to: Deep nets for X" stays a key (it is that one notice).
    """
    found = words(title)
    rest = [w for w in found if not w.isdigit()]
    stripped = True
    while stripped and rest:
        stripped = False
        for lead in _LEADS.get(rest[0], ()):
            if tuple(rest[:len(lead)]) == lead:
                rest = rest[len(lead):]
                if rest and rest[0] in ("to", "on", "of", "for", "from", "in", "and"):
                    rest = rest[1:]
                stripped = True
                break
    if len(rest) < MIN_TITLE_WORDS or len(" ".join(rest)) < MIN_TITLE_CHARS:
        return None
    return "title:" + " ".join(found)


def strong_kind(paper_id: str) -> str | None:
    """The kind of a strong id, within which two different ids mean two different papers:
    "arxiv", "doi", or "guid:SOURCE" (a guid is unique only within its feed); None for
    weak ids (`url:`, `title:`, `item:`, `hf:`), which may only join papers."""
    kind, _, rest = paper_id.partition(":")
    if kind in ("arxiv", "doi"):
        return kind
    if kind == "guid":
        return "guid:" + rest.partition("|")[0]
    return None


def conflicting(ours: Iterable[str], theirs: Iterable[str]) -> str | None:
    """The kind of strong id on which two sets of ids disagree (both have ids of that kind
    and none in common: two DOIs, two arXiv ids, two guids of one feed), else None."""
    mine: dict[str, set[str]] = {}
    for i in ours:
        kind = strong_kind(i)
        if kind:
            mine.setdefault(kind, set()).add(i)
    other: dict[str, set[str]] = {}
    for i in theirs:
        kind = strong_kind(i)
        if kind in mine:
            other.setdefault(kind, set()).add(i)
    for kind, ids in other.items():
        if ids.isdisjoint(mine[kind]):
            return kind
    return None


SAME_TITLE_WORDS = 0.6  # titles_agree: the share of the shorter title's content words
SAME_TITLE_CHARS = 0.85  # titles_agree: difflib's ratio of the two titles' normalized words
# words that say nothing about what a paper is (a title's content is the rest)
_STOP = frozenset("""a an and are as at be by for from how in into is it its of on or our
over the their this to under via we what when which why with without""".split())
# numerals that are not also words or variables ("I", "v", "x" are)
_ROMAN = frozenset("ii iii iv vi vii viii ix xi xii".split())
# words after which any word is a number: "part I", "volume 3", "chapter B"
_NUMBERED = frozenset("part parts volume vol chapter section no number paper issue".split())


def titles_agree(a: str, b: str) -> bool:
    """Whether two titles can be one paper's (a link met again with a title: the same paper,
    or the next item on a page that shows one after another?).

    They agree when they are the same but for small edits (difflib's ratio of their
    normalized words at least SAME_TITLE_CHARS: a fixed typo, changed case or punctuation),
    or when at least SAME_TITLE_WORDS of the shorter one's content words (not a, of, the
    ...) are in the other (an added subtitle). They never agree when they differ only in
    their numbers ("the 2025 survey", "the 2026 survey"), when what follows "part",
    "volume", "chapter" ... differs ("part I" and "part II"), or when one is a notice the
    other is not
    ("Correction to: X" and "X"). A title without words says nothing: it agrees."""
    first, second = words(a), words(b)
    if not first or not second:
        return True
    if first == second:
        return True
    marked = [{w for k, w in enumerate(ws) if k and ws[k - 1] in _NUMBERED}
              for ws in (first, second)]
    numbers = [{w for w in ws if w.isdigit() or w in _ROMAN} for ws in (first, second)]
    rest = [[w for w in ws if not (w.isdigit() or w in _ROMAN)] for ws in (first, second)]
    if marked[0] != marked[1] or numbers[0] != numbers[1] and rest[0] == rest[1]:
        # "part I" and "part II"; "the 2025 survey" and "the 2026 survey" (but "COVID-19"
        # and "SARS-CoV-2" in otherwise different words may be one paper's titles)
        return False
    if _notice(first) != _notice(second):
        return False
    if difflib.SequenceMatcher(None, " ".join(first), " ".join(second),
                               autojunk=False).ratio() >= SAME_TITLE_CHARS:
        return True
    content = [set(ws) - _STOP or set(ws) for ws in (first, second)]
    return len(content[0] & content[1]) >= SAME_TITLE_WORDS * min(map(len, content))


def _notice(found: list[str]) -> tuple[str, ...] | None:
    """The generic lead-in a title starts with ("correction", "erratum", ...), or None."""
    for lead in _LEADS.get(found[0], ()):
        if tuple(found[:len(lead)]) == lead:
            return lead
    return None
