"""What the commands print, tidy: doctor's unsubscribe URL joined as the real links are,
`papers` cutting long titles with an ellipsis, and one date format in `papers --json`."""

from __future__ import annotations

import json

from digestd.cli import main
from digestd.models import Paper
from digestd.render import Links
from digestd.store import open_store


def test_doctor_joins_the_base_url_as_the_links_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "digestd.toml"
    for base in ("https://digest.example.org/", "https://digest.example.org/papers/"):
        cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[web]\nbase_url = "{base}"\n',
                       encoding="utf-8")
        main(["-c", str(cfg), "doctor"])
        out = capsys.readouterr().out
        line = next(x for x in out.splitlines() if "unsubscribe" in x and "one-click" in x)
        real = Links(base, b"k").unsubscribe(1)  # a link as digests carry it
        assert line.endswith(f"one-click links go to {real.rpartition('/u/')[0]}/u/...")
        assert "//u/" not in line


def test_papers_cuts_long_titles_with_an_ellipsis_and_says_one_date_format(tmp_path, capsys):
    db = tmp_path / "s.sqlite3"
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\npath = "{db}"\n', encoding="utf-8")
    long = ("A very long title about graph neural networks that goes on and on well past "
            "the eighty columns of a terminal line")
    with open_store(str(db)) as store:
        store.add_papers([Paper(id="arxiv:2607.00001", title=long, source="arxiv-cs",
                                published="2026-07-15"),
                          Paper(id="hf:2604.00002", title="Short", source="hf",
                                published="2026-04-27T00:00:00-04:00")])
    assert main(["-c", str(cfg), "papers"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("arxiv:2607.00001"))
    title = line[out.splitlines()[0].index("title"):]
    assert title.endswith("…") and len(title) <= 80 and long.startswith(title[:-1])
    assert main(["-c", str(cfg), "papers", "--json"]) == 0
    got = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    assert got["arxiv:2607.00001"]["title"] == long  # JSON keeps the whole title
    # `published` as the store keeps it; `published_date` one format for all
    assert got["hf:2604.00002"]["published"] == "2026-04-27T00:00:00-04:00"
    assert [got[k]["published_date"] for k in ("arxiv:2607.00001", "hf:2604.00002")] == [
        "2026-07-15", "2026-04-27"]
