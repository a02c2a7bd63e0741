"""A real browser against `digestd web`: headless Chromium (Debian's) driven by Playwright.

Set DIGESTD_SCREENSHOTS=docs/screenshots to refresh the README's screenshots.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("DIGESTD_CHROMIUM") or shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# without the background-networking flags Chromium hangs on a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is not installed (pip install "
    "'.[test]')")


def digestd(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digestd.cli", *args], capture_output=True,
                          text=True, timeout=60, env=_env(), check=True, **kw)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def server(tmp_path):
    """`digestd web` on 127.0.0.1 as a subprocess, delivering into an outbox folder."""
    port = free_port()
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f"""
[store]
path = "digestd.sqlite3"

[delivery]
method = "outbox"
outbox_dir = "outbox"

[web]
listen = "127.0.0.1:{port}"
base_url = "http://127.0.0.1:{port}"

[[sources]]
name = "sample"
kind = "sample"
""")
    digestd("-c", str(cfg), "poll")
    log = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "digestd.cli", "-c", str(cfg), "web"],
                            stdout=log, stderr=subprocess.STDOUT, env=_env())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log.close()
            pytest.fail("digestd web did not start:\n" + (tmp_path / "web.log").read_text())
        time.sleep(0.1)
    try:
        yield base, cfg, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        log.close()
        assert code == 0, (tmp_path / "web.log").read_text()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get("DIGESTD_SCREENSHOTS")
    folder = (ROOT / where) if where else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def only_eml(folder: Path, kind: str) -> email.message.EmailMessage:
    """The one .eml of `kind`; the server writes it just after answering, so wait a little."""
    deadline = time.monotonic() + 10
    while not (found := [p for p in folder.glob("*.eml") if kind in p.name]):
        assert time.monotonic() < deadline, f"no {kind} email in {folder}"
        time.sleep(0.05)
    (path,) = found
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def test_subscribe_confirm_edit_and_unsubscribe_in_a_browser(server, browser):
    base, cfg, tmp_path = server
    shots = shots_dir(tmp_path)
    # a Berlin browser: the page's script guesses the time zone from it
    context = browser.new_context(viewport={"width": 960, "height": 900},
                                  timezone_id="Europe/Berlin", locale="en-GB")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    page.goto(base + "/")
    assert page.title() == "Paper digest"
    assert page.input_value("#timezone") == "Europe/Berlin"
    page.fill("#email", "ada@example.org")
    page.fill("#rule-0", "diffusion")
    # the live test (JavaScript, allowed by the CSP as a same-origin script) shows a count
    page.wait_for_selector("#rule-0-msg .count", timeout=10_000)
    assert "papers in the last 30 days" in page.inner_text("#rule-0-msg")
    page.fill("#rule-1", '"language models" reasoning')
    page.fill("#rule-2", "title:(broken")
    # the no-JavaScript way: the Test button posts the form and the page shows the results
    page.click("button[value=test]:not(.default-submit)")
    page.wait_for_load_state()
    assert "unbalanced" in page.inner_text("#rule-2-msg")
    assert "All rules together" in page.inner_text(".together")
    page.fill("#send_at", "08:15")
    page.check("input[name=frequency][value=weekdays]")
    page.screenshot(path=str(shots / "subscribe.png"), full_page=True)
    page.fill("#rule-2", "")

    page.click("button.primary[value=subscribe]")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Check your inbox"
    assert "ada@example.org" in page.inner_text("main")

    confirmation = only_eml(tmp_path / "outbox", "confirm")
    text = confirmation.get_body(("plain",)).get_content()
    confirm_url = re.search(rf"{re.escape(base)}/confirm/\S+", text)[0]
    page.goto(confirm_url)
    assert page.inner_text("h1") == "Confirm your subscription"  # a scanner confirms nothing
    page.click("button.primary")
    page.wait_for_load_state()
    assert "You are subscribed" in page.inner_text(".notice")
    assert page.input_value("#rule-0") == "diffusion"
    assert page.input_value("#rule-1") == '"language models" reasoning'

    # edit the rules and the schedule, save, and see it stick
    page.fill("#rule-1", "title:(prun* OR sparsit*) -survey")
    page.select_option("#weekday", "4")
    page.check("input[name=frequency][value=weekly]")
    page.click("button.primary[value=save]")
    page.wait_for_load_state()
    assert "Saved." in page.inner_text(".notice")
    # seed papers: a Zotero export (a real multipart upload) and ids typed in the box
    page.set_input_files("#seed-file", str(ROOT / "tests" / "data" / "seeds" / "zotero.bib"))
    page.fill("#seed-ids", "2505.18291 2401.01234")
    page.click("#seeds button.primary")
    page.wait_for_load_state()
    assert page.url.endswith("#seeds")
    assert ("kept 5 of 7 seeds (5 new); 1 unknown id: arxiv:2401.01234; 1 not read (below)"
            in page.inner_text("#seeds .notice"))
    assert page.locator("ul.seeds li").count() == 5
    page.screenshot(path=str(shots / "preferences.png"), full_page=True)
    subs = json.loads(digestd("-c", str(cfg), "subscribers", "list", "--json").stdout)
    assert subs == [{**subs[0], "email": "ada@example.org", "status": "active",
                     "rules": ["diffusion", "title:(prun* OR sparsit*) -survey"],
                     "timezone": "Europe/Berlin", "send_at": "08:15", "frequency": "weekly"}]

    # the unsubscribe page (what the footer link opens) asks first; the button does it
    page.click("text=Unsubscribe")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Unsubscribe?"
    page.set_viewport_size({"width": 960, "height": 440})
    page.screenshot(path=str(shots / "unsubscribe.png"), full_page=True)
    assert json.loads(digestd("-c", str(cfg), "subscribers", "list", "--json").stdout)[0][
        "status"] == "active"
    page.click("button.danger")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "You are unsubscribed"
    assert json.loads(digestd("-c", str(cfg), "subscribers", "list", "--json").stdout)[0][
        "status"] == "unsubscribed"
    assert problems == []
    context.close()

    # no token ever reaches the server's log
    served = (tmp_path / "web.log").read_text()
    assert confirm_url.rsplit("/", 1)[1] not in served and "/u/" not in served


def test_the_forms_work_without_javascript(server, browser):
    base, cfg, tmp_path = server
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base + "/")
    page.fill("#email", "grace@example.org")
    page.fill("#rule-0", "segmentation")
    page.click("button[value=test]:not(.default-submit)")
    page.wait_for_load_state()
    assert "papers in the last 30 days" in page.inner_text("#rule-0-msg")
    assert page.input_value("#email") == "grace@example.org"
    # Enter in the email field subscribes (the hidden first button), it does not test
    page.press("#email", "Enter")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "Check your inbox"
    only_eml(tmp_path / "outbox", "confirm")
    context.close()


def test_a_rendered_digest(browser, tmp_path):
    """The HTML part of a demo digest, as a mail client shows it."""
    shots = shots_dir(tmp_path)
    digestd("demo", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    files = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    html = tmp_path / "digest.html"
    html.write_text(msg.get_body(("html",)).get_content(), encoding="utf-8")
    page = browser.new_page(viewport={"width": 720, "height": 1400})
    page.goto(html.as_uri())
    assert "matched" in page.inner_text("body")
    page.screenshot(path=str(shots / "digest.png"))
    page.close()


def test_a_digests_page_and_the_archive_on_a_phone(server, browser):
    """At 390 px wide (a phone): the page of a digest with every paper, the list of past
    digests and the feed on the preferences page, and the email itself."""
    base, cfg, tmp_path = server
    shots = shots_dir(tmp_path)
    digestd("-c", str(cfg), "subscribers", "add", "ada@example.org", "--rule",
            "learning OR model*", "--rule", '"language models"')
    digestd("-c", str(cfg), "send", "--now")
    (eml,) = sorted((tmp_path / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    page_url = msg["Archived-At"].strip("<>")
    text = msg.get_body(("plain",)).get_content()
    prefs_url = re.search(rf"{re.escape(base)}/p/\S+", text)[0]
    # earlier digests, so that the archive has a history to show
    sys.path.insert(0, str(ROOT))
    from digestd.models import Paper
    from digestd.store import Store

    with Store(tmp_path / "digestd.sqlite3") as store:
        sub = store.get_subscriber("ada@example.org")
        for day in range(1, 9):
            papers = [Paper(id=f"earlier:{day}.{i}", title=f"An earlier paper {day}.{i}")
                      for i in range(day * 7 % 11)]
            store.add_papers(papers)
            did = store.queue_digest(sub.id, f"2026-11-{day:02d}", recipient=sub.email,
                                     message_id=f"<{day}@x>", message=b"", deliver=False,
                                     paper_pks=list(store.paper_pks(p.id for p in papers)
                                                    .values()),
                                     checked=300 - day, now=f"2026-11-{day:02d}T07:00:00+00:00")
            assert did is not None

    context = browser.new_context(viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(page_url)
    matched = int(re.search(r": (\d+) new papers", msg["Subject"])[1])
    assert page.locator("li.paper").count() == matched > 25
    # nothing sticks out sideways at 390 px
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for link in [*page.locator(".paper-links a").all()[:10],
                 *page.locator(".paper-title a").all()[:10]]:
        assert link.bounding_box()["height"] >= 24
    # the top of the page: the first papers whole (abstract, why, links)
    page.screenshot(path=str(shots / "digest-page.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 390, "height": 1500})

    page.goto(prefs_url + "#archive")
    assert page.locator(".archive li").count() == 9
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    feed = page.get_attribute('link[rel=alternate][type="application/atom+xml"]', "href")
    assert feed.startswith(base + "/f/") and feed.endswith(".atom")
    assert page.input_value("input.feed-url") == feed
    for link in page.locator(".archive a").all():
        assert link.bounding_box()["height"] >= 24
    page.locator("#archive").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "archive.png"))
    # the newest digest's page, from the list
    page.click(".archive li:first-child a")
    page.wait_for_load_state()
    assert page.url == page_url
    assert problems == []

    # the email at 390 px: tap targets and the footer's size
    html = tmp_path / "digest.html"
    html.write_text(msg.get_body(("html",)).get_content(), encoding="utf-8")
    page.goto(html.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for link in [*page.locator("a.tap").all(), *page.locator("a.title-a").all()]:
        assert link.bounding_box()["height"] >= 24
    assert float(page.eval_on_selector(
        ".footer", "e => parseFloat(getComputedStyle(e).fontSize)")) >= 13
    assert page.locator("h2.title").count() == 25
    context.close()
    served = (tmp_path / "web.log").read_text()
    assert "/d/" not in served.replace("/d/<token>", "") and "/f/" not in served.replace(
        "/f/<token>", "")


def test_a_feedback_link_records_by_script_and_undo_works(server, browser):
    """A "less like this" link from a digest: the page's script records the choice by a POST
    on load, the page says so, and its undo button takes it back."""
    base, cfg, tmp_path = server
    digestd("-c", str(cfg), "subscribers", "add", "ada@example.org", "--rule",
            "learning OR model*")
    digestd("-c", str(cfg), "send", "--now")
    (eml,) = sorted((tmp_path / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    html = msg.get_body(("html",)).get_content()
    less = re.search(rf'href="({re.escape(base)}/r/[^"]+/1/less)"', html)[1]
    sys.path.insert(0, str(ROOT))
    from digestd.store import Store

    def counts() -> tuple[int, int]:
        with Store(tmp_path / "digestd.sqlite3") as store:
            return store.feedback_counts(store.get_subscriber("ada@example.org").id)

    page = browser.new_page(viewport={"width": 800, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(less)
    page.wait_for_url(re.compile(r"/less\?done=recorded$"))
    assert "Noted: fewer papers like this one" in page.inner_text("h1")
    assert counts() == (0, 1)
    page.screenshot(path=str(shots_dir(tmp_path) / "feedback.png"), full_page=True)
    page.click("text=Undo")
    page.wait_for_url(re.compile(r"/less\?done=undone$"))
    assert "taken back" in page.inner_text("h1")
    assert counts() == (0, 0)
    assert not problems, problems

    # without script: the page waits for its button
    nojs = browser.new_context(java_script_enabled=False).new_page()
    nojs.goto(less)
    assert "Less like this?" in nojs.inner_text("h1") and counts() == (0, 0)
    nojs.click("text=Yes, less like this")
    assert "Noted" in nojs.inner_text("h1") and counts() == (0, 1)
