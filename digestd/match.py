"""Match every subscriber's rules against a batch of papers at once, through an index of atoms."""

from __future__ import annotations

from collections import Counter
from typing import Collection, Generic, Hashable, Mapping, Sequence, TypeVar

from . import rules as R
from .errors import RuleError
from .models import Paper, PaperMatch, RuleMatch

K = TypeVar("K", bound=Hashable)

# A rule whose DNF has more clauses than this is evaluated as a tree instead (rare: it takes
# something like (a OR b) (c OR d) (e OR f) ...); the clause form is faster but can explode.
MAX_CLAUSES = 32
_TEXT_FIELDS = ("title", "abstract", "author")

# A rule over atom ids, for the tree fallback: ("a", id) | ("n", node) | ("&"|"|", nodes).
_Tree = tuple
_Clause = tuple[frozenset, frozenset]  # (atoms that must be present, atoms that must not)


def _dnf(node: R.Node, ids: dict, positive: bool = True) -> list[_Clause] | None:
    """Disjunctive normal form over atom ids, or None if it exceeds MAX_CLAUSES."""
    if isinstance(node, R.Not):
        return _dnf(node.child, ids, not positive)
    if isinstance(node, (R.And, R.Or)):
        parts = []
        for child in node.children:
            part = _dnf(child, ids, positive)
            if part is None:
                return None
            parts.append(part)
        if isinstance(node, R.Or) == positive:  # OR, or a negated AND (De Morgan)
            clauses = [c for part in parts for c in part]
        else:
            clauses = [(frozenset(), frozenset())]
            for part in parts:
                clauses = [(p1 | p2, n1 | n2) for p1, n1 in clauses for p2, n2 in part]
                if len(clauses) > MAX_CLAUSES:
                    return None
        return clauses if len(clauses) <= MAX_CLAUSES else None
    one = frozenset((ids[node],))
    return [(one, frozenset())] if positive else [(frozenset(), one)]


def _tree(node: R.Node, ids: dict) -> _Tree:
    if isinstance(node, R.Not):
        return ("n", _tree(node.child, ids))
    if isinstance(node, (R.And, R.Or)):
        return ("&" if isinstance(node, R.And) else "|", tuple(_tree(c, ids) for c in node.children))
    return ("a", ids[node])


def _eval_tree(tree: _Tree, present: set[int]) -> bool:
    op, arg = tree
    if op == "a":
        return arg in present
    if op == "n":
        return not _eval_tree(arg, present)
    if op == "&":
        return all(_eval_tree(t, present) for t in arg)
    return any(_eval_tree(t, present) for t in arg)


class _FieldIndex:
    """Every atom that searches one word field, keyed so one pass over the words finds them."""

    __slots__ = ("words", "prefixes", "prefix_lens", "pairs", "heads")

    def __init__(self) -> None:
        self.words: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.prefix_lens: list[int] = []
        # Phrases keyed by their first two words (all phrases have >= 2 words); a two-word
        # phrase ending in a prefix ("self-sup*") can only be keyed by its first word.
        self.pairs: dict[tuple[str, str], list[tuple[int, tuple[str, ...], bool]]] = {}
        self.heads: dict[str, list[tuple[int, tuple[str, ...], bool]]] = {}

    def add(self, atom: R.Atom, aid: int) -> None:
        if isinstance(atom, R.Word):
            self.words.setdefault(atom.word, []).append(aid)
        elif isinstance(atom, R.Prefix):
            self.prefixes.setdefault(atom.prefix, []).append(aid)
        elif isinstance(atom, R.Phrase):
            entry = (aid, atom.words, atom.prefix)
            if len(atom.words) == 2 and atom.prefix:
                self.heads.setdefault(atom.words[0], []).append(entry)
            else:
                self.pairs.setdefault(atom.words[:2], []).append(entry)

    def finish(self) -> None:
        self.prefix_lens = sorted({len(p) for p in self.prefixes})

    def scan(self, seqs: list[tuple[str, ...]], distinct: set[str], present: set[int]) -> None:
        words, prefixes, lens = self.words, self.prefixes, self.prefix_lens
        for w in distinct:
            ids = words.get(w)
            if ids:
                present.update(ids)
            for n in lens:
                if n > len(w):
                    break
                ids = prefixes.get(w[:n])
                if ids:
                    present.update(ids)
        if not (self.pairs or self.heads):
            return
        pairs, heads = self.pairs, self.heads
        for seq in seqs:  # each title, abstract, author name alone: phrases never span two
            size = len(seq)
            for i in range(size - 1):
                for found in (pairs.get((seq[i], seq[i + 1])), heads.get(seq[i])):
                    if found:
                        for aid, phrase, is_prefix in found:
                            if aid not in present and _phrase_at(seq, i, phrase, is_prefix):
                                present.add(aid)


def _phrase_at(seq: tuple[str, ...], i: int, phrase: tuple[str, ...], is_prefix: bool) -> bool:
    n = len(phrase)
    if i + n > len(seq):
        return False
    if seq[i:i + n - 1] != phrase[:-1]:
        return False
    last = seq[i + n - 1]
    return last == phrase[-1] or is_prefix and last.startswith(phrase[-1])


class _ValueIndex:
    """Category or source atoms: whole normalized values and value prefixes."""

    __slots__ = ("values", "prefixes", "prefix_lens")

    def __init__(self) -> None:
        self.values: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.prefix_lens: list[int] = []

    def add(self, atom: R.Value, aid: int) -> None:
        (self.prefixes if atom.prefix else self.values).setdefault(atom.value, []).append(aid)

    def finish(self) -> None:
        self.prefix_lens = sorted({len(p) for p in self.prefixes})

    def scan(self, values: list[str], present: set[int]) -> None:
        for v in values:
            ids = self.values.get(v)
            if ids:
                present.update(ids)
            for n in self.prefix_lens:
                if n > len(v):
                    break
                ids = self.prefixes.get(v[:n])
                if ids:
                    present.update(ids)


class Matcher(Generic[K]):
    """All subscribers' rules, indexed once; `match` runs a batch of papers against all of them.

    Identical rule texts are parsed once, rules with the same canonical form are evaluated
    once, and each paper is scanned once per field. A rule is only looked at for a paper
    when one of its atoms occurs in it, which is sound because parse() rejects rules that
    could match without any of their non-negated atoms.
    """

    def __init__(self, rules: Mapping[K, Sequence[str]]) -> None:
        self._keys: list[K] = list(rules)
        text_ids: dict[str, int] = {}
        self._texts: list[str] = []
        self._sub_rules: list[tuple[int, ...]] = []
        for key in self._keys:
            row = []
            for text in rules[key]:
                tid = text_ids.get(text)
                if tid is None:
                    tid = text_ids[text] = len(self._texts)
                    self._texts.append(text)
                row.append(tid)
            self._sub_rules.append(tuple(row))
        self._stride = max((len(r) for r in self._sub_rules), default=0) + 1

        # Distinct texts -> distinct canonical rules ("A  b" and "a b" are one rule).
        canon_ids: dict[str, int] = {}
        self._nodes: list[R.Node] = []
        self._rule_of_text: list[int] = []
        for text in self._texts:
            try:
                node = R.parse(text)
            except RuleError as exc:
                raise RuleError(f'rule "{text}": {exc}', exc.column) from None
            canon = R.canonical(node)
            rid = canon_ids.get(canon)
            if rid is None:
                rid = canon_ids[canon] = len(self._nodes)
                self._nodes.append(node)
            self._rule_of_text.append(rid)

        # Who holds each rule: slot * stride + rule index, one int per subscriber rule.
        self._holders: list[list[int]] = [[] for _ in self._nodes]
        for slot, row in enumerate(self._sub_rules):
            for idx, tid in enumerate(row):
                self._holders[self._rule_of_text[tid]].append(slot * self._stride + idx)

        self._atom_ids: dict[R.Atom, int] = {}
        self._atoms: list[R.Atom] = []
        for node in self._nodes:
            for atom, _ in R.atoms(node):
                if atom not in self._atom_ids:
                    self._atom_ids[atom] = len(self._atoms)
                    self._atoms.append(atom)
        self._fields = {name: _FieldIndex() for name in _TEXT_FIELDS}
        self._values = {name: _ValueIndex() for name in R.VALUE_FIELDS}
        for atom, aid in self._atom_ids.items():
            if isinstance(atom, R.Value):
                self._values[atom.field].add(atom, aid)
            else:
                for name in ("title", "abstract") if atom.field is None else (atom.field,):
                    self._fields[name].add(atom, aid)
        for index in (*self._fields.values(), *self._values.values()):
            index.finish()

        # Clauses by shape. One non-negated atom: anchored on it, fixed. Several: anchored at
        # match time on the one that is rarest in the batch, so "model merging" is only
        # checked for papers that say "merging".
        self._plain: dict[int, list[int]] = {}  # atom -> rules that hold whenever it occurs
        self._guarded: dict[int, list[tuple[int, frozenset]]] = {}  # atom -> (rule, absent)
        self._multi: list[tuple[int, tuple[int, ...], frozenset]] = []
        self._tree_anchors: dict[int, list[int]] = {}
        self._trees: dict[int, _Tree] = {}
        for rid, node in enumerate(self._nodes):
            clauses = _dnf(node, self._atom_ids)
            if clauses is None:
                self._trees[rid] = _tree(node, self._atom_ids)
                anchors = {self._atom_ids[a] for a, positive in R.atoms(node) if positive}
                for aid in anchors:
                    self._tree_anchors.setdefault(aid, []).append(rid)
                continue
            for pos, neg in clauses:
                if pos & neg:
                    continue  # "a -a": can never hold
                if len(pos) == 1:
                    (aid,) = pos
                    if neg:
                        self._guarded.setdefault(aid, []).append((rid, neg))
                    else:
                        self._plain.setdefault(aid, []).append(rid)
                else:
                    self._multi.append((rid, tuple(pos), neg))

    @property
    def stats(self) -> dict[str, int]:
        """Sizes of the index, for logs and the benchmark."""
        return {"subscribers": len(self._keys), "rule_texts": len(self._texts),
                "rules": len(self._nodes), "atoms": len(self._atoms),
                "multi_clauses": len(self._multi), "tree_rules": len(self._trees)}

    def _present(self, fields: R.Fields) -> set[int]:
        """The ids of every indexed atom that occurs in the paper."""
        present: set[int] = set()
        for name in _TEXT_FIELDS:
            seqs = [tuple(s) for s in fields.seqs[name]]
            self._fields[name].scan(seqs, fields.sets[name], present)
        for name in R.VALUE_FIELDS:
            self._values[name].scan(fields.values[name], present)
        return present

    def _matched_rules(self, present: set[int], multi: dict[int, list]) -> set[int]:
        matched: set[int] = set()
        plain, guarded, trees = self._plain, self._guarded, self._tree_anchors
        for aid in present:
            rids = plain.get(aid)
            if rids:
                matched.update(rids)
            for rid, absent in guarded.get(aid, ()):
                if present.isdisjoint(absent):
                    matched.add(rid)
            for rid, pos, absent in multi.get(aid, ()):
                if present.issuperset(pos) and present.isdisjoint(absent):
                    matched.add(rid)
            for rid in trees.get(aid, ()):
                if rid not in matched and _eval_tree(self._trees[rid], present):
                    matched.add(rid)
        return matched

    def match(self, papers: Sequence[Paper],
              exclude: Mapping[K, Collection[str]] | None = None) -> dict[K, list[PaperMatch]]:
        """Each subscriber with at least one match -> their matches, papers in input order.

        `exclude` maps a subscriber to the paper ids already sent to them; a paper is skipped
        for that subscriber when any of its ids (id or aliases) is among them.
        """
        views = [R.Fields(p) for p in papers]
        presents = [self._present(v) for v in views]

        df: Counter[int] = Counter()
        for present in presents:
            df.update(present)
        multi: dict[int, list] = {}
        for clause in self._multi:
            pos = clause[1]
            if all(a in df for a in pos):  # otherwise no paper of this batch can satisfy it
                multi.setdefault(min(pos, key=df.__getitem__), []).append(clause)

        slot_of = {key: slot for slot, key in enumerate(self._keys)}
        excluded: dict[int, Collection[str]] = {}
        for key, ids in (exclude or {}).items():
            slot = slot_of.get(key)
            if slot is not None and ids:
                excluded[slot] = ids if isinstance(ids, (set, frozenset, dict)) else set(ids)

        stride, holders, sub_rules = self._stride, self._holders, self._sub_rules
        results: dict[int, list[PaperMatch]] = {}
        for paper, view, present in zip(papers, views, presents):
            matched = self._matched_rules(present, multi)
            if not matched:
                continue
            by_slot: dict[int, list[int]] = {}
            for rid in matched:
                for code in holders[rid]:
                    slot, idx = divmod(code, stride)
                    found = by_slot.get(slot)
                    if found is None:
                        by_slot[slot] = [idx]
                    else:
                        found.append(idx)
            paper_ids = paper.ids
            explained: dict[int, tuple] = {}  # rule -> hits, computed only if someone gets it
            rule_matches: dict[tuple[int, int], RuleMatch] = {}  # shared by equal subscribers
            for slot, idxs in by_slot.items():
                skip = excluded.get(slot)
                if skip is not None and any(i in skip for i in paper_ids):
                    continue
                if len(idxs) > 1:
                    idxs.sort()
                row = sub_rules[slot]
                found_rules = []
                for idx in idxs:
                    tid = row[idx]
                    rm = rule_matches.get((tid, idx))
                    if rm is None:
                        rid = self._rule_of_text[tid]
                        hits = explained.get(rid)
                        if hits is None:
                            hits = explained[rid] = R.explain_fields(self._nodes[rid], view)
                        rm = rule_matches[tid, idx] = RuleMatch(idx, self._texts[tid], hits)
                    found_rules.append(rm)
                pm = PaperMatch(paper, tuple(found_rules))
                out = results.get(slot)
                if out is None:
                    results[slot] = [pm]
                else:
                    out.append(pm)
        keys = self._keys
        return {keys[slot]: results[slot] for slot in sorted(results)}


def match_rules(rules: Sequence[str], papers: Sequence[Paper]) -> list[PaperMatch]:
    """One subscriber's rules against papers (for `digestd rules test`)."""
    return Matcher({0: rules}).match(papers).get(0, [])
