"""The offline demo end to end, and the CLI around subscribers and sending."""

from __future__ import annotations

import email
import email.policy
import json
import re

from digestd.cli import main

from .conftest import init_offline


def test_demo_writes_one_parsable_digest_per_subscriber(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "papers stored   300" in out and "digests written 2" in out
    # both subscribers have papers matched
    matched = re.findall(r"(\S+@example\.org) +(\d+) papers matched", out)
    assert [m[0] for m in matched] == ["ada@example.org", "grace@example.org"]
    assert all(int(n) > 0 for _, n in matched)
    files = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(files) == 2
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert msg.get_content_type() == "multipart/alternative"
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = msg.get_body(("html",)).get_content()
        assert "matched:" in text and "<html" in html
        # real papers a reader can follow: links, authors, categories, the day
        assert re.search(r"\n   https://arxiv\.org/abs/\d{4}\.\d{5}\n", text)
        assert re.search(r"\n   PDF: https://arxiv\.org/pdf/\d{4}\.\d{5}\n", text)
        assert re.search(r"\n   sample \| cs\.[A-Z]{2}.* \| 2025-05-27\n", text)
        assert 'href="https://arxiv.org/abs/' in html
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # a second run starts over and gives the same result
    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 2


def test_the_demo_s_links_open_where_its_summary_says(tmp_path, monkeypatch, capsys):
    """The summary says how to open the digests' links: `digestd web` in the demo's folder,
    whose embedded defaults find the demo's store and link secret (the real app, by ASGI)."""
    import asyncio
    import types

    import httpx

    from digestd.cli.common import _config
    from digestd.store import Store
    from digestd.web import create_app

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--dir", "demo"]) == 0
    out = capsys.readouterr().out
    assert f"`cd {tmp_path / 'demo'} && digestd web` runs" in out
    monkeypatch.chdir(tmp_path / "demo")
    config = _config(types.SimpleNamespace(config=None))
    first = min((tmp_path / "demo" / "outbox").glob("*.eml"))
    msg = email.message_from_bytes(first.read_bytes(), policy=email.policy.default)
    page = msg["Archived-At"].strip("<>")
    assert page.startswith(config.web.base_url + "/d/")
    with Store(config.store.path) as store:
        app = create_app(config, store)

        async def ask():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url=config.web.base_url) as client:
                return await client.get(page.removeprefix(config.web.base_url))

        got = asyncio.run(ask())
    assert got.status_code == 200 and msg["Subject"].split(":")[0] in got.text


def test_demo_never_empties_a_setup_of_someone_s_own(tmp_path, capsys):
    """`digestd demo --dir DIR` starts over only in a folder the demo made: DIR with a config,
    a store with other subscribers, or an outbox with other files is left as it is."""
    demo = tmp_path / "demo"
    assert main(["demo", "--dir", str(demo)]) == 0
    assert (demo / ".digestd-demo").is_file()
    capsys.readouterr()

    def refused(folder, says: str) -> None:
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        assert main(["demo", "--dir", str(folder)]) == 2
        err = capsys.readouterr().err
        assert says in err and "nothing was changed" in err
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before

    # someone's setup: their config beside the store (digestd init writes ./digestd.toml)
    own = tmp_path / "own"
    own.mkdir()
    (own / "digestd.toml").write_text('[store]\npath = "digestd.sqlite3"\n')
    refused(own, "holds a digestd.toml")
    # a store with a subscriber the demo never adds
    import shutil

    from digestd.store import open_store

    shutil.copytree(demo, tmp_path / "theirs")
    with open_store(str(tmp_path / "theirs" / "digestd.sqlite3")) as store:
        store.add_subscriber("reader@example.net", ["pruning"])
    refused(tmp_path / "theirs", "subscribers of its own")
    # an outbox with a message of someone else's
    shutil.copytree(demo, tmp_path / "mail")
    (tmp_path / "mail" / "outbox" / "my.eml").write_text("Subject: mine\n\nkeep me\n")
    refused(tmp_path / "mail", "files the demo did not write")
    # a store beside files the demo never makes
    shutil.copytree(demo, tmp_path / "beside")
    (tmp_path / "beside" / "notes.txt").write_text("mine")
    refused(tmp_path / "beside", "files the demo never makes (notes.txt)")
    # a file that is no folder
    (tmp_path / "f").write_text("x")
    refused(tmp_path / "f", "is not a folder")
    # the demo's own folder, and one an older demo made (no note), start over
    (demo / ".digestd-demo").unlink()
    assert main(["demo", "--dir", str(demo)]) == 0
    assert len(list((demo / "outbox").glob("*.eml"))) == 2


def test_cli_flow_with_a_config(tmp_path, capsys):
    assert init_offline(tmp_path) == 0
    cfg = str(tmp_path / "digestd.toml")
    assert main(["-c", cfg, "subscribers", "add", "me@example.org", "--rule", "diffusion",
                 "--name", "Me"]) == 0
    assert main(["-c", cfg, "poll"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[next(i for i, line in enumerate(out) if line.startswith("source ")):]
    assert table[0].split() == ["source", "fetched", "new", "seen", "skipped", "took", "waited",
                                "status"]
    assert table[1].split()[:5] == ["sample", "300", "300", "0", "0"]
    assert main(["-c", cfg, "poll"]) == 0  # met again: every paper seen before
    assert capsys.readouterr().out.splitlines()[1].split()[:5] == ["sample", "300", "0", "300",
                                                                    "0"]
    assert main(["-c", cfg, "papers", "--json", "--limit", "2"]) == 0
    papers = json.loads(capsys.readouterr().out)
    assert len(papers) == 2 and {"id", "ids", "title", "abstract", "source", "published",
                                 "url"} <= set(papers[0])
    assert papers[0]["abstract"]  # what `digestd similar --papers` ranks by
    assert main(["-c", cfg, "send", "--now", "--dry-run"]) == 0
    assert "nothing queued" in capsys.readouterr().out
    assert main(["-c", cfg, "send", "--now"]) == 0
    assert "1 written" in capsys.readouterr().out
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    # every matching paper was sent once: nothing more to send
    assert main(["-c", cfg, "send", "--now"]) == 0
    assert "built 0 digests" in capsys.readouterr().out
    assert main(["-c", cfg, "subscribers", "list", "--json"]) == 0
    (sub,) = json.loads(capsys.readouterr().out)
    assert sub["email"] == "me@example.org" and sub["status"] == "active"
    assert sub["rules"] == ["diffusion"]
    assert main(["-c", cfg, "subscribers", "remove", "me@example.org"]) == 0
    assert main(["-c", cfg, "subscribers", "remove", "me@example.org"]) == 1


def test_init_writes_the_config_that_config_names(tmp_path, capsys, monkeypatch):
    """`digestd -c my.toml init` writes my.toml (not ./digestd.toml), which `-c my.toml`
    commands then read; its next steps say `--config my.toml`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    assert main(["-c", "my.toml", "init"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote my.toml\n")
    assert "  digestd --config my.toml config check\n" in out
    assert (tmp_path / "my.toml").is_file() and not (tmp_path / "digestd.toml").exists()
    assert (tmp_path / "digestd.sqlite3").is_file()  # the starter's store, beside it
    assert main(["-c", "my.toml", "config", "check", "--quiet"]) == 0
    # after the command name, and into a folder made for it
    assert main(["init", "--config", "lab/lab.toml"]) == 0
    assert capsys.readouterr().out.startswith("wrote lab/lab.toml\n")
    assert (tmp_path / "lab" / "lab.toml").is_file()
    assert (tmp_path / "lab" / "digestd.sqlite3").is_file()
    assert main(["-c", "lab/lab.toml", "config", "check", "--quiet"]) == 0
    # --dir and -c naming one folder agree; two folders are refused, nothing written
    assert main(["-c", "lab/lab.toml", "init", "--dir", "lab"]) == 0
    assert "lab/lab.toml exists already; not overwritten." in capsys.readouterr().err
    assert main(["-c", "x.toml", "init", "--dir", "elsewhere"]) == 2
    assert capsys.readouterr().err == ("digestd: error: init: --config x.toml names the file to "
                                       "write, and --dir elsewhere another folder: give one of "
                                       "them\n")
    assert not (tmp_path / "x.toml").exists() and not (tmp_path / "elsewhere").exists()
    # a second config into a folder whose store is there already: it says they share it
    assert main(["-c", "lab/other.toml", "init"]) == 0
    assert (f"note: {tmp_path / 'lab' / 'digestd.sqlite3'} was there already: lab/other.toml "
            "uses that store") in capsys.readouterr().err
    # without -c, ./digestd.toml as before
    assert main(["init"]) == 0
    assert capsys.readouterr().out.startswith("wrote digestd.toml\n")


def test_outbox_prune_never_reads_0_as_drop_everything(tmp_path, capsys):
    """store.keep_sent_days = 0 keeps sent messages forever; `outbox prune` on that config
    drops nothing, and `--days 0` is refused rather than dropping every message."""
    import pytest

    assert init_offline(tmp_path) == 0
    cfg = tmp_path / "digestd.toml"
    assert main(["-c", str(cfg), "subscribers", "add", "me@example.org", "--rule",
                 "diffusion"]) == 0
    assert main(["-c", str(cfg), "poll"]) == 0
    assert main(["-c", str(cfg), "send", "--now"]) == 0
    assert "1 written" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["-c", str(cfg), "outbox", "prune", "--days", "0"])
    assert e.value.code == 2 and "must be 1 or more" in capsys.readouterr().err
    assert main(["-c", str(cfg), "outbox", "prune", "--days", "1"]) == 0
    assert "dropped the message of 0 digests sent more than 1 day ago" in \
        capsys.readouterr().out
    cfg.write_text(cfg.read_text().replace("[store]", "[store]\nkeep_sent_days = 0", 1))
    assert main(["-c", str(cfg), "outbox", "prune"]) == 0
    assert "nothing dropped" in capsys.readouterr().out
    assert main(["-c", str(cfg), "outbox", "show", "1"]) == 0  # the message is still there


def test_invalid_rule_is_refused(tmp_path, capsys):
    init_offline(tmp_path)
    capsys.readouterr()
    assert main(["-c", str(tmp_path / "digestd.toml"), "subscribers", "add", "x@example.org",
                 "--rule", "title:(a"]) != 0
    assert "column" in capsys.readouterr().err


def test_how_to_type_digestd_again_after_a_cd(tmp_path, monkeypatch):
    """After the quick start digestd is `.venv/bin/digestd`, relative to the folder it was
    typed in: a command to run after `cd DIR` (the demo's `digestd web`) names it whole."""
    from digestd.cli import common

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common.sys, "argv", [".venv/bin/digestd", "demo"])
    monkeypatch.setattr(common.shutil, "which", lambda name: None)
    assert common.invocation() == ".venv/bin/digestd"
    assert common.invocation(elsewhere=True) == str(tmp_path / ".venv" / "bin" / "digestd")
    monkeypatch.setattr(common.sys, "argv", ["/usr/bin/python3", "-m", "digestd"])
    assert common.invocation(elsewhere=True) == "digestd"
