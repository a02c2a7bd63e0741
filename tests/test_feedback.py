"""Feedback from the email: "more like this", "less like this" and "follow author" links in
every digest, their pages (a GET changes nothing, the script's POST records, undo), tokens that
are forged, of another subscriber or of an old link generation, and the preferences page's
"Your feedback"; through a real digest build and the real ASGI app."""

from __future__ import annotations

import html as htmllib
import re

import pytest
from markupsafe import escape

from digestd.models import Paper
from digestd.rules import evaluate, parse
from digestd.store.feedback import LESS, MORE
from digestd.tokens import feedback_value, parse_feedback_value, sign_short, verify_short
from digestd.web.feedback import follow_rule

from .test_archive import BROAD, Day
from .test_web import csrf_of, path_of

HOSTILE = "O'Brien \"quoted\" (x)"


@pytest.fixture
def day(tmp_path, smtp_sink, store_url):
    """The day's site, once on each backend."""
    d = Day(tmp_path, smtp_sink, store_url=store_url)
    yield d
    d.store.close()


def feedback_links(mail) -> tuple[list[str], list[str], str]:
    """(the HTML part's /more and /less links, the text part's pages, the HTML part)."""
    html = mail.get_body(("html",)).get_content()
    text = mail.get_body(("plain",)).get_content()
    actions = [htmllib.unescape(u) for u in re.findall(r'href="(http://testserver/r/[^"]+)"',
                                                       html)]
    pages = re.findall(r"More or less like this:\s+(http://testserver/r/\S+)", text)
    return actions, pages, html


def sent_digest(day: Day, address: str = "ada@example.org", rules=(BROAD,)):
    day.store.add_subscriber(address, list(rules))
    day.send()
    return day.mails(address)[-1]


def counts(day: Day, address: str = "ada@example.org") -> tuple[int, int]:
    return day.store.feedback_counts(day.store.get_subscriber(address).id)


def shown_titles(html: str) -> list[str]:
    return [htmllib.unescape(re.sub(r"<[^>]+>", "", t)).strip() for t in
            re.findall(r'<h2 class="title"[^>]*>\d+\. (.*?)</h2>', html)]


def form_of(page: str, action_end: str) -> dict:
    """The hidden fields of the page's form whose action ends with `action_end`."""
    m = re.search(rf'<form method="post" action="[^"]*{re.escape(action_end)}"[^>]*>(.*?)</form>',
                  page, re.S)
    assert m, page
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', m[1]))


# -- the links in the email ----------------------------------------------------------------------

async def test_every_paper_of_a_digest_carries_its_links_in_both_parts(day):
    mail = sent_digest(day)
    actions, pages, html = feedback_links(mail)
    shown = html.count('class="paper"')
    assert shown == 25
    assert len(pages) == shown and len(actions) == 2 * shown
    assert [u.rsplit("/", 1)[1] for u in actions[:4]] == ["more", "less", "more", "less"]
    # one token per digest: the paper's number and the action follow it
    token = pages[0].split("/r/")[1].split("/")[0]
    assert all(p == f"http://testserver/r/{token}/{n}" for n, p in enumerate(pages, 1))
    sub = day.store.get_subscriber("ada@example.org")
    value = verify_short(day.secret, "feedback", token)
    assert parse_feedback_value(value) == (sub.id, sub.link_gen, parse_feedback_value(value)[2])
    text = mail.get_body(("plain",)).get_content()
    assert "More or less like this:" in text
    # the text part stays within 78 columns but for lines that are one URL
    assert all(len(line) <= 78 or " " not in line.strip() for line in text.splitlines())


async def test_a_link_names_the_paper_shown_under_its_number(day):
    """The email numbers papers in the order the build stores them: link N is paper N."""
    mail = sent_digest(day)
    _actions, pages, html = feedback_links(mail)
    titles = shown_titles(html)
    async with day.client() as client:
        for n in (1, 7, 25):
            page = await client.get(path_of(pages[n - 1]))
            assert page.status_code == 200
            assert str(escape(titles[n - 1])) in page.text


# -- more, less, undo ----------------------------------------------------------------------------

async def test_get_changes_nothing_post_records_and_undo_takes_back(day):
    mail = sent_digest(day)
    actions, _pages, _html = feedback_links(mail)
    less = path_of(actions[1])
    async with day.client() as client:
        page = await client.get(less)
        assert page.status_code == 200 and "Less like this?" in page.text
        # the script sends the form on load; the GET itself recorded nothing, and without
        # scripts the page says what saves it
        assert "data-auto-submit" in page.text and counts(day) == (0, 0)
        assert "Press the button to save your choice." in page.text
        assert page.headers["x-robots-tag"] == "noindex, nofollow"
        fields = form_of(page.text, "/less")
        assert fields["do"] == "record"
        r = await client.post(less, data=fields)
        assert r.status_code == 303 and r.headers["location"].endswith("/less?done=recorded")
        assert counts(day) == (0, 1)
        noted = await client.get(r.headers["location"])
        assert "Noted: fewer papers like this one" in noted.text
        assert "data-auto-submit" not in noted.text  # recorded: nothing more to send

        # the same choice again: nothing changes
        r = await client.post(less, data=fields)
        assert r.headers["location"].endswith("?done=already") and counts(day) == (0, 1)
        # opening the link again records nothing twice, and sends nothing
        again = await client.get(less)
        assert "Noted" in again.text and "data-auto-submit" not in again.text

        # undo
        undo = form_of(noted.text, "/less")
        assert undo["do"] == "undo"
        r = await client.post(less, data=undo)
        assert r.headers["location"].endswith("?done=undone") and counts(day) == (0, 0)
        undone = await client.get(r.headers["location"])
        assert "taken back" in undone.text
        assert "data-auto-submit" not in undone.text  # an undo is not undone by the script
        # undo twice: still nothing
        r = await client.post(less, data=undo)
        assert r.status_code == 303 and counts(day) == (0, 0)


async def test_a_later_choice_replaces_the_earlier_and_an_old_undo_leaves_it(day):
    mail = sent_digest(day)
    actions, _pages, _html = feedback_links(mail)
    more, less = path_of(actions[0]), path_of(actions[1])
    sub = day.store.get_subscriber("ada@example.org")
    async with day.client() as client:
        page = await client.get(more)
        await client.post(more, data=form_of(page.text, "/more"))
        assert counts(day) == (1, 0)
        page = await client.get(less)
        assert "instead of" in page.text
        r = await client.post(less, data=form_of(page.text, "/less"))
        assert r.headers["location"].endswith("?done=switched") and counts(day) == (0, 1)
        # the undo of "more" (from an older page) must not take back the newer "less"
        r = await client.post(more, data={**form_of(page.text, "/less"), "do": "undo"})
        assert r.status_code == 303 and counts(day) == (0, 1)
    (pk, paper), = day.store.feedback_papers(sub.id, LESS)
    assert paper.title and paper.abstract
    assert day.store.feedback_papers(sub.id, MORE) == []
    assert day.store.feedback_values() == {sub.id: {pk: LESS}}
    assert day.store.feedback_values([sub.id + 1]) == {}
    assert day.store.papers_by_pk([pk, pk, 10**9]) == {pk: paper}


async def test_the_paper_page_offers_both_choices_and_records_nothing(day):
    mail = sent_digest(day)
    _actions, pages, _html = feedback_links(mail)
    async with day.client() as client:
        page = await client.get(path_of(pages[2]))
        assert page.status_code == 200 and "More or less like this?" in page.text
        assert "data-auto-submit" not in page.text
        assert form_of(page.text, "/3/more")["do"] == "record"
        assert form_of(page.text, "/3/less")["do"] == "record"
        assert counts(day) == (0, 0)


# -- tokens that must not work -------------------------------------------------------------------

async def test_forged_foreign_and_retired_tokens_change_nothing(day):
    mail = sent_digest(day)
    bob = sent_digest(day, "bob@example.org")
    actions, _pages, _html = feedback_links(mail)
    bob_actions, _, _ = feedback_links(bob)
    more = path_of(actions[0])
    token = more.split("/")[2]
    ada = day.store.get_subscriber("ada@example.org")
    async with day.client() as client:
        page = await client.get(more)
        fields = form_of(page.text, "/more")
        # a changed MAC, a cut token, another subscriber's id under ada's MAC
        value, mac = token.rsplit(".", 1)
        bob_id = day.store.get_subscriber("bob@example.org").id
        foreign = token.replace(f"{ada.id}.", f"{bob_id}.", 1)
        for bad in (f"{value}.{'A' * len(mac)}", token[:-3], foreign, "x", f"{value}."):
            r = await client.get(more.replace(token, bad))
            assert r.status_code == 400 and "not valid" in r.text, bad
            r = await client.post(more.replace(token, bad), data=fields)
            assert r.status_code == 400, bad
        # a token of another purpose (signed by us) is no feedback token
        other = sign_short(day.secret, "other", feedback_value(ada.id, 0, "2026-11-30"))
        assert (await client.get(more.replace(token, other))).status_code == 400
        # bob's token with ada's browser: the CSRF value is ada's, so nothing changes
        r = await client.post(path_of(bob_actions[0]), data=fields)
        assert r.status_code == 403
        # no paper at that place
        assert (await client.get(more.replace("/1/more", "/500/more"))).status_code == 404
        assert (await client.get(more.replace("/1/more", "/0/more"))).status_code == 404
        assert (await client.get(more.replace("/1/more", "/" + "9" * 5000 + "/more"))
                ).status_code in (404, 414)
        assert (await client.get(more.replace("/more", "/most"))).status_code == 404
        assert counts(day) == (0, 0) and counts(day, "bob@example.org") == (0, 0)

        # "reset my links" retires the old feedback links: 410, nothing changed
        day.store.reset_links(ada.id)
        r = await client.get(more)
        assert r.status_code == 410 and "replaced" in r.text
        r = await client.post(more, data=fields)
        assert r.status_code == 410 and counts(day) == (0, 0)


async def test_posts_need_the_csrf_value_of_this_browser(day):
    mail = sent_digest(day)
    actions, _pages, _html = feedback_links(mail)
    more = path_of(actions[0])
    async with day.client() as client:
        page = await client.get(more)
        fields = form_of(page.text, "/more")
    async with day.client() as stranger:  # no cookie: a cross-site form, say
        r = await stranger.post(more, data=fields)
        assert r.status_code == 403 and "Nothing was changed" in r.text
    async with day.client() as client:
        await client.get(more)
        r = await client.post(more, data=fields, headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
    assert counts(day) == (0, 0)


async def test_feedback_posts_are_rate_limited_per_client(day, monkeypatch):
    monkeypatch.setattr("digestd.web.guard.FEEDBACK_PER_IP", 3)
    mail = sent_digest(day)
    actions, _pages, _html = feedback_links(mail)
    more = path_of(actions[0])
    async with day.client() as client:
        fields = form_of((await client.get(more)).text, "/more")
        for _ in range(3):
            assert (await client.post(more, data=fields)).status_code == 303
        r = await client.post(more, data=fields)
        assert r.status_code == 429 and "retry-after" in r.headers


# -- follow author -------------------------------------------------------------------------------

def test_follow_rule_is_one_valid_rule_that_matches_its_paper():
    for name in ("Geoffrey Hinton", "José Müller-Łukasiewicz", HOSTILE, "Zhang (张伟) Wei",
                 'a"b*c', "Ng"):
        paper = Paper(id="x:1", title="t", authors=(name, "Other Person"))
        rule = follow_rule(name, paper)
        assert rule is not None and rule.startswith('author:"') and rule.endswith('"')
        assert rule.count('"') == 2 and "*" not in rule
        assert evaluate(parse(rule), paper)
        assert not evaluate(parse(rule), Paper(id="x:2", title="t", authors=("Other Person",)))
    assert follow_rule(HOSTILE) == "author:\"O'Brien quoted (x)\""
    assert follow_rule("José Müller") == 'author:"José Müller"'
    assert follow_rule('"" ** ""') is None and follow_rule("--") is None


async def test_follow_author_adds_one_rule_shown_on_preferences_with_undo(day):
    day.store.add_papers([Paper(id="arxiv:2611.99999", title="A learning paper",
                                abstract="About learning.", authors=(HOSTILE, "José Müller"),
                                source="sample", published="2026-11-29")])
    mail = sent_digest(day, rules=("title:learning",))
    _actions, pages, html = feedback_links(mail)
    titles = shown_titles(html)
    place = titles.index("A learning paper") + 1
    paper_page = path_of(pages[place - 1])
    ada = day.store.get_subscriber("ada@example.org")
    rule = "author:\"O'Brien quoted (x)\""
    async with day.client() as client:
        page = await client.get(paper_page)
        assert str(escape(HOSTILE)) in page.text
        follow = form_of(page.text, "/a/0")
        assert follow["do"] == "follow"
        # the author's own page offers it and changes nothing
        offer = await client.get(f"{paper_page}/a/0")
        assert offer.status_code == 200 and "Follow O&#39;Brien" in offer.text
        assert day.store.get_subscriber(ada.id).rules == ("title:learning",)

        r = await client.post(f"{paper_page}/a/0", data=follow)
        assert r.status_code == 303 and r.headers["location"].endswith("/a/0?done=followed")
        assert day.store.get_subscriber(ada.id).rules == ("title:learning", rule)
        done = await client.get(r.headers["location"])
        assert "You follow" in done.text and str(escape(rule)) in done.text

        # the rule is on the preferences page like any other
        prefs = await client.get(day.prefs_path("ada@example.org"))
        assert f'value="{str(escape(rule))}"' in prefs.text

        # following again says so and changes nothing
        r = await client.post(f"{paper_page}/a/0", data=follow)
        assert r.headers["location"].endswith("?done=already")
        assert day.store.get_subscriber(ada.id).rules == ("title:learning", rule)
        again = await client.get(f"{paper_page}/a/0")
        assert "already" in again.text

        # undo removes exactly that rule
        r = await client.post(f"{paper_page}/a/0", data={**follow, "do": "unfollow"})
        assert r.headers["location"].endswith("?done=unfollowed")
        assert day.store.get_subscriber(ada.id).rules == ("title:learning",)
        # no such author
        assert (await client.get(f"{paper_page}/a/7")).status_code == 404


async def test_hostile_titles_are_escaped_on_the_page(day):
    title = '<script>alert(1)</script> & "quotes" <b>bold</b>'
    day.store.add_papers([Paper(id="arxiv:2611.88888", title=title, abstract="<img src=x>",
                                authors=("<i>Eve</i>",), source="sample",
                                published="2026-11-29")])
    mail = sent_digest(day, rules=('"alert"',))
    actions, pages, _html = feedback_links(mail)
    async with day.client() as client:
        for path in (path_of(pages[0]), path_of(actions[1]), path_of(pages[0]) + "/a/0"):
            page = await client.get(path)
            assert page.status_code == 200
            assert "<script>alert" not in page.text and "<img src=x>" not in page.text
            assert "<i>Eve</i>" not in page.text and "&lt;script&gt;" in page.text


# -- the preferences page, the export, deletion ------------------------------------------------

async def test_preferences_count_feedback_and_forget_it(day):
    mail = sent_digest(day)
    actions, _pages, _html = feedback_links(mail)
    async with day.client() as client:
        for url in (actions[0], actions[2], actions[5]):
            page = await client.get(path_of(url))
            action = path_of(url).rsplit("/", 2)
            await client.post(path_of(url), data=form_of(page.text, f"/{action[1]}/{action[2]}"))
        assert counts(day) == (2, 1)
        prefs_path = day.prefs_path("ada@example.org")
        prefs = await client.get(prefs_path)
        assert "Your feedback" in prefs.text
        assert ("“More like this” on <strong>2</strong> papers, “less like this” on "
                "<strong>1</strong>") in prefs.text
        export = (await client.get(f"{prefs_path}/data.json")).json()
        assert sorted(f["value"] for f in export["feedback"]) == ["less", "more", "more"]
        r = await client.post(f"{prefs_path}/feedback/forget", data={"csrf": "nope"})
        assert r.status_code == 403 and counts(day) == (2, 1)
        r = await client.post(f"{prefs_path}/feedback/forget",
                              data={"csrf": csrf_of(prefs.text)})
        assert r.status_code == 303 and counts(day) == (0, 0)
        done = await client.get(r.headers["location"])
        assert "Your feedback is forgotten" in done.text


def test_feedback_goes_with_its_subscriber(day):
    sent_digest(day)
    ada = day.store.get_subscriber("ada@example.org")
    pk, _paper = day.store.digest_paper(ada.id, day.store.digest_archive(ada.id)[0][0].period, 0)
    assert day.store.record_feedback(ada.id, pk, MORE) is None
    assert day.store.record_feedback(ada.id, pk, MORE) == MORE
    assert day.store.feedback_of(ada.id, pk) == MORE
    day.store.remove_subscriber("ada@example.org")
    assert day.store.feedback_values() == {}
    with pytest.raises(ValueError):
        day.store.record_feedback(1, pk, 2)
