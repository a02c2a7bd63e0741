"""The CLI a person expects: --config anywhere, schedule changes, pause/resume/unsubscribe,
clear refusals for what cannot be done."""

from __future__ import annotations

import pytest

from digestd.cli import main
from digestd.store import open_store


@pytest.fixture
def site(tmp_path, monkeypatch, store_url, store_toml):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    config = tmp_path / "lab.toml"
    config.write_text(f'[store]\n{store_toml}\n', encoding="utf-8")
    assert main(["--config", str(config), "subscribers", "add", "a@example.org",
                 "--rule", "graphs"]) == 0
    return config, store_url


def test_config_after_the_subcommand(site, capsys):
    config, _ = site
    assert main(["subscribers", "list", "--config", str(config)]) == 0
    assert main(["subscribers", "list", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.count("a@example.org") == 2 and "1 subscriber\n" in out


def test_the_list_names_each_subscriber_by_the_id_logs_use(site, capsys):
    """Logs and `digestd inbound` say subscriber=N, never the address: the list says who."""
    config, _ = site
    assert main(["-c", str(config), "subscribers", "add", "long.name@example.org",
                 "--rule", "x"]) == 0
    capsys.readouterr()
    assert main(["-c", str(config), "subscribers", "list"]) == 0
    head, first, second, *_ = capsys.readouterr().out.splitlines()
    assert head.split()[:4] == ["ID", "EMAIL", "STATUS", "SCHEDULE"]
    assert first.split()[:2] == ["1", "a@example.org"]
    assert second.split()[:2] == ["2", "long.name@example.org"]
    assert first.index("active") == second.index("active") == head.index("STATUS")
    assert main(["-c", str(config), "subscribers", "list", "--json"]) == 0
    import json

    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [1, 2]


def test_the_list_shows_relevance_settings_seeds_and_feedback(site, capsys):
    """recommend and min_score as `subscribers set` leaves them, and how many seeds and "more
    like this" / "less like this" marks each subscriber has, in the table and in --json."""
    import json

    from digestd.models import Paper
    from digestd.store import StoredSeed
    from digestd.store.feedback import LESS, MORE

    config, db = site
    assert main(["-c", str(config), "subscribers", "add", "b@example.org", "--rule", "x"]) == 0
    assert main(["-c", str(config), "subscribers", "set", "a@example.org", "--recommend", "3",
                 "--min-score", "0.05"]) == 0
    with open_store(db) as store:
        a = store.get_subscriber("a@example.org")
        store.add_papers([Paper(id=f"arxiv:{i}", title=f"T{i}") for i in range(3)])
        pks = [store.paper_pks([f"arxiv:{i}"])[f"arxiv:{i}"] for i in range(3)]
        store.add_seeds(a.id, [StoredSeed(f"arxiv:{i}", f"Seed {i}", "x") for i in (7, 8, 9)])
        for pk, value in zip(pks, (MORE, MORE, LESS)):
            store.record_feedback(a.id, pk, value)
    capsys.readouterr()
    assert main(["-c", str(config), "subscribers", "list"]) == 0
    head, first, second, *_ = capsys.readouterr().out.splitlines()
    assert head.split() == ["ID", "EMAIL", "STATUS", "SCHEDULE", "NEXT_DIGEST", "SEEDS", "MORE",
                            "LESS", "RECOMMEND", "MIN_SCORE", "RULES"]
    columns = ("SEEDS", "MORE", "LESS", "RECOMMEND", "MIN_SCORE", "RULES")

    def cells(line: str) -> list[str]:
        return [line[head.index(c):].split()[0] for c in columns]

    assert cells(first) == ["3", "2", "1", "3", "0.05", "graphs"]
    assert cells(second) == ["0", "0", "0", "0", "off", "x"]  # the defaults, said
    assert main(["-c", str(config), "subscribers", "list", "--json"]) == 0
    listed = [{k: s[k] for k in ("recommend", "min_score", "seeds", "more_like_this",
                                 "less_like_this")} for s in json.loads(capsys.readouterr().out)]
    assert listed == [
        {"recommend": 3, "min_score": 0.05, "seeds": 3, "more_like_this": 2,
         "less_like_this": 1},
        {"recommend": 0, "min_score": None, "seeds": 0, "more_like_this": 0,
         "less_like_this": 0}]


def test_set_changes_only_what_is_given(site, capsys):
    config, db = site
    assert main(["subscribers", "set", "a@example.org", "--frequency", "weekly", "--weekday",
                 "fri", "--send-empty", "--config", str(config)]) == 0
    assert main(["subscribers", "set", "a@example.org", "--send-at", "08:30",
                 "--config", str(config)]) == 0
    with open_store(db) as store:
        sub = store.get_subscriber("a@example.org")
    assert (sub.frequency, sub.weekday, sub.send_empty, sub.send_at, sub.rules) == (
        "weekly", 4, True, "08:30", ("graphs",))
    assert main(["subscribers", "set", "a@example.org", "--no-send-empty",
                 "--config", str(config)]) == 0
    with open_store(db) as store:
        assert store.get_subscriber("a@example.org").send_empty is False
    assert main(["subscribers", "set", "a@example.org", "--timezone", "CET",
                 "--config", str(config)]) != 0
    assert "Europe/Berlin" in capsys.readouterr().err


def test_pause_resume_unsubscribe_keep_history(site, capsys):
    config, db = site
    for command, status in (("pause", "paused"), ("resume", "active"),
                            ("unsubscribe", "unsubscribed")):
        assert main(["subscribers", command, "a@example.org", "--config", str(config)]) == 0
        with open_store(db) as store:
            sub = store.get_subscriber("a@example.org")
        assert sub.status == status and sub.rules == ("graphs",)
    # someone who unsubscribed is mailed again only when they asked for it
    assert main(["subscribers", "resume", "a@example.org", "--config", str(config)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["subscribers", "resume", "a@example.org", "--force", "--config",
                 str(config)]) == 0
    assert main(["subscribers", "resume", "a@example.org", "--config", str(config)]) == 0
    assert "already active" in capsys.readouterr().out


def test_refusals_say_what_is_wrong(site, capsys):
    config, _ = site
    assert main(["papers", "--since", "yesterday", "--config", str(config)]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    # not there: 1, as `outbox show 999` and an unknown subscriber (--help: exit status)
    assert main(["outbox", "retry", "999", "--config", str(config)]) == 1
    assert "no such id in the outbox: 999" in capsys.readouterr().err
    assert main(["subscribers", "pause", "nobody@example.org", "--config", str(config)]) == 1


def test_which_rule_is_wrong_and_exit_2(site, capsys):
    config, _ = site
    assert main(["subscribers", "add", "b@example.org", "--rule", "diffusion", "--rule",
                 "title:(prun* OR sparsit*", "--config", str(config)]) == 2
    assert 'rule 2 "title:(prun* OR sparsit*"' in capsys.readouterr().err


def test_no_config_file_is_said(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    # without a config: said, and the defaults' store ./digestd.sqlite3 is not made to list it
    assert main(["subscribers", "list"]) == 2
    err = capsys.readouterr().err
    assert "no config file" in err and "no store at" in err
    assert not (tmp_path / "digestd.sqlite3").exists()


def test_set_chooses_recommendations_and_the_threshold(site, capsys):
    config, db = site
    assert main(["subscribers", "set", "a@example.org", "--recommend", "3", "--min-score",
                 "0.05", "-c", str(config)]) == 0
    assert "3 recommendations beyond the rules" in capsys.readouterr().out
    assert main(["subscribers", "set", "a@example.org", "--send-at", "09:00",
                 "-c", str(config)]) == 0  # what is not given stays
    with open_store(db) as store:
        sub = store.get_subscriber("a@example.org")
    assert (sub.recommend, sub.min_score, sub.send_at) == (3, 0.05, "09:00")
    assert main(["subscribers", "set", "a@example.org", "--min-score", "2",
                 "-c", str(config)]) == 2
    assert "--min-score must be a similarity from 0 to 1" in capsys.readouterr().err
    assert main(["subscribers", "set", "a@example.org", "--min-score", "off",
                 "-c", str(config)]) == 0
    with open_store(db) as store:
        assert store.get_subscriber("a@example.org").min_score is None


def test_sources_says_when_none_are_configured(site, capsys):
    config, _ = site
    capsys.readouterr()
    assert main(["sources", "--config", str(config)]) == 0
    assert "no sources configured: nothing is polled" in capsys.readouterr().out


def test_counts_and_a_weekday_that_would_do_nothing_are_refused(tmp_path, capsys):
    cfg = str(tmp_path / "digestd.toml")
    (tmp_path / "digestd.toml").write_text('[store]\npath = "s.sqlite3"\n')
    for argv in (["papers", "--limit", "-1"], ["rules", "test", "x", "--days", "-3"],
                 ["outbox", "--limit", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(["-c", cfg, *argv])
        assert exit_.value.code == 2
        assert "must be" in capsys.readouterr().err
    # a weekday for a daily digest would be kept and do nothing
    assert main(["-c", cfg, "subscribers", "add", "a@example.org", "--rule", "x", "--weekday",
                 "fri"]) == 2
    assert "--weekday is the day of a weekly digest" in capsys.readouterr().err
    assert main(["-c", cfg, "subscribers", "add", "a@example.org", "--rule", "x", "--weekday",
                 "fri", "--frequency", "weekly"]) == 0
    assert main(["-c", cfg, "subscribers", "set", "a@example.org", "--frequency", "daily",
                 "--weekday", "mon"]) == 2
    capsys.readouterr()
    assert main(["-c", cfg, "subscribers", "list"]) == 0
    assert "weekly fri" in capsys.readouterr().out


def test_a_mistyped_store_path_is_not_made_by_a_command_that_only_reads(tmp_path, capsys):
    """store.path mistyped: `subscribers list`, `sources`, `papers`, `outbox` and `rules
    list` say there is no store there instead of making an empty one (and its folders)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[store]\npath = "nodir/sub/x.sqlite3"\n')
    for command in (["subscribers", "list"], ["sources"], ["papers"], ["outbox"],
                    ["outbox", "show", "1"], ["rules", "list", "a@example.org"]):
        assert main(["-c", str(cfg), *command]) == 2, command
        err = capsys.readouterr().err
        assert f"no store at {tmp_path / 'nodir' / 'sub' / 'x.sqlite3'}" in err
        assert "check store.path" in err
    assert not (tmp_path / "nodir").exists()
    # a command that writes makes it, as a new setup's first one does
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.org", "--rule", "x"]) == 0
    assert main(["-c", str(cfg), "subscribers", "list"]) == 0
    assert "a@example.org" in capsys.readouterr().out


def test_near_misses_of_a_time_zone_and_a_short_send_at(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    for typed, meant in (("Europe/Berln", "Europe/Berlin"), ("berlin", "Europe/Berlin"),
                         ("america/new_york", "America/New_York")):
        assert main(["-c", str(cfg), "subscribers", "add", "a@example.org", "--rule", "x",
                     "--timezone", typed]) == 2
        assert f'got "{typed}" (did you mean "{meant}"?)' in capsys.readouterr().err
    assert main(["-c", str(cfg), "subscribers", "add", "a@example.org", "--rule", "x",
                 "--send-at", "7:30"]) == 0
    capsys.readouterr()
    assert main(["-c", str(cfg), "subscribers", "list", "--json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)[0]["send_at"] == "07:30"


def test_outbox_lists_web_mail_by_what_it_is(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    from digestd.store import open_store

    with open_store(str(tmp_path / "d.sqlite3")) as store:
        sub = store.add_subscriber("a@example.org", ["x"])
        store.queue_message(sub.id, "confirm", recipient=sub.email, message_id="<c.1@x>",
                            message=b"Subject: confirm\r\n\r\nx\r\n", now=1796098876.0)
    assert main(["-c", str(cfg), "outbox"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert "confirm email" in line and "confirm-1796098876" not in line and "papers" not in line
    with open_store(str(tmp_path / "d.sqlite3")) as store:
        store.queue_message(sub.id, "unsubscribed", recipient=sub.email, message_id="<u.1@x>",
                            message=b"Subject: bye\r\n\r\nx\r\n", now=1796098877.0)
    assert main(["-c", str(cfg), "outbox"]) == 0
    assert "unsubscribe notice" in capsys.readouterr().out


def test_web_listen_flag_mistakes_name_the_flag(site, capsys):
    config, _ = site
    assert main(["-c", str(config), "web", "--listen", "8090"]) == 2
    err = capsys.readouterr().err
    assert '--listen must be "HOST:PORT", "[IPv6]:PORT", ":PORT" or "unix:PATH"' in err
    assert 'got "8090"' in err


def test_set_changes_the_name_and_feed_only_as_add_takes_them(site, capsys):
    """`subscribers add` takes --name and --feed-only; `subscribers set` changes them."""
    import json

    config, db = site
    assert main(["-c", str(config), "subscribers", "set", "a@example.org", "--name",
                 " Ada Lovelace ", "--feed-only"]) == 0
    assert capsys.readouterr().out.startswith("Ada Lovelace <a@example.org>: feed only (no "
                                              "email), daily at 07:00 UTC")
    assert main(["-c", str(config), "subscribers", "list", "--json"]) == 0
    (a,) = json.loads(capsys.readouterr().out)
    assert (a["name"], a["feed_only"], a["rules"]) == ("Ada Lovelace", True, ["graphs"])
    # what is not given stays: a schedule change keeps the name and feed-only
    assert main(["-c", str(config), "subscribers", "set", "a@example.org", "--send-at",
                 "08:00"]) == 0
    with open_store(db) as store:
        sub = store.get_subscriber("a@example.org")
    assert (sub.name, sub.feed_only, sub.send_at) == ("Ada Lovelace", True, "08:00")
    capsys.readouterr()
    assert main(["-c", str(config), "subscribers", "set", "a@example.org", "--name", "",
                 "--no-feed-only"]) == 0
    assert capsys.readouterr().out.startswith("a@example.org: daily at 08:00 UTC")
    with open_store(db) as store:
        sub = store.get_subscriber("a@example.org")
    assert (sub.name, sub.feed_only) == ("", False)
    assert main(["-c", str(config), "subscribers", "set", "a@example.org", "--name",
                 "Ada\nBcc: x@example.org"]) == 2
    assert "--name must be one line" in capsys.readouterr().err


def test_set_help_explains_recommend_in_user_terms(capsys):
    from digestd import ranking
    from digestd.cli import RECOMMEND_AT_LEAST

    with pytest.raises(SystemExit):
        main(["subscribers", "set", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "RECOMMEND_FLOOR" not in out and "ranking." not in out
    assert "a similarity of at least 0.08 on the 0-to-1 scale of --min-score" in out
    assert RECOMMEND_AT_LEAST == ranking.RECOMMEND_FLOOR  # the help says the real floor
    assert "--name" in out and "--feed-only" in out and "--no-feed-only" in out
