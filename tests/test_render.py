"""Rendering: the golden text part, autoescaping, header safety."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from digestd.models import Digest, Hit, Paper, PaperMatch, RuleMatch, Subscriber
from digestd.render import Links, Renderer, short_authors

GOLDEN = Path(__file__).parent / "golden"


def sample_digest(title: str = "Learning with Noisy Labels", name: str = "Ada") -> Digest:
    sub = Subscriber(id=7, email="ada@example.org", name=name,
                     rules=('"noisy labels"', "prun*"))
    p1 = Paper(id="arxiv:2401.00001", title=title,
               abstract="We study training with noisy labels. " * 20,
               authors=("A. Author", "B. Author", "C. Author", "D. Author", "E. Author"),
               categories=("cs.LG", "stat.ML"), source="arxiv-ml",
               url="https://arxiv.org/abs/2401.00001", pdf_url="https://arxiv.org/pdf/2401.00001",
               published="2026-11-20", upvotes=5)
    p2 = Paper(id="arxiv:2401.00002", title="Pruning at Scale", abstract="Short.",
               authors=("Solo",), source="hf", published="2026-11-21")
    items = (
        PaperMatch(p2, (RuleMatch(1, "prun*", (Hit("title", "pruning"),)),)),
        PaperMatch(p1, (RuleMatch(0, '"noisy labels"', (Hit("title", '"noisy labels"'),
                                                        Hit("abstract", '"noisy labels"'))),)),
    )
    return Digest(subscriber=sub, period="2026-11-23", items=items, papers_checked=40)


def renderer() -> Renderer:
    return Renderer(links=Links("https://digest.example.org", b"k" * 32),
                    from_addr="Paper digest <digest@example.org>")


def test_text_part_matches_the_golden_file():
    text, _ = renderer().render(sample_digest())
    golden = GOLDEN / "digest.txt"
    if not golden.exists():  # pragma: no cover - first run writes it for review
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_hostile_title_is_escaped_in_html():
    _, html = renderer().render(sample_digest(title='<script>alert(1)</script>"><img src=x>'))
    assert "<script>alert" not in html and "<img src=x>" not in html
    assert "&lt;script&gt;" in html


def test_crlf_in_display_name_cannot_inject_headers():
    _, raw = renderer().message(sample_digest(name="Eve\r\nBcc: victim@example.org"))
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert "victim@example.org" not in str(msg["To"]).split("<")[-1]


@pytest.mark.parametrize("authors,expected", [
    ((), ""), (("A",), "A"), (("A", "B"), "A and B"), (("A", "B", "C", "D"), "A, B, C and D"),
    (("A", "B", "C", "D", "E"), "A, B, C and 2 others")])
def test_short_authors(authors, expected):
    assert short_authors(authors) == expected
