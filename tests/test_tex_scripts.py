"""TeX's long scripts, roots with an index, the tie beside a URL's "~" and LNCS's author
markup, read as a reader writes them (digestd/sources/tex/, digestd/sources/clean.py)."""

import time

import pytest

from digestd.sources.clean import clean_name, split_authors, tex_to_text


@pytest.mark.parametrize("raw, expect", [
    # a script of more than one term keeps together, as a fraction's part does
    (r"$n^{1/3}$", "n^(1/3)"),
    (r"$O(n^{2/3})$ and $\Omega(n^{1/3})$", "O(n^(2/3)) and Ω(n^(1/3))"),
    (r"$n^{-1/2}$, $\Sigma^{-1/2}$", "n^(-1/2), Σ^(-1/2)"),
    (r"$x^{\frac{1}{3}}$ and $n^{-\frac{1}{2}}$", "x^(1/3) and n^(-1/2)"),
    (r"$n^{1+\epsilon}$", "n^(1+ϵ)"),
    (r"$e^{-\lambda t}$", "e^(-λ t)"),
    (r"$t^{-\alpha}$", "t^(-α)"),
    (r"$O\big(n^{-2/(d+4)}\big)$", "O(n^(-2/(d+4)))"),
    (r"$\log^{3/2} n$", "log^(3/2) n"),
    (r"$2^{\Omega(n)}$ and $2^{2^{O(k)}}$", "2^(Ω(n)) and 2^(2^(O(k)))"),
    (r"$A\in\mathbb{R}^{m\times n}$", "A∈ℝ^(m×n)"),
    (r"$\mathbb{R}^{d \times d}$", "ℝ^(d × d)"),
    (r"$\max_{1\le i\le n} |X_i|$", "max_(1≤i≤n) |Xᵢ|"),
    (r"$\lim_{t\to 0^+} f(t)$", "lim_(t→0⁺) f(t)"),
    (r"tokens $x_{1:T}$ and $x_{<t}$", "tokens x_(1:T) and x_(<t)"),
    # a script inside a script is Unicode's where it can be
    (r"$e^{-x^2/2}$", "e^(-x²/2)"),
    (r"$\|\nabla f\|_{L^2}$ and $\|x\|_{\ell_1}$", "‖∇f‖_L² and ‖x‖_ℓ₁"),
    # one term stays as it was: a word, a number, a list of indices, Unicode's scripts
    (r"$x_{max}$, $E_{\rm kin}$, $T_{\mathrm{eff}}$, $\beta_{\text{eff}}$",
     "xₘₐₓ, Eₖᵢₙ, T_eff, β_eff"),
    (r"$\lambda_{\max}$ and $\sigma_{\min}(A)$", "λ_max and σ_min(A)"),
    (r"$O(k^{1.5})$, $10^{10.5}$, $\mathrm{PM}_{2.5}$", "O(k^1.5), 10^10.5, PM_2.5"),
    (r"$W^{1,p}$, $C^{1,\alpha}$, $x_{i,j}$", "W^1,p, C^1,α, x_i,j"),
    (r"$e^{i\pi}$, $F^{\mu\nu}$, $C^\infty$", "e^iπ, F^μν, C^∞"),
    (r"$x_{t+1}$, $S^{n-1}$, $10^{-3}$, $x^{(k)}$", "xₜ₊₁, Sⁿ⁻¹, 10⁻³, x⁽ᵏ⁾"),
    # a script of one term ends before a letter after it, which would read as its own
    (r"$F_{\mu\nu}F^{\mu\nu}$", "F_μν F^μν"),
    (r"$\nabla_\theta \mathcal{L}$", "∇_θ L"),
    (r"$\sum_{k=0}^{\infty} \frac{x^k}{k!}$", "∑ₖ₌₀^∞ xᵏ/k!"),
    (r"$\sum_{i=1}^{N} \log p(x_i)$", "∑ᵢ₌₁^N log p(xᵢ)"),
    (r"$\min_\theta \max_\phi L$", "min_θ max_ϕ L"),
    (r"$p_{\theta}(x|z)$ and $|V_{cb}|$", "p_θ(x|z) and |V_cb|"),
])
def test_a_script_of_more_than_one_term_keeps_together(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"$\sqrt[3]{x}$", "∛x"),
    (r"$\sqrt[3]{x+1}$", "∛(x+1)"),
    (r"$\sqrt[3]{2x}$", "∛(2x)"),
    (r"$\sqrt[3]{27}$", "∛27"),
    (r"$\sqrt[4]{n}$ and $1/\sqrt[3]{n}$", "∜n and 1/∛n"),
    (r"$\sqrt[n]{x}$", "x^(1/n)"),
    (r"$\sqrt[k+1]{x}$", "x^(1/(k+1))"),
    (r"$\sqrt[n]{a+b}$", "(a+b)^(1/n)"),
    (r"$\sqrt[n]{2x}$ and $\sqrt[3]{\frac{a}{b}}$", "(2x)^(1/n) and ∛(a/b)"),
    # no index, or 2: as before
    (r"$\sqrt{s} = 13$", "√(s) = 13"),
    (r"$\sqrt[2]{n}$ and $\sqrt{x+1}$", "√(n) and √(x+1)"),
    (r"\sqrt {s} and $\sqrt {s}$", "√(s) and √(s)"),
])
def test_roots_with_an_index(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("mroot, expect", [
    ("<mroot><mi>x</mi><mn>3</mn></mroot>", "∛x"),
    ("<mroot><mrow><mi>x</mi><mo>+</mo><mn>1</mn></mrow><mn>4</mn></mroot>", "∜(x+1)"),
    ("<mroot><mrow><mn>2</mn><mi>x</mi></mrow><mi>n</mi></mroot>", "(2x)^(1/n)"),
])
def test_a_journal_root_reads_as_the_arxiv_one(mroot, expect):
    from digestd.sources.mathml import math_to_text
    assert math_to_text(f"<math>{mroot}</math>") == expect


@pytest.mark.parametrize("raw, expect", [
    # a "~" in a URL is a character, in \url, \href or bare beside TeX
    (r"Code at \url{https://example.org/~user/code}.", "Code at https://example.org/~user/code."),
    (r"\href{https://x.org/~me}{our site}", "our site (https://x.org/~me)"),
    (r"See https://example.org/~user for $\alpha$.", "See https://example.org/~user for α."),
    (r"at https://x.org/~me/$x$ and www.cs.x.edu/~bob, \textbf{now}",
     "at https://x.org/~me/x and www.cs.x.edu/~bob, now"),
    (r"\url{http://a.org/\~{}b} and \texttt{~/.config}", "http://a.org/~b and ~/.config"),
    (r"https://x.org/~a/b_c", "https://x.org/~a/b_c"),
    # elsewhere it is TeX's tie: a plain space (not U+00A0)
    (r"Fig.~3, $\alpha$~and $x$~$y$, 139~$\mathrm{fb}^{-1}$", "Fig. 3, α and x y, 139 fb⁻¹"),
    (r"a~$\mathcal{O}(1)$ overhead, Sec.~\ref{s} shows", "a O(1) overhead, Sec. shows"),
    # "about" before a number and a range stay, in TeX as outside it
    (r"a (~10\%) cut, 3~5\% and ~2$\times$; ~100 runs", "a (~10%) cut, 3~5% and ~2×; ~100 runs"),
])
def test_a_tilde_in_a_url_stays(raw, expect):
    assert tex_to_text(raw) == expect
    assert "\xa0" not in tex_to_text(raw)


@pytest.mark.parametrize("raw, expect", [
    (r"Alice Smith\inst{1} \and Bob Jones\inst{1,2} \and Carol Lee\inst{2}",
     ("Alice Smith", "Bob Jones", "Carol Lee")),
    (r"Alice Smith\inst{1}\and Bob Jones\inst{2}", ("Alice Smith", "Bob Jones")),
    (r"Alice Smith \and Bob Jones", ("Alice Smith", "Bob Jones")),
    (r"Alice Smith\inst{1}\orcidID{0000-0001-2345-6789} \and Bob Jones\inst{2}",
     ("Alice Smith", "Bob Jones")),
    (r"Alice Smith\inst{1}\fnmsep\thanks{Corresponding} \and Bj\"orn Berg\inst{2}",
     ("Alice Smith", "Björn Berg")),
    (r"Wei Zhang$^{a}$ \and Li Na$^{b,c}$", ("Wei Zhang", "Li Na")),
    (r"A. Smith; B. Jones \and C. Lee", ("A. Smith", "B. Jones", "C. Lee")),
    (r"Alice Smith \And Bob Jones \AND Carol Lee", ("Alice Smith", "Bob Jones", "Carol Lee")),
])
def test_lncs_author_marks_and_and(raw, expect):
    assert split_authors(raw, tex=True) == expect


def test_one_lncs_name_loses_its_marks():
    assert clean_name(r"Alice Smith\inst{1,2}", tex=True) == "Alice Smith"


@pytest.mark.parametrize("raw, expect", [
    # TeX prints no space just inside \left( ... \right) or a closing bracket
    (r"$\left( \frac{a}{b} \right)$", "(a/b)"),
    (r"$\left[ 0, 1 \right]$ and $\left\{ x \right\}$", "[0, 1] and {x}"),
    (r"$\left\| x \right\|_2$ and $\lVert x \rVert$", "‖x‖₂ and ‖x‖"),
    (r"$\langle x \rangle$", "⟨x⟩"),
    # \partial and \nabla stand before their operand, as a letter does
    (r"$\frac{\partial f}{\partial x}$", "∂f/∂x"),
    (r"$x_{t+1} = x_t - \eta \nabla f(x_t)$", "xₜ₊₁ = xₜ - η ∇f(xₜ)"),
    (r"$\nabla \cdot u = 0$", "∇ · u = 0"),
    # a denominator that is a number times more keeps together
    (r"$\frac{1}{2\pi}$ and $e^{-\frac{t^2}{2\sigma^2}}$", "1/(2π) and e^(-t²/(2σ²))"),
    (r"$\frac{1}{2}$, $\frac{1}{10^{3}}$, $\frac{x}{2.5}$", "1/2, 1/10³, x/2.5"),
    # a relation after a group is spaced on both sides as its author spaced its left
    (r"$W_{\text{woman}} \approx W_{\text{queen}}$", "W_woman ≈ W_queen"),
])
def test_brackets_prefix_signs_and_denominators(raw, expect):
    assert tex_to_text(raw) == expect


def test_long_and_nested_scripts_stay_fast():
    began = time.process_time()
    tex_to_text("$" + "x^{1/2}" * 5_000 + "$")
    tex_to_text("$" + "x^{" * 2_000 + "y" + "}" * 2_000 + "$")
    tex_to_text(" " * 50_000 + "~" + "https://x.org/~" * 2_000)
    split_authors(" " * 30_000 + r"\inst{1}" + r" \and A" * 2_000, tex=True)
    assert time.process_time() - began < 3.0
