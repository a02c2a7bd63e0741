"""Every match reaches the reader: each digest's page (/d/), the archive on the preferences
page, the private Atom feed (/f/) with its 304s, and feed-only subscribers."""

from __future__ import annotations

import email
import email.policy
import functools
import json
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from html import unescape
from xml.etree import ElementTree

import feedparser
import httpx
import pytest

from digestd.config import load_config
from digestd.models import Paper
from digestd.sources.sample import sample_papers
from digestd.store import open_store
from digestd.tokens import sign
from digestd.web import create_app, redact

from .test_web import Clock, cli, csrf_of, path_of, write_site_config

BROAD = "learning OR model*"


@functools.cache
def day_of_papers() -> tuple[Paper, ...]:
    """A day of 120 papers (the first 120 of the bundled sample)."""
    return tuple(sample_papers()[:120])


class Day:
    """A store holding one day of 120 papers, an SMTP sink, and the web app over the store."""

    def __init__(self, tmp_path, smtp_sink, extra: str = "", store_url: str = "") -> None:
        """`store_url`: a PostgreSQL database, else digestd.sqlite3 in tmp_path."""
        self.cfg = write_site_config(tmp_path, smtp_sink, extra, store_url=store_url)
        self.config = load_config(self.cfg)
        self.store = open_store(self.config.store)
        self.store.add_papers(day_of_papers())
        self.sink = smtp_sink
        self.clock = Clock()
        self.app = create_app(self.config, self.store, clock=self.clock)
        self.web = self.app.state.web
        self.secret = self.web.secret

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app,
                                                               client=("198.51.100.7", 4242)),
                                 base_url="http://testserver")

    def mails(self, to: str) -> list:
        return [email.message_from_bytes(r.data, policy=email.policy.default)
                for r in self.sink.received if to in r.rcpt_tos]

    def send(self) -> None:
        assert cli("-c", str(self.cfg), "send", "--now") == 0

    def prefs_path(self, address: str) -> str:
        sub = self.store.get_subscriber(address)
        return path_of(self.web.links.preferences(sub.id, sub.link_gen))

    def feed_path(self, address: str) -> str:
        sub = self.store.get_subscriber(address)
        return path_of(self.web.links.feed(sub.id, sub.link_gen))


@pytest.fixture
def day(tmp_path, smtp_sink, store_url):
    """The day's site, once on each backend."""
    d = Day(tmp_path, smtp_sink, store_url=store_url)
    yield d
    d.store.close()


def papers_on_page(html: str) -> list[str]:
    """The titles a digest's page lists, in order."""
    return [re.sub(r"<[^>]+>", "", t).strip() for t in
            re.findall(r'<h2 class="paper-title">(.*?)</h2>', html)]


def feed_link(html: str) -> str:
    m = re.search(r'<link rel="alternate" type="application/atom\+xml"[^>]* href="([^"]+)"',
                  html)
    assert m, html[:500]
    return m[1]


# -- the whole path: a broad rule against a day of 120 papers --------------------------------

async def test_every_matched_paper_is_on_the_digests_page_and_in_the_feed(day, capsys):
    day.store.add_subscriber("ada@example.org", [BROAD])
    capsys.readouterr()
    assert cli("-c", str(day.cfg), "rules", "test", BROAD, "--json") == 0
    matched = json.loads(capsys.readouterr().out)
    assert len(matched) > 100  # the rule is broad: most of the 120 papers

    day.send()
    (mail,) = day.mails("ada@example.org")
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    # the email shows digest.max_papers (25), best first, and says how many matched in all
    assert html.count('class="paper"') == 25
    assert f": {len(matched)} new papers" in mail["Subject"]
    more = len(matched) - 25
    assert f"and {more} more: " in html and f"see all {len(matched)} papers</a>" in html
    assert f"... and {more} more: see all {len(matched)} papers at" in text
    # RFC 5064: the page of this digest; "View in browser" and "see all" link to it too
    archived = re.fullmatch(r"<(http://testserver/d/[\w.-]+)>", mail["Archived-At"])[1]
    assert html.count(f'href="{archived}"') == 2 and text.count(archived) == 2

    async with day.client() as client:
        page = await client.get(path_of(archived))
        assert page.status_code == 200
        titles = papers_on_page(page.text)
        # every matched paper, the same count `digestd rules test` gives, each once
        assert len(titles) == len(set(titles)) == len(matched)
        assert sorted(titles) == sorted(
            str(httpx_escape(m["title"])) for m in matched)
        # in the digest's order: the email's 25 first, as the email has them (its HTML
        # writes "³" as "&#179;": compared as a reader sees both)
        shown = [re.sub(r"<[^>]+>", "", t).strip() for t in
                 re.findall(r'<h2 class="title"[^>]*>\d+\. (.*?)</h2>', html)]
        assert [unescape(t) for t in titles[:25]] == [unescape(t) for t in shown]
        # the abstract whole, not cut as in the email
        longest = max(day_of_papers(), key=lambda p: len(p.abstract) if any(
            m["id"] == p.id for m in matched) else 0)
        assert str(httpx_escape(longest.abstract)) in page.text
        assert page.text.count('class="why"') == len(matched)
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "unsafe-inline" not in page.headers["content-security-policy"]

        # the preferences page lists the digest and links the subscriber's feed
        prefs = await client.get(day.prefs_path("ada@example.org"))
        assert f'href="{archived}"' in prefs.text and f"{len(matched)} papers" in prefs.text
        feed = await client.get(path_of(feed_link(prefs.text)))
    assert feed.status_code == 200
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert len(parsed.entries) == len(matched)
    assert {e.title for e in parsed.entries} == {m["title"] for m in matched}
    assert len({e.id for e in parsed.entries}) == len(matched)
    first = parsed.entries[0]
    assert httpx_escape(first.title) == titles[0]
    assert first.summary and first.authors and first.published and "Matched:" in first.content[
        0].value
    assert first.id.startswith("tag:testserver,2026:paper/")
    # the entry links to the paper's own page (the sample's are arXiv's), and "via" to its
    # place on the digest's page
    paper = next(p for p in day_of_papers() if p.title == first.title)
    assert paper.url.startswith("https://arxiv.org/abs/") and first.link == paper.url
    assert {(link.rel, link.href) for link in first.links} >= {
        ("alternate", paper.url), ("via", f"{archived}#paper-1")}


def httpx_escape(text: str) -> str:
    from markupsafe import escape
    return str(escape(text))


# -- the page after the message was pruned, and the archive -----------------------------------

async def test_the_page_works_after_the_message_was_pruned_and_goes_with_the_subscriber(day):
    sub = day.store.add_subscriber("ada@example.org", [BROAD])
    day.send()
    (mail,) = day.mails("ada@example.org")
    archived = path_of(mail["Archived-At"].strip("<>"))
    async with day.client() as client:
        before = papers_on_page((await client.get(archived)).text)
        # what `digestd outbox prune` does once store.keep_sent_days have passed
        assert day.store.prune_sent("2100-01-01") == 1
        assert day.store.db.execute("SELECT count(*) FROM digest_bodies").fetchone()[0] == 0
        after = await client.get(archived)
        assert after.status_code == 200 and papers_on_page(after.text) == before
        # deleting the subscriber deletes their archive: the page and the feed are gone
        prefs = day.prefs_path("ada@example.org")
        feed = day.feed_path("ada@example.org")
        page = await client.get(prefs)
        r = await client.post(f"{prefs}/delete", data={"csrf": csrf_of(page.text),
                                                       "confirm": "yes"})
        assert r.status_code == 200
        for path in (archived, feed):
            r = await client.get(path)
            assert r.status_code == 404 and "No such subscription" in r.text
    for table in ("digests", "sent"):
        assert day.store.db.execute(f"SELECT count(*) FROM {table} WHERE subscriber_id = ?",
                                    (sub.id,)).fetchone()[0] == 0


async def test_the_archive_lists_past_digests_newest_first_paged(day):
    sub = day.store.add_subscriber("ada@example.org", ["model*"])
    pks = list(day.store.paper_pks(p.id for p in day_of_papers()).values())
    for n in range(45):  # 45 days of digests, one paper each
        day.store.queue_digest(sub.id, f"2026-10-{n % 30 + 1:02d}" if n < 30 else
                               f"2026-11-{n - 29:02d}", recipient=sub.email,
                               message_id=f"<{n}@x>", message=b"m", paper_pks=[pks[n]],
                               whys=["title model"], checked=100,
                               now=f"2026-{10 + (n >= 30)}-{(n % 30 if n < 30 else n - 30) + 1:02d}"
                               "T07:00:00+00:00")
    async with day.client() as client:
        prefs = day.prefs_path("ada@example.org")
        first = (await client.get(prefs)).text
        listed = re.findall(r'<li><a href="http://testserver/d/[\w.-]+">([\w-]+)</a>', first)
        assert len(listed) == 20 and listed[0] == "2026-11-15" and listed == sorted(
            listed, reverse=True)
        assert "Page 1 of 3 (45 digests)" in first and 'rel="next"' in first
        third = (await client.get(f"{prefs}?page=3")).text
        assert re.findall(r'<li><a href="http://testserver/d/[\w.-]+">([\w-]+)</a>',
                          third) == [f"2026-10-{d:02d}" for d in range(5, 0, -1)]
        assert 'rel="prev"' in third and 'rel="next"' not in third
        assert (await client.get(f"{prefs}?page=x")).status_code == 200


async def test_the_archive_counts_the_papers_each_email_brought(day):
    """As the subject does: the rule matches kept and the recommendations; the matches
    min_score left out (on the digest's page only) are said apart."""
    from digestd.store import LEFT_OUT, MATCH, RECOMMENDED

    sub = day.store.add_subscriber("ada@example.org", ["model*"])
    pks = list(day.store.paper_pks(p.id for p in day_of_papers()).values())
    for n, (period, kinds) in enumerate((
            ("2026-11-01", [MATCH, MATCH, RECOMMENDED, LEFT_OUT, LEFT_OUT]),
            ("2026-11-02", [LEFT_OUT] * 3),  # every match unlike the seeds: no paper kept
            ("2026-11-03", [MATCH]), ("2026-11-04", []))):
        day.store.queue_digest(sub.id, period, recipient=sub.email, message_id=f"<{n}@x>",
                               message=b"m", paper_pks=pks[10 * n:10 * n + len(kinds)],
                               whys=["title model"] * len(kinds), kinds=kinds, checked=100,
                               now=f"{period}T07:00:00+00:00")
    digests, _ = day.store.digest_archive(sub.id)
    assert [(d.papers, d.left_out, d.brought) for d in digests] == [
        (0, 0, 0), (1, 0, 1), (3, 3, 0), (5, 2, 3)]
    async with day.client() as client:
        prefs = (await client.get(day.prefs_path("ada@example.org"))).text
        listed = dict(re.findall(r'<li><a href="http://testserver/d/[\w.-]+">([\w-]+)</a> '
                                 r'<span class="meta">(.*?)</span></li>', prefs))
        assert listed == {"2026-11-04": "nothing matched · not sent yet",
                          "2026-11-03": "1 paper · not sent yet",
                          "2026-11-02": "no paper kept (3 unlike your seeds) · not sent yet",
                          "2026-11-01": "3 papers · 2 left out · not sent yet"}
        # the digest's own page lists all five, the two left out in their own section
        page = (await client.get(path_of(day.web.links.digest(sub.id, "2026-11-01")))).text
        assert len(papers_on_page(page)) == 5 and 'id="left-out"' in page


async def test_the_nothing_matched_note_has_a_page_too(day):
    # not forced: the note goes out when the digest is due, so make it due a minute ago
    now = datetime.now(timezone.utc)
    day.store.add_subscriber("quiet@example.org", ["zzzznothing"], send_empty=True,
                             send_at=(now - timedelta(minutes=2)).strftime("%H:%M"),
                             now=(now - timedelta(days=1)).isoformat(timespec="seconds"))
    assert cli("-c", str(day.cfg), "send") == 0
    (note,) = day.mails("quiet@example.org")
    assert "nothing matched" in note["Subject"]
    archived = note["Archived-At"].strip("<>")
    assert archived in note.get_body(("plain",)).get_content()
    async with day.client() as client:
        r = await client.get(path_of(archived))
    assert r.status_code == 200 and "Nothing matched your rules" in r.text
    assert "(120 new papers checked)" in r.text and papers_on_page(r.text) == []


# -- links that are not what they claim --------------------------------------------------------

async def test_forged_cut_and_misused_tokens_on_d_and_f(day):
    sub = day.store.add_subscriber("ada@example.org", [BROAD])
    day.send()
    page = path_of(day.mails("ada@example.org")[0]["Archived-At"].strip("<>"))
    feed = day.feed_path("ada@example.org")
    good_d = page.rsplit("/", 1)[1]
    good_f = feed.rsplit("/", 1)[1].removesuffix(".atom")
    async with day.client() as client:
        assert (await client.get(page)).status_code == 200
        assert (await client.get(feed)).status_code == 200
        for good, prefix, suffix in ((good_d, "/d/", ""), (good_f, "/f/", ".atom")):
            forged = sign(b"another secret" * 3, "digest" if prefix == "/d/" else "feed",
                          "1/2026-11-23" if prefix == "/d/" else "1")
            mangled = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
            # a valid token for another purpose: an unsubscribe or preferences link
            other = sign(day.secret, "unsub", sub.id)
            for token in (forged, mangled, good[:20], good[:-1], "x", other, "a.b.c"):
                r = await client.get(f"{prefix}{token}{suffix}")
                assert r.status_code == 400, (prefix, token, r.status_code)
                assert "This link is not valid" in r.text
        # signed, but naming a digest that does not exist
        r = await client.get(f"/d/{sign(day.secret, 'digest', f'{sub.id}/1999-01-01')}")
        assert r.status_code == 404
        # a feed link without .atom is no feed
        assert (await client.get(f"/f/{good_f}")).status_code == 404


async def test_reset_links_retires_p_f_and_d_but_old_u_links_still_unsubscribe(day):
    day.store.add_subscriber("ada@example.org", [BROAD])
    day.send()
    (old_mail,) = day.mails("ada@example.org")
    old_unsub = re.search(r"<(http://testserver/u/[^>]+)>", old_mail["List-Unsubscribe"])[1]
    old_prefs = day.prefs_path("ada@example.org")
    old_feed = day.feed_path("ada@example.org")
    async with day.client() as client:
        page = await client.get(old_prefs)
        r = await client.post(f"{old_prefs}/reset", data={"csrf": csrf_of(page.text)})
        assert r.status_code == 303
        new_prefs = r.headers["location"].split("?")[0]
        assert new_prefs != old_prefs and new_prefs == day.prefs_path("ada@example.org")
        new_page = await client.get(r.headers["location"])
        assert "New links made" in new_page.text
        new_feed = path_of(feed_link(new_page.text))
        assert new_feed != old_feed
        for path in (old_prefs, old_feed):
            r = await client.get(path)
            assert r.status_code == 410 and "replaced" in r.text
        assert (await client.get(new_feed)).status_code == 200
        # a digest's page from before is retired too (a feed shared by mistake carries them);
        # the list of past digests on the new preferences page links the page anew
        old_page = path_of(old_mail["Archived-At"].strip("<>"))
        r = await client.get(old_page)
        assert r.status_code == 410 and "replaced" in r.text
        new_page_link = re.findall(r'<li><a href="([^"]+)">', new_page.text)
        assert new_page_link and path_of(new_page_link[0]) != old_page
        r = await client.get(path_of(new_page_link[0]))
        assert r.status_code == 200 and "A learning paper" not in r.text
        # emails from now on carry the new /p/ and /u/ links
        day.store.add_papers([Paper(id="arxiv:2611.99999", title="A learning paper",
                                    abstract="learning", source="sample")])
        day.send()
        new_mail = day.mails("ada@example.org")[-1]
        text = new_mail.get_body(("plain",)).get_content()
        assert f"http://testserver{new_prefs}" in text and old_prefs not in text
        new_unsub = re.search(r"<(http://testserver/u/[^>]+)>", new_mail["List-Unsubscribe"])[1]
        assert new_unsub != old_unsub and (await client.get(path_of(new_unsub))).status_code \
            == 200
        # an unsubscribe link from before the reset still unsubscribes
        r = await client.post(path_of(old_unsub), data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
    assert day.store.get_subscriber("ada@example.org").status == "unsubscribed"


# -- the feed's conditional requests ------------------------------------------------------------

async def test_the_feed_answers_304_until_something_is_delivered(day):
    day.store.add_subscriber("ada@example.org", [BROAD])
    feed = day.feed_path("ada@example.org")
    async with day.client() as client:
        empty = await client.get(feed)
        assert empty.status_code == 200 and feedparser.parse(empty.content).entries == []
        day.send()
        full = await client.get(feed, headers={"If-None-Match": empty.headers["etag"]})
        assert full.status_code == 200 and full.headers["etag"] != empty.headers["etag"]
        etag, modified = full.headers["etag"], full.headers["last-modified"]
        assert etag.startswith('W/"') and full.headers["cache-control"] == "private, no-cache"
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", {etag}'},
                        {"If-None-Match": etag.removeprefix("W/")},
                        {"If-Modified-Since": modified}):
            r = await client.get(feed, headers=headers)
            assert r.status_code == 304 and r.content == b"", headers
            assert r.headers["etag"] == etag
        # If-None-Match decides when both are sent (RFC 9110 13.2.2)
        r = await client.get(feed, headers={"If-None-Match": '"other"',
                                            "If-Modified-Since": modified})
        assert r.status_code == 200
        past = format_datetime(datetime(2020, 1, 1, tzinfo=timezone.utc), usegmt=True)
        assert (await client.get(feed, headers={"If-Modified-Since": past})).status_code == 200
        assert (await client.get(feed, headers={"If-Modified-Since": "garbage"})
                ).status_code == 200
        # a new digest delivered: a new ETag, the new paper in the feed, the old entries kept
        # with the same ids
        day.store.add_papers([Paper(id="arxiv:2611.99999", title="A learning paper",
                                    abstract="learning", source="sample",
                                    url="https://example.org/new"),
                              Paper(id="arxiv:2611.99998", title="A pageless learning paper",
                                    abstract="learning", source="sample")])
        day.send()
        r = await client.get(feed, headers={"If-None-Match": etag})
        assert r.status_code == 200 and r.headers["etag"] != etag
        before = {e.id for e in feedparser.parse(full.content).entries}
        after = feedparser.parse(r.content).entries
        new = {e.title: e for e in after if e.id not in before}
        assert set(new) == {"A learning paper", "A pageless learning paper"}
        assert {e.id for e in after} == before | {e.id for e in new.values()}
        assert new["A learning paper"].link == "https://example.org/new"
        # a paper without a page of its own links to its place on the digest's page
        assert re.fullmatch(r"http://testserver/d/[^#]+#paper-[12]",
                            new["A pageless learning paper"].link)
        # a new day moves the 30-day window: the ETag changes with it
        day.clock.advance(86400)
        r2 = await client.get(feed, headers={"If-None-Match": r.headers["etag"]})
        assert r2.status_code == 200


async def test_feed_is_well_formed_with_hostile_text(day):
    sub = day.store.add_subscriber("eve@example.org", ["hostile"])
    day.store.add_papers([Paper(
        id="arxiv:2611.00666", title='<script>alert(1)</script> & "hostile" \x0b]]>',
        abstract="hostile <b>bold</b> & </summary> \x01", authors=("Eve <eve@x>",),
        categories=('cs."LG"',), source="sample", url="https://example.org/?a=1&b=2",
        published="2026-11-20")])
    day.send()
    async with day.client() as client:
        r = await client.get(day.feed_path("eve@example.org"))
        page = await client.get(path_of(day.mails("eve@example.org")[0]["Archived-At"]
                                        .strip("<>")))
    ElementTree.fromstring(r.content)  # well-formed XML
    (entry,) = feedparser.parse(r.content).entries
    assert entry.title == '<script>alert(1)</script> & "hostile" ]]>'
    assert entry.link == "https://example.org/?a=1&b=2"
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert "<b>bold</b>" not in page.text
    assert sub.id


# -- feed-only subscribers -----------------------------------------------------------------------

async def test_feed_only_subscribers_get_no_email_but_a_full_feed(day, capsys):
    assert cli("-c", str(day.cfg), "subscribers", "add", "feed@example.org", "--rule", BROAD,
               "--feed-only") == 0
    day.store.add_subscriber("mail@example.org", [BROAD])
    capsys.readouterr()
    day.send()
    assert "1 for feed-only subscribers" in capsys.readouterr().out
    assert day.mails("feed@example.org") == [] and len(day.mails("mail@example.org")) == 1
    sub = day.store.get_subscriber("feed@example.org")
    assert sub.status == "active" and sub.feed_only
    async with day.client() as client:
        feed = feedparser.parse((await client.get(day.feed_path("feed@example.org"))).content)
        mailed = feedparser.parse((await client.get(day.feed_path("mail@example.org"))).content)
        assert len(feed.entries) == len(mailed.entries) > 100
        prefs = (await client.get(day.prefs_path("feed@example.org"))).text
        (page,) = re.findall(r'<li><a href="(http://testserver/d/[\w.-]+)">', prefs)
        assert len(papers_on_page((await client.get(path_of(page))).text)) == len(feed.entries)
        assert 'name="delivery" value="feed" checked' in prefs
        # switching back to email on the preferences page
        form = {"csrf": csrf_of(prefs), "rule": [BROAD], "send_at": "07:00",
                "timezone": "UTC", "frequency": "daily", "weekday": "0", "delivery": "email",
                "action": "save"}
        r = await client.post(day.prefs_path("feed@example.org"), data=form)
        assert r.status_code == 303
    assert not day.store.get_subscriber("feed@example.org").feed_only
    # the outbox never held a message for the feed-only digest
    assert day.store.db.execute(
        "SELECT count(*) FROM digests d JOIN digest_bodies b ON b.digest_id = d.id "
        "WHERE d.subscriber_id = ?", (sub.id,)).fetchone()[0] == 0


async def test_feed_only_on_the_preferences_page(day):
    day.store.add_subscriber("ada@example.org", [BROAD])
    async with day.client() as client:
        prefs = day.prefs_path("ada@example.org")
        page = await client.get(prefs)
        form = {"csrf": csrf_of(page.text), "rule": [BROAD], "send_at": "07:00",
                "timezone": "UTC", "frequency": "daily", "weekday": "0", "delivery": "feed",
                "action": "save"}
        assert (await client.post(prefs, data=form)).status_code == 303
    assert day.store.get_subscriber("ada@example.org").feed_only
    day.send()
    assert day.mails("ada@example.org") == []
    assert day.store.get_subscriber("ada@example.org").status == "active"


def test_tokens_of_d_and_f_never_reach_the_log():
    assert redact("/d/abc.def") == "/d/<token>" and redact("/f/abc.def.atom") == "/f/<token>"


async def test_the_feed_holds_30_days_or_500_entries_whichever_is_fewer(day):
    sub = day.store.add_subscriber("ada@example.org", [BROAD], feed_only=True)
    papers = [Paper(id=f"arxiv:2611.{i:05d}", title=f"Paper {i}", source="sample")
              for i in range(700)]
    day.store.add_papers(papers)
    pks = list(day.store.paper_pks(p.id for p in papers).values())
    now = datetime.fromtimestamp(day.clock(), timezone.utc)

    def delivered(days_ago: int, first: int, n: int) -> None:
        when = (now - timedelta(days=days_ago)).isoformat(timespec="seconds")
        day.store.queue_digest(sub.id, when[:10], recipient=sub.email, message_id="",
                               message=b"", paper_pks=pks[first:first + n], deliver=False,
                               now=when)

    delivered(40, 0, 50)    # too old
    delivered(20, 50, 30)   # in the window
    feed = day.feed_path("ada@example.org")
    async with day.client() as client:
        entries = feedparser.parse((await client.get(feed)).content).entries
        assert {e.title for e in entries} == {f"Paper {i}" for i in range(50, 80)}
        for k in range(5):  # 5 more days of 100 papers: 530 in the window
            delivered(5 - k, 80 + 100 * k, 100)
        entries = feedparser.parse((await client.get(feed)).content).entries
    assert len(entries) == 500
    # the newest digest first, each in its order; the oldest of the window left out
    assert entries[0].title == "Paper 480" and entries[-1].title == "Paper 179"
    assert not {e.title for e in entries} & {f"Paper {i}" for i in range(80)}
