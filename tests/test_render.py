"""Rendering: the golden text part, autoescaping, header safety."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from digestd.config import MAX_PAPERS_CAP
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


# -- more of the rendering ------------------------------------------------------------------------

import json  # noqa: E402
import re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from digestd.mime import build_alternative, crlf_only, encode_body, to_7bit  # noqa: E402
from digestd.render import by_relevance, inline_styles  # noqa: E402

DATA = Path(__file__).parent / "data"


def match(paper: Paper, *hits: tuple[int, str]) -> PaperMatch:
    rules: dict[int, list[Hit]] = {}
    for index, field in hits:
        rules.setdefault(index, []).append(Hit(field, "x"))
    return PaperMatch(paper, tuple(RuleMatch(i, f"r{i}", tuple(h)) for i, h in rules.items()))


def test_relevance_order():
    p = lambda pid, up=None, date="2026-11-01": Paper(id=pid, title=pid, upvotes=up,  # noqa
                                                       published=date)
    items = [
        match(p("abstract-only"), (0, "abstract")),
        match(p("two-rules"), (0, "abstract"), (1, "abstract")),
        match(p("title"), (0, "title")),
        match(p("title-upvoted", up=9), (0, "title")),
        match(p("title-newer", date="2026-11-20"), (0, "title")),
        match(p("title-undated", date=""), (0, "title")),
    ]
    assert [m.paper.id for m in by_relevance(items)] == [
        "two-rules", "title-upvoted", "title-newer", "title", "title-undated", "abstract-only"]


def corpus_digest(n: int = 30, longest: bool = True) -> Digest:
    corpus = json.loads((DATA / "hf_listings.json").read_text(encoding="utf-8"))
    if longest:
        corpus.sort(key=lambda c: -len(c["abstract"]))
    sub = Subscriber(id=3, email="zoe@example.org", name="Zoë Reader",
                     rules=('"language models"', "title:diffusion", "abstract:(agent* OR tool)"))
    items = []
    for i, c in enumerate(corpus[:n]):
        paper = Paper(id=f"arxiv:2409.{i:05d}", title=c["title"], abstract=c["abstract"],
                      authors=tuple(f"Author{j} Müller-Łukasiewicz" for j in range(
                          c.get("authors_count") or 12)),
                      categories=("cs.LG", "cs.CL", "cs.AI"), source="hf-daily",
                      url=f"https://arxiv.org/abs/2409.{i:05d}",
                      pdf_url=f"https://arxiv.org/pdf/2409.{i:05d}", published=c["published"],
                      upvotes=c["upvotes"])
        items.append(PaperMatch(paper, (
            RuleMatch(0, '"language models"', (Hit("title", '"language models"'),
                                              Hit("abstract", '"language models"'))),
            RuleMatch(2, "abstract:(agent* OR tool)", (Hit("abstract", "agents"),)))))
    return Digest(subscriber=sub, period="2026-11-23", items=tuple(items), papers_checked=3000)


def test_html_of_25_papers_with_the_longest_abstracts_stays_under_100_kb():
    r = renderer()
    _, html = r.render(corpus_digest(25))
    assert html.count('class="paper"') == 25
    assert len(html.encode("utf-8")) < 100 * 1024
    # Gmail clips on the size of the HTML as it arrives; measure the encoded part too
    msg = email.message_from_bytes(r.message(corpus_digest(25))[1], policy=email.policy.default)
    assert len(msg.get_body(("html",)).as_bytes()) < 100 * 1024


def test_max_papers_and_n_more_link_to_the_digests_page():
    digest = corpus_digest(30)
    text, html = renderer().render(digest)
    page = re.escape("https://digest.example.org/d/")
    assert html.count('class="paper"') == 25
    # "and N more" where the list ends links to the page of every paper, as "View in browser"
    # does at the top
    assert re.search(rf'&#8230; and 5 more: <a class="tap" href="{page}[\w.-]+"[^>]*>see all 30 '
                     "papers</a>", html)
    assert re.search(rf'href="{page}[\w.-]+"[^>]*>View in browser</a>', html)
    assert re.search(rf"\.\.\. and 5 more: see all 30 papers at\n{page}[\w.-]+\n", text)
    assert re.search(rf"^View in browser:\n{page}[\w.-]+$", text, re.MULTILINE)
    r = renderer()
    assert "30 new papers" in r.subject(digest) and "2026-11-23" in r.subject(digest)
    # digest.archive_url, when set, is an external archive used instead of /d/
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32,
                             archive_url="https://digest.example.org/a/{token}/{period}"),
                 from_addr="Paper digest <digest@example.org>", max_papers=25)
    text, html = r.render(digest)
    assert re.search(r'href="https://digest\.example\.org/a/[\w.-]+/2026-11-23"', html)
    assert "/d/" not in html and "/d/" not in text


def test_styles_are_inlined_once_per_template_and_dark_mode_is_declared():
    r = renderer()
    _, html = r.render(sample_digest())
    assert "{{" not in html and "css." not in html
    card = r.css["card"]
    assert f'style="{card}"' in html and "max-width:640px" in card
    assert "prefers-color-scheme: dark" in html and 'name="color-scheme"' in html
    # the compiled template already holds the style text: a message does not look it up
    source = r.env.loader.get_source(r.env, "email/digest.html")[0]
    assert "{{ css.card }}" in source
    assert card not in source and card in r.env.compile(
        r.env.preprocess(source, "email/digest.html"), raw=True)


def test_inline_styles_parser():
    css = "/* c */ .a { color: red; margin: 0 }\n.b{font-family: \"X Y\", sans-serif;}"
    assert inline_styles(css) == {"a": "color:red;margin:0", "b": "font-family:'X Y', sans-serif"}


def test_a_templates_dir_overrides_file_by_file(tmp_path):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.txt").write_text("Custom: {{ count }} for {{ period }}\n")
    (tmp_path / "email" / "digest.css").write_text(".card { color: #123456; }\n")
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32),
                 from_addr="Paper digest <digest@example.org>", templates_dir=str(tmp_path))
    text, html = r.render(sample_digest())
    assert text == "Custom: 2 for 2026-11-23\n"
    assert 'style="color:#123456"' in html and "Learning with Noisy Labels" in html


def test_golden_digest_with_more_than_max_papers():
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32,
                             archive_url="https://digest.example.org/a/{token}/{period}"),
                 from_addr="Paper digest <digest@example.org>", max_papers=1)
    text, _ = r.render(sample_digest())
    golden = GOLDEN / "digest_more.txt"
    if not golden.exists():  # pragma: no cover - first run writes it for review
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_message_parses_back_to_the_same_text_and_html():
    r = renderer()
    digest = corpus_digest(25)
    text, html = r.render(digest)
    message_id, raw = r.message(digest)
    # the text part is UTF-8 sent as 8bit (RFC 6152); to_7bit is what a server without
    # 8BITMIME gets: pure ASCII, quoted-printable, and the same text
    for wire in (raw, to_7bit(raw)):
        assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
        assert b"\n" not in wire.replace(b"\r\n", b"")
        assert wire.split(b"\r\n\r\n")[0].isascii()
        msg = email.message_from_bytes(wire, policy=email.policy.default)
        assert msg["Message-ID"] == message_id
        # the same text, with the CRLF line ends every line has on the wire
        assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
        assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html
        assert not msg.defects and all(not p.defects for p in msg.walk())
    assert not text.isascii() and b"Content-Transfer-Encoding: 8bit" in raw
    assert to_7bit(raw).isascii() and b"Content-Transfer-Encoding: quoted-printable" in \
        to_7bit(raw)
    assert to_7bit(to_7bit(raw)) == to_7bit(raw)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3000)
       | st.builds(lambda a, b: a * 1200 + b, st.sampled_from(["x", "é", "= ", ".\n", " \n"]),
                   st.text(max_size=50)))
def test_body_encoding_round_trips_any_text(text):
    cte, body = encode_body(text)
    assert all(len(line) <= 998 for line in body.split(b"\r\n")) and body.isascii()
    raw = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
           b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    # on the wire every line ends in CRLF; the parsed text keeps them
    assert msg.get_content().replace("\r\n", "\n") == expected


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3000)
       | st.builds(lambda a, b: a * 1200 + b, st.sampled_from(["x", "é", "€", "𝔸", "= "]),
                   st.text(max_size=50)))
def test_8bit_bodies_round_trip_and_keep_lines_under_998_octets(text):
    cte, body = encode_body(text, eight_bit=True)
    assert all(len(line) <= 998 for line in body.split(b"\r\n"))
    expected = text.replace("\r\n", "\n").replace("\r", "\n")
    if cte != b"quoted-printable":  # 7bit or 8bit: the text itself, in UTF-8
        assert body == expected.replace("\n", "\r\n").encode("utf-8")
        assert (cte == b"7bit") == body.isascii()
    raw = (b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
           b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body)
    for wire in (raw, to_7bit(raw)):
        msg = email.message_from_bytes(wire, policy=email.policy.default)
        assert msg.get_content().replace("\r\n", "\n") == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1300), max_size=40), st.integers(1, 1100))
def test_lines_fit_says_what_the_longest_line_says(lengths, limit):
    """mime.lines_fit (a LF looked for in each cell of a grid) against measuring every line,
    for lines just under, at and over the limit, anywhere in the body."""
    from digestd.mime import lines_fit, longest_line

    data = b"\n".join(b"x" * n for n in lengths)
    assert lines_fit(data, limit) == (longest_line(data) <= limit)
    assert lines_fit(data, limit) == all(n <= limit for n in (lengths or [0]))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2000)
       | st.builds(lambda a, b: a * 1200 + b, st.sampled_from(["x", "é", "\r", "\r\n", "\n."]),
                   st.text(max_size=50)),
       st.text(max_size=500), st.booleans())
def test_every_line_of_a_built_message_ends_in_crlf(text, html, eight_bit):
    """What the outbox vouches for (store.bodies.CRLF), so the sender does not check it."""
    raw = build_alternative([("Subject", "x"), ("List-Unsubscribe", "<https://a>,\r\n <mailto:b>")],
                            text, html, eight_bit=eight_bit)
    assert crlf_only(raw)


def test_the_shipped_html_frames_are_ascii():
    """Their text is written as character references (&#183;), so a digest's HTML is ASCII
    as rendered and ascii_html passes it through (the other way, ~0.05 ms a digest)."""
    from pathlib import Path

    for name in ("digest.html", "empty.html"):
        assert (Path(__file__).parents[1] / "templates" / "email" / name).read_text().isascii()


def test_a_header_value_that_would_start_a_header_is_refused():
    for value in ("x\nBcc: victim@example.org", "x\r\nBcc: v@example.org", "x\rBcc: v", "x\r\n"):
        with pytest.raises(ValueError, match="does not fold"):
            build_alternative([("Subject", value)], "text", "<p>html</p>")
    # folded (CRLF and white space) is one header
    assert crlf_only(build_alternative([("Subject", "x\r\n y")], "text", "<p>html</p>"))


def test_headers_of_user_data_are_encoded_not_injected():
    for name in ("Zoë Łukasiewicz", 'Eve "<evil@x>", Bob', "Eve\r\nBcc: victim@example.org",
                 "Eve\nSubject: hi", "x" * 300):
        _, raw = renderer().message(sample_digest(name=name))
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg["Bcc"] is None and msg["Subject"].startswith("Paper digest 2026-11-23")
        assert [a.addr_spec for a in msg["To"].addresses] == ["ada@example.org"]
        assert msg["To"].addresses[0].display_name == " ".join(name.split())
        assert raw.split(b"\r\n\r\n")[0].isascii()


def test_an_address_with_crlf_or_spaces_is_refused():
    bad = Subscriber(id=1, email="a@example.org\r\nBcc: b@example.org", rules=("x",))
    with pytest.raises(ValueError):
        renderer().message(Digest(subscriber=bad, period="p", items=sample_digest().items))


# -- the digest's page, its size, and how it reads ------------------------------------------------

def test_html_at_the_max_papers_cap_with_the_longest_abstracts_stays_under_gmails_clip():
    """Gmail clips an HTML part past 102 KB (the unsubscribe link in the footer with it):
    digest.max_papers is capped so that even the corpus's longest abstracts, with long
    reasons, fit."""
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32),
                 from_addr="Paper digest <digest@example.org>", max_papers=MAX_PAPERS_CAP)
    digest = corpus_digest(MAX_PAPERS_CAP + 10)
    # each paper matched by many hits: the "matched:" line at its longest
    many = (RuleMatch(0, "r", tuple(Hit("abstract", f'"a long phrase of words {i}"')
                                    for i in range(12))), RuleMatch(1, "x", (Hit("title", "x"),)))
    digest = Digest(subscriber=digest.subscriber, period=digest.period, papers_checked=3000,
                    items=tuple(PaperMatch(m.paper, many) for m in digest.items))
    _, html = r.render(digest)
    assert html.count('class="paper"') == MAX_PAPERS_CAP
    assert len(html.encode("utf-8")) < 100 * 1024
    msg = email.message_from_bytes(r.message(digest)[1], policy=email.policy.default)
    assert len(msg.get_body(("html",)).as_bytes()) < 100 * 1024


def test_max_papers_above_the_cap_is_refused(write_config):
    from digestd.errors import ConfigError

    write_config(f"[digest]\nmax_papers = {MAX_PAPERS_CAP}\n")
    with pytest.raises(ConfigError, match=f"digest.max_papers must be at most {MAX_PAPERS_CAP}"):
        write_config(f"[digest]\nmax_papers = {MAX_PAPERS_CAP + 1}\n")


def test_text_part_wraps_at_78_columns_with_a_hanging_indent():
    sub = Subscriber(id=3, email="zoe@example.org",
                     rules=('"language models"', "title:diffusion " * 12 + "-survey"))
    digest = corpus_digest(30)
    digest = Digest(subscriber=sub, period=digest.period, papers_checked=3000, items=tuple(
        PaperMatch(replace(m.paper, title=m.paper.title + " and a Long Subtitle" * 3), m.rules)
        for m in digest.items))
    text, _ = renderer().render(digest)
    lines = text.split("\n")
    for line in lines:
        # only a line that is one word (a URL) may be longer: it cannot be broken
        assert len(line) <= 78 or " " not in line.strip(), line
    # titles included: the continuation lines of a title are indented under it
    titles = [" ".join(m.paper.title.split()) for m in digest.items]
    start = next(i for i, line in enumerate(lines) if re.match(r"\d+\. ", line))
    first, second = lines[start], lines[start + 1]
    assert len(first) <= 78 and second.startswith("   ") and not second.startswith("    ")
    begun = " ".join((first.split(". ", 1)[1] + " " + second.strip()).split())
    assert any(t.startswith(begun) for t in titles)
    # the signature separator is the standard "-- " line (RFC 3676 4.3)
    assert lines.count("-- ") == 1 and "--" not in lines


def _title_lines(text: str) -> dict[int, list[str]]:
    """Paper number -> the lines of its title in a text part: "N. title", then the
    continuation lines up to the authors' line (which follows every title here)."""
    lines = text.split("\n")
    out = {}
    for i, line in enumerate(lines):
        m = re.match(r"(\d+)\. ", line)
        if m:
            j = i + 1
            while "Author0" not in lines[j]:
                j += 1
            out[int(m[1])] = lines[i:j]
    return out


@pytest.mark.parametrize("matches", [12, 150])
def test_a_titles_continuation_lines_start_under_its_first_character(monkeypatch, matches):
    """From paper 10 on ("10. "), and for the recommendations numbered after hundreds of
    matches ("151. "), a wrapped title goes on under its first character, within 78
    columns; the message put together from bytes says the same as the whole rendering."""
    long = " and a Long Subtitle About Learning Representations" * 2
    digest = corpus_digest(12)
    items = tuple(PaperMatch(replace(m.paper, id=f"{m.paper.id}.{k}", title=m.paper.title + long),
                             m.rules) for k in range(-(-matches // 12)) for m in digest.items)
    digest = Digest(subscriber=digest.subscriber, period=digest.period, papers_checked=3000,
                    items=items[:matches], ordered=True, whys=("x",) * matches,
                    recommended=items[:2], recommended_whys=("similar to y",) * 2)
    r = renderer()
    text, _ = r.render(digest)
    titles = _title_lines(text)
    numbers = [*range(1, min(matches, 25) + 1), matches + 1, matches + 2]
    assert sorted(titles) == numbers
    for number, lines in titles.items():
        head = f"{number}. "
        assert len(lines) > 1 and lines[0].startswith(head)
        for line in lines:
            assert len(line) <= 78, line
        for line in lines[1:]:
            assert line.startswith(" " * len(head)) and line[len(head)] != " ", (number, line)
        title = " ".join([lines[0][len(head):]] + [x.strip() for x in lines[1:]])
        assert title.endswith(long.strip())
    _fixed_tokens(monkeypatch)
    _, raw = r.message(digest)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text


def test_ties_put_newer_papers_first():
    def p(pid: str, date: str) -> Paper:
        return Paper(id=pid, title=pid, published=date)

    items = [match(p("arxiv:2611.00001", "2026-11-20T10:00:00+00:00"), (0, "abstract")),
             match(p("arxiv:2611.00003", "2026-11-20T10:00:00+00:00"), (0, "abstract")),
             match(p("arxiv:2611.00002", "2026-11-20T18:00:00+00:00"), (0, "abstract")),
             match(p("arxiv:2611.00000", "2026-11-21"), (0, "abstract"))]
    expected = ["arxiv:2611.00000", "arxiv:2611.00002", "arxiv:2611.00003", "arxiv:2611.00001"]
    assert [m.paper.id for m in by_relevance(items)] == expected
    assert [m.paper.id for m in by_relevance(items, 3)] == expected[:3]


def test_the_html_digest_reads_well_on_a_phone_and_with_a_screen_reader():
    r = renderer()
    _, html = r.render(sample_digest())
    # titles are headings, numbered as in the text part
    assert re.findall(r'<h2 class="title"[^>]*>(\d+)\. ', html) == ["1", "2"]
    # the PDF link says which paper it is
    assert 'aria-label="PDF: Learning with Noisy Labels"' in html
    # links standing alone are at least 24 px high; the footer's text at least 13 px
    for a in re.findall(r'<a class="tap"[^>]*>', html):
        assert "min-height:24px" in a and "display:inline-block" in a
    assert "font-size:13px" in r.css["footer"] and "font-size:13px" in r.css["code"]
    # RFC 5064: the message names the page it is archived at, as "View in browser" does
    _, raw = r.message(sample_digest())
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    url = msg["Archived-At"].strip("<>")
    assert url.startswith("https://digest.example.org/d/") and f'href="{url}"' in html


def test_a_digest_the_build_ordered_renders_the_same():
    """The build orders a digest's papers and works out why each matched (for its page)
    once; the renderer takes both as they are, and shows the same."""
    from digestd.render import why_text

    digest = corpus_digest(30, longest=False)
    ordered = by_relevance(digest.items)
    built = replace(digest, items=tuple(ordered), ordered=True,
                    whys=tuple(why_text(m) for m in ordered))
    assert renderer().render(built) == renderer().render(digest)


def test_rates_never_read_about_0_a_day():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(
        str(Path(__file__).parent.parent / "templates" / "web")))
    per_day = env.get_template("_macros.html").module.per_day
    assert [str(per_day(r)).strip() for r in (2.46, 1.0, 0.3, 0.02, 0)] == [
        "about 2.5 a day", "about 1.0 a day", "about 2 a week", "fewer than one a week",
        "none lately"]


@pytest.mark.parametrize("domain, expected", [
    ("example.org", "example"), ("ab.io", "ab-mail"), ("mail.example.org", "mail-mail"),
    ("a-very-long-organisation-name.org", "a-very-long-org"), ("localhost", "localhost")])
def test_feedback_id_sender_id_is_5_to_15_characters(domain, expected):
    from digestd.mime import sender_id

    assert sender_id(domain) == expected and 5 <= len(expected) <= 15


def test_the_left_out_line_follows_the_matches_not_the_recommendations():
    """"N more matched your rules but looked unlike your seeds" is about the matches: it
    stands under them, before "Also recommended", in both parts."""
    import dataclasses

    d = sample_digest()
    rec = dataclasses.replace(d.items[0].paper, id="arxiv:2401.09999", title="A Neighbour")
    d = dataclasses.replace(d, recommended=(PaperMatch(rec, ()),),
                            recommended_whys=("similar to X",), left_out=4)
    text, html = renderer().render(d)
    for part in (text, html):
        assert part.index("more matched your rules but looked unlike your seeds") < \
            part.index("Also recommended")


def _fixed_tokens(monkeypatch):
    """Message-IDs and MIME boundaries from a counter, so two builds of a digest compare."""
    import itertools

    import digestd.mime
    import digestd.render

    counter = itertools.count()
    fixed = lambda n=16: f"{next(counter):0{2 * n}x}"  # noqa: E731
    monkeypatch.setattr(digestd.render.secrets, "token_hex", fixed)
    monkeypatch.setattr(digestd.mime.secrets, "token_hex", fixed)


@settings(max_examples=60, deadline=None)
@given(titles=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1,
                                max_size=60)
                        | st.sampled_from(["Noisy\r\nlabels", "x" * 1200, "Über €", "a\rb"]),
                        min_size=1, max_size=6),
       why=st.sampled_from(["", '"noisy labels" in title', "é\r\nx", "y" * 400]),
       max_papers=st.integers(1, 6), left_out=st.integers(0, 2), recommended=st.integers(0, 2),
       eight_bit=st.booleans(),
       # the last two: a paper's feedback line just fits in 78 columns, or just does not
       base=st.sampled_from(["https://digest.example.org", "https://digest.example.org/p&q's",
                             "https://dige.io", "https://diges.io"]))
def test_a_message_put_together_from_bytes_is_the_message_rendered_whole(
        titles, why, max_papers, left_out, recommended, eight_bit, base):
    """Renderer.message puts the papers' bytes in the frames' output (_wire_bodies): the
    same bytes as the frames rendered with the papers' text, for any title and why (CRs,
    long lines, non-ASCII), with and without 8bit, past max_papers, with recommendations."""
    with pytest.MonkeyPatch.context() as mp:
        papers = [Paper(id=f"arxiv:{i}", title=t, abstract=f"{t} abstract", url=f"https://a/{i}")
                  for i, t in enumerate(titles)]
        items = tuple(PaperMatch(p, (RuleMatch(0, "x", (Hit("title", "x"),)),)) for p in papers)
        recs = tuple(PaperMatch(p, ()) for p in papers[:recommended])
        digest = Digest(subscriber=Subscriber(id=3, email="a@example.org", rules=("x",)),
                        period="2026-11-23", items=items, papers_checked=9, ordered=True,
                        whys=(why,) * len(items), recommended=recs,
                        recommended_whys=("similar to y",) * len(recs), left_out=left_out)
        r = Renderer(links=Links(base, b"k" * 32),
                     from_addr="Paper digest <digest@example.org>", max_papers=max_papers)
        r.eight_bit = eight_bit
        assert r._splice
        built = []
        for splice in (True, False):
            r._splice = splice
            _fixed_tokens(mp)
            built.append(r.message(digest, now=datetime(2026, 11, 23, 7, tzinfo=timezone.utc)))
        assert built[0] == built[1]


@pytest.mark.parametrize("frame", [
    "{{ items | upper }}",
    "{% filter upper %}{{ items }}{% endfilter %}",
    "{% set shown = items %}{{ shown }}",
    "{% if items %}{{ items }}{% endif %}",
    "{% include 'email/digest.txt' %}",
])
def test_a_frame_that_does_more_with_its_papers_than_print_them_is_rendered_whole(
        tmp_path, frame):
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "digest.txt").write_text(frame.replace("digest.txt", "plain.txt"))
    (tmp_path / "email" / "plain.txt").write_text("{{ items }}")
    r = Renderer(links=Links("https://digest.example.org", b"k" * 32),
                 from_addr="Paper digest <digest@example.org>", templates_dir=str(tmp_path))
    assert not r._splice
    text, _ = r.render(sample_digest())
    _, raw = r.message(sample_digest())
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert ("PRUNING AT SCALE" in text) == ("upper" in frame)
