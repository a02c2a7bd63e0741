"""The tie beside a URL's "~" and LNCS's author markup, read as a reader writes them
(digestd/sources/tex.py, digestd/sources/clean.py)."""

import pytest

from digestd.sources.clean import clean_name, split_authors, tex_to_text


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
