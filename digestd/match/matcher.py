"""The matcher: every subscriber's rules indexed once, a batch of papers run against all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from itertools import chain
from typing import Generic

from .. import rules as R
from ..errors import RuleError
from ..models import Hit, Paper, PaperMatch, RuleMatch, quote_rule
from .index import _FieldIndex, _Found, _ValueIndex
from .plan import (
    _PHRASE,
    _PREFIX,
    _TEXT_FIELDS,
    _WORD,
    K,
    _atom_spec,
    _dnf,
    _eval_tree,
    _gc_paused,
    _new_hit,
    _new_paper_match,
    _new_rule_match,
    _plan,
    _positive_atoms,
    _Tree,
    _tree,
)


class Matcher(Generic[K]):
    """All subscribers' rules, indexed once; `match` runs a batch of papers against all of them.

    Identical rule texts are parsed once, rules with the same canonical form are evaluated
    once, and each paper is scanned once per field. A rule is only looked at for a paper
    when one of its atoms occurs in it, which is sound because parse() rejects rules that
    could match without any of their non-negated atoms.
    """

    def __init__(self, rules: Mapping[K, Sequence[str]]) -> None:
        with _gc_paused():
            self._build(rules)

    def _build(self, rules: Mapping[K, Sequence[str]]) -> None:
        self._keys: list[K] = list(rules)
        text_ids: dict[str, int] = {}
        texts: list[str] = []
        sub_rules: list[list[int]] = []
        for key in self._keys:
            row = []
            for text in rules[key]:
                tid = text_ids.get(text)
                if tid is None:
                    tid = text_ids[text] = len(texts)
                    texts.append(text)
                row.append(tid)
            sub_rules.append(row)
        del text_ids

        # Distinct texts -> distinct rules ("A  b" and "a b" are one rule), each a tree over
        # interned atom ids. Two trees are equal exactly when the rules' canonical() strings
        # are, and a tree of tuples hashes in C: it is the dedupe key.
        canon_ids: dict[_Tree, int] = {}
        intern: dict[R.Atom, int] = {}
        self._trees: list[_Tree] = []
        rule_of_text: list[int] = []
        for text in texts:
            try:
                node = R.parse(text)
            except RuleError as exc:
                raise RuleError(f"rule {quote_rule(text)}: {exc}", exc.column) from None
            tree = _tree(node, intern)
            rid = canon_ids.get(tree)
            if rid is None:
                rid = canon_ids[tree] = len(self._trees)
                self._trees.append(tree)
            rule_of_text.append(rid)
        del canon_ids
        self._atoms: list[R.Atom] = list(intern)  # intern ids are insertion order
        del intern
        self._n_texts = len(texts)

        # A "group" is what one RuleMatch says: a rule text as written and its index in the
        # subscriber's list. A match creates one RuleMatch per group, not per subscriber.
        group_ids: dict[tuple[int, int], int] = {}
        # rule -> its groups as (group, index, text): what a match needs, in one place
        self._rule_groups: list[list[tuple[int, int, str]]] = [[] for _ in self._trees]
        self._sub_groups: list[tuple[int, ...]] = []  # subscriber slot -> groups, rule order
        for row in sub_rules:
            gids = []
            for idx, tid in enumerate(row):
                gid = group_ids.get((tid, idx))
                if gid is None:
                    gid = group_ids[tid, idx] = len(group_ids)
                    self._rule_groups[rule_of_text[tid]].append((gid, idx, texts[tid]))
                gids.append(gid)
            self._sub_groups.append(tuple(gids))
        self._n_groups = len(group_ids)
        del group_ids, sub_rules

        self._atom_specs = [_atom_spec(aid, atom) for aid, atom in enumerate(self._atoms)]
        self._plans = [_plan(tree) for tree in self._trees]
        self._fields = {name: _FieldIndex() for name in _TEXT_FIELDS}
        self._values = {name: _ValueIndex() for name in R.VALUE_FIELDS}
        for aid, atom in enumerate(self._atoms):
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
        plain: dict[int, list[int]] = {}  # atom -> rules that hold whenever it occurs
        guarded: dict[int, list[tuple[int, frozenset]]] = {}  # atom -> (rule, absent)
        self._multi: list[tuple[int, tuple[int, ...], frozenset]] = []
        tree_anchors: dict[int, list[int]] = {}  # for rules too big for clauses
        self._n_tree_rules = 0
        for rid, tree in enumerate(self._trees):
            if tree[0] == "a":  # most rules are one word or phrase
                plain.setdefault(tree[1], []).append(rid)
                continue
            clauses = _dnf(tree)
            if clauses is None:
                self._n_tree_rules += 1
                for aid in set(_positive_atoms(tree)):
                    tree_anchors.setdefault(aid, []).append(rid)
                continue
            for pos, neg in clauses:
                if pos & neg:
                    continue  # "a -a": can never hold
                if len(pos) == 1:
                    (aid,) = pos
                    if neg:
                        guarded.setdefault(aid, []).append((rid, neg))
                    else:
                        plain.setdefault(aid, []).append(rid)
                else:
                    self._multi.append((rid, tuple(pos), neg))

        # Per atom id, what it anchors; a list, since every present atom is looked up.
        self._anchored: list[tuple[list[int], list, list[int]] | None] = [None] * len(self._atoms)
        for aid in {*plain, *guarded, *tree_anchors}:
            self._anchored[aid] = (plain.get(aid, []), guarded.get(aid, []),
                                   tree_anchors.get(aid, []))

    @property
    def stats(self) -> dict[str, int]:
        """Sizes of the index, for logs and the benchmark."""
        return {"subscribers": len(self._keys), "rule_texts": self._n_texts,
                "rules": len(self._trees), "atoms": len(self._atoms),
                "multi_clauses": len(self._multi),
                "tree_rules": self._n_tree_rules}

    def _scan(self, fields: R.Fields, interned: dict, joined: dict) -> _Found:
        """Every indexed atom that occurs in the paper: one pass over each field's words."""
        found = _Found(fields, interned, joined)
        for name in _TEXT_FIELDS:
            self._fields[name].scan(fields.seqs[name], fields.vocab[name], found, name)
        for name in R.VALUE_FIELDS:
            self._values[name].scan(fields.raw_values[name], fields.values[name], found, name)
        return found

    def _matched_rules(self, present: set[int], multi: list[list | None]) -> set[int]:
        matched: set[int] = set()
        anchored = self._anchored
        for aid in present:
            entry = anchored[aid]
            if entry is not None:
                plain, guarded, trees = entry
                if plain:
                    matched.update(plain)
                for rid, absent in guarded:
                    if present.isdisjoint(absent):
                        matched.add(rid)
                for rid in trees:
                    if rid not in matched and _eval_tree(self._trees[rid], present):
                        matched.add(rid)
            clauses = multi[aid]
            if clauses is not None:
                for rid, pos, absent in clauses:
                    if present.issuperset(pos) and present.isdisjoint(absent):
                        matched.add(rid)
        return matched

    def _atom_hits(self, aid: int, found: _Found) -> tuple[Hit, ...]:
        """rules.atom_hits, answered from what the scan recorded instead of searching again."""
        hits = found.hits.get(aid)
        if hits is not None:
            return hits
        kind, key, names = self._atom_specs[aid]
        got = []
        for name in names:
            if kind == _WORD:
                text = key if key in found.vocab[name] else None
            elif kind == _PREFIX:
                text = found.prefix_words[name].get(key)
            elif kind == _PHRASE:
                text = found.phrase_texts[name].get(key)
            else:
                text = found.value_raw[name].get(key)
            if text is not None:
                got.append((name, text))
        hits = found.hits[aid] = _interned(tuple(got), found.interned)
        return hits

    def _explain(self, rid: int, found: _Found) -> tuple[Hit, ...]:
        """rules.explain for a rule that matched (the tests hold them to the same answer)."""
        plan = self._plans[rid]
        if plan is not None and len(plan) == 1:  # the usual rule: one atom
            return found.hits.get(plan[0]) or self._atom_hits(plan[0], found)
        if plan is None:
            out: list[Hit] = []
            self._collect(self._trees[rid], found, out)
            return _interned(tuple(dict.fromkeys((h.field, h.text) for h in out)),
                             found.interned)
        present, known = found.present, found.hits
        parts = [known.get(aid) or self._atom_hits(aid, found) for aid in plan if aid in present]
        if len(parts) == 1:
            return parts[0]
        # The parts are interned, so their ids name this evidence; the joined tuple recurs
        # over papers and rules ("title model, abstract merging").
        key = tuple(map(id, parts))
        hits = found.joined.get(key)
        if hits is None:
            evidence = dict.fromkeys((h.field, h.text) for part in parts for h in part)
            hits = found.joined[key] = _interned(tuple(evidence), found.interned)
        return hits

    def _collect(self, tree: _Tree, found: _Found, out: list[Hit]) -> bool:
        """rules._collect over atom ids: only the parts that are true give evidence."""
        op, arg = tree
        if op == "a":
            if arg not in found.present:
                return False
            out.extend(self._atom_hits(arg, found))
            return True
        if op == "n":
            return not _eval_tree(arg, found.present)
        if op == "&":
            mark = len(out)
            for child in arg:
                if not self._collect(child, found, out):
                    del out[mark:]
                    return False
            return True
        any_true = False
        for child in arg:
            any_true = self._collect(child, found, out) or any_true
        return any_true

    def match(self, papers: Sequence[Paper],
              exclude: Mapping[K, Collection[str]] | None = None) -> dict[K, list[PaperMatch]]:
        """Each subscriber with at least one match -> their matches, papers in input order.

        `exclude` maps a subscriber to the paper ids already sent to them; a paper is skipped
        for that subscriber when any of its ids (id or aliases) is among them.
        """
        with _gc_paused():
            return self._match(papers, exclude)

    def _match(self, papers: Sequence[Paper],
               exclude: Mapping[K, Collection[str]] | None) -> dict[K, list[PaperMatch]]:
        interned: dict[tuple[tuple[str, str], ...], tuple[Hit, ...]] = {}
        joined: dict[tuple[int, ...], tuple[Hit, ...]] = {}
        scans = [self._scan(R.Fields(p), interned, joined) for p in papers]

        df: Counter[int] = Counter()
        for found in scans:
            df.update(found.present)
        multi: list[list | None] = [None] * len(self._atoms)
        for clause in self._multi:
            pos = clause[1]
            if all(a in df for a in pos):  # otherwise no paper of this batch can satisfy it
                anchor = min(pos, key=df.__getitem__)
                if multi[anchor] is None:
                    multi[anchor] = [clause]
                else:
                    multi[anchor].append(clause)

        # Per group, the papers it matched (batch positions) and a PaperMatch for each.
        group_papers: list[list[int] | None] = [None] * self._n_groups
        group_matches: list[list[PaperMatch] | None] = [None] * self._n_groups
        # A rule often says the same thing on many papers ("abstract diffusion"), and the
        # evidence is interned: (group, evidence) -> one shared (RuleMatch,). Fewer objects to
        # allocate and, above all, for the cyclic GC to walk once matching is done. Keyed by
        # id(): interned tuples live as long as the batch, so no id is reused meanwhile.
        shared: dict[tuple[int, int], tuple[RuleMatch]] = {}
        rule_groups = self._rule_groups
        new_pm, new_rm = _new_paper_match, _new_rule_match
        for pos, (paper, found) in enumerate(zip(papers, scans)):
            for rid in self._matched_rules(found.present, multi):
                hits = self._explain(rid, found)
                for gid, idx, text in rule_groups[rid]:
                    rules = shared.get((gid, id(hits)))
                    if rules is None:
                        rules = shared[gid, id(hits)] = (new_rm(idx, text, hits),)
                    # Frozen values: everyone matched by this group alone shares this object.
                    pm = new_pm(paper, rules)
                    if group_papers[gid] is None:
                        group_papers[gid], group_matches[gid] = [pos], [pm]
                    else:
                        group_papers[gid].append(pos)
                        group_matches[gid].append(pm)

        sent = self._sent_positions(papers, exclude) if exclude else {}
        results: dict[K, list[PaperMatch]] = {}
        keys = self._keys
        for slot, gids in enumerate(self._sub_groups):
            hit = [gid for gid in gids if group_papers[gid] is not None]
            if not hit:
                continue
            skip = sent.get(slot)
            if len(hit) == 1 and skip is None:
                found_list = group_matches[hit[0]].copy()  # the common case: C speed
            else:
                found_list = _merge(papers, hit, group_papers, group_matches, skip)
            if found_list:
                results[keys[slot]] = found_list
        return results

    def _sent_positions(self, papers: Sequence[Paper],
                        exclude: Mapping[K, Collection[str]]) -> dict[int, set[int]]:
        """Subscriber slot -> batch positions of the papers they already got."""
        positions: dict[str, list[int]] = {}
        for pos, paper in enumerate(papers):
            for pid in paper.ids:
                positions.setdefault(pid, []).append(pos)
        slot_of = {key: slot for slot, key in enumerate(self._keys)}
        sent: dict[int, set[int]] = {}
        for key, ids in exclude.items():
            slot = slot_of.get(key)
            if slot is None:
                continue
            got = {pos for pid in positions.keys() & ids for pos in positions[pid]}
            if got:
                sent[slot] = got
        return sent


def _interned(evidence: tuple[tuple[str, str], ...], interned: dict) -> tuple[Hit, ...]:
    """One shared tuple of Hits per distinct evidence, (field, text) pairs, in a batch."""
    hits = interned.get(evidence)
    if hits is None:
        hits = interned[evidence] = tuple(_new_hit(f, t) for f, t in evidence)
    return hits


def _merge(papers: Sequence[Paper], gids: list[int], group_papers: list, group_matches: list,
           skip: set[int] | None) -> list[PaperMatch]:
    """One subscriber's matches from several groups: in paper order, one PaperMatch per paper
    listing every rule that matched it, in rule order (gids are in rule order)."""
    positions = list(chain.from_iterable(group_papers[gid] for gid in gids))
    matches = list(chain.from_iterable(group_matches[gid] for gid in gids))
    # A stable sort by batch position: papers in input order, and for one paper its
    # groups stay in rule order.
    order = sorted(range(len(positions)), key=positions.__getitem__)
    if skip is None and len(set(positions)) == len(positions):
        return [matches[i] for i in order]  # no paper matched by two rules: nothing to join
    out: list[PaperMatch] = []
    last = -1
    for i in order:
        pos = positions[i]
        if skip is not None and pos in skip:
            continue
        if pos == last:  # the same paper by another rule: one PaperMatch listing both
            prev = out[-1]
            out[-1] = _new_paper_match(prev.paper, prev.rules + matches[i].rules)
        else:
            out.append(matches[i])
            last = pos
    return out


def match_rules(rules: Sequence[str], papers: Sequence[Paper]) -> list[PaperMatch]:
    """One subscriber's rules against papers (for `digestd rules test`)."""
    return Matcher({0: rules}).match(papers).get(0, [])
