"""The rule language against ../shared/RULES.md: examples, errors, traps, limits, explanations."""

from __future__ import annotations

import pytest

from digestd.errors import RuleError
from digestd.models import Hit, Paper
from digestd.rules import (
    MAX_DEPTH,
    MAX_LENGTH,
    Phrase,
    Prefix,
    Word,
    canonical,
    evaluate,
    explain,
    parse,
    validate,
)


def paper(title: str = "", abstract: str = "", authors: tuple[str, ...] = (),
          categories: tuple[str, ...] = (), source: str = "") -> Paper:
    return Paper(id="arxiv:0000.00000", title=title, abstract=abstract, authors=authors,
                 categories=categories, source=source)


def matches(rule: str, p: Paper) -> bool:
    return evaluate(parse(rule), p)


# --- every row of the example table --------------------------------------------------------

EXAMPLES = [
    # (rule, paper that matches, paper that does not)
    ("diffusion", paper("Latent DIFFUSION models"), paper("Diffusive processes")),
    ("diffusion", paper(abstract="We use Diffusion."), paper("Diffusions")),
    ('"noisy labels"', paper(abstract="learning with noisy labels"),
     paper(abstract="labels are noisy; noisy, unreliable labels")),
    ("prun*", paper("Pruning LLMs"), paper("Sparse LLMs")),
    ("prun*", paper(abstract="we pruned it"), paper(abstract="a pru-ne, a spruce, no")),
    ("model merging", paper("Merging", "one model"), paper("Model soups")),
    ("merging OR merge", paper("We merge"), paper("Merger")),
    ("merging OR merge", paper("Merging"), paper("Fusion")),
    ("anomaly -video", paper("Anomaly detection in logs"), paper("Video anomaly detection")),
    ("title:(graph OR gnn*)", paper("GNNs for graphs"), paper("Graphs", "a graph neural net")),
    ("title:(graph OR gnn*)", paper("A graph"), paper("Graphon")),
    ("author:hinton", paper("x", authors=("Geoffrey E. Hinton",)),
     paper("Hinton's method", authors=("Yann LeCun",))),
    ("category:cs.LG", paper("x", categories=("stat.ML", "cs.LG")),
     paper("x", categories=("cs.LGX", "cs.CL"))),
    ("category:cs.*", paper("x", categories=("cs.CV",)), paper("x", categories=("stat.ML",))),
    ("multi-task", paper("Multi-task learning"), paper("Multitask learning")),
    ("multi-task", paper("multi task learning"), paper("task multi")),
]


@pytest.mark.parametrize(("rule", "yes", "no"), EXAMPLES)
def test_example_table(rule: str, yes: Paper, no: Paper) -> None:
    assert matches(rule, yes)
    assert not matches(rule, no)


def test_prefix_matches_the_listed_words() -> None:
    for word in ("pruning", "pruned", "prune"):
        assert matches("prun*", paper(word))


def test_anomaly_minus_video_needs_anomaly() -> None:
    assert not matches("anomaly -video", paper("Nothing relevant"))


# --- errors: message and column ------------------------------------------------------------

FIELDS_HINT = "(fields: title, abstract, author, category, source)"
# the minimum length said (rules.MIN_PREFIX)
TOO_SHORT = 'is too short: at least 2 letters or digits before the "*"'

ERRORS = [
    ("title:(graph OR gnn*", 'unbalanced "(" at column 7', 7),
    ("a (b (c)", 'unbalanced "(" at column 3', 3),
    ("titel:x", f'unknown field "titel" at column 1 {FIELDS_HINT}', 1),
    ("gnn title:a titel:b", f'unknown field "titel" at column 13 {FIELDS_HINT}', 13),
    ("gnn a*", f'prefix "a*" {TOO_SHORT} at column 5', 5),
    ("ab a*", f'prefix "a*" {TOO_SHORT} at column 4', 4),
    ("*", f'prefix "*" {TOO_SHORT} at column 1', 1),
    ("x title:é*", f'prefix "é*" {TOO_SHORT} at column 9', 9),
    ("", "empty rule", None),
    ("   \t", "empty rule", None),
    ("a b)", 'unbalanced ")" at column 4', 4),
    (")a(", 'unbalanced ")" at column 1', 1),
    ('a "noisy labels', "unbalanced quote at column 3", 3),
    ('"noisy lab*"', 'phrase "noisy lab*" may not contain "*" at column 1', 1),
    ("a*b", 'misplaced "*" in "a*b" at column 1', 1),
    ("prun**", 'misplaced "*" in "prun**" at column 1', 1),
    ("multi-*", 'misplaced "*" in "multi-*" at column 1', 1),
    ("a OR", 'nothing after "OR" at column 3', 3),
    ("OR a", 'nothing before "OR" at column 1', 1),
    ("a AND", 'nothing after "AND" at column 3', 3),
    ("AND a", 'nothing before "AND" at column 1', 1),
    ("a OR OR b", '"OR" right after "OR" at column 6: a word, a "phrase" or ( must come '
     'between', 6),
    ("a AND OR b", '"OR" right after "AND" at column 7: a word, a "phrase" or ( must come '
     'between', 7),
    ("(a OR) b", 'nothing after "OR" at column 4', 4),
    ("a (OR b)", 'nothing before "OR" at column 4', 4),
    ("a NOT", 'nothing after "NOT" at column 3', 3),
    ("a - b", 'nothing after "-" at column 3', 3),
    ("a ()", "empty parentheses at column 3", 3),
    ("title:", 'nothing after "title:" at column 1', 1),
    ("title: x", 'nothing after "title:" at column 1', 1),
    ("title:-x", '"-" goes before the field: "-title:x" at column 1', 1),
    ("author:(a title:b)", 'field "title:" inside "author:" at column 11', 11),
    ('x ""', "empty phrase at column 3", 3),
    ("x &", '"&" has no letters or digits at column 3', 3),
    ("-video", "rule has only negations: add a word the paper must contain", 1),
    ("NOT video -audio", "rule has only negations: add a word the paper must contain", 1),
    ("-(a b)", "rule has only negations: add a word the paper must contain", 1),
    ("-video OR diffusion",
     "only negations at column 1: each side of OR needs a word the paper must contain", 1),
    ("a OR -(b c)",
     "only negations at column 6: each side of OR needs a word the paper must contain", 6),
]


@pytest.mark.parametrize(("rule", "message", "column"), ERRORS)
def test_errors(rule: str, message: str, column: int | None) -> None:
    with pytest.raises(RuleError) as info:
        parse(rule)
    assert str(info.value) == message
    assert info.value.column == column
    with pytest.raises(RuleError):
        validate(rule)


def test_valid_rule_validates() -> None:
    assert validate("title:(graph OR gnn*) -survey") is None


# --- traps ---------------------------------------------------------------------------------


def test_no_substring_matches() -> None:
    assert not matches("net", paper("Neural network"))
    assert not matches("net", paper(abstract="subnet internet"))
    assert matches("net", paper("A net of nets"))


def test_no_stemming() -> None:
    assert not matches("network", paper("Graph networks"))
    assert matches("network*", paper("Graph networks"))


def test_case_and_accents() -> None:
    assert matches("Résumé", paper("RESUME parsing"))
    assert matches("resume", paper("Résumé parsing"))
    assert matches("author:erdos", paper("x", authors=("Paul Erdős",)))
    assert matches("ﬁne", paper("fine-tuning"))  # NFKD: the ligature is "fi"


def test_words_are_letters_and_digits() -> None:
    assert matches('"self supervised"', paper("Self-Supervised learning"))
    assert matches("GPT-4o", paper("Evaluating gpt 4o"))
    assert not matches("GPT-4o", paper("GPT-4 omni"))
    assert matches('"o n 2"', paper("An O(n^2) algorithm"))
    assert parse("GPT-4o") == Phrase(None, ("gpt", "4o"))


def test_phrase_never_spans_title_into_abstract() -> None:
    p = paper("Learning with noisy", "labels are everywhere")
    assert not matches('"noisy labels"', p)
    assert not matches("noisy-labels", p)
    assert matches("noisy labels", p)  # AND of two words may use both fields


def test_phrase_fits_in_one_author_name() -> None:
    p = paper("x", authors=("Ada Smith", "John Doe"))
    assert not matches('author:"smith john"', p)
    assert matches('author:"john doe"', p)
    assert matches("author:(smith john)", p)  # two words, any names
    assert not matches('"john doe"', p)  # no field: title and abstract only


def test_precedence() -> None:
    # a b OR c  ==  (a b) OR c
    assert canonical(parse("a b OR c")) == canonical(parse("(a b) OR c"))
    assert matches("a b OR c", paper("c"))
    assert not matches("a b OR c", paper("a"))
    assert not matches("a (b OR c)", paper("c"))
    # -a b  ==  (NOT a) AND b, not NOT (a b)
    assert matches("-a b", paper("b"))
    assert not matches("-a b", paper("a b"))
    assert not matches("-a b", paper("a"))
    assert canonical(parse("NOT a b")) == "-a b"
    assert canonical(parse("a AND b OR c AND d")) == "a b OR c d"
    assert canonical(parse("a OR b c OR d")) == "a OR b c OR d"
    assert canonical(parse("(a OR b) (c OR d)")) == "(a OR b) (c OR d)"


def test_lower_case_or_and_not_are_words() -> None:
    assert canonical(parse("this or that")) == "this or that"
    assert not matches("this or that", paper("this that"))
    assert matches("this or that", paper("this or that"))
    assert matches("a and b", paper("a and b"))
    assert not matches("a and b", paper("a b"))
    assert matches("x not y", paper("x not y"))
    assert matches("a Or b", paper("a or b"))


def test_not_and_and_operators() -> None:
    assert matches("anomaly NOT video", paper("anomaly"))
    assert not matches("anomaly NOT video", paper("video anomaly"))
    assert matches("anomaly AND video", paper("video anomaly"))
    assert not matches("anomaly AND video", paper("anomaly"))
    assert matches("NOT NOT a", paper("a"))
    assert canonical(parse("--a")) == "a"
    assert matches("a -(b OR c)", paper("a d"))
    assert not matches("a -(b OR c)", paper("a c"))
    assert matches("a -(b c)", paper("a b"))
    assert not matches("a -(b c)", paper("a b c"))
    assert matches("a AND(b)", paper("a b"))


def test_whitespace_around_operators_is_free() -> None:
    assert canonical(parse("  (a   OR\tb)\n c ")) == canonical(parse("(a OR b) c"))


def test_fields_on_groups() -> None:
    assert canonical(parse("title:(graph OR gnn*)")) == "title:graph OR title:gnn*"
    assert matches("title:(graph neural)", paper("Neural graph"))
    assert not matches("title:(graph neural)", paper("Graph", "neural"))
    assert matches('abstract:("noisy labels" -survey)', paper("Survey", "noisy labels"))
    assert not matches('abstract:("noisy labels" -survey)', paper("x", "noisy labels survey"))
    assert matches("title:(a title:b)", paper("a b"))  # the same field again is harmless
    assert matches("category:(cs.LG OR stat.*)", paper("x", categories=("stat.ML",)))
    assert matches("author:(hinton OR lecun)", paper("x", authors=("Y. LeCun",)))


def test_field_names() -> None:
    assert parse("TITLE:Graph") == Word("title", "graph")
    assert parse("Abstract:gnn*") == Prefix("abstract", "gnn")
    assert matches("abstract:graph", paper("x", "a graph"))
    assert not matches("abstract:graph", paper("graph", "x"))
    assert not matches("title:graph", paper("x", "a graph"))


def test_category_is_the_whole_value() -> None:
    p = paper("x", categories=("cs.LG",))
    assert matches("category:cs.lg", p)
    assert matches("category:CS.LG", p)
    assert matches('category:"cs.LG"', p)
    assert not matches("category:cs", p)
    assert not matches("category:lg", p)
    assert not matches("cs.LG", p)  # no field: title and abstract
    assert matches("category:cs.L*", p)
    assert not matches("category:cs.*", paper("x", categories=("q-bio.CS",)))
    assert not matches("category:cs.*", paper("x", categories=("csx.LG",)))


def test_source_is_the_whole_value() -> None:
    p = paper("x", source="arxiv-cs")
    assert matches("source:arxiv-cs", p)
    assert matches("source:ARXIV-CS", p)
    assert not matches("source:arxiv", p)
    assert not matches("source:cs", p)
    assert matches('source:"HF Daily" x', paper("x", source="hf  daily"))
    assert not matches("source:arxiv-cs", paper("arxiv cs"))


def test_prefix_phrase_from_a_bare_term() -> None:
    assert parse("self-sup*") == Phrase(None, ("self", "sup"), prefix=True)
    assert matches("self-sup*", paper("Self-supervised"))
    assert not matches("self-sup*", paper("Self reported superb"))
    assert not matches("self-sup*", paper("supervised self"))


def test_prefix_length_counts_letters_and_digits() -> None:
    assert parse("ab*") == Prefix(None, "ab")
    assert parse("4o*") == Prefix(None, "4o")
    assert parse("Éc*") == Prefix(None, "ec")


def test_canonical_form_dedupes_spellings() -> None:
    same = ["Noisy  Labels", "noisy AND labels", "(noisy labels)", "NOISY (labels)"]
    assert len({canonical(parse(r)) for r in same}) == 1
    assert canonical(parse('"noisy labels"')) == canonical(parse("noisy-labels"))
    assert canonical(parse('"diffusion"')) == "diffusion"


@pytest.mark.parametrize("rule", [
    "a b OR c", "-a b", "title:(graph OR gnn*)", "category:cs.*", "category:cs.LG",
    'source:"hf daily"', "self-sup*", "-(a OR b) c", "a (b OR -c d)", "author:\"geoffrey hinton\"",
    "this or that", "x -(y -z)",
])
def test_canonical_form_parses_back_to_itself(rule: str) -> None:
    text = canonical(parse(rule))
    assert parse(text) == parse(rule)
    assert canonical(parse(text)) == text


# --- limits --------------------------------------------------------------------------------


def test_length_limit() -> None:
    ok = " ".join(["abc"] * 250)[:MAX_LENGTH - 1] + "x"
    assert len(ok) == MAX_LENGTH
    validate(ok)
    with pytest.raises(RuleError) as info:
        parse(ok + " y")
    assert str(info.value) == "rule is too long: 1002 characters (limit 1000)"


def test_depth_limit() -> None:
    validate("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    deep = "x " + "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(RuleError) as info:
        parse(deep)
    assert str(info.value) == "nesting deeper than 20 at column 23"
    assert info.value.column == 23


def test_long_chain_of_negations_does_not_blow_the_stack() -> None:
    rule = "a " + "-" * 996 + "b"
    assert len(rule) <= MAX_LENGTH
    assert canonical(parse(rule)) == "a b"
    assert canonical(parse("a " + "NOT " * 249 + "b")) == "a -b"


# --- explanations --------------------------------------------------------------------------


def test_explain_phrase_and_fields() -> None:
    p = paper("Learning with noisy labels", "Noisy labels hurt.", authors=("G. Hinton",),
              categories=("cs.LG",))
    assert explain(parse('"noisy labels"'), p) == (
        Hit("title", '"noisy labels"'), Hit("abstract", '"noisy labels"'))
    assert explain(parse("author:hinton"), p) == (Hit("author", "hinton"),)
    assert explain(parse("category:cs.*"), p) == (Hit("category", "cs.LG"),)
    assert str(Hit("abstract", '"noisy labels"')) == 'abstract "noisy labels"'


def test_explain_shows_only_what_made_it_match() -> None:
    p = paper("Pruning transformers", "We prune heads. No video here.")
    assert explain(parse("prun*"), p) == (Hit("title", "pruning"), Hit("abstract", "prune"))
    assert explain(parse("(pruning graph) OR heads"), p) == (Hit("abstract", "heads"),)
    assert explain(parse("transformers -video"), p) == ()  # it does not match
    assert explain(parse("transformers -audio"), p) == (Hit("title", "transformers"),)
    assert explain(parse("heads OR prun*"), p) == (Hit("abstract", "heads"),
                                                   Hit("title", "pruning"),
                                                   Hit("abstract", "prune"))
    assert explain(parse("heads heads"), p) == (Hit("abstract", "heads"),)
