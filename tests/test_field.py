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


async def test_tex_authors_and_titles(server, store, http):
    papers = await poll_files(server, store, http, {"/rss/cs.LG": "tex-authors-titles.xml"})
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
