"""A template of digest.templates_dir that does not compile is a config mistake: `config
check`, `send`, `run` and a reload name it as TEMPLATE_FILE:LINE: message (exit 2), and a
build that meets one all the same says so without a traceback, loses nothing and sends
nothing twice."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from digestd.cli import main
from digestd.config import load_config
from digestd.daemon import Daemon
from digestd.sdnotify import Notifier
from digestd.store import Store

from .conftest import init_offline

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "Hello {{ broken\n"
SYNTAX = "unexpected end of template, expected 'end of print statement'."


def _setup(tmp_path: Path, capsys, smtp_sink=None) -> Path:
    """`digestd init` (the sample source), [digest] templates_dir = "tpl", a subscriber and
    the sample papers polled; with `smtp_sink`, digests go to it."""
    assert init_offline(tmp_path) == 0
    config = tmp_path / "digestd.toml"
    text = config.read_text(encoding="utf-8") + '\n[digest]\ntemplates_dir = "tpl"\n'
    if smtp_sink is not None:
        text += f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\nsecurity = "none"\n'
    config.write_text(text, encoding="utf-8")
    (tmp_path / "tpl" / "email").mkdir(parents=True)
    assert main(["-c", str(config), "subscribers", "add", "a@example.org",
                 "--rule", "learning"]) == 0
    assert main(["-c", str(config), "poll"]) == 0
    capsys.readouterr()
    return config


def test_config_check_names_each_template_mistake_by_its_file_and_line(tmp_path, capsys):
    config = _setup(tmp_path, capsys)
    email = tmp_path / "tpl" / "email"
    (email / "digest.txt").write_text(BROKEN, encoding="utf-8")
    for flags in ([], ["--quiet"]):
        assert main(["-c", str(config), "config", "check", *flags]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"digestd: error: {email / 'digest.txt'}:1: {SYNTAX}")
        assert "Traceback" not in err
    # every one of them, in the web app's templates too, and a template included from
    # one's own that is nowhere
    (email / "paper.txt").write_text('{{ p.title }}\n{% include "email/nope.txt" %}\n',
                                     encoding="utf-8")
    (tmp_path / "tpl" / "web").mkdir()
    (tmp_path / "tpl" / "web" / "message.html").write_text(
        '{% extends "web/base.html" %}\n{% block content %}\n{{ x | no_such_filter }}\n'
        "{% endblock %}\n", encoding="utf-8")
    assert main(["-c", str(config), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert f"{email / 'digest.txt'}:1: {SYNTAX}" in err
    assert (f'{email / "paper.txt"}:2: names the template "email/nope.txt", which is neither '
            f"in digest.templates_dir ({tmp_path / 'tpl'}) nor bundled with digestd") in err
    assert f"{tmp_path / 'tpl' / 'web' / 'message.html'}:3: No filter named 'no_such_filter'" \
        in err
    assert "(3 mistakes in the templates)" in err
    # templates that compile pass, bundled ones untouched
    (email / "digest.txt").write_text("Hello {{ subscriber.email }}\n{{ items[0] }}",
                                      encoding="utf-8")
    (email / "paper.txt").unlink()
    (tmp_path / "tpl" / "web" / "message.html").unlink()
    assert main(["-c", str(config), "config", "check", "--quiet"]) == 0


def test_send_refuses_a_broken_template_and_a_build_that_meets_one_loses_nothing(
        tmp_path, capsys, smtp_sink, monkeypatch):
    config = _setup(tmp_path, capsys, smtp_sink)
    digest_txt = tmp_path / "tpl" / "email" / "digest.txt"
    digest_txt.write_text(BROKEN, encoding="utf-8")
    # `send` compiles the templates before anything is built or sent
    assert main(["-c", str(config), "send", "--now"]) == 2
    err = capsys.readouterr().err
    assert err == (f"digestd: error: {digest_txt}:1: {SYNTAX} (a template of "
                   "digest.templates_dir: fix it, or remove the file to use the bundled "
                   "one)\n")
    # a template broken between that check and the build (the daemon's case): the build
    # process's renderer says the same, no traceback; nothing queued, failed or sent
    import digestd.render

    monkeypatch.setattr(digestd.render, "check_templates", lambda *a, **k: None)
    assert main(["-c", str(config), "send", "--now"]) == 2
    err = capsys.readouterr().err
    assert f"digestd: error: {digest_txt}:1: {SYNTAX}" in err and "Traceback" not in err
    assert smtp_sink.received == []
    settings = load_config(config)
    with Store(settings.store.path) as store:
        assert store.digest_counts() == {}
        assert store.sent_among(store.paper_pks(p.id for p in store.papers_since(
            "2000-01-01")).values()) == {}
    monkeypatch.undo()
    # fixed: the papers that waited go out, once
    digest_txt.unlink()
    assert main(["-c", str(config), "send", "--now"]) == 0
    assert "built 1 digest" in capsys.readouterr().out
    assert main(["-c", str(config), "send", "--now"]) == 0
    assert "built 0 digests" in capsys.readouterr().out
    assert len(smtp_sink.received) == 1


@pytest.mark.parametrize("command", ["run", "web"])
def test_run_refuses_to_start_on_a_broken_template(tmp_path, capsys, command):
    """`run`, and `digestd web` alone (its pages, its confirmation mails)."""
    config = _setup(tmp_path, capsys)
    digest_html = tmp_path / "tpl" / "email" / "digest.html"
    digest_html.write_text("<p>\n{% if x %}\n</p>\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DIGESTD_", "NOTIFY_", "WATCHDOG_", "CREDENTIALS_"))}
    env.update(PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "digestd.cli", "--config", str(config),
                          command, *(["--listen", "127.0.0.1:0"] if command == "web" else [])],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         check=False)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"digestd: error: {digest_html}:3: Unexpected end of "
                                 "template. Jinja was looking for the following tags: "
                                 "'elif' or 'else' or 'endif'.")
    assert "Traceback" not in run.stderr and "event=ready" not in run.stderr


def test_a_reload_refuses_a_broken_template_and_the_build_logs_it_in_one_line(
        tmp_path, capsys):
    from datetime import datetime, timedelta, timezone

    config = load_config(_setup(tmp_path, capsys))
    digest_txt = tmp_path / "tpl" / "email" / "digest.txt"
    now = [datetime.now(timezone.utc)]  # the subscriber's first digest is due tomorrow
    d = Daemon(config, notifier=Notifier({}), clock=lambda: now[0])

    async def run() -> None:
        task = asyncio.create_task(d.run())
        try:
            while d.scheduler is None or not d.scheduler.running:
                await asyncio.sleep(0.02)
            while d.running:  # the first poll and digest run (at start) are over
                await asyncio.sleep(0.02)
            assert d.store.digest_counts() == {}
            digest_txt.write_text(BROKEN, encoding="utf-8")
            due = now[0].replace(hour=7, minute=1, second=0, microsecond=0)
            now[0] = due if due > now[0] else due + timedelta(days=1)  # just past 07:00 UTC
            d.reload()
            assert d.config is config  # the old one is kept
            # the files are what they are: the digest job says why it builds nothing,
            # in one line, and the papers wait
            await d._build_and_send()
            assert d.store.digest_counts() == {}
            digest_txt.unlink()
            await d._build_and_send()
            assert d.store.digest_counts() == {"sent": 1}
        finally:
            d.request_stop("test")
            await asyncio.wait_for(task, 10)

    asyncio.run(run())
    # (`digestd.cli.main` of _setup pointed the log at this test's stderr)
    log = capsys.readouterr().err.splitlines()
    [failed] = [line for line in log if "event=reload_failed" in line]
    assert "level=error" in failed and f"{digest_txt}:1: {SYNTAX}" in failed
    [built] = [line for line in log if "event=build_failed" in line]
    assert "level=error" in built and f"{digest_txt}:1: {SYNTAX}" in built
    assert not any("Traceback" in line for line in log)
