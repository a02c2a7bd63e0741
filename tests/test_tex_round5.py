"""TeX in arXiv titles, abstracts and author names, a fifth look: signs stacked over others,
transposes, scripts without dollars, norms, the symbols and macros pylatexenc printed nothing
for, references, broken TeX, and TeX through the arXiv RSS and API sources
(digestd/sources/tex/, clean.py, mathml.py, arxiv_api.py)."""

import random

import pytest

from digestd.sources.arxiv_api import parse_api_feed
from digestd.sources.arxiv_rss import parse_arxiv_rss
from digestd.sources.clean import clean_name, clean_title, split_authors, tex_to_text
from digestd.sources.mathml import math_to_text
from digestd.text import normalize


@pytest.mark.parametrize("raw, expect", [
    # a sign Unicode has with that mark over it is that one character
    (r"$x \stackrel{\text{def}}{=} y$", "x ≝ y"),
    (r"$x \overset{\mathrm{def}}{=} y$", "x ≝ y"),
    (r"$a \stackrel{?}{=} b$", "a ≟ b"),
    (r"$\overset{\triangle}{=}$", "≜"),
    # a mark over one letter is its combining character
    (r"$\overset{\circ}{A}$", "Å"),
    # else the part over or under is the base's script, as MathML's <mover>/<munder> read
    (r"$\stackrel{a}{b}$", "bᵃ"),
    (r"$X \overset{d}{\to} Y$", "X →ᵈ Y"),
    (r"$A \overset{!}{=} B$", "A =^! B"),
    (r"$\underset{\theta}{\min}\, L$", "min_θ L"),
    (r"$\underset{x}{\arg\min} f$", "arg minₓ f"),
    (r"$\underset{x \in X}{\arg\max}\ f(x)$", "arg max_(x ∈ X) f(x)"),
    (r"$A \xrightarrow{f} B$", "A →ᶠ B"),
    (r"$A \xrightarrow[g]{f} B$", "A →_gᶠ B"),
])
def test_signs_stacked_over_others(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    # every spelling of a transpose is "ᵀ", as \top already was
    (r"$X^T$", "Xᵀ"), (r"$W^{T}$", "Wᵀ"), (r"$A^\top$", "Aᵀ"), (r"$X^\intercal$", "Xᵀ"),
    (r"$A^{\mathsf{T}}$", "Aᵀ"), (r"$A^{\rm T}$", "Aᵀ"), (r"$A^{\intercal}$", "Aᵀ"),
    (r"$A^\mathsf{T}$", "Aᵀ"), (r"$A^{\mkern-1.5mu\mathsf{T}}$", "Aᵀ"),
    (r"$A^{-T}$ and $A^{-\top}$", "A⁻ᵀ and A⁻ᵀ"),
    # a superscript without braces is one character: X^TX is Xᵀ X, not X^(TX)
    (r"$X^TX$", "XᵀX"), (r"$W^{T}W$", "WᵀW"), (r"$Q^TQ = I$", "QᵀQ = I"),
    (r"$(X^TX)^{-1}X^Ty$", "(XᵀX)⁻¹Xᵀy"),
    (r"$\mathbf{X}^{\mathsf{T}}\mathbf{X}$", "XᵀX"),
    (r"$x^T A x$", "xᵀ A x"),
    (r"$\boldsymbol{\theta}^T \mathbf{x}$", "θᵀ x"),
    # another capital letter has no superscript of its own: TeX's, one character long
    (r"$V^HV$", "V^H V"), (r"$2^N$", "2^N"), (r"$x_Ty$", "x_T y"),
])
def test_transposes_read_alike(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("mathml, expect", [
    ("<msup><mi>X</mi><mi>T</mi></msup>", "Xᵀ"),
    ("<msup><mi>A</mi><mo>⊤</mo></msup>", "Aᵀ"),
    ("<msup><mi>A</mi><mrow><mo>-</mo><mi>T</mi></mrow></msup>", "A⁻ᵀ"),
    ("<msup><mi>x</mi><mi>n</mi></msup>", "xⁿ"),
])
def test_a_journal_transpose_reads_as_the_arxiv_one(mathml, expect):
    assert math_to_text(f"<math>{mathml}</math>") == expect


@pytest.mark.parametrize("raw, expect", [
    # TeX's scripts written without dollars keep together as they do in math; they stay in
    # TeX's form (only math is set in Unicode's scripts)
    (r"scales as n^{1/3} overall", "scales as n^(1/3) overall"),
    (r"\sqrt{n} and n^{1/2}", "√(n) and n^(1/2)"),
    (r"e^{-x} decay", "e^(-x) decay"),
    (r"\mathbb{R}^{n \times d}", "ℝ^(n × d)"),
    (r"in O(n^{2}) time", "in O(n^2) time"),
    (r"T_{c} = 90 K and T_{\rm c}", "T_c = 90 K and T_c"),
    (r"a_{i,j} entries", "a_i,j entries"),
    # \( \), \[ \] and math environments are math
    (r"\(x^{2} + y^{2}\) and \[ a_{1} + b \]", "x² + y² and a₁ + b"),
    (r"\begin{equation} x^2 + y_{1} \end{equation} text x^2 after", "x² + y₁ text x^2 after"),
    # plain text that only looks like a script stays as written
    ("a_b and x^2 + y_1 and 2^10", "a_b and x^2 + y_1 and 2^10"),
    ("snake_case and my_var_name", "snake_case and my_var_name"),
    (r"\(a_b\)", "a_b"),
])
def test_scripts_outside_dollars(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"$\| x \|$", "‖x‖"),
    (r"$\|x\|_2$", "‖x‖₂"),
    (r"$\lVert x \rVert$", "‖x‖"),
    (r"$\left\| x - y \right\|$", "‖x - y‖"),
    (r"$\Vert x\Vert$ and $\Vert x \Vert_\infty$", "‖x‖ and ‖x‖_∞"),
    (r"$\| \nabla f(x) \|^2$", "‖∇f(x)‖²"),
    (r"$\| A - B \|_{F}$", "‖A - B‖_F"),
    (r"$\| x \| \le 1$", "‖x‖ ≤ 1"),
    (r"$\mathbb{E}_{x \sim p} \| f(x) \|^2$", "E_(x ∼ p) ‖f(x)‖²"),
    (r"$x = \|y\|$ and $\alpha \|x\|$", "x = ‖y‖ and α ‖x‖"),
    # single bars pair up the same way; a conditional's bar keeps its spaces
    (r"$| x |$ and $|a| + |b|$ and $\left| x \right|$", "|x| and |a| + |b| and |x|"),
    (r"$P(A | B) + P(C | D)$", "P(A | B) + P(C | D)"),
    (r"$\{x \mid x > 0\}$", "{x | x > 0}"),
    # nor a space just inside set braces or angle brackets; a relation after them is spaced
    (r"$\{ x : x > 0 \}$ and $\{ x \} \cup A$", "{x : x > 0} and {x} ∪ A"),
    (r"$\langle x \rangle \le 1$", "⟨x⟩ ≤ 1"),
    (r"$\lbrack a \rbrack$", "[a]"),
])
def test_norms_and_bars_hold_their_content(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r'Bj\"{o}rn {\"O}zt\"urk', "Björn Öztürk"),
    (r'M\"uller, M{\"u}ller, M\"{u}ller', "Müller, Müller, Müller"),
    (r"Mar\'{\i}a, Mar\'ia, Mar{\'\i}a, Mar\'{i}a", "María, María, María, María"),
    (r"Fran\c{c}ois, Fran\c cois", "François, François"),
    (r"\v{S}koda, \v{s}tefan, \v Cech", "Škoda, štefan, Čech"),
    (r"Erd\H{o}s", "Erdős"), (r"\k{a}\k{e}", "ąę"), (r"\r{a}", "å"),
    (r"Stra\ss e, Gau\ss{}, {\ss}", "Straße, Gauß, ß"),
    (r"S\o rensen, S{\o}rensen, \O ystein, {\O}stergaard",
     "Sørensen, Sørensen, Øystein, Østergaard"),
    (r"\aa{}se, \AA se, {\AA}ngstr{\"o}m", "åse, Åse, Ångström"),
    (r"\ae{}ther, \AE sir", "æther, Æsir"),
    (r"\l{}ukasz, \L ukasz, Przemys{\l}aw, Przemys\l aw", "łukasz, Łukasz, Przemysław, Przemysław"),
    (r"Do\u{g}an", "Doğan"), (r"\={a} \=a", "ā ā"), (r"\.{z} \.Z", "ż Ż"),
    (r"\~{n} Mu\~noz Mu{\~n}oz", "ñ Muñoz Muñoz"),
    (r"Tom\'a\v{s} Ji\v{r}\'{\i}", "Tomáš Jiří"),
    (r"\c{C}a\u{g}r\i{} \"{O}zt\"{u}rk", "Çağrı Öztürk"),
    (r"\'{E}cole, \`{A}, \^{\i}, \"{\i}", "École, À, î, ï"),
    (r"\oe uvre", "œuvre"), (r"\t{oo}", "o͡o"),
])
def test_accents_in_every_form(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"Bj\"{o}rn Inventsson$^{1}$, J\'{a}n Fiktiv\v{c}ek$^{1,2}$, Ana Mu\~{n}oz$^{\dagger}$",
     ("Björn Inventsson", "Ján Fiktivček", "Ana Muñoz")),
    (r"Anna Smith${}^{1}$, Bob Jones${}^{2}$", ("Anna Smith", "Bob Jones")),
    (r"G\"{u}nther M\"{u}ller\textsuperscript{1,2}, Paul Erd\H{o}s\textsuperscript{3}",
     ("Günther Müller", "Paul Erdős")),
    (r"Alice Smith$^{1,*}$, Bob Jones$^{2\dagger}$, Carol Lee$^{\rm a}$",
     ("Alice Smith", "Bob Jones", "Carol Lee")),
    (r"Jos\'e Garc\'{\i}a-L\'opez (Univ. of X), Ma{\l}gorzata Kowalska (Y)",
     ("José García-López", "Małgorzata Kowalska")),
    (r"{\AA}sa Lindstr{\"o}m, {\O}yvind S{\ae}ther", ("Åsa Lindström", "Øyvind Sæther")),
    (r"A. Ohlsson\thanks{Corresponding author} and B. {\O}stberg", ("A. Ohlsson", "B. Østberg")),
    (r"J. Doe \& K. Roe", ("J. Doe", "K. Roe")),
    (r"\textbf{Alice Smith}, \emph{Bob Jones}", ("Alice Smith", "Bob Jones")),
    (r"Alice Smith\footnote{email: a@x.org}, Bob Jones", ("Alice Smith", "Bob Jones")),
    # a sign after a name is a mark, and the space after it stays: "and" splits
    (r"Smith\dag and Jones", ("Smith", "Jones")),
])
def test_author_lists(raw, expect):
    assert split_authors(raw, tex=True) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"Anna Smith${}^{1}$", "Anna Smith"),
    (r"G\"{u}nther M\"{u}ller\textsuperscript{1,2}", "Günther Müller"),
    (r"Alice Smith $^{1}$", "Alice Smith"),
])
def test_one_name_loses_its_marks(raw, expect):
    assert clean_name(raw, tex=True) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"R\&D and 50\% and \$5 and \#1", "R&D and 50% and $5 and #1"),
    (r"AT\&T costs \$10--\$20", "AT&T costs $10–$20"),
    ("pages 10--20 and a---b", "pages 10–20 and a—b"),
    ("``quoted'' and `single' and it's", "“quoted” and ‘single’ and it's"),
    (r"\textsc{Bert}, \textbf{bold}, \emph{em}, \texttt{code\_x}, \textit{it}",
     "Bert, bold, em, code_x, it"),
    (r"Text with {\bf bold}, {\em emph}, {\sc caps}", "Text with bold, emph, caps"),
    (r"$\mathrm{d}x$, $\mathbf{x}$, $\mathbb{R}$, $\mathcal{O}(n)$, $\operatorname{rank}(A)$",
     "dx, x, ℝ, O(n), rank(A)"),
    (r"$\text{if } x$ and $x \textit{ if } y$ and $\textbf{W}x$", "if x and x if y and Wx"),
    (r"$\alpha, \beta, \varepsilon, \epsilon, \vartheta, \varphi, \Gamma, \ell, \infty$",
     "α, β, ε, ϵ, ϑ, φ, Γ, ℓ, ∞"),
    (r"$a \leq b \geq c \approx d \times e \cdot f \pm g \to h \rightarrow i \sim j \in k$",
     "a ≤ b ≥ c ≈ d × e · f ± g → h → i ∼ j ∈ k"),
    (r"$\log x$, $\exp(x)$, $\sum_i x_i$, $\prod_i x_i$, $\int_0^1 f$, $\partial_t u$, $\nabla u$",
     "log x, exp(x), ∑ᵢ xᵢ, ∏ᵢ xᵢ, ∫₀¹ f, ∂ₜ u, ∇u"),
    (r"$\hat{x}$ $\tilde{x}$ $\bar{x}$ $\vec{x}$ $\dot{x}$ $\hat{\theta}$", "x̂ x̃ x̅ x⃗ ẋ θ̂"),
    (r"$\frac{a+b}{c}$, $\tfrac{1}{2}$, $\dfrac{x}{y}$, $\binom{n}{k}$, $\sqrt{n}$",
     "(a+b)/c, 1/2, x/y, (n choose k), √(n)"),
    (r"$O(n \log n)$ and $\{1,2\}$ and $\langle a, b \rangle$",
     "O(n log n) and {1,2} and ⟨a, b⟩"),
    (r"$\sim$10\% and $\sim 10\%$ and $\approx$5", "∼10% and ∼ 10% and ≈5"),
    (r"a\,b a\;b a\!b a\quad b a\ b a\:b a\>b", "a b a b ab a b a b a b a b"),
    (r"line one\\line two \\ three", "line one line two three"),
    (r"sub-$\mu$s latency and 10$\times$ faster", "sub-μs latency and 10× faster"),
    # a space after an argument without braces is kept
    (r"$\hat\theta - \theta$ and $\hat\theta \le 1$", "θ̂ - θ and θ̂ ≤ 1"),
    # a sign in running text keeps the space after it; a section's sign joins its number
    (r"\copyright 2024 and \S 3", "© 2024 and §3"),
])
def test_what_arxiv_listings_hold(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"$x \coloneqq 1$", "x ≔ 1"),
    (r"$\bot$, $\gets$, $\models$, $\checkmark$", "⊥, ←, ⊨, ✓"),
    (r"5\,$\upmu$m and 30\degree and \permil{}", "5 μm and 30° and ‰"),
    (r"$\sfrac{1}{2}$ and $\cfrac{a}{b+1}$", "1/2 and a/(b+1)"),
    (r"$\sum_{\substack{i<j \\ i\ne k}} x$", "∑_(i<j, i≠k) x"),
    (r"$\underbrace{x+y}_{n}$", "(x+y)ₙ"),
    (r"$\mathring{A}$ and $\dddot{x}$", "Å and x⃛"),
    (r"$\boxed{x}$ and $\mathds{1}$ and $\mathbbm{1}_A$", "x and 1 and 1_A"),
    (r"\verb|x_y| here", "x_y here"),
])
def test_symbols_pylatexenc_printed_nothing_for(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"see \citep[Thm.~2]{x}. And Eq.~(\ref{e}) and as in~\cite{a,b}, we",
     "see. And Eq. and as in, we"),
    (r"\cite{x} shows and \citep[p.~3]{y} that", "shows and that"),
    (r"as in \citet{a} and Fig.~\ref{f}", "as in and Fig."),
])
def test_references_leave_no_brackets(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    # an unknown macro goes, its argument stays
    (r"\foo{bar} and \unknownmacro baz", "bar and baz"),
    # a group left open in a formula ends with the formula, not with the abstract
    (r"$\frac{1}{2$ rest of the abstract here", "1/2 rest of the abstract here"),
    (r"$x}$ and text", "x and text"),
    (r"\textbf{bold and more text that goes on", "bold and more text that goes on"),
    (r"\href{https://x.org/wb}{Weights \& Biases", "Weights & Biases (https://x.org/wb)"),
    # an argument that prints nothing, never closed, is one word long, not the whole rest
    (r"see \cite{foo and the rest of the abstract", "see and the rest of the abstract"),
    (r"\footnote{a b c", "b c"),
    # an optional argument never closed is a bracket; a \verb never closed is text
    (r"a\\[b and more", "a [b and more"),
    (r"\verb|x_y and more", "|x_y and more"),
    (r"a\\%b and 50% more", "a %b and 50% more"),
    # math opened by \( or \[ that nothing closes is a bracket, as a lone $ is a dollar
    (r"\(x and more text", "(x and more text"),
    # a dollar that closes nothing stays, and so does the text after it
    (r"$x and more text", "$x and more text"),
    (r"We show $x^{2 holds. Then more text.", "We show $x^2 holds. Then more text."),
    ("a} and more", "a} and more"),
    # money
    (r"US$5 and \$100 price and costs $3.50 each", "US$5 and $100 price and costs $3.50 each"),
    (r"the price is US$5 or \$6, and $x$ is a var", "the price is US$5 or $6, and x is a var"),
])
def test_broken_tex_keeps_the_text(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw", [
    "snake_case and my_var_name", "C++ and #hashtags", "50% of runs", "p<0.05",
    "mail a_b@x.org", "https://x.org/~a/b_c?d=1&e=2", "{0,1}^n strings", "x^2 + y^2",
    "a_b^c", "e^x", "$5 and $10",
])
def test_plain_text_that_looks_like_tex_stays(raw):
    assert tex_to_text(raw) == raw


_ATOMS = ["\\", "$", "$$", "{", "}", "^", "_", "~", "%", "&", "#", "\\frac", "\\sqrt", "[", "]",
          "\\left", "\\right", "\\|", "|", "\\stackrel", "\\overset", "\\underset", "\\(", "\\)",
          "\\[", "\\]", "\\begin{equation}", "\\end{equation}", "a", " ", "T", "\\top",
          "\\mathsf", "x", "1", "--", "`", "''", "\\\"", "\\'", "\\v", "\\foo", "\\text",
          "\\mathbb", "(", ")", "\\alpha", "\\le", "\\log", "\\operatorname", "\\url",
          "http://x.org/~a_b", "\\\\", "\\,", "\\{", "\\}", "\\$", "US$5", "\\inst", "\\and",
          "\\Vert", "\\citep", "\\verb", "\\xrightarrow", "\\substack", "\\underbrace"]


def test_never_raises_and_keeps_the_words():
    rng = random.Random(5)
    for _ in range(1000):
        # (the empty group is the argument a macro at the end would take; an accent left
        # open may put its mark on the words, which are still there)
        raw = "".join(rng.choice(_ATOMS) for _ in range(rng.randint(1, 20))) + "{} tail words"
        for convert in (tex_to_text, lambda s: clean_title(s, tex=True)):
            assert "tail words" in normalize(convert(raw)), raw
        split_authors(raw, tex=True)
        clean_name(raw, tex=True)


ITEM = """<item><title>{title}</title><link>https://arxiv.org/abs/2611.9{n:04d}</link>
<description>arXiv:2611.9{n:04d}v1 Announce Type: new
Abstract: {abstract}</description><guid isPermaLink="false">oai:arXiv.org:2611.9{n:04d}v1</guid>
<category>cs.LG</category><arxiv:announce_type>new</arxiv:announce_type>
<dc:creator>{authors}</dc:creator></item>"""


def _rss(*items: tuple[str, str, str]) -> bytes:
    from html import escape
    body = "".join(ITEM.format(n=n, title=escape(t), abstract=escape(a), authors=escape(c))
                   for n, (t, a, c) in enumerate(items))
    return ('<?xml version="1.0" encoding="UTF-8"?><rss xmlns:arxiv="http://arxiv.org/schemas/'
            'atom" xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>'
            'cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link>'
            f'<description>x</description>{body}</channel></rss>').encode()


def test_an_arxiv_rss_item_of_the_field_kind():
    (paper,), _ = parse_arxiv_rss(_rss((
        r"Sparse $\stackrel{\text{def}}{=}$ bounds on $\| W^T x \|$ for $\mathbb{R}^{n \times d}$",
        r"We show $X^TX \succeq 0$, $\frac{1}{2$ of runs and n^{1/3} scaling; see "
        r"\citep[Thm.~2]{x}. A 50% cut, p<0.05, a_b.",
        r"G\"{u}nther M\"uller (Universit\"at T\"ubingen, Germany), Ma{\l}gorzata {\L}uczak "
        r"(Pozna\'n Univ. (Dept. Math)), S\o ren Kierkeg{\aa}rd (K{\o}benhavn), "
        r"\c{C}a\u{g}r{\i} \"Ozt\"urk and Fran\c{c}ois Lef\`{e}vre (\'Ecole Normale)")),
        source="arxiv")
    assert paper.title == "Sparse ≝ bounds on ‖Wᵀ x‖ for ℝ^(n × d)"
    assert paper.abstract == ("We show XᵀX ≽ 0, 1/2 of runs and n^(1/3) scaling; see. "
                              "A 50% cut, p<0.05, a_b.")
    assert paper.authors == ("Günther Müller", "Małgorzata Łuczak", "Søren Kierkegård",
                             "Çağrı Öztürk", "François Lefèvre")


API = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom"
      xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
<opensearch:totalResults>1</opensearch:totalResults>
<opensearch:startIndex>0</opensearch:startIndex>
<entry><id>http://arxiv.org/abs/2611.90002v1</id><published>2026-11-27T00:00:00Z</published>
<title>Low-rank $W^{T}W$ updates: $\\stackrel{\\text{def}}{=}$ and
  $\\| x \\|$ bounds for $\\mathbb{R}^{n\\times d}$</title>
<summary>  We show $\\frac{1}{2$ of runs, n^{1/3} scaling and \\citep[p.~3]{x} refs.
</summary>
<author><name>Bj\\"{o}rn Inventsson$^{1}$</name></author>
<author><name>Ana Mu\\~noz</name><arxiv:affiliation>Invented</arxiv:affiliation></author>
<author><name>Przemys\\l{}aw Madeup\\textsuperscript{2}</name></author>
<arxiv:primary_category term="cs.LG"/><category term="cs.LG"/>
</entry></feed>"""


def test_an_arxiv_api_entry_reads_as_the_rss_item():
    (entry,) = parse_api_feed(API.encode(), source="api").entries
    paper = entry.paper
    assert paper.title == "Low-rank WᵀW updates: ≝ and ‖x‖ bounds for ℝ^(n×d)"
    assert paper.abstract == "We show 1/2 of runs, n^(1/3) scaling and refs."
    assert paper.authors == ("Björn Inventsson", "Ana Muñoz", "Przemysław Madeup")
