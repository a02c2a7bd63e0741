"""Sources against the recorded payloads in tests/fixtures, served by a real local HTTP server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import re
import socket
import ssl
from datetime import date, datetime, timezone
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from digestd import PROJECT_URL
from digestd.cli import DEMO_SUBSCRIBERS
from digestd.config import SOURCE_KINDS, SourceConfig
from digestd.errors import NotFound, SourceError
from digestd.jobs_poll import PollReport, poll_sources
from digestd.match import match_rules
from digestd.sources import SOURCE_CLASSES, USER_AGENT, Http, make_source
from digestd.sources.arxiv_api import parse_api_feed
from digestd.sources.base import parse_retry_after
from digestd.sources.clean import clean_title, tex_to_text
from digestd.sources.ids import (
    arxiv_id,
    arxiv_version,
    canonical,
    doi_id,
    normalize_doi,
    parse_arxiv,
    url_id,
)
from digestd.sources.sample import sample_papers
from digestd.store import SourceState, Store

from .http_fixtures import Reply, fixture_bytes, server_fixture  # noqa: F401 (a fixture)

RSS = "arxiv-rss-cs.CL-2026-04-27-trimmed.xml"
RSS_EMPTY = "arxiv-rss-test-2024-11-28-empty.xml"
RSS_ERROR = "arxiv-rss-error-bad-archive-astroph-2024-11-28.xml"
API_IDLIST = "arxiv-api-idlist-1111.2011v2-2016.atom"
API_QUERY = "arxiv-api-query-transformer-cs.LG-5-2026-06-14.atom"
HF = "hf-daily-papers-2026-07-31.json"
BIORXIV = "biorxiv-details-2026-07-15-to-18-trimmed3.json"
TAKARA = "takara-tldr-daily-papers-rss-2026-04-30.xml"

RSS_TYPE = "application/rss+xml"
ATOM_TYPE = "application/atom+xml"
JSON_TYPE = "application/json"


class FakeTime:
    """A clock that only moves when Http sleeps, and a record of every sleep."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


# Loading the CA bundle costs ~0.1 s per client; one context serves every test.
_SSL = ssl.create_default_context()


def fast_http(**overrides) -> Http:
    """Real HTTP, tiny delays: the tests check behaviour, not patience."""
    settings = {"timeout": 2.0, "retries": 2, "backoff": 0.001, "backoff_max": 0.005,
                "host_delays": {}, "default_host_delay": 0.0, "delay_scale": 0.0,
                "verify": _SSL}
    settings.update(overrides)
    return Http(**settings)


@pytest.fixture
async def http():
    client = fast_http()
    yield client
    await client.aclose()


def cfg(name: str, kind: str, **kw) -> SourceConfig:
    return SourceConfig(name=name, kind=kind, **kw)


def rss_cfg(server, name: str = "arxiv-cl", **kw) -> SourceConfig:
    kw.setdefault("categories", ("cs.CL",))
    return cfg(name, "arxiv-rss", url=server.url("/rss"), **kw)


async def poll(source_config: SourceConfig, http: Http, state: SourceState | None = None):
    return await make_source(source_config, http).poll(state or SourceState(source_config.name))


# -- identity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, bare, version", [
    ("2401.01234", "2401.01234", None),
    ("2401.01234v2", "2401.01234", 2),
    ("arXiv:2401.01234v12", "2401.01234", 12),
    ("https://arxiv.org/abs/2401.01234v2", "2401.01234", 2),
    ("http://arxiv.org/pdf/2401.01234v3.pdf", "2401.01234", 3),
    ("oai:arXiv.org:2604.22002v1", "2604.22002", 1),
    ("0704.0001", "0704.0001", None),
    ("hep-th/9901001", "hep-th/9901001", None),
    ("hep-th/9901001v3", "hep-th/9901001", 3),
    ("https://arxiv.org/abs/math.GT/0309136v1", "math.GT/0309136", 1),
    ("oai:arXiv.org:cond-mat/0102536", "cond-mat/0102536", None),
    ("10.48550/arXiv.2401.01234", "2401.01234", None),
    ("https://doi.org/10.48550/ARXIV.2401.01234", "2401.01234", None),
])
def test_arxiv_ids_in_every_spelling(text, bare, version):
    assert parse_arxiv(text) == (bare, version)
    assert arxiv_id(text) == f"arxiv:{bare}"
    assert arxiv_version(text) == version


@pytest.mark.parametrize("text", ["", "2401.123", "hello", "10.1103/PhysRevB.85.115117",
                                  "https://tldr.takara.ai/p/x", "2401.123456"])
def test_not_arxiv_ids(text):
    assert parse_arxiv(text) is None


def test_dois_and_urls():
    assert doi_id("10.1103/PhysRevB.85.115117") == "doi:10.1103/physrevb.85.115117"
    assert doi_id("https://doi.org/10.1101/2024.01.01.123456") == "doi:10.1101/2024.01.01.123456"
    assert doi_id("http://dx.doi.org/10.1038/S41586-024-1") == "doi:10.1038/s41586-024-1"
    assert doi_id("doi:10.1038/nature12373.") == "doi:10.1038/nature12373"
    # arXiv's own DOI is the arXiv paper, not another one
    assert doi_id("10.48550/arXiv.2401.01234") == "arxiv:2401.01234"
    assert normalize_doi("not a doi") is None
    assert url_id("https://arxiv.org/abs/2401.01234v2") == "arxiv:2401.01234"
    assert url_id("https://doi.org/10.1038/X") == "doi:10.1038/x"
    assert url_id("HTTPS://Example.ORG/p/1#top") == "url:https://example.org/p/1"
    assert canonical("url:https://x.org/1", "doi:10.1/a", "arxiv:2401.01234") == (
        "arxiv:2401.01234", ("url:https://x.org/1", "doi:10.1/a"))
    assert canonical(None, "doi:10.1/a", "doi:10.1/a") == ("doi:10.1/a", ())
    assert canonical(None, None) is None


@pytest.mark.parametrize("raw, readable", [
    (r"$\alpha$-Divergences for \emph{Deep} Nets", "α-Divergences for Deep Nets"),
    (r"\textbf{\emph{Nested}} and {\it old} fonts", "Nested and old fonts"),
    (r"Speedup of 6.01$\times$ in 60 $\mu$s", "Speedup of 6.01× in 60 μs"),
    (r"$O(n^{2})$ attention, $\mathcal{O}(1)$ memory", "O(n²) attention, O(1) memory"),
    (r"Sch\"{o}dinger and Erd\H{o}s at 100\%", "Schödinger and Erdős at 100%"),
    ("Prices from $5 to $10 \\$ each", "Prices from $5 to $10 $ each"),
    ("Title with\n   a line break", "Title with a line break"),
    ("plain title", "plain title"),
])
def test_latex_made_readable(raw, readable):
    assert clean_title(raw, tex=True) == readable


def test_clean_title_strips_html_and_entities():
    assert clean_title("A <i>study</i> of &amp; &lt;tags&gt;", html=True) == "A study of & <tags>"
    assert tex_to_text("no latex") == "no latex"


def test_retry_after_parsing():
    now = datetime(2026, 4, 27, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Mon, 27 Apr 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Mon, 27 Apr 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None) is None


def test_every_configured_kind_is_registered():
    assert set(SOURCE_KINDS) <= set(SOURCE_CLASSES)
    assert SOURCE_CLASSES["sample"].kind == "sample"


# -- arxiv-rss ---------------------------------------------------------------------------------

async def test_arxiv_rss_fixture(server, http):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    result = await poll(rss_cfg(server), http)
    assert [p.id for p in result.papers] == ["arxiv:2604.22002", "arxiv:2604.22027",
                                             "arxiv:2604.22038"]
    first, second, third = result.papers
    assert first.authors == ("Anamta Khan", "Ratna Kandala", "Deepti", "Sheza Munir",
                             "Joyojeet Pal")
    assert third.authors == ("Etha Tianze Hua", "Tian Yun", "Ellie Pavlick")
    assert second.categories == ("cs.CL", "cs.AI", "cs.LG")
    assert first.categories == ("cs.CL",)
    assert first.title.startswith("When Cow Urine Cures Constipation on YouTube")
    # the "arXiv:... Announce Type: new Abstract:" preamble is gone
    assert first.abstract.startswith("Social media platforms have become primary channels")
    assert "Announce Type" not in second.abstract and "\n" not in second.abstract
    assert first.published == "2026-04-27T00:00:00-04:00"
    assert first.version == 1
    assert first.url == "https://arxiv.org/abs/2604.22002"
    assert first.pdf_url == "https://arxiv.org/pdf/2604.22002"
    assert {p.source for p in result.papers} == {"arxiv-cl"}
    assert result.skipped == 0 and result.fetched == 3
    assert result.etag and result.last_modified
    (req,) = server.hits("/rss")
    assert req.headers["user-agent"] == USER_AGENT and PROJECT_URL in USER_AGENT


async def test_arxiv_rss_combines_categories_in_one_request(server, http):
    server.file("/rss/cs.CL+stat.ML", RSS, RSS_TYPE)
    result = await poll(rss_cfg(server, categories=("cs.CL", "stat.ML")), http)
    assert len(result.papers) == 3
    assert [r.path for r in server.requests] == ["/rss/cs.CL+stat.ML"]


async def test_arxiv_rss_keeps_only_the_wanted_announce_types(server, http):
    body = fixture_bytes(RSS)
    types = iter(["new", "replace", "cross"])
    body = re.sub(rb"<arxiv:announce_type>new</arxiv:announce_type>",
                  lambda m: b"<arxiv:announce_type>%s</arxiv:announce_type>"
                  % next(types).encode(), body)
    server.payload("/rss/cs.CL", body, RSS_TYPE)
    result = await poll(rss_cfg(server), http)  # default: new and cross
    assert [p.id for p in result.papers] == ["arxiv:2604.22002", "arxiv:2604.22038"]
    assert result.skipped == 1
    only_replacements = await poll(rss_cfg(server, announce_types=("replace",)), http)
    assert [p.id for p in only_replacements.papers] == ["arxiv:2604.22027"]
    assert only_replacements.skipped == 2


async def test_arxiv_rss_empty_feed_is_not_an_error(server, http):
    server.file("/rss/test", RSS_EMPTY, RSS_TYPE)
    result = await poll(rss_cfg(server, categories=("test",)), http)
    assert result.papers == [] and result.skipped == 0 and not result.not_modified


async def test_arxiv_rss_error_feed_names_the_category(server, http):
    server.file("/rss/astroph", RSS_ERROR, RSS_TYPE)
    with pytest.raises(SourceError) as err:
        await poll(rss_cfg(server, name="astro", categories=("astroph",)), http)
    assert err.value.reason == "arxiv-error"
    assert "astroph" in str(err.value) and str(err.value).startswith("astro:")
    assert "Bad archive" in str(err.value)


async def test_arxiv_s_error_feed_read_as_a_plain_feed_is_an_error_not_an_empty_day(server,
                                                                                 http):
    """A `feed` source pointed at an arXiv listing with a mistyped archive gets the same
    well-formed, empty error feed: said as arxiv-rss says it, not "ok, 0 new"."""
    server.file("/rss/astroph", RSS_ERROR, RSS_TYPE)
    with pytest.raises(SourceError) as err:
        await poll(cfg("astro", "feed", url=server.url("/rss/astroph")), http)
    assert err.value.reason == "arxiv-error"
    assert str(err.value).startswith("astro: arXiv rejected the query http://rss.arxiv.org/")
    assert "Bad archive 'astroph'" in str(err.value)
    server.file("/rss/test", RSS_EMPTY, RSS_TYPE)  # an empty day stays an empty day
    assert (await poll(cfg("t", "feed", url=server.url("/rss/test")), http)).papers == []


@pytest.mark.parametrize("body", [
    b"<html><head><title>503</title></head><body><h1>Service unavailable</h1></body></html>",
    fixture_bytes(RSS)[:3000],  # truncated mid-item: its first item must not be accepted
    b"\x00\x01garbage\xff",
    b"",
], ids=["html", "truncated", "garbage", "empty-body"])
async def test_arxiv_rss_rejects_what_is_not_a_whole_feed(server, http, body):
    server.payload("/rss/cs.CL", body, "text/html")
    with pytest.raises(SourceError) as err:
        await poll(rss_cfg(server), http)
    assert err.value.reason == "bad-xml"
    assert str(err.value).startswith("arxiv-cl:")


# -- arxiv-api ---------------------------------------------------------------------------------

def api_cfg(server, **kw) -> SourceConfig:
    kw.setdefault("query", "all:transformer AND cat:cs.LG")
    return cfg("arxiv-q", "arxiv-api", url=server.url("/api/query"), **kw)


async def test_arxiv_api_old_format_with_doi_and_journal_ref(server, http):
    server.file("/api/query", API_IDLIST, ATOM_TYPE)
    result = await poll(api_cfg(server, query="id:1111.2011"), http)
    (paper,) = result.papers
    assert paper.id == "arxiv:1111.2011" and paper.version == 2
    # wrapped over two lines with indentation in the file
    assert paper.title == ("Quantum Criticality for Extended Nodes on a Bethe Lattice in the "
                           "Large Connectivity Limit")
    assert paper.authors == ("James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic")
    assert paper.categories == ("cond-mat.str-el", "cond-mat.stat-mech")
    assert paper.aliases == ("doi:10.1103/physrevb.85.115117",)
    assert paper.published == "2011-11-08T18:48:36+00:00"
    assert paper.abstract.startswith("Theoretical description of anisotropic systems")
    assert paper.url == "https://arxiv.org/abs/1111.2011"
    (entry,) = parse_api_feed(fixture_bytes(API_IDLIST), source="x").entries
    assert entry.journal_ref == "Phys. Rev. B 85, 115117 (2012)"
    assert entry.doi == "10.1103/physrevb.85.115117"
    assert entry.primary_category == "cond-mat.str-el"


async def test_arxiv_api_new_format_query(server, http):
    server.file("/api/query", API_QUERY, ATOM_TYPE)
    result = await poll(api_cfg(server, max_results=5), http)
    assert [p.id for p in result.papers] == ["arxiv:2606.13677", "arxiv:2606.13591",
                                             "arxiv:2606.13568", "arxiv:2606.13515",
                                             "arxiv:2606.13501"]
    mana, _, cup, mask, gfdit = result.papers
    # primary category first, even where the entry lists it elsewhere
    assert mana.categories == ("cs.RO", "cs.AI", "cs.CV", "cs.LG")
    assert gfdit.categories == ("cs.DC", "cs.LG", "cs.PF")
    assert mana.authors == ("Zhao-Heng Yin", "Guanya Shi", "Pieter Abbeel", "C. Karen Liu")
    assert len(gfdit.authors) == 9 and cup.authors == ("Snigdha Chandan Khilar",)
    assert "(<1 minute per tool)" in mana.abstract  # &lt; decoded once
    assert "6.01×" in gfdit.abstract and "60 μs" in gfdit.abstract  # LaTeX in the abstract
    assert "\n" not in gfdit.abstract
    assert mask.published == "2026-06-11T16:02:42+00:00" and mask.version == 1
    (req,) = server.requests
    assert req.query == {"search_query": "all:transformer AND cat:cs.LG", "start": "0",
                         "max_results": "5", "sortBy": "submittedDate",
                         "sortOrder": "descending"}


async def _two_pages(server, page2: bytes) -> tuple:
    """(PollResult, FakeTime) of arxiv-api asked for 7 results: the fixture's 5 on the first
    page, `page2` after."""
    def by_start(req):
        body = fixture_bytes(API_QUERY) if req.query["start"] == "0" else page2
        return Reply(200, body, {"Content-Type": ATOM_TYPE})
    server.route("/api/query", by_start)
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock, delay_scale=1.0) as http:
        return await poll(api_cfg(server, max_results=7), http), fake


async def test_arxiv_api_pages_with_start_at_most_one_request_every_3s(server):
    page2 = fixture_bytes(API_QUERY).replace(b"2606.135", b"2606.999")  # 2 other ids
    page2 = re.sub(rb"<entry>.*?</entry>\s*", b"", page2, count=3, flags=re.DOTALL)
    result, fake = await _two_pages(server, page2)
    assert [r.query["start"] for r in server.requests] == ["0", "5"]
    assert [r.query["max_results"] for r in server.requests] == ["7", "2"]
    assert len(result.papers) == 7 and result.papers[-1].id == "arxiv:2606.99901"
    assert fake.sleeps == [pytest.approx(3.0)]  # arXiv's rule, even on a mirror


async def test_arxiv_api_a_page_that_repeats_the_last_counts_them_as_seen(server):
    """New submissions push results down while paging: the next page starts with the end of
    the one before. Those entries are seen (`digestd poll`'s count), not skipped."""
    page2 = re.sub(rb"<entry>.*?</entry>\s*", b"", fixture_bytes(API_QUERY), count=3,
                   flags=re.DOTALL)  # the last 2 entries of page 1 again
    result, _ = await _two_pages(server, page2)
    assert [r.query["max_results"] for r in server.requests] == ["7", "2"]
    assert (len(result.papers), result.repeated, result.skipped) == (5, 2, 0)


async def test_arxiv_api_error_entry(server, http):
    body = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>arXiv Query: search_query=&amp;id_list=1234.12345v99</title>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345v99</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345v99</summary>
  </entry>
</feed>"""
    server.payload("/api/query", body, ATOM_TYPE)
    with pytest.raises(SourceError) as err:
        await poll(api_cfg(server), http)
    assert err.value.reason == "arxiv-error" and "incorrect id format" in str(err.value)


@pytest.mark.parametrize("body", [b"<html><body>Rate exceeded.</body></html>",
                                  fixture_bytes(API_QUERY)[:2500], b"{}"])
async def test_arxiv_api_bad_xml(server, http, body):
    server.payload("/api/query", body, "text/html")
    with pytest.raises(SourceError) as err:
        await poll(api_cfg(server), http)
    assert err.value.reason == "bad-xml"


# -- hf-daily ----------------------------------------------------------------------------------

def hf_cfg(server, **kw) -> SourceConfig:
    kw.setdefault("days", 1)
    return cfg("hf", "hf-daily", url=server.url("/api/daily_papers"), **kw)


def hf_source(server, http, **kw):
    source = make_source(hf_cfg(server, **kw), http)
    source.today = lambda: date(2026, 7, 31)
    return source


async def test_hf_daily_fixture(server, http):
    server.file("/api/daily_papers", HF, JSON_TYPE)
    result = await hf_source(server, http).poll(SourceState("hf"))
    assert [p.id for p in result.papers] == ["arxiv:2607.23193", "arxiv:2607.27958",
                                             "arxiv:2607.28582", "arxiv:2607.28308",
                                             "arxiv:2607.16922"]
    assert [p.upvotes for p in result.papers] == [3, 11, 17, 2, 0]
    omni, sigma, beta, _, pedestrian = result.papers
    assert omni.authors == ("Jinsen Su", "Yongdong Luo", "Yuexiao Ma", "Yibo Hu",
                            "Meiguang Jin", "Xiaowu Zheng")
    assert sigma.title == "Σ-Mem: An Online Reliability Memory for LLM-based Multi-Agent Systems"
    assert beta.title.startswith("β-OPSD")
    assert len(pedestrian.authors) == 9
    assert omni.published == "2026-07-28T00:00:00+00:00"
    assert omni.abstract.startswith("Existing token compression methods")
    assert omni.url == "https://arxiv.org/abs/2607.23193"
    (req,) = server.requests
    assert req.query["date"] == "2026-07-31"


async def test_hf_daily_looks_back_days_and_dedups(server, http):
    server.file("/api/daily_papers", HF, JSON_TYPE)
    result = await hf_source(server, http, days=2).poll(SourceState("hf"))
    assert [r.query["date"] for r in server.requests] == ["2026-07-31", "2026-07-30"]
    # the same list twice: the second day's entries repeat papers this poll has, so they
    # are seen (as `digestd poll` counts them), not skipped (announce type, no title, an
    # older version, over max_results)
    assert len(result.papers) == 5 and result.skipped == 0 and result.repeated == 5
    assert result.fetched == 10


def test_poll_counts_a_paper_listed_on_two_days_as_seen(server, tmp_path, capsys):
    """Through `digestd poll`: hf-daily's second day lists the same papers again."""
    from digestd.cli import main

    server.file("/api/daily_papers", HF, JSON_TYPE)
    cfg_path = tmp_path / "digestd.toml"
    cfg_path.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[[sources]]\nname = "hf"\n'
                        f'kind = "hf-daily"\nurl = "{server.url("/api/daily_papers")}"\n'
                        "days = 2\n", encoding="utf-8")
    assert main(["-c", str(cfg_path), "poll"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:5] == ["hf", "10", "5", "5", "0"]  # fetched new seen skipped


async def test_hf_daily_tolerates_schema_drift(server, http):
    data = json.loads(fixture_bytes(HF))
    data[0]["paper"]["title"] = "OmniScope: Modality-Decoupled\n  Token Compression"
    del data[0]["paper"]["upvotes"]
    data[1]["paper"]["ai_summary"] = "added in a later year"
    data[1]["paper"]["ai_keywords"] = ["memory"]
    del data[1]["paper"]["summary"]  # the item-level summary is still there
    data[2]["paper"]["authors"] = [{"user": {"fullname": "Only Fullname"}}, {"name": "Named"},
                                   {"name": "Gone", "hidden": True}, "Plain String"]
    flat = dict(data[3]["paper"])  # an older capture: the paper at the top level
    data[3] = flat
    data.append({"paper": {"title": "No id at all"}})
    data.append("not an object")
    server.payload("/api/daily_papers", json.dumps(data).encode(), JSON_TYPE)
    result = await hf_source(server, http).poll(SourceState("hf"))
    assert len(result.papers) == 5 and result.skipped == 2
    omni, sigma, beta, flat_paper, _ = result.papers
    assert omni.title == "OmniScope: Modality-Decoupled Token Compression"
    assert omni.upvotes is None
    assert sigma.abstract.startswith(data[1]["summary"][:60])
    assert beta.authors == ("Only Fullname", "Named", "Plain String")
    assert flat_paper.id == "arxiv:2607.28308" and flat_paper.upvotes == 2


@pytest.mark.parametrize("body, reason", [
    (b"<!DOCTYPE html><html><body>Bad gateway</body></html>", "bad-json"),
    (fixture_bytes(HF)[:5000], "bad-json"),
    (b'{"unexpected": true}', "bad-json"),
    (b'{"error": "Invalid date"}', "hf-error"),
])
async def test_hf_daily_bad_answers(server, http, body, reason):
    server.payload("/api/daily_papers", body, JSON_TYPE)
    with pytest.raises(SourceError) as err:
        await hf_source(server, http).poll(SourceState("hf"))
    assert err.value.reason == reason and str(err.value).startswith("hf:")


# -- biorxiv / medrxiv -------------------------------------------------------------------------

def bio_source(server, http, kind: str = "biorxiv", **kw):
    source = make_source(cfg(kind, kind, url=server.url("/details"), **kw), http)
    source.today = lambda: date(2026, 7, 18)
    return source


async def test_biorxiv_fixture(server, http):
    server.file("/details/biorxiv/*", BIORXIV, JSON_TYPE)
    result = await bio_source(server, http, days=3).poll(SourceState("biorxiv"))
    assert [r.path for r in server.requests] == ["/details/biorxiv/2026-07-15/2026-07-18/0"]
    assert [p.id for p in result.papers] == ["doi:10.64898/2026.07.13.738145",
                                             "doi:10.64898/2026.07.13.738249",
                                             "doi:10.64898/2025.12.19.695336"]
    first, _, third = result.papers
    assert first.authors == ("Ghafari, T.", "Quinn, A. J.", "Jensen, O.")
    assert len(third.authors) == 10
    assert first.categories == ("neuroscience",) and third.categories == ("microbiology",)
    assert third.version == 3 and first.version == 1
    assert first.published == "2026-07-15"
    assert third.url == "https://www.biorxiv.org/content/10.64898/2025.12.19.695336v3"
    assert third.pdf_url.endswith("695336v3.full.pdf")
    assert result.cursor == "2026-07-18"


def _bio_page(records: list[dict], cursor: int, total: int | str) -> bytes:
    return json.dumps({"messages": [{"status": "ok", "cursor": str(cursor),
                                     "count": str(len(records)), "total": str(total)}],
                       "collection": records}).encode()


async def test_biorxiv_cursor_paging_keeps_highest_version(server, http):
    recs = json.loads(fixture_bytes(BIORXIV))["collection"]
    older = dict(recs[2], version="2", title="An older title")
    newer_journal = dict(recs[0], version="2", published="10.1038/S41593-026-0001-X")
    pages = {"0": _bio_page([recs[0], older], 0, "4"),
             "2": _bio_page([recs[2], newer_journal], 2, "4")}
    server.route("/details/biorxiv/*",
                 lambda req: Reply(200, pages[req.path.rsplit("/", 1)[1]],
                                   {"Content-Type": JSON_TYPE}))
    result = await bio_source(server, http).poll(SourceState("biorxiv"))
    assert [r.path.rsplit("/", 1)[1] for r in server.requests] == ["0", "2"]
    assert [(p.id, p.version) for p in result.papers] == [
        ("doi:10.64898/2026.07.13.738145", 2), ("doi:10.64898/2025.12.19.695336", 3)]
    assert result.papers[1].title == recs[2]["title"]
    assert result.papers[0].aliases == ("doi:10.1038/s41593-026-0001-x",)
    assert result.skipped == 2


async def test_biorxiv_errors_inside_a_200(server, http):
    server.payload("/details/biorxiv/*", json.dumps(
        {"messages": [{"status": "Error: invalid date format 2026-13-01"}],
         "collection": []}).encode(), JSON_TYPE)
    with pytest.raises(SourceError) as err:
        await bio_source(server, http).poll(SourceState("biorxiv"))
    assert err.value.reason == "biorxiv-error" and "invalid date" in str(err.value)


async def test_biorxiv_no_posts_found_is_an_empty_day(server, http):
    server.payload("/details/biorxiv/*", b'{"messages":[{"status":"no posts found"}],'
                   b'"collection":[]}', JSON_TYPE)
    result = await bio_source(server, http).poll(SourceState("biorxiv"))
    assert result.papers == [] and result.skipped == 0


async def test_medrxiv_uses_its_server(server, http):
    body = fixture_bytes(BIORXIV).replace(b'"server": "bioRxiv"', b'"server": "medRxiv"')
    server.payload("/details/medrxiv/*", body, JSON_TYPE)
    result = await bio_source(server, http, kind="medrxiv").poll(SourceState("medrxiv"))
    assert server.requests[0].path.startswith("/details/medrxiv/2026-07-16/2026-07-18/")
    assert len(result.papers) == 3
    assert result.papers[0].url.startswith("https://www.medrxiv.org/content/10.64898/")


async def test_biorxiv_catches_up_from_the_last_interval(server, http):
    server.file("/details/biorxiv/*", BIORXIV, JSON_TYPE)
    await bio_source(server, http).poll(SourceState("biorxiv", cursor="2026-07-10"))
    assert server.requests[0].path.startswith("/details/biorxiv/2026-07-10/2026-07-18/")


async def test_biorxiv_truncated_json(server, http):
    server.payload("/details/biorxiv/*", fixture_bytes(BIORXIV)[:1200], JSON_TYPE)
    with pytest.raises(SourceError) as err:
        await bio_source(server, http).poll(SourceState("biorxiv"))
    assert err.value.reason == "bad-json"


# -- feed --------------------------------------------------------------------------------------

async def test_generic_feed_takara(server, http):
    server.file("/papers.rss", TAKARA, RSS_TYPE)
    result = await poll(cfg("takara", "feed", url=server.url("/papers.rss")), http)
    raw = fixture_bytes(TAKARA).decode()
    links = re.findall(r"<item>.*?<link>([^<]+)</link>", raw, re.DOTALL)
    assert len(links) == 50 and len(result.papers) == 50
    # no DOI in this feed: the link is the id
    assert [p.id for p in result.papers] == [f"url:{link}" for link in links]
    first = result.papers[0]
    assert first.id == "url:https://tldr.takara.ai/p/2604.26238"
    assert first.title == "EnerGS: Energy-Based Gaussian Splatting with Partial Geometric Priors"
    assert first.abstract.startswith("3D Gaussian Splatting (3DGS) has been widely adopted")
    assert first.published == "2026-04-29T02:39:18+00:00"
    assert first.url == "https://tldr.takara.ai/p/2604.26238"


JOURNAL_RSS1 = b"""<?xml version="1.0" encoding="UTF-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:prism="http://prismstandard.org/namespaces/basic/2.0/">
<channel rdf:about="https://www.nature.com/natmachintell.rss"><title>Nature Machine Intelligence</title>
<link>https://www.nature.com/natmachintell</link><description>TOC</description></channel>
<item rdf:about="https://www.nature.com/articles/s42256-026-00001-1">
 <title>Learning &lt;i&gt;fast&lt;/i&gt; with $\\alpha$-nets</title>
 <link>https://www.nature.com/articles/s42256-026-00001-1</link>
 <description>&lt;p&gt;An abstract &amp;amp; more.&lt;/p&gt;</description>
 <dc:identifier>doi:10.1038/S42256-026-00001-1</dc:identifier>
 <dc:creator>Ada Lovelace</dc:creator><dc:creator>Alan Turing</dc:creator>
 <dc:date>2026-04-01</dc:date>
</item>
<item rdf:about="https://www.nature.com/articles/s42256-026-00002-2">
 <title>Second paper</title>
 <link>https://www.nature.com/articles/s42256-026-00002-2</link>
 <prism:doi>10.1038/s42256-026-00002-2</prism:doi>
</item>
<item rdf:about="https://arxiv.org/abs/2604.22027v2">
 <title>A preprint in a journal feed</title>
 <link>https://arxiv.org/abs/2604.22027v2</link>
</item>
<item rdf:about="https://example.org/nothing"><description>no title</description></item>
</rdf:RDF>"""

JOURNAL_ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>J</title><id>urn:j</id>
<updated>2026-04-02T00:00:00Z</updated>
<entry><id>https://doi.org/10.1101/2026.04.01.000001</id><title type="html">Atom &lt;b&gt;entry&lt;/b&gt;</title>
<link href="https://journal.example.org/a/1"/><updated>2026-04-02T10:00:00Z</updated>
<author><name>Grace Hopper</name></author><category term="ml"/>
<summary type="html">&lt;p&gt;Summary&lt;/p&gt;</summary></entry></feed>"""


async def test_generic_feed_dois_from_dc_identifier_and_prism(server, http):
    server.payload("/toc.rss", JOURNAL_RSS1, "application/rdf+xml")
    # this journal writes TeX in its titles, and says so in the source's `tex` setting
    result = await poll(cfg("nature", "feed", url=server.url("/toc.rss"), tex=True), http)
    assert [p.id for p in result.papers] == ["doi:10.1038/s42256-026-00001-1",
                                             "doi:10.1038/s42256-026-00002-2",
                                             "arxiv:2604.22027"]
    assert result.skipped == 1
    first = result.papers[0]
    assert first.title == "Learning fast with α-nets"
    assert first.abstract == "An abstract & more."
    assert first.authors == ("Ada Lovelace", "Alan Turing")
    # the link names it everywhere; the guid (rdf:about) also within this feed
    assert first.aliases == ("url:https://www.nature.com/articles/s42256-026-00001-1",
                             "guid:nature|https://www.nature.com/articles/s42256-026-00001-1")
    assert first.published == "2026-04-01"  # dc:date gave a day, not a time
    assert result.papers[2].url == "https://arxiv.org/abs/2604.22027"


async def test_generic_feed_atom_doi_in_id(server, http):
    server.payload("/atom", JOURNAL_ATOM, ATOM_TYPE)
    (paper,) = (await poll(cfg("j", "feed", url=server.url("/atom")), http)).papers
    assert paper.id == "doi:10.1101/2026.04.01.000001"
    assert paper.title == "Atom entry" and paper.abstract == "Summary"
    assert paper.authors == ("Grace Hopper",) and paper.categories == ("ml",)
    assert paper.published == "2026-04-02T10:00:00+00:00"


async def test_generic_feed_from_a_local_file(tmp_path, http):
    path = tmp_path / "toc.xml"
    path.write_bytes(fixture_bytes(TAKARA))
    for url in (str(path), path.as_uri()):
        source = cfg("local", "feed", url=url)
        first = await poll(source, http)
        assert len(first.papers) == 50 and first.last_modified
        again = await poll(source, http, SourceState("local", last_modified=first.last_modified))
        assert again.not_modified and again.papers == []
    with pytest.raises(SourceError) as err:
        await poll(cfg("local", "feed", url=str(tmp_path / "missing.xml")), http)
    assert err.value.reason == "not-found"


async def test_generic_feed_html_page_is_an_error(server, http):
    server.payload("/feed", b"<!doctype html><html><body>Moved</body></html>", "text/html")
    with pytest.raises(SourceError) as err:
        await poll(cfg("j", "feed", url=server.url("/feed")), http)
    assert err.value.reason == "bad-xml"


async def test_generic_feed_tolerates_broken_xml_but_rereads_it(server, http):
    # a misspelled end tag (a bare "&" or HTML's "&nbsp;" no longer breaks it: they are read
    # as a forgiving reader reads them, arxiv_rss.xml_repaired)
    body = fixture_bytes(TAKARA)
    at = body.index(b"</title>", body.index(b"<title>EnerGS"))
    body = body[:at] + b"</titel>" + body[at + len(b"</title>"):]
    server.payload("/broken", body, RSS_TYPE)
    result = await poll(cfg("j", "feed", url=server.url("/broken")), http)
    assert len(result.papers) == 50
    assert result.etag is None and result.last_modified is None  # read it all again next time


# -- HTTP behaviour ----------------------------------------------------------------------------

async def test_conditional_get_304_keeps_validators(server, http):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    source = rss_cfg(server)
    first = await poll(source, http)
    state = SourceState("arxiv-cl", etag=first.etag, last_modified=first.last_modified)
    second = await poll(source, http, state)
    assert second.not_modified and second.papers == [] and second.fetched == 0
    assert (second.etag, second.last_modified) == (first.etag, first.last_modified)
    req = server.requests[-1]
    assert req.headers["if-none-match"] == first.etag
    assert req.headers["if-modified-since"] == first.last_modified
    # Last-Modified alone works as well
    third = await poll(source, http, SourceState("arxiv-cl", last_modified=first.last_modified))
    assert third.not_modified


async def test_429_with_retry_after_is_honoured(server):
    ok = Reply(200, fixture_bytes(RSS), {"Content-Type": RSS_TYPE})
    server.replies("/rss/cs.CL", Reply(429, b"slow down", {"Retry-After": "7"}), ok)
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock) as http:
        result = await poll(rss_cfg(server), http)
    assert len(result.papers) == 3 and len(server.requests) == 2
    assert fake.sleeps == [pytest.approx(7.0)]


async def test_retry_after_as_http_date(server):
    when = datetime.now(timezone.utc).timestamp() + 20
    ok = Reply(200, fixture_bytes(RSS), {"Content-Type": RSS_TYPE})
    server.replies("/rss/cs.CL",
                   Reply(503, b"", {"Retry-After": formatdate(when, usegmt=True)}), ok)
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock) as http:
        await poll(rss_cfg(server), http)
    assert 15 < fake.sleeps[0] <= 21


async def test_retry_after_beyond_the_cap_gives_up_now(server):
    server.replies("/rss/cs.CL", Reply(429, b"", {"Retry-After": "86400"}))
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock, retry_after_max=300) as http:
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server), http)
    assert err.value.reason == "http-429" and "86400" in str(err.value)
    assert fake.sleeps == [] and len(server.requests) == 1


async def test_503_then_success(server, http):
    ok = Reply(200, fixture_bytes(RSS), {"Content-Type": RSS_TYPE})
    server.replies("/rss/cs.CL", Reply(503, b"busy"), Reply(502, b"bad gw"), ok)
    result = await poll(rss_cfg(server), http)
    assert len(result.papers) == 3 and len(server.requests) == 3


async def test_backoff_grows_exponentially_with_jitter(server):
    server.replies("/rss/cs.CL", Reply(503, b"busy"))
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock, retries=3, backoff=2.0,
                         backoff_max=100.0, rand=lambda: 1.0) as http:
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server), http)
    assert err.value.reason == "http-503" and len(server.requests) == 4
    assert fake.sleeps == [2.0, 4.0, 8.0]  # rand=1: the top of each jitter window


async def test_client_errors_are_not_retried(server, http):
    server.replies("/rss/cs.CL", Reply(404, b"nope"))
    with pytest.raises(SourceError) as err:
        await poll(rss_cfg(server), http)
    assert err.value.reason == "http-404" and len(server.requests) == 1


async def test_timeout(server):
    server.replies("/rss/cs.CL", Reply(200, fixture_bytes(RSS), delay=60))
    async with fast_http(timeout=0.2, retries=1) as http:
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server), http)
    assert err.value.reason == "timeout" and "arxiv-cl" in str(err.value)
    assert len(server.requests) == 2  # tried again once


async def test_connection_refused_is_a_network_error(http):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nobody listens
    source = cfg("gone", "arxiv-rss", url=f"http://127.0.0.1:{port}/rss", categories=("cs.CL",))
    with pytest.raises(SourceError) as err:
        await poll(source, http)
    assert err.value.reason == "network" and str(err.value).startswith("gone:")
    # the operator reads which URL and why, not httpx's "All connection attempts failed"
    assert f"127.0.0.1:{port}/rss" in str(err.value)
    assert "connection refused" in str(err.value)


async def test_huge_bodies_are_cut_off(server):
    chunk = b"<item>" + b"x" * 65536 + b"</item>"
    served = []

    def endless():
        for _ in range(10_000):  # 650 MB if nobody stops it
            served.append(1)
            yield chunk
    server.route("/rss/cs.CL", lambda req: Reply(200, endless(), {"Content-Type": RSS_TYPE}))
    server.replies("/rss/big", Reply(200, b"x" * 300_000))
    async with fast_http(max_bytes=200_000) as http:
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server), http)
        assert err.value.reason == "too-large"
        # with Content-Length the answer is refused before reading it
        with pytest.raises(SourceError) as err:
            await poll(rss_cfg(server, categories=("big",)), http)
        assert err.value.reason == "too-large"
    assert len(served) < 1000  # socket buffers take some, but far from all 10,000


async def test_politeness_delay_per_host(server):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock, delay_scale=1.0,
                         host_delays={"127.0.0.1": 5.0}) as http:
        await asyncio.gather(poll(rss_cfg(server), http), poll(rss_cfg(server), http))
        await poll(rss_cfg(server), http)
    assert len(server.requests) == 3
    assert fake.sleeps == [pytest.approx(5.0), pytest.approx(5.0)]


async def test_retry_after_holds_back_every_source_on_that_host(server):
    ok = Reply(200, fixture_bytes(RSS), {"Content-Type": RSS_TYPE})
    server.replies("/rss/cs.CL", Reply(429, b"", {"Retry-After": "30"}), ok)
    server.file("/rss/cs.AI", RSS, RSS_TYPE)
    fake = FakeTime()
    async with fast_http(sleep=fake.sleep, clock=fake.clock) as http:
        await poll(rss_cfg(server), http)
        await poll(rss_cfg(server, categories=("cs.AI",)), http)
    assert fake.sleeps[0] == pytest.approx(30.0)
    assert len(fake.sleeps) == 1  # the 30 s had passed for the second source already


async def test_mock_transport_edge_cases():
    """Odd answers a local server cannot easily produce."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gzip-lie":
            return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"plain")
        return httpx.Response(301, headers={"Location": str(request.url)})
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True,
                               max_redirects=3)
    async with fast_http(client=client) as http:
        with pytest.raises(SourceError) as err:
            await http.get("http://mock/gzip-lie", source="m")
        assert err.value.reason == "bad-encoding"
        with pytest.raises(SourceError) as err:
            await http.get("http://mock/loop", source="m")
        assert err.value.reason == "redirects"
    assert not client.is_closed  # a client passed in belongs to the caller
    await client.aclose()


# -- the poll job ------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "s.sqlite3")
    yield s
    s.close()


def serve_everything(server) -> list[SourceConfig]:
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    server.file("/api/daily_papers", HF, JSON_TYPE)
    server.file("/api/query", API_QUERY, ATOM_TYPE)
    server.file("/details/biorxiv/*", BIORXIV, JSON_TYPE, validators=False)
    server.file("/papers.rss", TAKARA, RSS_TYPE)
    return [rss_cfg(server), hf_cfg(server), api_cfg(server, max_results=5),
            cfg("biorxiv", "biorxiv", url=server.url("/details")),
            cfg("takara", "feed", url=server.url("/papers.rss"))]


async def test_poll_twice_stores_nothing_new_the_second_time(server, store, http):
    sources = serve_everything(server)
    first = await poll_sources(sources, store, http=http)
    assert all(isinstance(r, PollReport) for r in first)
    assert {r.source: r.new for r in first} == {"arxiv-cl": 3, "hf": 5, "arxiv-q": 5,
                                                "biorxiv": 3, "takara": 50}
    assert all(r.error is None and r.duration_s >= 0 for r in first)
    assert store.count_papers() == 66
    second = await poll_sources(sources, store, http=http)
    assert [r.new for r in second] == [0, 0, 0, 0, 0]
    # the sources with validators answered 304; bioRxiv (none) was read and deduplicated
    assert {r.source for r in second if r.not_modified} == {"arxiv-cl", "hf", "arxiv-q",
                                                           "takara"}
    assert {r.source: r.fetched for r in second}["biorxiv"] == 3
    assert store.count_papers() == 66
    state = store.source_state("arxiv-cl")
    assert state.polls == 2 and state.papers_seen == 3 and state.etag


async def test_without_validators_a_repeat_poll_still_stores_nothing(server, store, http):
    server.file("/rss/cs.CL", RSS, RSS_TYPE, validators=False)
    reports = [await poll_sources([rss_cfg(server)], store, http=http) for _ in range(2)]
    assert [(r.fetched, r.new) for (r,) in reports] == [(3, 3), (3, 0)]


async def test_rss_and_hf_share_papers_stored_once(server, store, http):
    # The two fixture files are of different days (2604.* vs 2607.* ids), so the HF
    # payload is derived: its first paper becomes one announced in the RSS fixture,
    # its title wrapped as HF titles sometimes are.
    rss_ids = set(re.findall(rb"arxiv\.org/abs/(\d{4}\.\d{5})", fixture_bytes(RSS)))
    hf_ids = {p["paper"]["id"].encode() for p in json.loads(fixture_bytes(HF))}
    assert not rss_ids & hf_ids
    data = json.loads(fixture_bytes(HF))
    data[0]["paper"]["id"] = "2604.22027"
    data[0]["paper"]["title"] = "Shared Lexical Task Representations\n Explain Behavioral " \
                                "Variability In LLMs"
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    server.payload("/api/daily_papers", json.dumps(data).encode(), JSON_TYPE)
    reports = await poll_sources([rss_cfg(server), hf_cfg(server)], store, http=http)
    assert sum(r.new for r in reports) == 3 + 5 - 1
    assert store.count_papers() == 7
    (shared,) = [p for p in store.papers_since("") if p.id == "arxiv:2604.22027"]
    assert shared.upvotes == data[0]["paper"]["upvotes"]  # the later source's upvotes kept


async def test_a_failing_source_does_not_stop_the_others(server, store, http, caplog):
    sources = serve_everything(server)
    server.replies("/slow/rss/cs.CL", Reply(200, fixture_bytes(RSS), delay=60))
    server.payload("/bad/api/daily_papers", b"<html>oops</html>", "text/html")
    sources += [cfg("slow", "arxiv-rss", url=server.url("/slow/rss"), categories=("cs.CL",)),
                cfg("broken-hf", "hf-daily", url=server.url("/bad/api/daily_papers"))]
    caplog.set_level(logging.INFO, logger="digestd.poll")
    # 1 s: long enough for the good sources on a busy machine, short for the test
    async with fast_http(timeout=1.0, retries=0) as quick:
        reports = {r.source: r for r in await poll_sources(sources, store, http=quick)}
    assert reports["slow"].reason == "timeout" and reports["slow"].new == 0
    assert reports["broken-hf"].reason == "bad-json"
    assert "broken-hf" in reports["broken-hf"].error
    assert {n: r.new for n, r in reports.items() if r.error is None} == {
        "arxiv-cl": 3, "hf": 5, "arxiv-q": 5, "biorxiv": 3, "takara": 50}
    slow = store.source_state("slow")
    assert slow.consecutive_errors == 1 and slow.last_error and slow.last_success is None
    assert "slow" in slow.last_error
    assert store.source_state("arxiv-cl").consecutive_errors == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "digestd.poll"]
    assert any(line.startswith("source=slow reason=timeout error=\"") for line in lines)
    assert any(line.startswith("source=arxiv-cl fetched=3 new=3 skipped=0") for line in lines)
    assert all("\n" not in line for line in lines)
    # a second failure counts up; a success resets
    async with fast_http(timeout=0.2, retries=0) as quick:
        await poll_sources(sources, store, http=quick, names=["slow"])
    assert store.source_state("slow").consecutive_errors == 2


async def test_disabled_sources_are_skipped_unless_named(server, store, http):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    off = rss_cfg(server, name="off", enabled=False)
    assert await poll_sources([off], store, http=http) == []
    (report,) = await poll_sources([off], store, http=http, names={"off"})
    assert report.source == "off" and report.new == 3
    with pytest.raises(NotFound, match="nope"):
        await poll_sources([off], store, http=http, names=["nope"])


async def test_unknown_kind_and_parser_bugs_are_contained(server, store, http, monkeypatch):
    server.file("/rss/cs.CL", RSS, RSS_TYPE)
    from digestd.sources import arxiv_rss

    def boom(*a, **k):
        raise KeyError("surprise")
    monkeypatch.setattr(arxiv_rss, "parse_arxiv_rss", boom)
    (report,) = await poll_sources([rss_cfg(server)], store, http=http)
    assert report.reason == "internal" and "KeyError" in report.error


async def test_poll_sources_creates_and_closes_its_own_http(server, store):
    server.file("/details/biorxiv/*", BIORXIV, JSON_TYPE)
    (report,) = await poll_sources([cfg("biorxiv", "biorxiv", url=server.url("/details"))],
                                   store)
    assert report.new == 3


# -- the bundled sample ---------------------------------------------------------------------------

def test_the_bundled_sample_is_real_arxiv_papers_a_reader_can_follow():
    papers = sample_papers()
    assert len(papers) == len({p.id for p in papers}) == 300
    for p in papers:
        bare = p.id.removeprefix("arxiv:")
        assert p.id.startswith("arxiv:") and re.fullmatch(r"\d{4}\.\d{5}", bare)
        assert (p.url, p.pdf_url) == (f"https://arxiv.org/abs/{bare}",
                                      f"https://arxiv.org/pdf/{bare}")
        assert p.title and p.abstract and p.authors and p.categories
        assert p.published == "2025-05-27" and p.source == "sample"
        # the TeX was converted when the file was built
        assert "$" not in p.title + p.abstract and "\\" not in p.title + p.abstract
    # a mix of fields, not only the two big ones
    assert len({p.categories[0] for p in papers}) >= 10
    # both demo subscribers get a digest
    for _email, _name, rules in DEMO_SUBSCRIBERS:
        assert 10 <= len(match_rules(list(rules), papers)) < 300


def test_the_bundled_sample_is_what_its_script_builds():
    spec = importlib.util.spec_from_file_location(
        "make_sample", Path(__file__).parent.parent / "bench" / "make_sample.py")
    make_sample = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_sample)
    if not make_sample.DAY.exists():
        pytest.skip(f"the day of arXiv it is built from is not here ({make_sample.DAY})")
    day = json.loads(make_sample.DAY.read_text(encoding="utf-8"))
    bundled = json.loads(make_sample.OUT.read_text(encoding="utf-8"))
    assert [make_sample.paper(r) for r in make_sample.choose(day)] == bundled
