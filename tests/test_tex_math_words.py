"""TeX's operator names, one-character and control-word scripts, and double-struck letters in
arXiv titles and abstracts, read as a reader writes them (digestd/sources/tex/)."""

import pytest

from digestd.sources.clean import tex_to_text


@pytest.mark.parametrize("raw, expect", [
    (r"$O(n\log n)$", "O(n log n)"),
    (r"$\arg\min_\theta L$", "arg min_θ L"),
    (r"$\min_\theta L$", "min_θ L"),
    (r"$\det A$", "det A"),
    (r"$\gcd(a,b)$", "gcd(a,b)"),
    (r"$x\bmod p$", "x mod p"),
    (r"$a \bmod b$", "a mod b"),
    (r"$\operatorname*{argmin}_x f$", "argminₓ f"),
    (r"$\operatorname{tr}(A)$", "tr(A)"),
    (r"$\operatorname{tr} A$", "tr A"),
    (r"$x\pmod{p}$", "x (mod p)"),
    (r"$a \equiv b \pmod n$", "a ≡ b (mod n)"),
    (r"$\ker f$", "ker f"),
    (r"$\dim V$, $\deg p$, $\hom(A,B)$", "dim V, deg p, hom(A,B)"),
    (r"$x\sin x$", "x sin x"),
    (r"$a\exp(b)$", "a exp(b)"),
    # variants: scripts, limits, arguments in brackets, operators in a row, after symbols
    (r"$\log_2 n$", "log₂ n"),
    (r"$\lim_{n\to\infty} a_n$", "lim_(n→∞) aₙ"),
    (r"$\max(a,b)$", "max(a,b)"),
    (r"$\sin^2 x$", "sin² x"),
    (r"$\log\log n$", "log log n"),
    (r"$\sin\theta\cos\psi$", "sin θ cos ψ"),
    (r"$2\pi\sin\theta$", "2π sin θ"),
    (r"$\sqrt{n}\log n$", "√(n) log n"),
    (r"$(\log n)^2$", "(log n)²"),
    (r"$\log\left(n\right)$", "log(n)"),
    (r"$\log|x|$", "log |x|"),
    (r"$\limsup_{n} x_n$", "lim supₙ xₙ"),
    (r"$x = \arg\max_{y} f(y)$", "x = arg max_y f(y)"),
    (r"$\Pr(X)$, $\inf_x f$", "Pr(X), infₓ f"),
    (r"in O(n \log n) time", "in O(n log n) time"),
])
def test_operator_names_are_words(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("name", [
    "arccos", "arcsin", "arctan", "arg", "cos", "cosh", "cot", "coth", "csc", "deg", "det",
    "dim", "exp", "gcd", "hom", "inf", "ker", "lg", "lim", "ln", "log", "max", "min", "Pr",
    "sec", "sin", "sinh", "sup", "tan", "tanh"])
def test_every_operator_name_prints(name):
    assert tex_to_text(f"$x\\{name} y$") == f"x {name} y"
    assert tex_to_text(f"$\\{name}(y)$") == f"{name}(y)"


@pytest.mark.parametrize("raw, expect", [
    (r"$\liminf_n x$", "lim infₙ x"), (r"$\injlim A$", "inj lim A"),
    (r"$\projlim A$", "proj lim A"),
])
def test_two_word_operator_names(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"$e^+e^-\to\mu^+\mu^-$", "e⁺e⁻→μ⁺μ⁻"),
    (r"$\pi^-$", "π⁻"),
    (r"$B^{+}$", "B⁺"),
    (r"$\tau^+\tau^-$ pairs", "τ⁺τ⁻ pairs"),
    (r"$D^0\bar{D}^0$", "D⁰D̅⁰"),
    (r"$K^{*0}$", "K*⁰"),
    (r"$W^\pm$", "W±"),
    (r"$D^{*\pm}$", "D*±"),
    (r"$A^\top$", "Aᵀ"),
    (r"$A^{\top}B$", "AᵀB"),
    (r"$x^*$", "x*"),
    (r"$f^\prime$", "f′"),
    (r"$f^\prime(x)$", "f′(x)"),
    (r"$U^\dagger$", "U†"),
    (r"$\mathbb{R}^+$", "ℝ⁺"),
    # a script Unicode has no characters for keeps TeX's form, as W^{1,p} does, in
    # parentheses if it is more than one term
    (r"$x^{n\pm1}$", "x^(n±1)"),
    (r"$g_{\mu\nu}$", "g_μν"),
    (r"$\nu_\mu$", "ν_μ"),
])
def test_one_character_and_control_word_scripts(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    (r"$\mathbb{E}_{x\sim p}[f(x)]$", "E_(x∼p)[f(x)]"),
    (r"$\mathbb{1}_A$", "1_A"),
    (r"$\mathbb{F}_q$", "F_q"),
    (r"$\mathbb{R}^n$", "ℝⁿ"),
    (r"$\mathbb{N}$, $\mathbb{Z}$, $\mathbb{Q}$, $\mathbb{C}$, $\mathbb{P}$, $\mathbb{H}$",
     "ℕ, ℤ, ℚ, ℂ, ℙ, ℍ"),
    # relations are spaced as the author spaced them
    (r"$a\le b$", "a≤b"),
    (r"$a \le b$", "a ≤ b"),
    (r"$3\times 10^{3}$", "3×10³"),
    (r"$x \in \mathbb{R}^n$", "x ∈ ℝⁿ"),
    (r"$n \to \infty$", "n → ∞"),
    (r"$\Delta E \times \Delta t$", "Δ E × Δ t"),
    (r"$\langle\sigma v\rangle$", "⟨σ v⟩"),
    (r"$\sim 100$", "∼ 100"),
    (r"$\min_\theta L$", "min_θ L"),
])
def test_letters_stay_in_the_basic_plane_and_relations_are_spaced_alike(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    ("50% of", "50% of"), ("p<0.05", "p<0.05"), ("a_b", "a_b"), ("$5 and $10", "$5 and $10"),
    ("costs $5 where $c$ is the cost", "costs $5 where c is the cost"),
    (r"$W^{1,p}$", "W^1,p"), (r"$T_{\rm c}$", "T_c"), (r"$H_2O$", "H₂O"),
    (r"$x^{2n+1}$", "x²ⁿ⁺¹"), (r"$\sqrt{s} = 13$", "√(s) = 13"),
    (r"Bj\"orn, pages 3--5", "Björn, pages 3–5"), ("``quoted''", "“quoted”"),
    (r"$\sum_{i=1}^{n} x_i$", "∑ᵢ₌₁ⁿ xᵢ"),
])
def test_what_was_promised_stays(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    # the space after a control word is not printed: an operator after it keeps its own
    (r"$\alpha \log n$", "α log n"),
    (r"$\min_\theta \max_\phi L$", "min_θ max_ϕ L"),
    (r"$x \log y$", "x log y"),
    # TeX's \colon is punctuation: "f: X"
    (r"$f\colon X\to Y$", "f: X→Y"),
])
def test_operators_after_spaced_control_words_and_the_colon(raw, expect):
    assert tex_to_text(raw) == expect


@pytest.mark.parametrize("raw, expect", [
    # a relation after a control word is spaced on both sides as the author spaced it
    (r"$\nu_\mu \to \nu_e$", "ν_μ → νₑ"),
    (r"$\mu \le 1$", "μ ≤ 1"),
    (r"$\alpha\to\beta$", "α→β"),
    # a fraction's part of more than one term keeps together
    (r"$\frac{1}{1+z}$", "1/(1+z)"),
    (r"$\frac{a+b}{c}$", "(a+b)/c"),
    (r"$\dfrac{a}{b+c}$", "a/(b+c)"),
    (r"$\frac{1}{2}$ and $\tfrac{\pi}{4}$", "1/2 and π/4"),
    # signs pylatexenc printed nothing for
    (r"$a \ne b$", "a ≠ b"),
    (r"$A\iff B$", "A⟺B"),
    (r"$\Re(s)$ and $\Im(z)$", "ℜ(s) and ℑ(z)"),
    (r"see \S 3", "see §3"),
    (r"$\hbar\omega$", "ℏω"),
    # brackets are no signs
    (r"$\langle x\rangle$ and $\lceil n\rceil$", "⟨x⟩ and ⌈n⌉"),
    # wide accents over their letters, as \tilde and \bar
    (r"$\widetilde{O}(\sqrt{n})$ and $\widetilde{\mathcal{O}}(d)$", "Õ(√(n)) and Õ(d)"),
    (r"$\overline{M}$, $\widehat{f}$", "M\u0305, f\u0302"),
])
def test_relations_fractions_symbols_and_brackets(raw, expect):
    assert tex_to_text(raw) == expect
