"""Error messages in the user's terms, through the CLI: no Python tuples, errno numbers,
"<unknown>" file names or doubled quotes; the line and the table (or source) they are about."""

from __future__ import annotations

import pytest

from digestd.cli import main


@pytest.fixture(autouse=True)
def _here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    monkeypatch.delenv("DIGESTD_SMTP_PASSWORD", raising=False)


def check(tmp_path, capsys, text: str) -> tuple[int, str, str]:
    path = tmp_path / "digestd.toml"
    path.write_text(text, encoding="utf-8")
    code = main(["-c", str(path), "config", "check"])
    return code, capsys.readouterr().err, str(path)


def test_a_table_or_key_given_twice(tmp_path, capsys):
    code, err, path = check(tmp_path, capsys, '[smtp]\nhost = "a"\n\n[smtp]\nport = 25\n')
    assert (code, err) == (2, (f"digestd: error: {path}:4: [smtp] appears twice (first at line "
                               "1): write each table once, with all its keys under one [smtp]\n"))
    code, err, path = check(tmp_path, capsys, '[smtp]\nhost = "a"\nhost = "b"\n')
    assert (code, err) == (2, (f"digestd: error: {path}:3: host is given twice: a key is set "
                               "once in its table\n"))
    code, err, path = check(tmp_path, capsys,
                            '[[sources]]\nname = "a"\nkind = "sample"\n[sources]\n')
    assert code == 2 and err.startswith(f"digestd: error: {path}:4: [sources] appears twice "
                                        "(first at line 1)")
    assert "(or [[sources]] for each source)" in err and "('" not in err


def test_a_folder_where_a_file_belongs(tmp_path, capsys):
    assert main(["-c", str(tmp_path), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert err == f"digestd: error: {tmp_path}: is a folder, not a config file (give the .toml " \
                  "file itself)\n"
    (tmp_path / "digestd.toml").write_text(f'[store]\npath = "{tmp_path}"\n', encoding="utf-8")
    assert main(["-c", str(tmp_path), "subscribers", "list"]) == 2
    assert capsys.readouterr().err == (f"digestd: error: {tmp_path}: is a folder, not a config "
                                       f"file: did you mean {tmp_path / 'digestd.toml'}?\n")
    for command in (["config", "check"], ["subscribers", "list"]):
        assert main(["-c", str(tmp_path / "digestd.toml"), *command]) == 2
        err = capsys.readouterr().err
        assert err == (f"digestd: error: {tmp_path / 'digestd.toml'}:2: store.path must be the "
                       f'store\'s file, got "{tmp_path}": it is a folder (e.g. '
                       f'"{tmp_path / "digestd.sqlite3"}")\n')
        assert "Errno" not in err and "unable to open" not in err


def test_a_feed_that_is_not_xml_names_its_line_not_unknown(tmp_path, capsys):
    (tmp_path / "feed.xml").write_text("not xml\n<<\n", encoding="utf-8")
    (tmp_path / "digestd.toml").write_text(
        f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n'
        '[[sources]]\nname = "local"\nkind = "feed"\nurl = "feed.xml"\n', encoding="utf-8")
    assert main(["-c", str(tmp_path / "digestd.toml"), "poll"]) == 1
    out = capsys.readouterr().out
    assert "error (bad-xml): the answer is not an RSS or Atom feed (syntax error: line 2, " \
           "column 0)" in out
    assert "<unknown>" not in out


def test_a_quoted_rule_is_not_quoted_again_and_a_short_prefix_says_the_minimum(tmp_path,
                                                                                capsys):
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n', encoding="utf-8")
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.org",
                 "--rule", '"language model*"']) == 2
    assert capsys.readouterr().err.startswith(
        'digestd: error: rule 1 "language model*": phrase "language model*" may not contain')
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.org",
                 "--rule", "graphs", "--rule", '"graph neural" a*']) == 2
    assert capsys.readouterr().err.startswith(
        "digestd: error: rule 2 '\"graph neural\" a*': prefix \"a*\" is too short: at least 2 "
        'letters or digits before the "*" at column 16')


def test_allowed_choices_include_the_empty_default(tmp_path, capsys):
    code, err, path = check(tmp_path, capsys, '[log]\nlevel = "verbose"\n')
    assert (code, err) == (2, (f'digestd: error: {path}:2: log.level must be one of "debug", '
                               '"info", "warning", "error", or "" (empty: the default), got '
                               '"verbose"\n'))


def test_a_missing_source_key_names_the_source(tmp_path, capsys):
    code, err, path = check(tmp_path, capsys,
                            '[[sources]]\nname = "a"\nkind = "sample"\n\n[[sources]]\n'
                            'name = "mine"\n')
    assert (code, err) == (2, (f'digestd: error: {path}:5: sources.kind is required (source '
                               '"mine")\n'))
    code, err, path = check(tmp_path, capsys,
                            '[[sources]]\nname = "a"\nkind = "sample"\n\n[[sources]]\n'
                            'kind = "feed"\n')
    assert code == 2
    assert f"{path}:5: sources.name is required ([[sources]] table 2, counted from the " \
           "top)" in err
    assert 'sources.url is required for kind "feed" ([[sources]] table 2' in err
