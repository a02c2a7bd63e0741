"""Inputs from real bug reports (tests/field, a copy of shared/field): each file served over
real HTTP, polled into a real store, and read back as a reader gets it."""

from __future__ import annotations

from pathlib import Path

import pytest

from digestd.config import SourceConfig
from digestd.jobs_poll import poll_sources
from digestd.match import match_rules
from digestd.store import Store

from .http_fixtures import server_fixture  # noqa: F401 (a fixture)
from .test_sources import fast_http

FIELD = Path(__file__).parent / "field"
TEX_RESIDUE = ("\\", "{", "}", "$")


@pytest.fixture
async def http():
    client = fast_http()
    yield client
    await client.aclose()


async def poll_files(server, store: Store, http, files: dict[str, str], **kw):
    """Serve each file at its path and poll it as a plain `feed` source; the stored papers."""
    sources = []
    for path, name in files.items():
        server.payload(path, (FIELD / name).read_bytes(), "application/rss+xml")
        sources.append(SourceConfig(name=f"s{len(sources)}", kind="feed",
                                    url=server.url(path), **kw))
    reports = await poll_sources(sources, store, http=http)
    assert all(r.error is None for r in reports), [r.error for r in reports]
    return store.papers_since("")


def matching(rule: str, papers) -> list[str]:
    return [m.paper.title for m in match_rules([rule], papers)]


async def test_03_shared_link_distinct_guids_are_three_papers(server, store, http):
    papers = await poll_files(server, store, http,
                              {"/upcoming.xml": "03-feed-shared-link-distinct-guids.xml"})
    assert len(papers) == 3
    assert matching("prun*", papers) == ["Pruning made-up networks"]
    # the shared "upcoming" page is a link, not an identity; the guids are scoped to the feed
    assert {p.id for p in papers} == {f"guid:s0|IJ-2026-010{i}" for i in (1, 2, 3)}
    assert not any(p.id.startswith("url:") for p in papers)
    assert all(p.url == "https://journal.example.org/upcoming/" for p in papers)


async def test_05_relative_links_resolved_against_the_feed_url(server, store, http):
    papers = await poll_files(server, store, http, {
        "/ja/feed.xml": "05-feed-relative-links.xml",
        "/jb/feed.xml": "05-feed-relative-links-b.xml"})
    assert len(papers) == 2
    assert sorted(p.url for p in papers) == [server.url("/ja/article/1"),
                                             server.url("/jb/article/1")]
    assert sorted(p.id for p in papers) == [f"url:{server.url('/ja/article/1')}",
                                            f"url:{server.url('/jb/article/1')}"]


async def test_06_less_than_in_title_is_text(server, store, http):
    papers = await poll_files(server, store, http, {"/med.xml": "06-feed-less-than-in-title.xml"})
    by_url = {p.url: p for p in papers}
    first = by_url["https://med.example.org/a/100"]
    assert first.title == "Outcomes in patients aged <65 versus >80 years after invented surgery"
    assert first.abstract == "Mortality was lower (p<0.05) in the group with scores >3."
    assert matching("title:versus", papers) == [first.title]
    second = by_url["https://med.example.org/a/101"]
    assert second.title == "Banning sales to <16s: an invented cohort"
    assert second.abstract == "HTML abstract with a bold word."


async def test_18_old_arxiv_rss10_read_as_feed(server, store, http):
    papers = await poll_files(server, store, http, {"/rss/cs.LG": "18-old-arxiv-rss10-rdf.xml"})
    by_id = {p.id: p for p in papers}
    assert set(by_id) == {"arxiv:2312.00101", "arxiv:2311.00109"}
    first, second = by_id["arxiv:2312.00101"], by_id["arxiv:2311.00109"]
    assert first.title == "Invented Pruning of Tiny Networks"
    assert second.title == "An Older Invented Result"
    assert first.authors == ("Ada Example", "Bo Sample")
    assert second.authors == ("Cy Test",)
    assert sorted(a for p in papers for a in p.authors) == ["Ada Example", "Bo Sample",
                                                           "Cy Test"]
    assert first.abstract == "We prune invented tiny networks."
    assert (first.version, second.version) == (1, 2)
    assert first.url == "https://arxiv.org/abs/2312.00101"
    assert first.categories == ("cs.LG",)
    assert matching("author:find", papers) == []
    assert matching("author:example", papers) == [first.title]


async def test_18_old_arxiv_updated_items_are_replacements(server, store, http):
    """With the announce types an arXiv reader wants, UPDATED items are replacements and
    are not read as new papers; a replacement of a stored paper is never new anyway."""
    papers = await poll_files(server, store, http, {"/rss/cs.LG": "18-old-arxiv-rss10-rdf.xml"},
                              announce_types=("new", "cross"))
    assert [p.id for p in papers] == ["arxiv:2312.00101"]


@pytest.mark.parametrize("kind", ["feed", "arxiv-rss"])
async def test_tex_authors_and_titles(server, store, http, kind):
    if kind == "feed":
        papers = await poll_files(server, store, http, {"/rss/cs.LG": "tex-authors-titles.xml"})
    else:
        server.payload("/rss/cs.LG", (FIELD / "tex-authors-titles.xml").read_bytes(),
                       "application/rss+xml")
        source = SourceConfig(name="arxiv", kind="arxiv-rss", categories=("cs.LG",),
                              url=server.url("/rss"))
        (report,) = await poll_sources([source], store, http=http)
        assert report.error is None
        papers = store.papers_since("")
    (paper,) = papers
    assert paper.authors == ("Björn Inventsson", "Ján Fiktivček", "Przemysław Madeup",
                             "Ana Muñoz", "Zoë Sample")
    assert matching("author:inventsson", papers) == [paper.title]
    assert matching("author:munoz", papers) == [paper.title]
    assert matching("author:przemyslaw", papers) == [paper.title]
    assert matching("author:institute", papers) == []  # affiliations are not authors
    for text in (paper.title, paper.abstract):
        assert not any(c in text for c in TEX_RESIDUE), text
    assert "ΛCDM" in paper.title and "tt̅" in paper.title and "√(s) = 13" in paper.title
    assert "1/2" in paper.abstract and "italic" in paper.abstract
    # plain text that only looks like TeX stays as written
    assert "50% of" in paper.abstract and "p<0.05" in paper.abstract
    assert "a_b" in paper.abstract
    assert paper.abstract.startswith("We invent priors")  # the announce preamble is gone


# -- the same kinds of fault, on inputs of our own ---------------------------------------------

def rss(items: str, channel: str = "") -> bytes:
    return (f'<?xml version="1.0"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"'
            f' xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/"><channel>'
            f"<title>T</title><link>https://j.example.org/</link>{channel}{items}"
            f"</channel></rss>").encode()


def parse(content: bytes, base: str = "https://j.example.org/toc/feed.xml", **kw):
    from digestd.sources.feed import parse_feed
    papers, _skipped, _ok = parse_feed(content, source="j", base_url=base, **kw)
    return papers


@pytest.mark.parametrize("items, expect", [
    # shared link, no guid at all: three items, told apart by title
    ("".join(f"<item><title>Paper number {i} on graphs</title><link>https://j.example.org/u/"
             f"</link></item>" for i in range(3)), 3),
    # the guid is the shared page itself (a permalink guid)
    ("".join(f"<item><title>Paper number {i} on graphs</title><guid>https://j.example.org/u/"
             f"</guid></item>" for i in range(3)), 3),
    # shared link, distinct URL guids
    ("".join(f'<item><title>Paper {i}</title><link>https://j.example.org/u/</link>'
             f'<guid isPermaLink="true">https://j.example.org/a/{i}</guid></item>'
             for i in range(3)), 3),
    # shared link, distinct DOIs (and the same title!): never merged
    ("".join(f"<item><title>Correction</title><link>https://j.example.org/u/</link>"
             f"<prism:doi>10.1234/j.{i}</prism:doi></item>" for i in range(2)), 2),
    # the same item twice: one paper
    ("<item><title>A repeated item about graphs</title><guid>g-1</guid></item>" * 2, 1),
])
async def test_identity_only_on_real_evidence(store, items, expect):
    papers = parse(rss(items))
    assert len(store.add_papers(papers)) == expect


def test_atom_entries_sharing_a_link_with_distinct_ids():
    feed = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>J</title>""" + b"".join(
        b'<entry><id>urn:uuid:%d</id><title>Entry %d on sparsity</title>'
        b'<link href="https://j.example.org/soon"/></entry>' % (i, i) for i in range(4)) + b"</feed>"
    papers = parse(feed)
    assert [p.id for p in papers] == [f"guid:j|urn:uuid:{i}" for i in range(4)]


async def test_generic_titles_and_strong_ids_never_join_papers(store):
    editorial = [parse(rss(f"<item><title>{t}</title><link>https://j{i}.example.org/e</link>"
                           f"</item>"))[0] for i, t in enumerate(
        ("Editorial", "Editorial", "Issue Information", "Correction", "Front matter",
         "Erratum", "Reply", "Retraction Notice", "Editorial: Volume 12, Issue 3"))]
    assert len(store.add_papers(editorial)) == len(editorial)
    from digestd.models import Paper
    a = Paper(id="doi:10.1/a", title="Graph networks for noisy label correction")
    b = Paper(id="doi:10.1/b", title="Graph networks for noisy label correction")
    c = Paper(id="url:https://x.example/c", title="Graph Networks for Noisy-Label Correction")
    assert store.add_papers([a, b]) == [a, b]  # two DOIs: two papers, whatever the title
    assert store.add_papers([c]) == []  # no conflicting strong id: the title joins it
    one = Paper(id="guid:j|1", title="A long enough title on pruning")
    two = Paper(id="guid:j|2", title="A long enough title on pruning")
    other_feed = Paper(id="guid:k|9", title="A long enough title on pruning")
    assert store.add_papers([one, two]) == [one, two]  # two guids of one feed
    assert store.add_papers([other_feed]) == []  # guids of two feeds do not disagree


async def test_a_link_seen_again_with_another_guid_is_a_new_paper(store):
    """Day 1 an "upcoming" page lists one item (its link is unique then), day 2 another."""
    day1 = parse(rss('<item><title>First item on graphs</title><guid isPermaLink="false">'
                     'A-1</guid><link>https://j.example.org/u/</link></item>'))
    day2 = parse(rss('<item><title>Second item on pruning</title><guid isPermaLink="false">'
                     'A-2</guid><link>https://j.example.org/u/</link></item>'))
    assert len(store.add_papers(day1)) == 1
    assert [p.title for p in store.add_papers(day2)] == ["Second item on pruning"]
    assert store.add_papers(day2) == []  # and seen once, ever


@pytest.mark.parametrize("channel, link, expect", [
    ("", "article/1", "https://j.example.org/toc/article/1"),
    ("", "/article/1", "https://j.example.org/article/1"),
    ("", "../a/2?x=1", "https://j.example.org/a/2?x=1"),
    ("", "//cdn.example.org/a/3", "https://cdn.example.org/a/3"),
    ("", "javascript:alert(1)", ""),
    ("", "data:text/html,hi", ""),
    ("", "ftp://j.example.org/a", ""),
])
def test_links_resolved_and_only_http(channel, link, expect):
    (paper,) = parse(rss(f"<item><title>A paper on graphs</title><link>{link}</link>"
                         f"<guid>id-7</guid></item>", channel))
    assert paper.url == expect


def test_xml_base_wins_over_the_feed_url():
    feed = (b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://b.example.org/x/">'
            b'<title>J</title><entry><id>e1</id><title>Based</title><link href="p/1"/></entry>'
            b'</feed>')
    assert parse(feed)[0].url == "https://b.example.org/x/p/1"


@pytest.mark.parametrize("title, expect", [
    ("Aged &lt;65 versus &gt;80", "Aged <65 versus >80"),
    ("Aged &amp;lt;65 versus &amp;gt;80 &amp;amp; more", "Aged <65 versus >80 & more"),
    ("A &lt;i&gt;study&lt;/i&gt; of &lt;b&gt;X&lt;/b&gt;", "A study of X"),
    ("<![CDATA[Costs < 5 & gains > 3]]>", "Costs < 5 & gains > 3"),
    ("Null\x01 and \x7f control", "Null and control"),
    ("Tab\tand  spaces\n broken", "Tab and spaces broken"),
])
def test_titles_lose_markup_only_where_it_is_markup(title, expect):
    (paper,) = parse(rss(f"<item><title>{title}</title><guid>g</guid></item>"))
    assert paper.title == expect


def test_atom_text_types():
    feed = (b'<feed xmlns="http://www.w3.org/2005/Atom"><title>J</title><entry><id>e1</id>'
            b'<title type="text">x &lt;b&gt; y</title><summary type="html">&lt;p&gt;a &amp;lt; '
            b'b&lt;/p&gt;</summary></entry><entry><id>e2</id><title type="xhtml"><div '
            b'xmlns="http://www.w3.org/1999/xhtml">An <i>xhtml</i> title</div></title></entry>'
            b'</feed>')
    first, second = parse(feed)
    assert first.title == "x <b> y"  # declared text: shown as written
    assert first.abstract == "a < b"
    assert second.title == "An xhtml title"


def test_long_titles_and_abstracts_are_capped():
    (paper,) = parse(rss(f"<item><title>{'word ' * 300}</title><description>"
                         f"{'abstract ' * 3000}</description><guid>g</guid></item>"))
    assert len(paper.title) <= 500 and paper.title.endswith("…")
    assert len(paper.abstract) <= 10_000 and paper.abstract.endswith("…")


def test_tex_is_left_alone_outside_tex_sources():
    (paper,) = parse(rss(r"<item><title>Costs $5 and $\alpha$ {braces}</title><guid>g</guid>"
                         r"</item>"))
    assert paper.title == r"Costs $5 and $\alpha$ {braces}"


@pytest.mark.parametrize("raw, expect", [
    (r"$\mathrm{H}_2\mathrm{O}$ at $\sim$100 K", "H_2O at ∼100 K"),
    (r"Gr\"obner bases \& the \'{e}cole {\"u}ber \v{s}\o\ss\aa", "Gröbner bases & the école "
                                                                  "über šøßå"),
    (r"\textit{In vivo} and \emph{in vitro}", "In vivo and in vitro"),
    (r"$\alpha$- and $\beta$-decay of $^{12}$C", "α- and β-decay of ^12C"),
    (r"Fig.~3 shows \cite{x} 20% gains, R&D", "Fig. 3 shows 20% gains, R&D"),
    (r"Costs $5 and $10 a month", "Costs $5 and $10 a month"),
    (r"$\mathcal{O}(n)$ and $\mathbf{x}$", "O(n) and x"),
    (r"\url{https://github.com/a/b_c}", "https://github.com/a/b_c"),
    (r"An unbalanced {brace and $ dollar", "An unbalanced brace and $ dollar"),
])
def test_tex_kinds(raw, expect):
    from digestd.sources.clean import clean_title
    assert clean_title(raw, tex=True) == expect


@pytest.mark.parametrize("raw, expect", [
    ("A. Smith (MIT, Cambridge, USA), B. Jones and C. Lee", ("A. Smith", "B. Jones", "C. Lee")),
    ("Smith, J.; Jones, K.; Lee, C.", ("Smith, J.", "Jones, K.", "Lee, C.")),
    ("Martin Luther King, Jr., Ada Lovelace", ("Martin Luther King, Jr.", "Ada Lovelace")),
    ("A (1), B ((1) MIT, (2) CMU), C et al.", ("A", "B", "C")),
    ("Alice Anderson & Bob Brandon", ("Alice Anderson", "Bob Brandon")),
    ("Ada Lovelace and Alan Turing", ("Ada Lovelace", "Alan Turing")),
    (r"J\"org M\"uller (Uni, Dept), L{\'a}szl{\'o} Nagy", ("Jörg Müller", "László Nagy")),
])
def test_author_lists_as_people_write_them(raw, expect):
    from digestd.sources.clean import split_authors
    assert split_authors(raw, tex=True) == expect


@pytest.mark.parametrize("raw, expect", [
    ("Fri, 27 Nov 2026 23:30:00 -0600", "2026-11-27T23:30:00-06:00"),  # its own zone, its day
    ("2026-11-27T09:00:00+01:00", "2026-11-27T09:00:00+01:00"),
    ("2026-11-27T09:00:00+0100", "2026-11-27T09:00:00+01:00"),
    ("2026-11-27", "2026-11-27"),
    ("27 Nov 2026", "2026-11-27"),
    ("November 27, 2026", "2026-11-27"),
    ("Fri, 27 Nov 2026 08:00:00 CEST", "2026-11-27T08:00:00"),  # unknown zone: local time
    ("27/11/2026", ""),  # day/month or month/day: not guessed
    ("Thu, 31 Feb 2026 00:00:00 GMT", ""),
    ("0000-00-00", ""),
    ("soon", ""),
])
def test_dates_as_the_source_means_them(raw, expect):
    from digestd.sources.clean import iso_datetime
    assert iso_datetime(raw) == expect


def test_dates_in_a_feed():
    papers = parse(rss("<item><title>Late</title><guid>1</guid><pubDate>Fri, 27 Nov 2026 "
                       "23:30:00 -0600</pubDate></item><item><title>Unknown</title><guid>2"
                       "</guid><pubDate>sometime next week</pubDate></item>"))
    assert [p.published for p in papers] == ["2026-11-27T23:30:00-06:00", ""]


async def test_relative_links_resolve_against_the_url_after_redirects(server, store, http):
    from .http_fixtures import Reply
    server.payload("/ja/feed.xml", (FIELD / "05-feed-relative-links.xml").read_bytes(),
                   "application/rss+xml")
    server.replies("/moved.xml", Reply(301, b"", {"Location": server.url("/ja/feed.xml")}))
    (report,) = await poll_sources([SourceConfig(name="ja", kind="feed",
                                                 url=server.url("/moved.xml"))], store, http=http)
    assert report.error is None
    assert [p.url for p in store.papers_since("")] == [server.url("/ja/article/1")]
