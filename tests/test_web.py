"""The web app, driven through the real ASGI app with httpx; mail goes to a real SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from digestd.cli import main
from digestd.config import load_config
from digestd.errors import DigestdError
from digestd.match import match_rules
from digestd.sources.sample import sample_papers
from digestd.store import Store, is_postgres_url
from digestd.tokens import sign
from digestd.web import (
    CSRF_COOKIE,
    MAX_BODY,
    create_app,
    parse_listen,
    redact,
    serve_web,
    try_rules,
)

from .conftest import free_port

HOUR = 3600.0


@functools.cache
def sample() -> tuple:
    return tuple(sample_papers())


def cli(*args: str) -> int:
    """`digestd ARGS` in a thread of its own: the CLI runs its own event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(main, list(args)).result()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def write_site_config(tmp_path, smtp_sink, extra: str = "",
                      base_url: str = "http://testserver", store_url: str = ""):
    """digestd.toml in tmp_path: SMTP to the sink, the web app on `base_url`, the sample;
    the store digestd.sqlite3 there, or the PostgreSQL database `store_url`."""
    cfg = tmp_path / "digestd.toml"
    url = f'url = "{store_url}"' if is_postgres_url(store_url) else ""
    cfg.write_text(f"""
[store]
path = "digestd.sqlite3"
{url}

[delivery]
from = "Paper digest <digest@example.org>"

[smtp]
host = "127.0.0.1"
port = {smtp_sink.port}
security = "none"

[web]
base_url = "{base_url}"
{extra}

[[sources]]
name = "sample"
kind = "sample"
""")
    return cfg


class Site:
    """A config file, its store with the sample papers, the app and an SMTP sink."""

    def __init__(self, tmp_path, smtp_sink, extra: str = "", base_url: str = "http://testserver"
                 ) -> None:
        self.cfg = write_site_config(tmp_path, smtp_sink, extra, base_url)
        self.config = load_config(self.cfg)
        self.store = Store(self.config.store.path)
        # what `digestd poll` does for the sample source, without its event loop
        self.store.add_papers(sample())
        self.store.record_poll("sample", ok=True, new=300)
        self.clock = Clock()
        self.sink = smtp_sink
        self.app = create_app(self.config, self.store, clock=self.clock)
        self.secret = self.app.state.web.secret

    def client(self, ip: str = "198.51.100.7") -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=(ip, 4242)),
                                 base_url="http://testserver")

    def mails(self, to: str) -> list:
        return [r.message for r in self.sink.received if to in r.rcpt_tos]

    def status(self, email: str) -> str:
        return self.store.get_subscriber(email).status


@pytest.fixture
def site(tmp_path, smtp_sink):
    s = Site(tmp_path, smtp_sink)
    yield s
    s.store.close()


def form(email: str = "ada@example.org", rules=("diffusion",), **extra) -> dict:
    return {"email": email, "rule": list(rules), "send_at": "07:30",
            "timezone": "Europe/Berlin", "frequency": "weekdays", "weekday": "0",
            "action": "subscribe", **extra}


def link_in(message, path: str) -> str:
    text = message.get_body(("plain",)).get_content()
    m = re.search(rf"https?://\S+?{path}/[A-Za-z0-9_.\-]+", text)
    assert m, text
    return m[0]


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def path_of(url: str) -> str:
    return httpx.URL(url).raw_path.decode()


async def subscribed(site: Site, client: httpx.AsyncClient, email: str = "ada@example.org",
                     rules=("diffusion",)) -> str:
    """Subscribe and confirm; returns the preferences path."""
    r = await client.post("/", data=form(email, rules))
    assert r.status_code == 200
    confirm = path_of(link_in(site.mails(email)[-1], "/confirm"))
    r = await client.get(confirm)  # a button: opening the link confirms nothing
    assert r.status_code == 200 and site.status(email) == "pending"
    r = await client.post(confirm)
    assert r.status_code == 200 and site.status(email) == "active"
    return path_of(site.app.state.web.links.preferences(site.store.get_subscriber(email).id))


# -- the whole path ------------------------------------------------------------------------------

async def test_subscribe_confirm_digest_one_click_unsubscribe(site, capsys):
    async with site.client() as client:
        page = await client.get("/")
        assert page.status_code == 200 and 'name="email"' in page.text
        r = await client.post("/", data=form(rules=("diffusion", "", '"language models"')))
        assert r.status_code == 200 and "Check your inbox" in r.text
        sub = site.store.get_subscriber("ada@example.org")
        assert sub.status == "pending" and sub.rules == ("diffusion", '"language models"')
        assert (sub.send_at, sub.timezone, sub.frequency) == ("07:30", "Europe/Berlin",
                                                              "weekdays")
        (confirmation,) = site.mails("ada@example.org")
        assert confirmation["Subject"].startswith("Confirm your subscription")
        assert confirmation["From"] == "Paper digest <digest@example.org>"
        assert confirmation.get_body(("html",)) is not None
        confirm_url = link_in(confirmation, "/confirm")
        assert confirm_url.startswith("http://testserver/confirm/")

        # nothing but the confirmation goes to a pending address
        assert cli("-c", str(site.cfg), "send", "--now") == 0
        assert len(site.mails("ada@example.org")) == 1

        r = await client.post(path_of(confirm_url))
        assert r.status_code == 200 and "You are subscribed" in r.text
        assert site.status("ada@example.org") == "active"

        capsys.readouterr()
        assert cli("-c", str(site.cfg), "send", "--now") == 0
        digest = site.mails("ada@example.org")[-1]
        assert digest["Subject"].startswith("Paper digest")
        assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsub_url = re.search(r"<(https?://[^>]+/u/[^>]+)>", digest["List-Unsubscribe"])[1]

        # what a mail provider does for RFC 8058: POST, no cookie, no CSRF token
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app),
                                     base_url="http://testserver") as provider:
            r = await provider.post(path_of(unsub_url), data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200 and "You are unsubscribed" in r.text
        assert "location" not in r.headers and "set-cookie" not in r.headers
        assert site.status("ada@example.org") == "unsubscribed"

    received = len(site.sink.received)
    assert cli("-c", str(site.cfg), "send", "--now") == 0
    assert len(site.sink.received) == received


async def test_get_never_unsubscribes_and_post_needs_the_one_click_body(site):
    sub = site.store.add_subscriber("grace@example.org", ["segmentation"])
    path = f"/u/{sign(site.secret, 'unsub', sub.id)}"
    async with site.client() as client:
        for _ in range(3):
            r = await client.get(path)
            assert r.status_code == 200 and "Unsubscribe?" in r.text
            assert 'name="List-Unsubscribe" value="One-Click"' in r.text
        assert (await client.head(path)).status_code == 200
        assert site.status("grace@example.org") == "active"
        r = await client.post(path, data={"something": "else"})
        assert r.status_code == 400 and site.status("grace@example.org") == "active"
        # multipart works as well as urlencoded, and a second POST changes nothing
        for _ in range(2):
            r = await client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
            assert r.status_code == 200 and "set-cookie" not in r.headers
            assert site.status("grace@example.org") == "unsubscribed"
        r = await client.get(path)
        assert "Already unsubscribed" in r.text


async def test_bare_one_click_body_without_content_type(site):
    sub = site.store.add_subscriber("bare@example.org", ["x-ray"])
    async with site.client() as client:
        r = await client.post(f"/u/{sign(site.secret, 'unsub', sub.id)}",
                              content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200 and site.status("bare@example.org") == "unsubscribed"


# -- links that are not what they claim ----------------------------------------------------------

async def test_forged_mangled_and_misused_tokens_change_nothing(site):
    sub = site.store.add_subscriber("grace@example.org", ["segmentation"])
    good = sign(site.secret, "unsub", sub.id)
    forged = sign(b"another secret" * 3, "unsub", sub.id)
    mangled = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    prefs = sign(site.secret, "prefs", sub.id)
    async with site.client() as client:
        for token in (forged, mangled, good[:20], "x", prefs, "a.b.c", "%00"):
            for method in ("GET", "POST"):
                r = await client.request(method, f"/u/{token}",
                                         data={"List-Unsubscribe": "One-Click"})
                assert r.status_code == 400, (token, r.status_code)
                assert "This link is not valid" in r.text
            r = await client.get(f"/p/{token if token != prefs else good}")
            assert r.status_code == 400
            r = await client.get(f"/confirm/{token}")
            assert r.status_code == 400
            assert (await client.post(f"/confirm/{token}")).status_code == 400
        gone = sign(site.secret, "unsub", 99999)
        r = await client.post(f"/u/{gone}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 404 and "No such subscription" in r.text
    assert site.status("grace@example.org") == "active"


async def test_expired_confirmation_link(site):
    async with site.client() as client:
        await client.post("/", data=form())
        url = link_in(site.mails("ada@example.org")[0], "/confirm")
        site.clock.advance(49 * HOUR)
        r = await client.get(path_of(url))
        assert r.status_code == 400 and "expired" in r.text
        assert site.status("ada@example.org") == "pending"


async def test_replayed_confirmation_link(site):
    async with site.client() as client:
        await client.post("/", data=form())
        path = path_of(link_in(site.mails("ada@example.org")[0], "/confirm"))
        assert (await client.post(path)).status_code == 200
        # a second click (or a link scanner after the click) just shows the preferences
        for again in (client.get, client.post):
            r = await again(path)
            assert r.status_code == 200 and "confirmed already" in r.text
        sub = site.store.get_subscriber("ada@example.org")
        r = await client.post(f"/u/{sign(site.secret, 'unsub', sub.id)}",
                              data={"List-Unsubscribe": "One-Click"})
        assert site.status("ada@example.org") == "unsubscribed"
        # replaying the old confirmation must not subscribe them again
        for again in (client.get, client.post):
            r = await again(path)
            assert r.status_code == 410 and site.status("ada@example.org") == "unsubscribed"
        # asking again gives a new link; the old one stays dead
        site.clock.advance(11 * 60)
        await client.post("/", data=form())
        assert site.status("ada@example.org") == "pending"
        assert (await client.post(path)).status_code == 410
        new = path_of(link_in(site.mails("ada@example.org")[-1], "/confirm"))
        assert new != path and (await client.post(new)).status_code == 200
        assert site.status("ada@example.org") == "active"


async def test_subscriber_ids_are_never_reused(site):
    a = site.store.add_subscriber("a@example.org", ["x-ray"])
    b = site.store.add_subscriber("b@example.org", ["x-ray"])
    old_prefs = sign(site.secret, "prefs", b.id)
    site.store.remove_subscriber("b@example.org")
    c = site.store.add_subscriber("c@example.org", ["x-ray"])
    assert c.id > b.id > a.id
    async with site.client() as client:
        assert (await client.get(f"/p/{old_prefs}")).status_code == 404


# -- bots and floods -----------------------------------------------------------------------------

async def test_no_second_mail_within_ten_minutes_and_a_daily_cap(site):
    async with site.client() as client:
        for _ in range(3):
            r = await client.post("/", data=form())
            assert r.status_code == 200 and "Check your inbox" in r.text
        assert len(site.mails("ada@example.org")) == 1
        site.clock.advance(11 * 60)
        await client.post("/", data=form())
        assert len(site.mails("ada@example.org")) == 2
        site.clock.advance(11 * 60)
        await client.post("/", data=form())
        assert len(site.mails("ada@example.org")) == 3
        # mails_per_address = 3 a day, whoever asks and from wherever
        async with site.client("203.0.113.99") as other:
            site.clock.advance(11 * 60)
            r = await other.post("/", data=form())
        assert r.status_code == 200 and "Check your inbox" in r.text
        assert len(site.mails("ada@example.org")) == 3
        site.clock.advance(24 * HOUR)
        await client.post("/", data=form())
        assert len(site.mails("ada@example.org")) == 4
    # every link sent is still good: the pending request kept its nonce
    links = {link_in(m, "/confirm") for m in site.mails("ada@example.org")}
    assert len(links) == 4


async def test_plus_tags_and_gmail_dots_share_one_mailbox_limit(site):
    """Mail bombing through victim+1@, victim+2@, v.ictim@ ...: one mailbox, one limit."""
    variants = ["victim@gmail.com", "victim+1@gmail.com", "v.ictim+2@gmail.com",
                "Victim+3@googlemail.com", "vic.tim@gmail.com", "victim+5@gmail.com"]
    async with site.client() as client:
        for address in variants:
            site.clock.advance(11 * 60)
            r = await client.post("/", data=form(address))
            assert r.status_code == 200 and "Check your inbox" in r.text
    assert len(site.sink.received) == 3  # mails_per_address a day, for the one mailbox
    from digestd.validators import mailbox_key
    assert {mailbox_key(a) for a in variants} == {"victim@gmail.com"}
    assert mailbox_key("a.b+x@example.org") == "a.b@example.org"  # dots count elsewhere


async def test_honeypot_looks_like_success_and_does_nothing(site):
    async with site.client() as client:
        r = await client.post("/", data=form(website="http://spam.example"))
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert site.store.find_subscriber("ada@example.org") is None
    assert site.sink.received == []


async def test_per_ip_rate_limit(tmp_path, smtp_sink):
    site = Site(tmp_path, smtp_sink, extra="subscribe_per_ip = 3")
    try:
        async with site.client("198.51.100.7") as client:
            for i in range(3):
                r = await client.post("/", data=form(f"u{i}@example.org"))
                assert r.status_code == 200
            r = await client.post("/", data=form("u9@example.org"))
            assert r.status_code == 429 and r.headers["retry-after"] == "3600"
            assert site.store.find_subscriber("u9@example.org") is None
        # IPv6 clients count per /64
        async with site.client("2001:db8::1") as v6a, site.client("2001:db8::2") as v6b:
            for c in (v6a, v6b, v6a):
                assert (await c.post("/", data=form("v6@example.org"))).status_code == 200
            assert (await v6b.post("/", data=form("v6@example.org"))).status_code == 429
        # behind the (trusted) local proxy, X-Forwarded-For names the client
        async with site.client("127.0.0.1") as proxy:
            for i in range(3):
                r = await proxy.post("/", data=form(f"p{i}@example.org"),
                                     headers={"X-Forwarded-For": f"192.0.2.{i}"})
                assert r.status_code == 200
        # an untrusted peer cannot pick its address that way
        async with site.client("198.51.100.7") as client:
            r = await client.post("/", data=form("x@example.org"),
                                  headers={"X-Forwarded-For": "192.0.2.200"})
            assert r.status_code == 429
        # an hour later the client may ask again
        site.clock.advance(HOUR + 1)
        async with site.client("198.51.100.7") as client:
            assert (await client.post("/", data=form("u9@example.org"))).status_code == 200
    finally:
        site.store.close()


async def test_oversized_body_is_refused(site):
    async with site.client() as client:
        r = await client.post("/", content=b"a" * (MAX_BODY + 1),
                              headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


# -- field errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("fields,field,message", [
    ({"email": "not-an-address"}, "email", "not a valid email address"),
    ({"email": "a@b"}, "email", "not a valid email address"),
    ({"email": ""}, "email", "Enter your email address"),
    ({"rule": ["diffusion", "title:(graph"]}, "rule-1", 'unbalanced &#34;(&#34; at column 7'),
    ({"rule": ["-video"]}, "rule-0", "only negations"),
    ({"rule": ["", " "]}, "rules", "Add at least one rule"),
    ({"send_at": "25:00"}, "send_at", "HH:MM"),
    ({"timezone": "Mars/Olympus"}, "timezone", "time zone"),
    ({"frequency": "hourly"}, "frequency", "daily, weekdays or weekly"),
])
async def test_invalid_input_gives_field_errors(site, fields, field, message):
    async with site.client() as client:
        r = await client.post("/", data={**form(), **fields})
    assert r.status_code == 400
    assert message in r.text
    if field.startswith("rule-"):
        assert f'id="{field}"' in r.text and 'aria-invalid="true"' in r.text
        assert "<mark>" in r.text or field == "rule-0"
    elif field != "rules":
        assert f'aria-describedby="{field}-msg"' in r.text
    assert site.store.subscribers() == [] and site.sink.received == []
    # what was typed is kept
    if "rule" in fields and fields["rule"][0]:
        assert f'value="{fields["rule"][0]}"' in r.text


async def test_hostile_input_is_escaped(site):
    evil = '"><script>alert(1)</script>'
    async with site.client() as client:
        r = await client.post("/", data=form(email=evil, rules=(evil, "title:(" + evil)))
    assert r.status_code == 400
    assert "<script>alert" not in r.text and "&lt;script&gt;" in r.text


# -- test this rule ------------------------------------------------------------------------------

async def test_rule_test_counts_the_last_30_days_with_examples(site):
    papers = site.store.papers_since("0000")
    expected = len(match_rules(["diffusion"], papers))
    assert expected > 0
    async with site.client() as client:
        r = await client.post("/", data=form(rules=("diffusion", "title:(", ""), action="test"))
        assert r.status_code == 200
        assert f"<strong>{expected}</strong> papers in the last 30 days" in r.text
        assert "matched " in r.text and "unbalanced" in r.text
        assert site.store.subscribers() == [] and site.sink.received == []
        r = await client.get("/rules/test", params={"rule": ["diffusion", "title:("]})
        data = r.json()
    assert data["rules"][0]["matches"] == expected and data["rules"][0]["ok"]
    assert len(data["rules"][0]["examples"]) == 5
    assert data["rules"][1]["ok"] is False and data["rules"][1]["column"] == 7
    # 40 days on, the sample papers are out of the window
    site.clock.advance(40 * 86400)
    site.app.state.rule_tests.papers_cache = None
    async with site.client() as client:
        data = (await client.get("/rules/test", params={"rule": "diffusion"})).json()
    assert data["rules"][0]["matches"] == 0


@pytest.mark.parametrize("rule", [
    "diffusion", '"language models" reasoning', "title:(prun* OR sparsit*) -survey",
    "model -diffusion", "multi-task", "self-sup*", "abstract:transformer*", "source:sample",
    "category:cs.LG OR diffusion", "author:wang", "(graph OR gnn*) (node OR edge*)",
    "na\u00efve bayes", "l\u00e9vy", "title:(le* OR ba*) -(co* de*)"])
def test_the_quick_filter_never_changes_a_count(site, rule):
    papers = list(site.store.papers_since("0000"))
    # papers whose text is not ASCII take the slow path; make sure there are some
    papers.append(dataclasses.replace(papers[0], id="x:1", title="Na\u00efve Bayes and L\u00e9vy "
                                      "flights", abstract="Na\u00efve Bayes"))
    exact = len(match_rules([rule], papers))
    assert try_rules([rule], papers).by_input[0].matches == exact
    assert exact or rule in ("author:wang", "category:cs.LG OR diffusion") or "*" in rule
    if not rule.isascii():
        assert exact >= 1  # the paper with the non-ASCII title


def test_very_broad_rules_are_estimated_from_a_sample(site):
    papers = site.store.papers_since("0000")
    exact = len(match_rules(["the"], papers))
    assert exact > 150
    tests = try_rules(["the"], papers, exact_limit=100)
    assert tests.estimated and tests.by_input[0].estimated
    assert abs(tests.by_input[0].matches - exact) < 0.2 * exact


def test_test_rules_counts_rules_and_their_union(site):
    papers = site.store.papers_since("0000")
    tests = try_rules(["diffusion", "", "segmentation", "diffusion segmentation"], papers)
    d, s = len(match_rules(["diffusion"], papers)), len(match_rules(["segmentation"], papers))
    both = len(match_rules(["diffusion segmentation"], papers))
    assert tests.by_input[0].matches == d and tests.by_input[2].matches == s
    assert tests.by_input[3].matches == both and 1 not in tests.by_input
    assert tests.together == d + s - both


# -- preferences ---------------------------------------------------------------------------------

async def test_preference_edits_persist(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        page = await client.get(prefs)
        assert page.status_code == 200 and CSRF_COOKIE in client.cookies
        token = csrf_of(page.text)
        r = await client.post(prefs, data={
            "csrf": token, "rule": ["title:prun*", "", '"noisy labels"'], "send_at": "18:15",
            "timezone": "America/New_York", "frequency": "weekly", "weekday": "4",
            "send_empty": "on", "action": "save"})
        assert r.status_code == 303 and r.headers["location"] == f"{prefs}?done=saved"
        sub = site.store.get_subscriber("ada@example.org")
        assert sub.rules == ("title:prun*", '"noisy labels"')
        assert (sub.send_at, sub.timezone, sub.frequency, sub.weekday, sub.send_empty) == (
            "18:15", "America/New_York", "weekly", 4, True)
        page = await client.get(r.headers["location"])
        assert "Saved." in page.text and 'value="title:prun*"' in page.text
        assert 'value="4" selected' in page.text

        # an invalid edit changes nothing and says why
        r = await client.post(prefs, data={"csrf": token, "rule": ["title:(x"],
                                           "send_at": "18:15", "timezone": "UTC",
                                           "frequency": "daily", "weekday": "0"})
        assert r.status_code == 400 and "unbalanced" in r.text
        assert site.store.get_subscriber("ada@example.org").rules == sub.rules

        # pause and resume
        r = await client.post(f"{prefs}/pause", data={"csrf": token})
        assert r.status_code == 303 and site.status("ada@example.org") == "paused"
        assert "Resume digests" in (await client.get(r.headers["location"])).text
        r = await client.post(f"{prefs}/resume", data={"csrf": token})
        assert r.status_code == 303 and site.status("ada@example.org") == "active"


async def test_relevance_settings_are_chosen_on_the_preferences_page(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        page = await client.get(prefs)
        assert 'name="recommend"' in page.text and 'name="min_score"' in page.text
        token = csrf_of(page.text)
        base = {"csrf": token, "rule": ["diffusion"], "send_at": "07:00", "timezone": "UTC",
                "frequency": "daily", "weekday": "0", "action": "save"}
        r = await client.post(prefs, data={**base, "recommend": "4", "min_score": "0.05"})
        assert r.status_code == 303
        sub = site.store.get_subscriber("ada@example.org")
        assert (sub.recommend, sub.min_score) == (4, 0.05)
        page = await client.get(prefs)
        assert '<option value="4" selected>' in page.text
        assert '<option value="0.05" selected>' in page.text
        # a value the form does not offer changes nothing and says why
        for bad in ({"recommend": "11"}, {"recommend": "x"}, {"min_score": "0.5"}):
            r = await client.post(prefs, data={**base, "recommend": "1", **bad})
            assert r.status_code == 400 and 'class="error"' in r.text, bad
        assert (site.store.get_subscriber("ada@example.org").recommend) == 4
        # a value set with the CLI is offered and kept by a save that does not touch it
        site.store.set_relevance(sub.id, min_score=0.07)
        page = await client.get(prefs)
        assert '<option value="0.07" selected>' in page.text
        r = await client.post(prefs, data={**base, "recommend": "4", "min_score": "0.07"})
        assert r.status_code == 303
        assert site.store.get_subscriber("ada@example.org").min_score == 0.07
        # "keep every match" turns the threshold off
        r = await client.post(prefs, data={**base, "recommend": "0", "min_score": ""})
        sub = site.store.get_subscriber("ada@example.org")
        assert r.status_code == 303 and (sub.recommend, sub.min_score) == (0, None)


async def test_preference_forms_need_the_csrf_token_and_cookie(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        token = csrf_of((await client.get(prefs)).text)
        edit = {"rule": ["evil"], "send_at": "03:00", "timezone": "UTC",
                "frequency": "daily", "weekday": "0", "action": "save"}
        assert (await client.post(prefs, data=edit)).status_code == 403
        assert (await client.post(prefs, data={**edit, "csrf": "0" * 40})).status_code == 403
        r = await client.post(prefs, data={**edit, "csrf": token},
                              headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        assert (await client.post(f"{prefs}/pause", data={})).status_code == 403
        assert (await client.post(f"{prefs}/delete", data={"confirm": "yes"})).status_code == 403
    # another browser (no cookie) with a token copied from this one
    async with site.client() as other:
        r = await other.post(prefs, data={**edit, "csrf": token})
        assert r.status_code == 403
    sub = site.store.get_subscriber("ada@example.org")
    assert sub.rules == ("diffusion",) and sub.status == "active"


async def test_download_my_data_and_delete_me(site):
    async with site.client() as client:
        prefs = await subscribed(site, client)
        assert cli("-c", str(site.cfg), "send", "--now") == 0
        r = await client.get(f"{prefs}/data.json")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        data = r.json()
        assert data["email"] == "ada@example.org" and data["rules"] == ["diffusion"]
        kinds = [m["period"].split("-")[0] for m in data["messages"]]
        assert kinds[0] == "confirm" and len(data["messages"]) == 2
        assert data["papers_sent"] and {"id", "title", "digest"} <= set(data["papers_sent"][0])

        token = csrf_of((await client.get(prefs)).text)
        r = await client.post(f"{prefs}/delete", data={"csrf": token})
        assert r.status_code == 400 and "Tick the box" in r.text
        r = await client.post(f"{prefs}/delete", data={"csrf": token, "confirm": "yes"})
        assert r.status_code == 200 and "Your data is deleted" in r.text
        assert site.store.find_subscriber("ada@example.org") is None
        assert (await client.get(prefs)).status_code == 404


async def test_subscribing_an_active_address_changes_nothing_and_mails_the_preferences(site):
    site.store.add_subscriber("ada@example.org", ["diffusion"])
    async with site.client() as client:
        r = await client.post("/", data=form(rules=("stranger's rule",)))
    assert r.status_code == 200 and "Check your inbox" in r.text
    sub = site.store.get_subscriber("ada@example.org")
    assert sub.rules == ("diffusion",) and sub.status == "active"
    (mail,) = site.mails("ada@example.org")
    assert "subscribed already" in mail.get_body(("plain",)).get_content()
    assert link_in(mail, "/p") == site.app.state.web.links.preferences(sub.id)


async def test_an_unsubscribed_address_can_come_back_with_a_confirmation(site):
    site.store.add_subscriber("ada@example.org", ["diffusion"], status="unsubscribed")
    async with site.client() as client:
        await client.post("/", data=form(rules=("segmentation",)))
        assert site.status("ada@example.org") == "pending"
        await client.post(path_of(link_in(site.mails("ada@example.org")[0], "/confirm")))
    sub = site.store.get_subscriber("ada@example.org")
    assert sub.status == "active" and sub.rules == ("segmentation",)


# -- the page around it --------------------------------------------------------------------------

async def test_security_headers_and_no_inline_script_or_style(site):
    sub = site.store.add_subscriber("grace@example.org", ["segmentation"])
    pages = ["/", f"/u/{sign(site.secret, 'unsub', sub.id)}",
             f"/p/{sign(site.secret, 'prefs', sub.id)}", "/nowhere"]
    async with site.client() as client:
        for path in pages:
            r = await client.get(path)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
            assert "script-src 'self'" in csp and "default-src 'none'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["cache-control"] == "no-store"
            assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), path
            assert not re.search(r"\sstyle=", r.text) and "<style" not in r.text, path
            assert not re.search(r"\son[a-z]+=", r.text), path
        css = await client.get("/static/style.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        again = await client.get("/static/style.css",
                                 headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304
        assert (await client.get("/static/app.js")).status_code == 200
        assert (await client.get("/static/../web.py")).status_code == 404
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.delete("/")).status_code == 405


async def test_tokens_never_reach_the_logs(site, caplog):
    caplog.set_level(logging.DEBUG)
    async with site.client() as client:
        prefs = await subscribed(site, client)
        await client.get(prefs)
        sub = site.store.get_subscriber("ada@example.org")
        await client.post(f"/u/{sign(site.secret, 'unsub', sub.id)}",
                          data={"List-Unsubscribe": "One-Click"})
        await client.get("/u/forged.token")
    tokens = [prefs.rsplit("/", 1)[1], sign(site.secret, "unsub", sub.id), "forged.token",
              path_of(link_in(site.mails("ada@example.org")[0], "/confirm")).rsplit("/", 1)[1]]
    # our own records (the test's httpx client and the SMTP libraries log what they do)
    text = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith(("digestd", "uvicorn", "starlette")))
    assert "event=confirmed" in text and "event=http" in text
    for token in tokens:
        assert token not in text
    assert "ada@example.org" not in text
    assert redact("/p/abc.def/pause") == "/p/<token>/pause"


async def test_healthz_and_metrics(site):
    async with site.client() as client:
        await subscribed(site, client)
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["store"]["ok"]
        (source,) = health["sources"]
        assert source["name"] == "sample" and source["last_success"]
        assert health["outbox"]["backlog"] == 0
        metrics = (await client.get("/metrics"))
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
        assert "digestd_papers_stored 300" in text
        assert 'digestd_source_papers_seen_total{source="sample"} 300' in text
        assert 'digestd_source_errors_total{source="sample"} 0' in text
        assert 'digestd_digests{state="sent"} 0' in text
        assert 'digestd_web_mails{kind="confirm",state="sent"} 1' in text
        assert 'digestd_subscribers{status="active"} 1' in text
        assert "digestd_bounces 0" in text
        assert 'digestd_web_events_total{event="confirmed"} 1' in text
        assert 'digestd_digests{state="build_failed"} 0' in text
        assert "# TYPE digestd_source_polls_total counter" in text
        if sys.platform == "linux":  # prometheus-client's process metrics read /proc
            assert "process_resident_memory_bytes" in text and "python_info{" in text
        for line in text.splitlines():
            assert line.startswith("#") or re.fullmatch(r"[a-z_]+(\{[^}]*\})? -?[0-9.e+]+",
                                                        line), line
        assert cli("-c", str(site.cfg), "send", "--now") == 0
        text = (await client.get("/metrics")).text
        assert 'digestd_digests{state="sent"} 1' in text
        site.store.close()
        r = await client.get("/healthz")
        assert r.status_code == 503 and r.json()["status"] == "error"


async def test_confirmation_survives_an_smtp_hiccup(site):
    site.sink.handler.data_answers.append("421 4.3.2 try again later")
    async with site.client() as client:
        r = await client.post("/", data=form())
    assert r.status_code == 200 and site.sink.received == []
    stats = site.store.outbox_stats()["confirm"]
    assert stats["deferred"] == 1 and stats["failed"] == 0


async def test_behind_a_proxy_at_a_path(tmp_path, smtp_sink):
    site = Site(tmp_path, smtp_sink, base_url="https://digest.example.org/papers")
    try:
        async with site.client() as client:
            for path in ("/", "/papers/"):
                r = await client.get(path)
                assert r.status_code == 200
                assert 'action="/papers/"' in r.text
                assert 'href="/papers/static/style.css' in r.text
            await client.post("/papers/", data=form())
            url = link_in(site.mails("ada@example.org")[0], "/confirm")
            assert url.startswith("https://digest.example.org/papers/confirm/")
            r = await client.get(path_of(url))
            assert r.status_code == 200 and f'action="{path_of(url)}"' in r.text
            assert path_of(url).startswith("/papers/confirm/")
            r = await client.post(path_of(url))
            assert r.status_code == 200 and 'action="/papers/p/' in r.text
            assert "secure" in r.headers["set-cookie"].lower()
    finally:
        site.store.close()


# -- serving -------------------------------------------------------------------------------------

async def test_serve_web_listens_and_stops(site):
    ready, stop = asyncio.Event(), asyncio.Event()
    handler = signal.getsignal(signal.SIGTERM)
    task = asyncio.create_task(serve_web(site.app, "127.0.0.1:0", ready=ready, stop=stop))
    await asyncio.wait_for(ready.wait(), 5)
    # the process that serves the app owns the signals, not uvicorn
    assert signal.getsignal(signal.SIGTERM) is handler
    address = site.app.state.listening
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        r = await client.get("/healthz")
        assert r.status_code == 200 and r.json()["status"] == "ok"
        assert "server" not in r.headers
    stop.set()
    await asyncio.wait_for(task, 10)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=f"http://{address}") as client:
            await client.get("/healthz")


async def test_a_client_that_drips_its_headers_is_cut_off(site):
    """Slowloris: a header byte every 0.5 s must not hold a connection past the header
    timeout (10 s when served; 2 s here to keep the test short)."""
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve_web(site.app, "127.0.0.1:0", ready=ready, stop=stop,
                                         header_timeout=2))
    await asyncio.wait_for(ready.wait(), 5)
    host, port = site.app.state.listening.rsplit(":", 1)
    try:
        # a client that sends its request at once is served, twice on one connection
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            await asyncio.sleep(1)
            assert (await client.get("/healthz")).status_code == 200
        reader, writer = await asyncio.open_connection(host, int(port))
        started = time.monotonic()
        head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 100
        closed_after = None
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                    closed_after = time.monotonic() - started
                    break
            except asyncio.TimeoutError:
                continue  # nothing to read yet: drip on
            except ConnectionError:
                closed_after = time.monotonic() - started
                break
        writer.close()
        assert closed_after is not None, "the dripping client was never cut off"
        assert 1.5 <= closed_after <= 4, closed_after
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_serve_web_names_an_address_in_use(site):
    port = free_port()
    ready, stop = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(serve_web(site.app, f"127.0.0.1:{port}", ready=ready,
                                          stop=stop))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        with pytest.raises(DigestdError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve_web(site.app, f"127.0.0.1:{port}")
    finally:
        stop.set()
        await asyncio.wait_for(first, 10)


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen(":8080") == ("0.0.0.0", 8080)
    assert parse_listen("unix:/run/digestd/web.sock") == "/run/digestd/web.sock"
    for bad in ("8080", "host", "[::1]", "1.2.3.4:99999"):
        with pytest.raises(DigestdError):
            parse_listen(bad)


def test_json_of_the_export_is_plain(site):
    sub = site.store.add_subscriber("ada@example.org", ["diffusion"])
    assert json.loads(json.dumps(site.store.subscriber_export(sub.id)))["rules"] == ["diffusion"]


async def test_the_preferences_page_fits_the_status(site):
    """No "Pause or leave" card for an address that left; examples that say they are
    examples, not rules already saved."""
    async with site.client() as client:
        prefs = await subscribed(site, client)
        page = (await client.get(prefs)).text
        assert "Pause or leave" in page and 'placeholder="e.g. ' in page
        sub = site.store.get_subscriber("ada@example.org")
        site.store.set_status(sub.id, "unsubscribed")
        page = (await client.get(prefs)).text
        assert "Pause or leave" not in page and ">Leave<" not in page
        assert "Resubscribe" in page


async def test_the_confirmation_link_is_whole_in_the_raw_message(site):
    async with site.client() as client:
        await client.post("/", data=form())
    (received,) = [r for r in site.sink.received if "ada@example.org" in r.rcpt_tos]
    link = link_in(received.message, "/confirm")
    assert link.encode() in received.data  # the bytes sent: no soft line break, no =3D


async def test_opening_the_confirmation_link_asks_and_only_the_button_confirms(site):
    """Link scanners and previews open every link of a mail: the confirmation link shows a
    button (a POST confirms), as unsubscribing does; once used, the link opens the
    preferences, and a link a newer request replaced is gone (410)."""
    async with site.client() as client:
        await client.post("/", data=form())
        confirm = path_of(link_in(site.mails("ada@example.org")[-1], "/confirm"))
        for _ in range(2):
            r = await client.get(confirm)
            assert r.status_code == 200 and site.status("ada@example.org") == "pending"
            assert "<h1>Confirm your subscription</h1>" in r.text
            assert f'<form method="post" action="{confirm}">' in r.text
        r = await client.post(confirm)
        assert r.status_code == 200 and site.status("ada@example.org") == "active"
        r = await client.get(confirm)  # used: the reader's preferences, no button
        assert r.status_code == 200 and "Confirm your subscription" not in r.text
        assert (await client.post(confirm)).status_code == 200
    assert site.app.state.web.events["confirmed"] == 1


async def test_after_confirming_the_page_says_when_the_first_digest_comes(site):
    async with site.client() as client:
        r = await client.post("/", data=form())  # weekdays at 07:30 Europe/Berlin
        r = await client.post(path_of(link_in(site.mails("ada@example.org")[-1], "/confirm")))
    assert r.status_code == 200
    notice = re.search(r'<p class="notice" role="status">(.*?)</p>', r.text, re.S)[1]
    assert "You are subscribed." in notice and "Your next digest comes" in notice
    assert re.search(r"(today|tomorrow|on) .*at 07:30 Europe/Berlin, if papers matched", notice)
