"""LNCS's author markup, read as a reader writes names (digestd/sources/clean.py)."""

import pytest

from digestd.sources.clean import clean_name, split_authors


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
