"""The reader's relevance in the daily build (digestd/ranking.py): seeds and "more/less like
this" order each digest, min_score leaves matches out (the email counts them, the digest's
page lists them, they are never offered again), recommend adds papers beyond the rules; a
subscriber without a profile gets today's digest. Real store, real `digestd send --now`
(its build runs in a child process), the real messages and pages."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from digestd.cli import main as cli
from digestd.match import Matcher
from digestd.models import Paper
from digestd.ranking import Wanted, rank_day
from digestd.relevance.day import ProfileSeeds
from digestd.render import by_relevance
from digestd.sources.sample import sample_papers
from digestd.store import LEFT_OUT, RECOMMENDED, StoredSeed
from digestd.store.feedback import LESS

from .test_archive import BROAD, Day, day_of_papers, papers_on_page
from .test_feedback import feedback_links, form_of, shown_titles
from .test_web import path_of

NARROW = "title:model*"  # 37 of the day's 120 papers


@pytest.fixture
def day(tmp_path, smtp_sink):
    d = Day(tmp_path, smtp_sink)
    yield d
    d.store.close()


def todays(rule: str) -> list[Paper]:
    """The day's papers `rule` matches, in today's order (no profile)."""
    matched = Matcher({0: (rule,)}).match(day_of_papers())[0]
    return [m.paper for m in by_relevance(matched)]


def seed(p: Paper) -> StoredSeed:
    """A seed with the text of `p` (as from a seed file: by title, not the stored paper)."""
    return StoredSeed(paper_id=f"title:{p.id}", title=p.title, abstract=p.abstract)


def subscriber(day: Day, address: str, rules=(BROAD,), seeds=(), **relevance) -> int:
    sid = day.store.add_subscriber(address, list(rules)).id
    if seeds:
        day.store.add_seeds(sid, [seed(p) if isinstance(p, Paper) else p for p in seeds])
    if relevance:
        day.store.set_relevance(sid, **relevance)
    return sid


def parts(mail) -> tuple[str, str]:
    return mail.get_body(("plain",)).get_content(), mail.get_body(("html",)).get_content()


def labelled(text: str, label: str) -> list[str]:
    """The text part's "   LABEL: ..." lines (unwrapped)."""
    return [" ".join(m.split()) for m in
            re.findall(rf"^   {label}: (.*(?:\n {{3}}(?!\S+: |http)\S.*)*)", text, re.M)]


def kinds(day: Day, address: str) -> list[tuple[str, int, int]]:
    """(title, position, kind) of the subscriber's latest digest, in stored order."""
    sub = day.store.get_subscriber(address)
    digest = day.store.digest_archive(sub.id, limit=1)[0][0]
    return [(d.paper.title, d.position, d.kind) for d in day.store.digest_papers(digest)]


# -- order ---------------------------------------------------------------------------------------

async def test_seeds_move_the_papers_like_them_to_the_top(day):
    order = todays(BROAD)
    liked = order[-3:]  # today's order puts them last of 107
    subscriber(day, "plain@example.org")
    subscriber(day, "seeded@example.org", seeds=liked)
    day.send()
    plain_text, plain_html = parts(day.mails("plain@example.org")[-1])
    seeded_text, seeded_html = parts(day.mails("seeded@example.org")[-1])
    plain, seeded = shown_titles(plain_html), shown_titles(seeded_html)
    assert plain == [p.title for p in order[:25]]  # no profile: today's order
    assert set(seeded[:3]) == {p.title for p in liked}
    assert not {p.title for p in liked} & set(plain)
    # the why line says what ranked them high: the rule's hits, then that each is one of
    # the reader's own seeds (not "similar to" itself)
    for why in labelled(seeded_text, "matched")[:3]:
        assert why.endswith(" · one of your seeds") and "similar to" not in why
    # the papers after them are explained by the seed most like each
    for why in labelled(seeded_text, "matched")[3:6]:
        like = why.split(" · similar to: ")[1].rstrip("…")  # a long title is shortened
        assert any(p.title.startswith(like) for p in liked)
    # the same order on the digest's page (every paper, the same whys)
    archived = re.fullmatch(r"<(.+)>", day.mails("seeded@example.org")[-1]["Archived-At"])[1]
    async with day.client() as client:
        page = await client.get(path_of(archived))
    assert papers_on_page(page.text)[:25] == [str(escape(t)) for t in seeded]
    assert page.text.count("similar to: ") >= 3


async def test_less_like_this_on_the_top_paper_changes_the_next_order(day):
    # two readers with the same rule and seeds (papers of another day) get the same digest;
    # one says "less like this" to its top paper; the next day their orders part
    later = sample_papers()[120:240]
    seeds = sample_papers()[240:300:6]
    subscriber(day, "ada@example.org", seeds=seeds)
    subscriber(day, "bob@example.org", seeds=seeds)
    day.send()
    ada, bob = day.mails("ada@example.org")[-1], day.mails("bob@example.org")[-1]
    assert shown_titles(parts(ada)[1]) == shown_titles(parts(bob)[1])
    actions, _pages, html = feedback_links(ada)
    top = shown_titles(html)[0]
    less = path_of(actions[1])
    async with day.client() as client:
        page = await client.get(less)
        assert str(escape(top)) in page.text
        r = await client.post(less, data=form_of(page.text, "/less"))
        assert r.status_code == 303
    sub = day.store.get_subscriber("ada@example.org")
    assert day.store.feedback_counts(sub.id) == (0, 1)

    day.store.add_papers(later)
    day.send()
    ada_next = [t for t, _, _ in kinds(day, "ada@example.org")]
    bob_next = [t for t, _, _ in kinds(day, "bob@example.org")]
    assert sorted(ada_next) == sorted(bob_next) and len(ada_next) > 20
    assert ada_next != bob_next


# -- recommendations -----------------------------------------------------------------------------

def earlier(p: Paper) -> StoredSeed:
    """A seed like `p` but not it: an earlier version, under another title."""
    return StoredSeed(paper_id=f"title:earlier-{p.id}", title=f"Earlier: {p.title}",
                      abstract=p.abstract)


async def test_recommendations_only_when_asked_never_a_rule_match_and_linked_by_number(day):
    matched = todays(NARROW)
    *beyond, own = [p for p in day_of_papers() if p not in matched][:4]
    # one seed is a rule match: it must stay a match only; one is a paper of the day,
    # which is never recommended back to the reader whose seed it is
    seeds = [*map(earlier, beyond), own, matched[-1]]
    subscriber(day, "asks@example.org", rules=(NARROW,), seeds=seeds, recommend=3)
    subscriber(day, "not@example.org", rules=(NARROW,), seeds=seeds)
    day.send()

    text, html = parts(day.mails("not@example.org")[-1])
    assert "Also recommended" not in text and "Also recommended" not in html
    assert "recommended: " not in text
    assert all(k == 0 for _, _, k in kinds(day, "not@example.org"))

    mail = day.mails("asks@example.org")[-1]
    text, html = parts(mail)
    assert "Also recommended" in text and "Also recommended" in html
    stored = kinds(day, "asks@example.org")
    rule_matches = [t for t, _, k in stored if k == 0]
    recs = [(t, pos) for t, pos, k in stored if k == RECOMMENDED]
    assert len(rule_matches) == len(matched) and len(recs) == 3
    assert {t for t, _ in recs} == {p.title for p in beyond}  # like the seeds, not one
    assert not {t for t, _ in recs} & set(rule_matches)
    assert [pos for _, pos in recs] == list(range(len(matched), len(matched) + 3))
    # each labelled with the seed it is like, in both parts
    lines = labelled(text, "recommended")
    assert len(lines) == 3
    for (title, _), line in zip(recs, lines):  # each is like its own copy among the seeds
        assert line.startswith("similar to ") and f"Earlier: {title}".startswith(
            line.removeprefix("similar to ").rstrip("…"))
    assert html.count("recommended: similar to ") == 3
    # the subject counts what the email brings: the matches shown and the recommendations
    assert mail["Subject"].endswith(f": {len(matched) + 3} new papers")
    # feedback link N names the paper shown under number N, recommendations included
    shown = shown_titles(html)
    numbers = [int(n) for n in re.findall(r'<h2 class="title"[^>]*>(\d+)\. ', html)]
    assert numbers[-3:] == [len(matched) + k for k in (1, 2, 3)]
    _actions, pages, _ = feedback_links(mail)
    async with day.client() as client:
        for title, number in zip(shown[-3:], numbers[-3:]):
            page = await client.get(path_of(pages[shown.index(title)]))
            assert pages[shown.index(title)].endswith(f"/{number}")
            assert page.status_code == 200 and str(escape(title)) in page.text
        archived = re.fullmatch(r"<(.+)>", mail["Archived-At"])[1]
        page = (await client.get(path_of(archived))).text
    assert 'id="recommended"' in page and "Recommended: similar to " in page


# -- min_score -----------------------------------------------------------------------------------

async def test_min_score_counts_and_lists_what_it_left_out_and_never_offers_it_again(
        day, capsys):
    seeds = todays(BROAD)[40:43]
    sid = subscriber(day, "strict@example.org", seeds=seeds, min_score=0.05)
    day.send()
    mail = day.mails("strict@example.org")[-1]
    text, html = parts(mail)
    stored = kinds(day, "strict@example.org")
    kept = [t for t, _, k in stored if k == 0]
    dropped = [t for t, _, k in stored if k == LEFT_OUT]
    assert len(kept) >= 3 and len(dropped) > 20 and len(kept) + len(dropped) == 107
    assert {p.title for p in seeds} <= set(kept)
    assert mail["Subject"].endswith(f": {len(kept)} new papers")
    assert f"{len(kept)} new papers matched your rules" in " ".join(text.split())
    line = f"{len(dropped)} more matched your rules but looked unlike your seeds"
    assert line in " ".join(text.split()) and line in html
    assert not set(dropped) & set(shown_titles(html))
    archived = re.fullmatch(r"<(.+)>", mail["Archived-At"])[1]
    async with day.client() as client:
        page = (await client.get(path_of(archived))).text
        feed = (await client.get(day.feed_path("strict@example.org"))).text
    listed = page[page.index('id="left-out"'):]
    assert f"{len(dropped)} papers matched your rules but looked unlike" in listed
    # the page's count (every match) against the email's: said in its first lines
    assert (f"<strong>{len(kept) + len(dropped)} papers</strong> matched your rules" in page
            and f"the email brought {len(kept)}, and the {len(dropped)} unlike your seeds "
                "are at the end" in page)
    assert papers_on_page(listed) == [str(escape(t)) for t in dropped]
    assert papers_on_page(page[:page.index('id="left-out"')]) == [
        str(escape(t)) for t in kept]
    # the outbox counts what the email brought, as its subject does, and what was left out
    capsys.readouterr()
    assert cli(["-c", str(day.cfg), "outbox", "--sent"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "strict@example.org" in x]
    assert f" {len(kept)} papers ({len(dropped)} left out)  sent 20" in line
    # the feed has what was delivered: not what was left out
    assert all(str(escape(t)) not in feed for t in dropped[:10])
    # the page's feedback links reach the papers the email left out too: "more like this"
    # on one of them records it, as the email's links do for the papers it shows
    first = listed[listed.index('<li class="paper"'):]
    more = re.search(r'<a href="(http://testserver/r/[^"]+/more)"', first)[1]
    async with day.client() as client:
        choice = await client.get(path_of(more))
        assert choice.status_code == 200 and str(escape(dropped[0])) in choice.text
        fields = form_of(choice.text, "/more")
        assert (await client.post(path_of(more), data=fields)).status_code == 303
    assert day.store.feedback_counts(sid) == (1, 0)

    # the next day, without min_score and with a window that covers the first day again
    # (as after a catch-up), nothing of the first digest comes back: left out is recorded
    day.store.set_relevance(sid, clear_min_score=True)
    with day.store.transaction() as db:
        db.execute("UPDATE subscribers SET last_checked_at = NULL, last_digest_at = NULL, "
                   "created_at = '2000-01-01T00:00:00+00:00' WHERE id = ?", (sid,))
    day.store.add_papers(sample_papers()[120:160])
    day.send()
    second = [t for t, _, _ in kinds(day, "strict@example.org")]
    assert second and not set(second) & (set(dropped) | set(kept))


async def test_every_match_left_out_and_no_note_wanted_sends_nothing_but_records_them(
        day, capsys):
    seeds = [StoredSeed("title:x", "Protein folding kinetics of yeast prions",
                        "Yeast prion proteins fold through amyloid intermediates.")]
    subscriber(day, "picky@example.org", rules=(NARROW,), seeds=seeds, min_score=0.3)
    noted = day.store.add_subscriber("noted@example.org", [NARROW], send_empty=True).id
    day.store.add_seeds(noted, seeds)
    day.store.set_relevance(noted, min_score=0.3)
    day.send()
    assert day.mails("picky@example.org") == []
    stored = kinds(day, "picky@example.org")
    assert len(stored) == 37 and {k for _, _, k in stored} == {LEFT_OUT}
    # who wants a note on empty days hears that nothing was kept, and why
    (mail,) = day.mails("noted@example.org")
    text, html = parts(mail)
    assert mail["Subject"].endswith(": no paper kept (37 unlike your seeds)")
    assert "No paper kept for " in text and "37 matched your rules but looked unlike your seeds" \
        in " ".join(text.split())
    assert "No paper kept" in html and "Nothing matched" not in text
    # the outbox says the picky reader's digest was recorded, not mailed, and counts as the
    # emails do: no paper brought, 37 left out
    capsys.readouterr()
    assert cli(["-c", str(day.cfg), "outbox", "--sent"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (picky,) = [x for x in lines if "picky@example.org" in x]
    assert "0 papers (37 left out)" in picky and "  recorded 20" in picky \
        and picky.endswith(", no email")
    (noted,) = [x for x in lines if "noted@example.org" in x]
    assert "0 papers (37 left out)" in noted and re.search(r"  sent \S+$", noted)


# -- no profile, broken profiles ----------------------------------------------------------------

def matched_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"\d+\. |   matched: ", ln)]


async def test_a_subscriber_without_a_profile_gets_todays_digest(day):
    subscriber(day, "plain@example.org")
    # settings and "less like this" alone make no profile: there is nothing to be like
    sid = subscriber(day, "settings@example.org", recommend=5, min_score=0.05)
    pk = day.store.paper_pks([todays(BROAD)[0].id])[todays(BROAD)[0].id]
    day.store.record_feedback(sid, pk, LESS)
    day.send()
    plain_text, plain_html = parts(day.mails("plain@example.org")[-1])
    text, html = parts(day.mails("settings@example.org")[-1])
    assert matched_lines(text) == matched_lines(plain_text)
    assert shown_titles(html) == shown_titles(plain_html)
    assert "similar to" not in text and "Also recommended" not in text
    assert {k for _, _, k in kinds(day, "settings@example.org")} == {0}


async def test_a_broken_profile_does_not_break_the_build(day):
    subscriber(day, "plain@example.org")
    empty = [StoredSeed("title:a", "", ""), StoredSeed("title:b", "...", "--")]
    subscriber(day, "empty@example.org", seeds=empty, recommend=3, min_score=0.05)
    subscriber(day, "good@example.org", seeds=todays(BROAD)[-2:])
    day.send()
    plain = parts(day.mails("plain@example.org")[-1])
    broken = parts(day.mails("empty@example.org")[-1])
    good = parts(day.mails("good@example.org")[-1])
    assert matched_lines(broken[0]) == matched_lines(plain[0])  # no usable seed: today's
    assert shown_titles(good[1])[:2] != shown_titles(plain[1])[:2]  # the others are ranked
    assert day.store.digest_counts().get("failed", 0) == 0


def test_a_day_that_cannot_be_vectorized_ranks_nobody():
    blank = [Paper(id=f"x:{i}", title="", abstract="") for i in range(3)]
    profiles = {1: ProfileSeeds((StoredSeed("title:a", "", ""),))}
    assert rank_day(blank, profiles, {1: Wanted(items=())}) == {}


async def test_the_semantic_extra_ranks_the_build_with_the_same_meaning_of_min_score(
        tmp_path, smtp_sink):
    """`[relevance] method = "semantic"`: the build ranks by WordLlama embeddings (from the
    wheel), the seeds' papers lead, and its cosines are put on the TF-IDF scale, so the
    same min_score leaves out a share of matches of the same size as with TF-IDF."""
    pytest.importorskip("wordllama", reason="the [semantic] extra is not installed")
    order = todays(BROAD)
    liked = order[-3:]
    kept = {}
    for method in ("tfidf", "semantic"):
        (tmp_path / method).mkdir()
        d = Day(tmp_path / method, smtp_sink, f'[relevance]\nmethod = "{method}"\n')
        try:
            assert d.config.relevance.method == method
            subscriber(d, f"{method}@example.org", seeds=liked, min_score=0.025)
            d.send()
            text, html = parts(d.mails(f"{method}@example.org")[-1])
            # today's order puts them last of 107; a centroid of three unlike seeds may put a
            # paper near two of them above the third
            assert {p.title for p in liked} <= set(shown_titles(html)[:5])
            # the first is one of the reader's seeds: said so, not "similar to" itself
            assert labelled(text, "matched")[0].endswith(" · one of your seeds")
            got = kinds(d, f"{method}@example.org")
            kept[method] = sum(1 for _, _, k in got if k != LEFT_OUT)
        finally:
            d.store.close()
    # 0.025 keeps a like share of the 107 matches in either space (27 and 18 when written):
    # without the map onto the TF-IDF scale, semantic cosines (0.3 to 0.7) would keep all
    assert all(10 <= n <= 60 for n in kept.values()), kept
    assert max(kept.values()) <= 2 * min(kept.values()), kept


def test_config_check_says_how_to_get_the_semantic_extra(tmp_path, monkeypatch):
    import importlib.util

    from digestd.config import load_config
    from digestd.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wordllama" else real(name, *a))
    path = tmp_path / "c.toml"
    path.write_text('[relevance]\nmethod = "semantic"\n')
    with pytest.raises(ConfigError, match=r"c.toml:2: relevance.method must be \"tfidf\" unless "
                       r"the semantic extra is installed.*pip install 'digestd\[semantic\]'"):
        load_config(path)


def test_the_semantic_build_embeds_each_seed_text_once(tmp_path, monkeypatch):
    """A seed's embedding never changes: the first build keeps the vectors of the seed texts
    it embedded (seed_vectors), the next embeds the day's papers only and ranks the same;
    a dry run keeps nothing."""
    pytest.importorskip("wordllama", reason="the [semantic] extra is not installed")
    from digestd.jobs_build import _rankings
    from digestd.relevance import semantic
    from digestd.store import Store

    papers = day_of_papers()
    order = todays(BROAD)
    embedded: list[int] = []
    real = semantic.SemanticSpace.vectors
    monkeypatch.setattr(semantic.SemanticSpace, "vectors",
                        lambda self, texts: embedded.append(len(texts)) or real(self, texts))
    with Store(tmp_path / "s.sqlite3") as store:
        sids = [store.add_subscriber(f"r{i}@example.org", [BROAD]).id for i in range(3)]
        for i, sid in enumerate(sids):  # four distinct texts among six seeds
            store.add_seeds(sid, [seed(p) for p in order[-2 - i:][:2]])
        subs = {s.id: s for s in store.subscribers("active")}
        matched = Matcher({sid: (BROAD,) for sid in sids}).match(papers)
        position = {p.id: i for i, p in enumerate(papers)}

        def rank(keep=True):
            embedded.clear()
            got = _rankings(store, subs, papers, matched, position, dict.fromkeys(sids, 0), {},
                            method="semantic", keep=keep)
            return {sid: [m.paper.id for m in r.items] for sid, r in got.items()}, embedded[:]

        dry, calls = rank(keep=False)
        assert calls == [len(papers) + 4] and store.seed_vectors(range(100), semantic.MODEL_KEY) == {}
        first, calls = rank()
        assert calls == [len(papers) + 4] and first == dry
        kept = store.seed_vectors(range(100), semantic.MODEL_KEY)
        assert len(kept) == 4 and all(len(v) == 4 * semantic.DIM for v in kept.values())
        again, calls = rank()
        assert calls == [len(papers)] and again == first  # the papers only, the same order
        # a text no reader names any more goes, with its vectors
        store.remove_seeds(sids[0], [seed(order[-2]).paper_id])
        assert len(store.seed_vectors(range(100), semantic.MODEL_KEY)) == 4  # r1 names it
        store.remove_seeds(sids[1], [seed(p).paper_id for p in order[-3:-1]])
        assert len(store.seed_vectors(range(100), semantic.MODEL_KEY)) == 3  # r2 names o[-3]


# -- ranking apart (the build process forks the ranking, digestd/forked.py) ----------------------

def _built(day: Day, **kw) -> dict[str, list[tuple[str, str, int, int]]]:
    """Address -> (title, why, position, kind) of each paper of their digest, after one
    build_digests (forced, at one fixed moment) with `kw`."""
    from datetime import datetime, timezone

    from digestd.jobs import build_digests

    report = build_digests(day.config, day.store, force=True,
                           now=datetime(2026, 11, 30, 6, tzinfo=timezone.utc), **kw)
    out = {}
    for sub in day.store.subscribers("active"):
        digest = day.store.digest_archive(sub.id, limit=1)[0][0]
        out[sub.email] = [(d.paper.title, d.why, d.position, d.kind)
                          for d in day.store.digest_papers(digest)]
    return out, report


def _readers(day: Day) -> None:
    order = todays(BROAD)
    subscriber(day, "plain@example.org")
    subscriber(day, "seeded@example.org", seeds=order[-3:])
    subscriber(day, "asks@example.org", rules=(NARROW,), seeds=order[:2] + order[-2:],
               recommend=3)
    subscriber(day, "strict@example.org", seeds=order[-4:], min_score=0.05)


def test_ranking_apart_gives_every_digest_what_ranking_inline_gives(tmp_path, smtp_sink,
                                                                    store_url):
    # inline on SQLite; apart on each backend (the forked process opens its own connection)
    for name in ("inline", "apart"):
        (tmp_path / name).mkdir()
    inline = Day(tmp_path / "inline", smtp_sink)
    apart = Day(tmp_path / "apart", smtp_sink, store_url=store_url)
    for d in (inline, apart):
        _readers(d)
    want, report_inline = _built(inline)
    got, report_apart = _built(apart, rank_apart=True)
    assert got == want
    assert report_apart.ranked == report_inline.ranked == 3
    assert report_apart.digests == report_inline.digests == 4
    assert report_apart.recommended == report_inline.recommended > 0
    assert report_apart.left_out == report_inline.left_out > 0
    assert report_apart.rank_s > 0
    assert {k for _, _, _, k in got["asks@example.org"]} == {0, RECOMMENDED}
    assert any(k == LEFT_OUT for _, _, _, k in got["strict@example.org"])
    for d in (inline, apart):
        d.store.close()


def test_a_ranking_process_that_dies_leaves_todays_order_and_every_digest(
        tmp_path, smtp_sink, monkeypatch, caplog):
    import os
    import signal

    import digestd.jobs_build as jobs_build

    def killed(*_args, **_kw):
        os.kill(os.getpid(), signal.SIGKILL)  # the ranking process, killed (out of memory)

    monkeypatch.setattr(jobs_build, "_rankings", killed)
    day = Day(tmp_path, smtp_sink)
    _readers(day)
    got, report = _built(day, rank_apart=True)
    # the readers with a profile were built by this process instead, in today's order
    assert report.ranked == 0 and report.failed == 0 and report.digests == 4
    plain = got["plain@example.org"]
    assert [t for t, *_ in got["seeded@example.org"]] == [t for t, *_ in plain]
    assert "event=ranking_failed scope=process" in caplog.text
    day.store.close()


def test_a_stop_while_the_readers_are_built_apart_kills_that_process(
        tmp_path, smtp_sink, monkeypatch):
    import time

    import digestd.jobs_build as jobs_build

    def slow(*_args, **_kw):
        time.sleep(60)  # a ranking that takes long: the stop must not wait for it

    monkeypatch.setattr(jobs_build, "_rankings", slow)
    day = Day(tmp_path, smtp_sink)
    _readers(day)
    began = time.monotonic()
    stops = iter([False] * 3 + [True] * 1000)  # the build's own batch, then a stop
    from datetime import datetime, timezone

    report = jobs_build.build_digests(day.config, day.store, force=True, rank_apart=True,
                                      now=datetime(2026, 11, 30, 6, tzinfo=timezone.utc),
                                      stop=lambda: next(stops))
    assert report.stopped and time.monotonic() - began < 20
    assert report.digests == 1  # plain@ only: the others are built by the next run
    archived = {a: len(day.store.digest_archive(day.store.get_subscriber(a).id)[0])
                for a in ("plain@example.org", "seeded@example.org")}
    assert archived == {"plain@example.org": 1, "seeded@example.org": 0}
    day.store.close()


def test_a_readers_own_seed_among_the_days_papers_is_never_recommended_back():
    """A seed (or a paper liked) that is one of the day's papers is what the reader knows
    already: recommendations go beyond it, though it is the most like their seeds."""
    papers = day_of_papers()
    matches = Matcher({1: (NARROW,)}).match(papers)[1]
    own, *others = [p for p in papers if p.id not in {m.paper.id for m in matches}][:4]
    profiles = {1: ProfileSeeds((seed(own), *map(earlier, others)))}
    ranked = rank_day(papers, profiles, {1: Wanted(items=matches, recommend=3)})[1]
    recommended = [m.paper.id for m in ranked.recommended]
    assert sorted(recommended) == sorted(p.id for p in others)  # like the seeds, not one
    # asked for everything: still never that one
    ranked = rank_day(papers, profiles, {1: Wanted(items=matches, recommend=len(papers))})[1]
    assert ranked.recommended and own.id not in [m.paper.id for m in ranked.recommended]
