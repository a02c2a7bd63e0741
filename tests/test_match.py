"""The indexed Matcher agrees with the direct evaluator, dedupes rules, honours `exclude`."""

from __future__ import annotations

import random
from collections.abc import Hashable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digestd import rules as R
from digestd.errors import RuleError
from digestd.match import Matcher, match_rules
from digestd.models import Hit, Paper, PaperMatch, RuleMatch

# Small and overlapping on purpose: words that are prefixes of others, names that are
# also words, so that near misses (net/network, a phrase across two names) come up often.
VOCAB = ["graph", "graphs", "noisy", "labels", "net", "network", "or", "self", "supervised",
         "é", "4o", "hinton", "ada"]
PREFIXES = ["gr*", "net*", "netw*", "la*", "su*", "no*", "4o*", "hin*"]
NAMES = ["Geoffrey Hinton", "Ada Noisy", "Noisy Net", "Paul Erdős", "Graph Hinton"]
CATEGORIES = ["cs.LG", "cs.CV", "stat.ML", "q-bio.NC"]
SOURCES = ["arxiv-cs", "hf-daily", "biorxiv"]


def direct(rules: Mapping[Hashable, Sequence[str]], papers: Sequence[Paper],
           exclude: Mapping[Hashable, set[str]] | None = None) -> dict:
    """What Matcher.match must return, computed the obvious way."""
    memo: dict[tuple[str, int], tuple[Hit, ...] | None] = {}  # many subscribers share rules
    nodes: dict[str, R.Node] = {}

    def check(text: str, i: int) -> tuple[Hit, ...] | None:
        if (text, i) not in memo:
            if text not in nodes:
                nodes[text] = R.parse(text)
            node, paper = nodes[text], papers[i]
            memo[text, i] = R.explain(node, paper) if R.evaluate(node, paper) else None
        return memo[text, i]

    out: dict = {}
    for key, rule_list in rules.items():
        skip = (exclude or {}).get(key, set())
        found = []
        for p, paper in enumerate(papers):
            if any(i in skip for i in paper.ids):
                continue
            hits = tuple(RuleMatch(i, t, h) for i, t in enumerate(rule_list)
                         if (h := check(t, p)) is not None)
            if hits:
                found.append(PaperMatch(paper, hits))
        if found:
            out[key] = found
    return out


# --- random rules and papers ---------------------------------------------------------------
# Strategies are wrapped in @st.composite functions: their repr stays short (hypothesis warns,
# and filterwarnings=error fails, when a strategy repr runs to 100 kB).

FIELDS = ["title", "abstract", "author"]
FIELD_ATOMS = ["category:cs.LG", "category:cs.*", "category:STAT.ml", "source:arxiv-cs",
               "source:hf*", "author:hinton", 'author:"hinton ada"', 'author:"ada noisy"',
               "author:erd*", 'author:"noisy net"', "author:noisy-ne*"]


@st.composite
def plain_atoms(draw: st.DrawFn) -> str:
    word = st.sampled_from(VOCAB)
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return draw(word)
    if kind == 1:
        return draw(st.sampled_from(PREFIXES))
    if kind == 2:
        return f'"{draw(word)} {draw(word)}"'
    if kind == 3:
        return f"{draw(word)}-{draw(word)}"
    if kind == 4:
        return f"{draw(word)}-{draw(st.sampled_from(PREFIXES))}"
    if kind == 5:
        return f'"{draw(word)} {draw(word)} {draw(word)}"'
    return f"{draw(word)}-{draw(word)}-{draw(word)}-{draw(st.sampled_from(PREFIXES))}"


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """(rule text, whether it uses a field): a field group must not contain another field."""
    kind = draw(st.integers(0, 2 if depth >= 3 else 9))
    if kind == 0:
        return draw(plain_atoms()), False
    if kind == 1:
        return f"{draw(st.sampled_from(FIELDS))}:{draw(plain_atoms())}", True
    if kind == 2:
        return draw(st.sampled_from(FIELD_ATOMS)), True
    a = draw(expressions(depth + 1))
    if kind == 3:
        return f"-({a[0]})", a[1]
    if kind == 4:
        return f"NOT ({a[0]})", a[1]
    if kind == 5:
        if a[1]:
            return a
        return f"{draw(st.sampled_from(FIELDS))}:({a[0]})", True
    b = draw(expressions(depth + 1))
    template = {6: "({}) ({})", 7: "({}) AND ({})", 8: "({}) OR ({})", 9: "{} OR {}"}[kind]
    return template.format(a[0], b[0]), a[1] or b[1]


def _valid(text: str) -> bool:
    try:
        R.parse(text)
    except RuleError:
        return False
    return True


@st.composite
def rule_texts(draw: st.DrawFn) -> str:
    text = draw(expressions())[0]
    if not _valid(text):  # e.g. only negations: anchor it on a word, as a user would
        text = f"{draw(plain_atoms())} ({text})"
    return text


@st.composite
def texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(VOCAB + ["Graph", "NETWORK", "Noisy", "É"]),
                                    st.sampled_from([" ", "-", ", ", ". ", "("])), max_size=10))
    return "".join(w + sep for w, sep in parts)


@st.composite
def papers(draw: st.DrawFn, max_size: int = 8) -> list[Paper]:
    n = draw(st.integers(1, max_size))
    return [Paper(id=f"arxiv:{i}", title=draw(texts()), abstract=draw(texts()),
                  authors=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=3))),
                  categories=tuple(draw(st.lists(st.sampled_from(CATEGORIES), max_size=2))),
                  source=draw(st.sampled_from(SOURCES)), aliases=(f"alias:{i}",))
            for i in range(n)]


subscribers = st.dictionaries(st.integers(0, 50), st.lists(rule_texts(), min_size=1, max_size=4),
                              min_size=1, max_size=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subs=subscribers, batch=papers(), data=st.data())
def test_matcher_agrees_with_direct_evaluation(subs: dict, batch: list[Paper],
                                               data: st.DataObject) -> None:
    ids = [p.id for p in batch] + [a for p in batch for a in p.aliases]
    exclude = data.draw(st.dictionaries(st.sampled_from(sorted(subs)),
                                        st.sets(st.sampled_from(ids), max_size=3), max_size=3))
    assert Matcher(subs).match(batch, exclude) == direct(subs, batch, exclude)


def test_matcher_agrees_on_a_larger_seeded_batch() -> None:
    # Many subscribers sharing rules, so the dedupe and per-batch anchoring paths all run.
    rng = random.Random(5)
    atoms = VOCAB + PREFIXES + ['"noisy labels"', "self-sup*", "title:graph", "author:hinton",
                                "category:cs.*", "source:hf-daily"]

    def rule() -> str:
        parts = rng.sample(atoms, rng.randint(1, 3))
        text = " ".join(parts)
        if rng.random() < 0.3:
            text += " -" + rng.choice(VOCAB)
        if rng.random() < 0.3:
            text = f"({text}) OR {rng.choice(atoms)}"
        return text

    shared = [rule() for _ in range(40)]
    subs = {k: [rng.choice(shared) if rng.random() < 0.7 else rule() for _ in range(3)]
            for k in range(200)}
    subs = {k: [t for t in v if _valid(t)] for k, v in subs.items()}
    batch = [Paper(id=f"p{i}", title=" ".join(rng.choices(VOCAB, k=5)),
                   abstract=" ".join(rng.choices(VOCAB, k=20)),
                   authors=tuple(rng.sample(NAMES, 2)), categories=(rng.choice(CATEGORIES),),
                   source=rng.choice(SOURCES)) for i in range(40)]
    got = Matcher(subs).match(batch)
    assert got == direct(subs, batch)
    assert sum(len(v) for v in got.values()) > 100  # the test is not vacuous


def _paper(title: str = "", abstract: str = "", authors: tuple[str, ...] = (),
           categories: tuple[str, ...] = (), source: str = "") -> Paper:
    return Paper(id="p", title=title, abstract=abstract, authors=authors,
                 categories=categories, source=source)


TRAPS = [
    # (rule, paper, matches?) -- each checked through the index and the direct evaluator
    ("net", _paper("neural network"), False),
    ("netw*", _paper("neural network"), True),
    ("network", _paper("networks"), False),
    ('"noisy net"', _paper("noisy network"), False),
    ("noisy-netw*", _paper("noisy network"), True),
    ("noisy-netw*", _paper("noisy net"), False),
    ('"a b c"', _paper("a b d c"), False),
    ('"a b c"', _paper("a b x a b c"), True),
    ('"a b c"', _paper("x a b"), False),
    ('"a b c"', _paper("a b", "c"), False),
    ('"a b c"', _paper("a b cd"), False),
    ('"a b c d"', _paper("a b x d"), False),
    ('"a b c d"', _paper("a b c d"), True),
    ("a-b-c*", _paper("a b x"), False),
    ("a-b-c*", _paper("a b cd"), True),
    ('"noisy labels"', _paper("learning with noisy", "labels matter"), False),
    ('title:"noisy labels"', _paper("x", "noisy labels"), False),
    ('author:"hinton yann"', _paper("x", authors=("Geoffrey Hinton", "Yann LeCun")), False),
    ('author:"yann lecun"', _paper("x", authors=("Geoffrey Hinton", "Yann LeCun")), True),
    ("author:hinton", _paper("Hinton", "hinton"), False),
    ('"hinton yann"', _paper("x", authors=("Hinton", "Yann")), False),
    ("category:cs.LG", _paper("x", categories=("cs.LGX",)), False),
    ("category:cs.*", _paper("x", categories=("stat.ML", "cs.CV")), True),
    ("source:hf*", _paper("x", source="hf-daily"), True),
    ("source:hf", _paper("x", source="hf-daily"), False),
    ("résumé", _paper("RESUME"), True),
    ("a -b", _paper("a", "b"), False),
    ("a OR b c", _paper("c"), False),
]


@pytest.mark.parametrize(("rule", "paper", "expected"), TRAPS)
def test_traps_through_the_index(rule: str, paper: Paper, expected: bool) -> None:
    assert R.evaluate(R.parse(rule), paper) is expected
    got = match_rules(["zzz", rule], [paper])
    assert bool(got) is expected
    if expected:
        assert got[0].rules[0].hits == R.explain(R.parse(rule), paper)


def test_rules_with_many_clauses_fall_back_to_a_tree() -> None:
    rule = "(a OR b) (c OR d) (e OR f) (g OR h) (i OR j) (k OR l) -z"
    m = Matcher({"s": [rule]})
    assert m.stats["tree_rules"] == 1
    batch = [Paper(id="1", title="a c e g i k"), Paper(id="2", title="b d f h j l"),
             Paper(id="3", title="a c e g i"), Paper(id="4", title="a c e g i l z")]
    got = m.match(batch)
    assert [pm.paper.id for pm in got["s"]] == ["1", "2"]
    assert got == direct({"s": [rule]}, batch)  # explanations too


def test_multi_word_rules_need_every_word_in_the_same_paper() -> None:
    m = Matcher({"s": ["model merging", "model -merging"]})
    assert m.stats["multi_clauses"] == 1
    batch = [Paper(id="1", title="model"), Paper(id="2", title="merging"),
             Paper(id="3", title="model merging")]
    got = m.match(batch)["s"]
    assert [(pm.paper.id, [r.index for r in pm.rules]) for pm in got] == [("1", [1]), ("3", [0])]


# --- dedupe, exclude, explanations ---------------------------------------------------------


def test_identical_rules_are_parsed_and_evaluated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = R.parse

    def counting(text: str) -> R.Node:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(R, "parse", counting)
    subs = {i: ["diffusion", '"noisy labels"', "Diffusion"] for i in range(1000)}
    subs[1000] = ["noisy-labels"]
    m = Matcher(subs)
    assert sorted(calls) == sorted(['"noisy labels"', "Diffusion", "diffusion", "noisy-labels"])
    assert m.stats == {"subscribers": 1001, "rule_texts": 4, "rules": 2, "atoms": 2,
                       "multi_clauses": 0, "tree_rules": 0}
    got = m.match([Paper(id="1", title="Diffusion with noisy labels")])
    assert len(got) == 1001
    assert [r.rule for r in got[7][0].rules] == ["diffusion", '"noisy labels"', "Diffusion"]
    assert got[1000][0].rules == (RuleMatch(0, "noisy-labels", (Hit("title", '"noisy labels"'),)),)


def test_exclude_skips_papers_already_sent() -> None:
    batch = [Paper(id="arxiv:1", title="graph"), Paper(id="arxiv:2", title="graph",
                                                       aliases=("doi:10/2",)),
             Paper(id="arxiv:3", title="graph")]
    subs = {"a": ["graph"], "b": ["graph"], "c": ["graph"]}
    got = Matcher(subs).match(batch, exclude={"a": {"arxiv:1"}, "b": ["doi:10/2", "arxiv:3",
                                                                       "arxiv:1"],
                                              "nobody": {"arxiv:1"}})
    assert [pm.paper.id for pm in got["a"]] == ["arxiv:2", "arxiv:3"]
    assert "b" not in got  # everything was sent already, one by its alias
    assert [pm.paper.id for pm in got["c"]] == ["arxiv:1", "arxiv:2", "arxiv:3"]


def test_result_shape_and_order() -> None:
    batch = [Paper(id="1", title="Graph networks", abstract="noisy labels"),
             Paper(id="2", title="Video"), Paper(id="3", title="graph")]
    got = Matcher({"x": ["video"], "y": ["graph", "nothing here", "network*"],
                   "z": ["absent"]}).match(batch)
    assert list(got) == ["x", "y"]  # only subscribers with a match, in input order
    assert [pm.paper.id for pm in got["y"]] == ["1", "3"]
    assert [r.index for r in got["y"][0].rules] == [0, 2]
    assert got["y"][0].why == 'rule 1 "graph": title graph; rule 3 "network*": title networks'


def test_explanation_text() -> None:
    paper = Paper(id="1", title="Robust training", abstract="Learning with noisy labels.")
    got = match_rules(["graph", "noisy-labels -survey"], [paper])
    assert got[0].rules[0].explain() == 'rule 2 "noisy-labels -survey": abstract "noisy labels"'


def test_explanation_text_of_a_phrase_rule_as_in_the_spec() -> None:
    paper = Paper(id="1", title="Robust training", abstract="Learning with noisy labels.")
    got = match_rules(["graph", '"noisy labels"'], [paper])
    assert got[0].rules[0].explain() == 'rule 2 "noisy labels": abstract "noisy labels"'


def test_match_rules_for_one_subscriber() -> None:
    batch = [Paper(id="1", title="Pruning"), Paper(id="2", title="Merging")]
    assert [pm.paper.id for pm in match_rules(["prun*"], batch)] == ["1"]
    assert match_rules([], batch) == []
    assert match_rules(["zzz"], batch) == []


def test_invalid_rule_names_the_rule() -> None:
    with pytest.raises(RuleError) as info:
        Matcher({"s": ["ok", "title:(graph OR gnn*"]})
    assert str(info.value) == 'rule "title:(graph OR gnn*": unbalanced "(" at column 7'
    assert info.value.column == 7


def test_empty_inputs() -> None:
    assert Matcher({}).match([Paper(id="1", title="x")]) == {}
    assert Matcher({"s": ["x"]}).match([]) == {}


def test_fast_constructors_build_the_same_values() -> None:
    from digestd.match import plan as M

    hits = (Hit("title", "x"),)
    rm = M._new_rule_match(1, "rule", hits)
    assert type(rm) is RuleMatch
    assert rm == RuleMatch(1, "rule", hits)
    assert hash(rm) == hash(RuleMatch(1, "rule", hits))
    paper = Paper(id="1", title="x")
    assert M._new_paper_match(paper, (rm,)) == PaperMatch(paper, (rm,))
    with pytest.raises(AttributeError):  # still frozen
        rm.index = 2  # type: ignore[misc]
