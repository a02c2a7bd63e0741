"""TeX in arXiv titles and abstracts, a sixth look: the conference styles' shorthands (\\eg,
\\ie, \\etal), siunitx's quantities, the optional arguments of macros nobody defined, \\verb
with spaces, and the "&" and "\\\\" of aligned environments (digestd/sources/tex/)."""

import pytest

from digestd.sources.arxiv_rss import parse_arxiv_rss
from digestd.sources.clean import tex_to_text


@pytest.mark.parametrize("raw, expect", [
    # shapes of real abstracts: the shorthand used to vanish and leave "(, depth"
    (r"other modalities (\eg, depth, thermal, and event data)",
     "other modalities (e.g., depth, thermal, and event data)"),
    (r"sets of parameters (\eg adapters), and", "sets of parameters (e.g. adapters), and"),
    (r"as shown by Smith \etal. We then", "as shown by Smith et al. We then"),
    (r"Smith \etal, and Doe \etal{} showed", "Smith et al., and Doe et al. showed"),
    (r"robust \wrt noise, \ie\ the labels", "robust w.r.t. noise, i.e. the labels"),
    (r"(\cf Table 2)", "(cf. Table 2)"),
    (r"samples are \iid\ draws", "samples are i.i.d. draws"),
    (r"ours \vs the baseline", "ours vs. the baseline"),
])
def test_conference_shorthands(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"a latency of \SI{5}{\milli\second} per step", "a latency of 5 ms per step"),
    (r"\qty{3}{GeV} jets", "3 GeV jets"),
    (r"\SI{9.81}{\metre\per\second\squared}", "9.81 m/s²"),
    (r"an area of \SI{2}{\square\metre}", "an area of 2 m²"),
    (r"\SIrange{1}{5}{\kilo\metre} away", "1–5 km away"),
    (r"\qtyrange{10}{20}{\giga\byte}", "10–20 GB"),
    (r"\SI{50}{\percent} of the runs", "50% of the runs"),
    (r"a \ang{30} rotation", "a 30° rotation"),
    (r"in \si{\kilo\gram} units", "in kg units"),
    (r"\num{1e5} samples", "1e5 samples"),
    (r"\numrange{3}{7} layers", "3–7 layers"),
    (r"\SI[round-mode=places]{3.14}{\radian}", "3.14 rad"),
    (r"\SI{5}{\micro\metre} thick", "5 µm thick"),
    (r"at \SI{300}{\kelvin} and \SI{1}{\tera\hertz}", "at 300 K and 1 THz"),
])
def test_siunitx_quantities(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    # a macro no package defines here: its optional argument is how, its braced one what
    (r"We use \mymodel[large]{Transformer} here.", "We use Transformer here."),
    (r"\todo*[inline]{check} this", "check this"),
    # sized delimiters and the macros the converter knows keep their brackets
    (r"$\left[ a \right]$ and b", "[a] and b"),
    (r"$\left[ a \right]{b}$ x", "[a]b x"),
    (r"$\bigl[ a \bigr]$ x", "[a] x"),
    (r"$\sqrt[3]{x}$ grows", "∛x grows"),
    (r"as shown \citep[p.~3]{doe} here", "as shown here"),
])
def test_optional_arguments_of_unknown_macros(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"the flag \verb|--max steps| is new", "the flag --max steps is new"),
    (r"call \verb+x_y+ and \verb|a b c| twice", "call x_y and a b c twice"),
    (r"use \verb|x| now", "use x now"),
    # a delimiter that never comes again is a character, and the text goes on
    (r"A \verb|never closed and more text", "A |never closed and more text"),
])
def test_verb_with_spaces(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"\begin{align} a &= b \\ c &= d \end{align} done", "a = b; c = d done"),
    (r"$\begin{aligned} x &= 1 \\ y &= 2 \\ \end{aligned}$ ok", "x = 1; y = 2 ok"),
    (r"$f(x) = \begin{cases} 1 & x>0 \\ 0 & \text{otherwise} \end{cases}$",
     "f(x) = 1 x>0; 0 otherwise"),
    (r"$A = \begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}$", "A = [ 1 0; 0 1 ]"),
    (r"$\begin{array}{cc} a & b \end{array}$ x", "[ a b ] x"),
    # outside them "&" is a character, escaped or not
    (r"R&D and $x$ and A\&B", "R&D and x and A&B"),
])
def test_aligned_environments(raw, expect):
    assert tex_to_text(raw) == expect


def test_shorthands_and_units_through_the_arxiv_rss_source():
    feed = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>
<item><title>Pruning at \\SI{5}{\\milli\\second} a layer</title>
<link>https://arxiv.org/abs/2512.00001</link>
<description>arXiv:2512.00001v1 Announce Type: new
Abstract: Unlike prior pruning (\\eg, magnitude pruning), we keep \\SI{90}{\\percent} of the
accuracy, \\ie\\ more than Doe \\etal.</description>
<guid isPermaLink="false">oai:arXiv.org:2512.00001v1</guid>
<dc:creator>Ada Example</dc:creator>
</item></channel></rss>"""
    (paper,), _ = parse_arxiv_rss(feed, source="arxiv-cs")
    assert paper.title == "Pruning at 5 ms a layer"
    assert paper.abstract == ("Unlike prior pruning (e.g., magnitude pruning), we keep 90% of "
                              "the accuracy, i.e. more than Doe et al.")


@pytest.mark.parametrize("raw, expect", [
    (r"splitting \ce{H2O} and \ce{CO2}", "splitting H₂O and CO₂"),
    (r"\ce{SO4^2-} ions", "SO₄²⁻ ions"),
    (r"\ce{2H2 + O2 -> 2H2O}", "2H₂ + O₂ → 2H₂O"),
    (r"\ce{Na+ + Cl- -> NaCl}", "Na⁺ + Cl⁻ → NaCl"),
    (r"\ce{Fe^{3+}} and \ce{^{13}C}", "Fe³⁺ and ¹³C"),
    (r"\ce{N2 <=> 2N}", "N₂ ⇌ 2N"),
    (r"the garnet \ce{Li7La3Zr2O12}", "the garnet Li₇La₃Zr₂O₁₂"),
    (r"\ce{Ca(OH)2} at \pu{123 kJ/mol}", "Ca(OH)₂ at 123 kJ/mol"),
])
def test_mhchem_formulas(raw, expect):
    assert tex_to_text(raw) == expect
