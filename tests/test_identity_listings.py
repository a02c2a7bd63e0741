"""Item identity where a feed's own ids mislead: guids numbered by position or made anew on
each fetch, one Atom id twice in a document, one article listed twice, a DOI beside other
dc:identifier values. Each poll is one batch, as `digestd poll` stores it."""

from __future__ import annotations

import pytest

from digestd.sources.feed import parse_feed

from .test_field import rss

A = ("Coral bleaching thresholds in invented reefs", "https://l.example.net/a/501")
B = ("Rainfall memory in made-up grasslands", "https://l.example.net/a/502")
C = ("A brand-new finding on invented lichens", "https://l.example.net/a/503")
D = ("Yet another invented discovery on mosses", "https://l.example.net/a/504")
E = ("Soil carbon under invented shrubs", "https://l.example.net/a/505")


def _numbered(items, first: int = 1, prefix: str = "") -> bytes:
    return rss("".join(f'<item><title>{t}</title><link>{link}</link><guid isPermaLink="false">'
                       f"{prefix}{n}</guid></item>" for n, (t, link) in enumerate(items, first)))


def _polls(store, *feeds: bytes, source: str = "l") -> list[list[str]]:
    """The titles each poll brought."""
    return [[p.title for p in store.add_papers(parse_feed(
        body, source=source, base_url="https://l.example.net/feed.xml")[0])] for body in feeds]


def test_guids_numbered_by_position(store):
    # "1" is the newest item: each poll moves every older item one number down
    assert _polls(store, _numbered([A, B]), _numbered([C, A, B]), _numbered([D, C, A]),
                  _numbered([D, C, A])) == [[A[0], B[0]], [C[0]], [D[0]], []]
    assert store.count_papers() == 4


def test_guids_numbered_from_the_oldest_stay_identities(store):
    # numbers that stay with their items are guids like any other
    assert _polls(store, _numbered([A, B]), _numbered([A, B, C]),
                  _numbered([A, B, C, D])) == [[A[0], B[0]], [C[0]], [D[0]]]


def test_guids_made_anew_on_each_fetch(store):
    assert _polls(store, _numbered([A, B], prefix="f8a1-"), _numbered([A, B], prefix="c03d-"),
                  _numbered([E, A, B], prefix="9e0b-")) == [[A[0], B[0]], [], [E[0]]]


def test_one_new_guid_at_a_known_link_and_title_is_still_a_new_item(store):
    # a recurring column at one address, beside items whose guids stay: not a renumbering
    column = ("What is your diagnosis this week?", "https://l.example.net/column")
    first = rss(f'<item><title>{column[0]}</title><link>{column[1]}</link><guid>c-1</guid>'
                f'</item><item><title>{A[0]}</title><link>{A[1]}</link><guid>a</guid></item>')
    second = rss(f'<item><title>{column[0]}</title><link>{column[1]}</link><guid>c-2</guid>'
                 f'</item><item><title>{A[0]}</title><link>{A[1]}</link><guid>a</guid></item>')
    assert _polls(store, first, second) == [[column[0], A[0]], [column[0]]]


def test_a_renumbering_in_one_feed_leaves_another_feeds_guids_alone(store):
    assert _polls(store, _numbered([A, B]), source="one") == [[A[0], B[0]]]
    other = rss(f'<item><title>{A[0]}</title><link>{A[1]}</link><guid>2</guid></item>')
    # another feed's guid "2" is another item's; the link and title are A's: one paper
    assert _polls(store, other, source="two") == [[]]
    assert _polls(store, _numbered([C, A, B]), source="one") == [[C[0]]]


def test_one_article_listed_twice_under_two_guids(store):
    def item(guid: str, title: str = "Invented roots share water at night") -> str:
        return (f'<item><title>{title}</title><link>https://l.example.net/a/300</link>'
                f'<guid isPermaLink="false">{guid}</guid><prism:doi>10.5555/let.300</prism:doi>'
                f'</item>')
    assert _polls(store, rss(item("research-300") + item("highlights-300"))) == [
        ["Invented roots share water at night"]]
    # items that share an issue's DOI under titles of their own stay apart
    issue = "".join(f'<item><title>Paper {i} of the invented issue</title><guid>tag:j,{i}'
                    f'</guid><prism:doi>10.1000/issue.5</prism:doi></item>' for i in range(3))
    assert len(_polls(store, rss(issue), source="j")[0]) == 3


ATOM = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        '<title>Invented</title><id>tag:inv.example.org,2026:feed</id>'
        '<updated>2026-11-27T00:00:00Z</updated>{}</feed>')


def _entry(id_: str, title: str, updated: str, link: str = "https://inv.example.org/p/6") -> str:
    return (f'<entry><id>{id_}</id><title>{title}</title><link href="{link}"/>'
            f'<updated>{updated}</updated><summary>About {title}.</summary></entry>')


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_one_atom_id_twice_in_a_document_is_one_entry_at_its_latest(order):
    # RFC 4287 4.1.1: entries with one atom:id in a feed document are one entry
    entries = [_entry("tag:inv.example.org,2026:art-6", "Invented snow crystals",
                      "2026-11-20T00:00:00Z"),
               _entry("tag:inv.example.org,2026:art-6", "Invented snow crystals, revised",
                      "2026-11-27T00:00:00Z")]
    other = _entry("tag:inv.example.org,2026:art-7", "Invented hail", "2026-11-21T00:00:00Z",
                   "https://inv.example.org/p/7")
    body = ATOM.format(entries[order[0]] + other + entries[order[1]]).encode()
    papers, skipped, ok = parse_feed(body, source="inv", base_url="https://inv.example.org/")
    # where the entry first stood, in its latest version
    assert [p.title for p in papers] == ["Invented snow crystals, revised", "Invented hail"]
    assert (skipped, ok) == (0, True)


def test_an_rss_guid_twice_in_a_feed_still_names_neither():
    # RSS says nothing of the kind: two items under one guid are two items, told apart
    # by link and title
    body = rss("".join(f'<item><title>Paper {n} about invented ice</title><link>'
                       f'https://l.example.net/a/{n}</link><guid>same</guid></item>'
                       for n in (1, 2)))
    papers, _, _ = parse_feed(body, source="l")
    assert [p.id for p in papers] == ["url:https://l.example.net/a/1",
                                      "url:https://l.example.net/a/2"]


@pytest.mark.parametrize("identifiers", [
    ("doi:10.5555/sleep.77", "pmid:39999999"),
    ("pmid:39999999", "doi:10.5555/sleep.77"),
    ("pmid:39999999", "https://doi.org/10.5555/sleep.77", "pmcid:PMC0000001"),
])
def test_a_doi_among_several_dc_identifiers(store, identifiers):
    publisher = rss("<item><title>Invented sleep spindles in shift workers</title><link>"
                    "https://pub.example.org/article/77</link><prism:doi>10.5555/sleep.77"
                    "</prism:doi></item>")
    pubmed = rss("<item><title>Invented sleep spindles in shift workers: a cohort study"
                 "</title><link>https://pubmed.example.gov/39999999/</link>"
                 + "".join(f"<dc:identifier>{i}</dc:identifier>" for i in identifiers)
                 + "</item><item><title>Another invented study</title><link>https://pubmed."
                 "example.gov/39999998/</link><dc:identifier>pmid:39999998</dc:identifier>"
                 "</item>")
    papers, _, _ = parse_feed(pubmed, source="pubmed")
    assert [p.id for p in papers] == ["doi:10.5555/sleep.77",
                                      "url:https://pubmed.example.gov/39999998/"]
    assert _polls(store, publisher, source="pub") == [["Invented sleep spindles in shift "
                                                       "workers"]]
    assert _polls(store, pubmed, source="pubmed") == [["Another invented study"]]
