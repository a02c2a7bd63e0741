"""A ninth round of field faults of kind 03 (tests/field/README.md): one item's guid renamed at
a page its feed lists several items at, told apart from a column's next instalment there; and
an empty <link> before a permalink guid. Each feed is served over real HTTP and polled into a
real store (both backends)."""

from __future__ import annotations

import pytest

from .http_fixtures import server_fixture  # noqa: F401 (a fixture)
from .test_feed_round8 import U, T, http, items, polls, rss  # noqa: F401 (http: a fixture)


def listing(guids: dict[int, str], descriptions: dict[int, str] | None = None) -> bytes:
    """The shared page's feed: item i (a title of T) under guids[i], with its description."""
    descriptions = descriptions or {}
    return rss("".join(
        f"<item><title>{T[i]}</title><link>{U}</link><guid>{g}</guid>"
        + (f"<description>{descriptions[i]}</description>" if i in descriptions else "")
        + "</item>" for i, g in guids.items()))


@pytest.mark.parametrize("about", [
    {0: "We prune invented networks.", 1: "Labels, invented.", 2: "Graphs, sparse."},
    {},  # no descriptions at all
])
async def test_one_guid_renamed_at_a_shared_page_is_the_same_paper(server, store, http, about):
    # the journal's CMS gave one article a new guid; its link, title and abstract stayed
    got = await polls(server, store, http,
                      listing({0: "IJ-0", 1: "IJ-1", 2: "IJ-2"}, about),
                      listing({0: "IJ-0", 1: "IJ-1", 2: "IJ-2026-0002"}, about),
                      listing({0: "IJ-0", 1: "IJ-1", 2: "IJ-2026-0002"}, about),
                      listing({0: "ij-0", 1: "IJ-1", 2: "IJ-2026-0002"}, about))
    assert [len(new) for new in got] == [3, 0, 0, 0]


async def test_a_column_at_a_shared_page_is_a_new_item_each_time(server, store, http):
    def column(week: int) -> bytes:
        return rss(f"<item><title>What is your diagnosis this week</title><link>{U}</link>"
                   f"<guid>dx-{week}</guid><description>Case {week}: an invented rash."
                   f"</description></item><item><title>{T[0]}</title><link>{U}</link>"
                   "<guid>IJ-0</guid></item>")
    got = await polls(server, store, http, column(1), column(2), column(3))
    assert got == [["What is your diagnosis this week", T[0]],
                   ["What is your diagnosis this week"], ["What is your diagnosis this week"]]


@pytest.mark.parametrize("second", [
    # a title too generic to be an identity ("Editorial") under a new guid: a new item
    rss(f"<item><title>Editorial</title><link>{U}</link><guid>ed-2</guid></item>"
        f"<item><title>{T[0]}</title><link>{U}</link><guid>IJ-0</guid></item>"),
    # the same title with another description under a new guid: a new item
    rss(f"<item><title>{T[1]}</title><link>{U}</link><guid>IJ-9</guid><description>A "
        f"different invented study.</description></item>"
        f"<item><title>{T[0]}</title><link>{U}</link><guid>IJ-0</guid></item>"),
])
async def test_when_a_renamed_guid_is_not_enough(server, store, http, second):
    first = rss(f"<item><title>Editorial</title><link>{U}</link><guid>ed-1</guid></item>"
                f"<item><title>{T[1]}</title><link>{U}</link><guid>IJ-1</guid><description>"
                "Labels, invented.</description></item>"
                f"<item><title>{T[0]}</title><link>{U}</link><guid>IJ-0</guid></item>")
    got = await polls(server, store, http, first, second)
    assert [len(new) for new in got] == [3, 1]


async def test_an_empty_link_before_a_permalink_guid(server, store, http):
    body = rss('<item><title>Pruning made-up networks</title><link></link>'
               '<guid isPermaLink="true">https://j.example.org/a/7</guid></item>')
    got = await polls(server, store, http, body, body)
    assert [len(new) for new in got] == [1, 0]
    (paper,) = store.papers_since("")
    assert paper.url == "https://j.example.org/a/7"
