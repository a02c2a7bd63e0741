"""TeX macros an abstract defines for itself (\\newcommand, \\def, \\DeclareMathOperator): the
definition goes, each use reads as what it stands for (digestd/sources/tex/defined.py)."""

import time

import pytest

from digestd.sources.clean import tex_to_text


@pytest.mark.parametrize("raw, expect", [
    (r"We define \newcommand{\R}{\mathbb{R}} a map $f:\R^n\to\R$ and show it is convex.",
     "We define a map f:ℝⁿ→ℝ and show it is convex."),
    (r"\def\eps{\varepsilon} For all $\eps>0$ we bound the error.",
     "For all ε>0 we bound the error."),
    # a method's name, the way papers write it: it used to vanish ("We propose , and")
    (r"\newcommand{\method}{\textsc{FastNet}} We propose \method{}, and \method\ beats it.",
     "We propose FastNet, and FastNet beats it."),
    (r"\newcommand*{\ours}{\textsc{Ours}}\newcommand{\base}{\ours-Base} \base{} beats \ours.",
     "Ours-Base beats Ours."),
    (r"\newcommand\pair[2]{(#1, #2)} The pair $\pair{a}{b}$ and $\pair xy$.",
     "The pair (a, b) and (x, y)."),
    (r"\newcommand{\bb}[1][x]{\mathbf{#1}} Take $\bb$ and $\bb[y]$.", "Take x and y."),
    (r"\def\norm#1{\|#1\|} bound $\norm{v}$", "bound ‖v‖"),
    (r"\DeclareMathOperator{\Tr}{Tr} We bound $\Tr(A)$.", "We bound Tr(A)."),
    (r"\renewcommand{\vec}[1]{\boldsymbol{#1}} Let $\vec{x}$ be given.", "Let x be given."),
])
def test_a_macro_the_abstract_defines_reads_as_what_it_stands_for(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, kept", [
    (r"\def\a{\a\a} loop \a end", "loop"),  # uses itself: TeX never ends either
    (r"\newcommand{\b}{\b x} self \b.", "self"),
    (r"\newcommand{\broken}{never closed, and the rest of the text", "rest of the text"),
    (r"\newcommand{\x}[2]{#1#2} used without its arguments: \x", "without its arguments"),
    (r"\newcommand", ""),
    (r"\def", ""),
])
def test_broken_or_runaway_definitions_lose_no_text_and_end(raw, kept):
    got = tex_to_text(raw)
    assert kept in got and len(got) <= 4 * len(raw) + 1000


def test_a_definition_that_doubles_at_every_level_stays_small_and_fast():
    raw = r"\def\a{xx}" + "".join(
        rf"\def\{c}{{\{p}\{p}}}" for p, c in zip("abcdefghijklmnopqrstuvwxy",
                                                "bcdefghijklmnopqrstuvwxyz")) + r" $\z$ end"
    started = time.process_time()
    got = tex_to_text(raw)
    assert time.process_time() - started < 2
    assert got.endswith("end") and len(got) <= 4 * len(raw) + 1000
