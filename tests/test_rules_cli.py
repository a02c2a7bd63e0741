"""`digestd rules test/add/list/remove` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from digestd.cli import main

from .conftest import init_offline

CORPUS = Path(__file__).parent / "data" / "hf_listings.json"


def test_rules_test_against_a_papers_file(capsys):
    assert main(["rules", "test", "title:(prun* OR sparsit*) -survey", "--papers",
                 str(CORPUS), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and all({"title", "why"} <= set(m) for m in found)
    for m in found:
        assert "survey" not in m["title"].lower()
        assert "title" in m["why"]
    corpus = json.loads(CORPUS.read_text())
    direct = [p for p in corpus if any(w.startswith(("prun", "sparsit"))
                                       for w in _words(p["title"]))
              and "survey" not in _words(p["title"]) + _words(p["abstract"] or "")]
    assert len(found) == len(direct)


def _words(text: str) -> list[str]:
    from digestd.text import words
    return words(text)


def test_rules_test_prints_matches_and_a_count(capsys):
    assert main(["rules", "test", '"noisy labels"', "--papers", str(CORPUS)]) == 0
    out = capsys.readouterr().out
    assert 'matched: ' in out and f"of 655 {CORPUS} match" in out


def test_rules_test_says_why_as_a_digest_does_and_shows_the_first_n(capsys):
    rule = 'title:prun* OR "noisy labels"'
    assert main(["rules", "test", rule, "--papers", str(CORPUS), "--limit", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == '    matched: "pruning" in title' and out[3].startswith("    matched: ")
    n = int(out[-1].split()[0])
    assert n > 2 and out[-2] == f"... {n - 2} more not shown (--limit 0 shows all)"
    assert main(["rules", "test", rule, "--papers", str(CORPUS), "--limit", "0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 * n + 1


def test_invalid_rule_exits_non_zero_with_the_error_on_stderr(capsys):
    assert main(["rules", "test", "titel:x", "--papers", str(CORPUS)]) != 0
    captured = capsys.readouterr()
    assert 'unknown field "titel" at column 1' in captured.err and captured.out == ""


def test_rules_add_list_remove(tmp_path, capsys):
    init_offline(tmp_path)
    cfg = ["-c", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", "diffusion"]) == 0
    assert main([*cfg, "rules", "add", "a@example.org", "title:prun* -survey"]) == 0
    assert main([*cfg, "rules", "add", "a@example.org", "--", "-video"]) != 0  # negation only
    capsys.readouterr()
    assert main([*cfg, "rules", "list", "a@example.org"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["  1  diffusion",
                                                       "  2  title:prun* -survey"]
    assert main([*cfg, "rules", "remove", "a@example.org", "1"]) == 0
    assert main([*cfg, "rules", "remove", "a@example.org", "5"]) != 0
    capsys.readouterr()
    main([*cfg, "rules", "list", "a@example.org"])
    assert capsys.readouterr().out.strip() == "1  title:prun* -survey"


def test_rules_test_against_the_store(tmp_path, capsys):
    init_offline(tmp_path)
    cfg = ["-c", str(tmp_path / "digestd.toml")]
    main([*cfg, "poll"])
    capsys.readouterr()
    assert main([*cfg, "rules", "test", "diffusion", "--days", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) > 0


def test_a_rule_added_twice_is_kept_once(tmp_path, capsys):
    init_offline(tmp_path)
    cfg = ["-c", str(tmp_path / "digestd.toml")]
    assert main([*cfg, "subscribers", "add", "a@example.org", "--rule", '"noisy labels"']) == 0
    assert main([*cfg, "rules", "add", "a@example.org", '"noisy labels"']) == 0
    assert "has this rule already (rule 1): nothing added" in capsys.readouterr().out
    main([*cfg, "rules", "list", "a@example.org"])
    assert capsys.readouterr().out.strip() == '1  "noisy labels"'


def test_rules_test_names_a_source_no_source_has(tmp_path, capsys):
    """`source:` takes a configured source's name: a typo matches nothing, so it is said,
    with the names there are."""
    init_offline(tmp_path)
    cfg = ["-c", str(tmp_path / "digestd.toml")]
    main([*cfg, "poll"])
    capsys.readouterr()
    assert main([*cfg, "rules", "test", "diffusion -source:smaple"]) == 0
    err = capsys.readouterr().err
    assert 'no source is named "smaple"' in err and "sample" in err.split("name:")[1]
    assert main([*cfg, "rules", "test", "diffusion source:sample"]) == 0
    assert "no source is named" not in capsys.readouterr().err


def test_rules_test_says_a_rule_matches_nearly_everything(tmp_path, capsys):
    init_offline(tmp_path)
    cfg = ["-c", str(tmp_path / "digestd.toml")]
    main([*cfg, "poll"])
    capsys.readouterr()
    assert main([*cfg, "rules", "test", "the"]) == 0
    assert "of the papers match: a digest of nearly everything" in capsys.readouterr().err
    assert main([*cfg, "rules", "test", "diffusion"]) == 0
    assert "nearly everything" not in capsys.readouterr().err


def test_a_rule_read_as_an_option_is_told_how_to_write_it(capsys):
    for argv, hint in ((["rules", "test", "-video"], "`digestd rules test -- -survey`"),
                       (["rules", "add", "a@example.org", "-video"],
                        "`digestd rules add EMAIL -- -survey`"),
                       (["subscribers", "add", "a@example.org", "--rule", "-video"],
                        "write --rule=-survey")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and hint in capsys.readouterr().err


def test_a_command_left_out_prints_the_help_of_its_level(capsys):
    for argv, listed in (([], "subscribers"), (["subscribers"], "unsubscribe")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and listed in err and "arguments are required" in err
