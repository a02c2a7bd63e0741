"""Rules compiled for the matcher: atoms interned to ids, each rule as a tree over atom
ids and, where it stays small, as clauses (DNF); the fast constructors of the results."""

from __future__ import annotations

import dataclasses
import gc
import types
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from .. import rules as R
from ..models import Hit, PaperMatch, RuleMatch

K = TypeVar("K", bound=Hashable)

# A rule whose DNF has more clauses than this is evaluated as a tree instead (rare: it takes
# something like (a OR b) (c OR d) (e OR f) ...); the clause form is faster but can explode.
MAX_CLAUSES = 32
_TEXT_FIELDS = ("title", "abstract", "author")

# A rule over atom ids: ("a", atom id) | ("n", tree) | ("&", trees) | ("|", trees).
_Tree = tuple
_Clause = tuple[frozenset, frozenset]  # (atoms that must be present, atoms that must not)


def _tree(node: R.Node, intern: dict[R.Atom, int]) -> _Tree:
    if isinstance(node, R.Not):
        return ("n", _tree(node.child, intern))
    if isinstance(node, R.And):
        return ("&", tuple(_tree(c, intern) for c in node.children))
    if isinstance(node, R.Or):
        return ("|", tuple(_tree(c, intern) for c in node.children))
    aid = intern.get(node)
    if aid is None:
        aid = intern[node] = len(intern)
    return ("a", aid)


def _dnf(tree: _Tree, positive: bool = True) -> list[_Clause] | None:
    """Disjunctive normal form, or None if it exceeds MAX_CLAUSES."""
    op, arg = tree
    if op == "a":
        one = frozenset((arg,))
        return [(one, frozenset())] if positive else [(frozenset(), one)]
    if op == "n":
        return _dnf(arg, not positive)
    parts = []
    for child in arg:
        part = _dnf(child, positive)
        if part is None:
            return None
        parts.append(part)
    if (op == "|") == positive:  # OR, or a negated AND (De Morgan)
        clauses = [c for part in parts for c in part]
    else:
        clauses = [(frozenset(), frozenset())]
        for part in parts:
            clauses = [(p1 | p2, n1 | n2) for p1, n1 in clauses for p2, n2 in part]
            if len(clauses) > MAX_CLAUSES:
                return None
    return clauses if len(clauses) <= MAX_CLAUSES else None


def _positive_atoms(tree: _Tree, positive: bool = True) -> Iterator[int]:
    op, arg = tree
    if op == "a":
        if positive:
            yield arg
    elif op == "n":
        yield from _positive_atoms(arg, not positive)
    else:
        for child in arg:
            yield from _positive_atoms(child, positive)


def _plan(tree: _Tree) -> tuple[int, ...] | None:
    """A shortcut for explaining a matched rule, when its shape allows one.

    For a conjunction of atoms and negations (a word, "model merging -survey") and for a
    disjunction of atoms ("merge OR merging"), the evidence is exactly the hits of its
    non-negated atoms that occur, in rule order. None: walk the tree (rules._collect).
    """
    op, arg = tree
    if op == "a":
        return (arg,)
    if op == "&" and all(c[0] == "a" or c[0] == "n" and c[1][0] == "a" for c in arg):
        return tuple(c[1] for c in arg if c[0] == "a")
    if op == "|" and all(c[0] == "a" for c in arg):
        return tuple(c[1] for c in arg)
    return None


_WORD, _PREFIX, _PHRASE, _VALUE = range(4)


def _atom_spec(aid: int, atom: R.Atom) -> tuple[int, object, tuple[str, ...]]:
    """(kind, key of what the scan recorded for it, fields it searches)."""
    names = ("title", "abstract") if atom.field is None else (atom.field,)
    if isinstance(atom, R.Word):
        return _WORD, atom.word, names
    if isinstance(atom, R.Prefix):
        return _PREFIX, atom.prefix, names
    if isinstance(atom, R.Phrase):
        return _PHRASE, aid, names
    return _VALUE, (atom.value, atom.prefix), names


def _eval_tree(tree: _Tree, present: set[int]) -> bool:
    op, arg = tree
    if op == "a":
        return arg in present
    if op == "n":
        return not _eval_tree(arg, present)
    if op == "&":
        return all(_eval_tree(t, present) for t in arg)
    return any(_eval_tree(t, present) for t in arg)


def _slot_constructor(cls: type) -> Callable[..., object]:
    """A faster constructor for a frozen, slotted dataclass such as RuleMatch.

    The generated __init__ of a frozen dataclass sets each field through
    object.__setattr__, about twice the cost of setting the slots directly, and a run over
    100,000 subscribers creates a million of these. Same object, same invariants (the
    models have no __post_init__); if the class ever loses its slots, it is used as is.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    slots = [cls.__dict__.get(n) for n in names]
    if (not dataclasses.is_dataclass(cls) or "__post_init__" in cls.__dict__
            or not all(isinstance(d, types.MemberDescriptorType) for d in slots)):
        return cls
    new = object.__new__
    if len(names) == 2:
        set0, set1 = (d.__set__ for d in slots)  # type: ignore[union-attr]

        def make2(a: object, b: object) -> object:
            obj = new(cls)
            set0(obj, a)
            set1(obj, b)
            return obj
        return make2
    if len(names) == 3:
        set0, set1, set2 = (d.__set__ for d in slots)  # type: ignore[union-attr]

        def make3(a: object, b: object, c: object) -> object:
            obj = new(cls)
            set0(obj, a)
            set1(obj, b)
            set2(obj, c)
            return obj
        return make3
    return cls


_new_paper_match = _slot_constructor(PaperMatch)
_new_rule_match = _slot_constructor(RuleMatch)
_new_hit = _slot_constructor(Hit)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building millions of small objects makes the cyclic GC rescan them over and over
    (half the run time at 100k subscribers); none of them form cycles, so pause it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
