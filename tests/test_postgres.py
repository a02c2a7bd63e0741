"""The PostgreSQL backend itself: choosing it in the config, its password, what `config check`
and `doctor` say about it, its migrations. (The store's behaviour on PostgreSQL is tested by
the store, delivery, build and daemon tests, which run once on each backend.)"""

from __future__ import annotations

import pytest

from digestd.cli import main
from digestd.config import ConfigError, load_config
from digestd.models import Paper
from digestd.store import Store, open_store, without_password
from digestd.store.postgres import PostgresStore, probe
from digestd.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION

from .postgres import PASSWORD, PASSWORD_USER, Postgres


@pytest.fixture
def database(postgres_server: Postgres):
    """A fresh, empty database (never migrated) of this test's own: its name."""
    name = postgres_server.new_database(migrated=False)
    yield name
    postgres_server.drop(name)


def test_url_selects_postgresql_and_path_keeps_sqlite(write_config, postgres_url, tmp_path):
    config = write_config(f'[store]\nurl = "{postgres_url}"\n')
    with open_store(config.store) as store:
        assert isinstance(store, PostgresStore) and store.sql.name == "postgresql"
        assert store.schema_version() == SCHEMA_VERSION
    config = write_config(f'[store]\npath = "{tmp_path / "d.sqlite3"}"\n')
    assert not config.store.url
    with open_store(config.store) as store:
        assert isinstance(store, Store) and store.sql.name == "sqlite"


def test_a_url_that_is_not_postgresql_is_a_config_error(write_config):
    with pytest.raises(ConfigError, match="store.url must be empty or a PostgreSQL URL"):
        write_config('[store]\nurl = "mysql://db/digestd"\n')


@pytest.mark.parametrize("source", ["file", "environment", "credential"])
def test_the_password_comes_from_a_file_the_environment_or_a_credential(
        write_config, postgres_server, database, tmp_path, monkeypatch, source):
    monkeypatch.delenv("DIGESTD_STORE_PASSWORD", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    url = postgres_server.url(database, user=PASSWORD_USER)
    config = write_config(f'[store]\nurl = "{url}"\n')
    ok, said = probe(config.store)
    assert not ok and "password" in said and url in said
    extra = ""
    if source == "file":
        (tmp_path / "pw").write_text(PASSWORD + "\n")
        extra = f'password_file = "{tmp_path / "pw"}"\n'
    elif source == "environment":
        monkeypatch.setenv("DIGESTD_STORE_PASSWORD", PASSWORD)
    else:
        (tmp_path / "creds").mkdir()
        (tmp_path / "creds" / "store-password").write_text(PASSWORD)
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
    config = write_config(f'[store]\nurl = "{url}"\n{extra}')
    assert config.store.password == PASSWORD and PASSWORD not in repr(config.store)
    with open_store(config.store) as store:
        assert store.add_subscriber("a@example.org").id == 1
        assert PASSWORD not in store.path


def test_a_password_in_the_url_is_never_shown():
    assert without_password("postgresql://me:s3cret@db.example.org/digestd?sslmode=require") \
        == "postgresql://me:***@db.example.org/digestd?sslmode=require"
    assert without_password("postgresql://me@db/x") == "postgresql://me@db/x"


def test_config_check_and_doctor_say_when_postgresql_cannot_be_reached(tmp_path, capsys):
    url = f"postgresql://digestd@/digestd?host={tmp_path / 'nothing-here'}"
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\n[delivery]\nmethod = "outbox"\n')
    assert main(["-c", str(cfg), "config", "check"]) == 1
    said = capsys.readouterr()
    err = said.err
    assert f"cannot reach the PostgreSQL store {url}" in err and "Traceback" not in err
    # no "config OK" above an error; and no sources is said in words
    assert said.out.startswith("config read, but the store cannot be reached")
    assert "sources   none: nothing will be polled" in said.out
    assert main(["-c", str(cfg), "doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  store" in out and "cannot reach the PostgreSQL store" in out
    assert main(["-c", str(cfg), "subscribers", "list"]) != 0
    assert "cannot reach the PostgreSQL store" in capsys.readouterr().err


def test_config_check_reaches_the_server_and_changes_nothing(postgres_server, database,
                                                            tmp_path, capsys):
    cfg = tmp_path / "digestd.toml"
    cfg.write_text(f'[store]\nurl = "{postgres_server.url(database)}"\n')
    assert main(["-c", str(cfg), "config", "check"]) == 0
    out = capsys.readouterr().out
    assert "reachable" in out and "empty: digestd makes the tables" in out
    ok, said = probe(postgres_server.url(database))
    assert ok and "empty" in said  # config check made no table


def test_migrations_are_named_steps_applied_once(postgres_server, database):
    assert [name for name, _ in MIGRATIONS][:2] == ["tables", "triggers"]
    url = postgres_server.url(database)
    with PostgresStore(url) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.migrate() == 0
    with PostgresStore(url) as store:  # opened again: nothing to do
        assert store.migrate() == 0
        store.db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(Exception, match="schema version 99, newer than this digestd"):
        PostgresStore(url)


def test_the_triggers_keep_ids_bodies_bounces_and_the_schedule_version(postgres_url):
    with open_store(postgres_url) as store:
        a = store.add_subscriber("a@example.org", ["x"])
        version = store.schedule_fingerprint()
        store.set_rules(a.id, ["y"])
        assert store.schedule_fingerprint() != version
        did = store.queue_message(a.id, "confirm", recipient=a.email, message_id="<m@x>",
                                  message=b"the body", now=1_700_000_000)
        assert store.db.execute("SELECT octet_length(message) FROM digests WHERE id = ?",
                                (did,)).fetchone()[0] == 0
        assert store.outbox()[0].message == b"the body"
        store.db.execute("UPDATE subscribers SET bounces = 2")
        store.mark_sent(did)
        assert store.get_subscriber(a.id).bounces == 0
        store.remove_subscriber("a@example.org")
        assert store.add_subscriber("b@example.org").id == a.id + 1  # never given out twice
        # addresses are the same whatever their case, as SQLite's COLLATE NOCASE
        assert store.get_subscriber("B@Example.org").email == "b@example.org"
        # once per statement: a status change, and many subscribers deleted at once
        version = store.schedule_fingerprint()
        store.set_status(a.id + 1, "paused")
        assert store.schedule_fingerprint() != version
        many = [store.add_subscriber(f"m{i}@example.org", ["x"]).id for i in range(3)]
        version = store.schedule_fingerprint()
        with store.transaction() as db:
            db.execute("DELETE FROM subscribers")
        assert store.schedule_fingerprint() != version
        assert store.add_subscriber("c@example.org").id == max(many) + 1


def test_store_copy_moves_the_demo_store_and_sends_no_paper_twice(tmp_path, postgres_server,
                                                                   database, capsys):
    from digestd.jobs import build_digests

    assert main(["demo", "--dir", str(tmp_path / "demo")]) == 0
    cfg = tmp_path / "demo" / "digestd.toml"
    if not cfg.exists():  # the demo runs on embedded settings: name its store
        cfg.write_text(f'[store]\npath = "{tmp_path / "demo" / "digestd.sqlite3"}"\n'
                       '[delivery]\nmethod = "outbox"\n'
                       f'outbox_dir = "{tmp_path / "demo" / "outbox"}"\n')
    capsys.readouterr()
    url = postgres_server.url(database)
    assert main(["-c", str(cfg), "store", "copy", "--to", url]) == 0
    out = capsys.readouterr().out
    assert "every table's count matches" in out and f'url = "{url}"' in out
    with Store(tmp_path / "demo" / "digestd.sqlite3") as old, open_store(url) as new:
        for table in ("papers", "paper_ids", "subscribers", "rules", "digests", "sent",
                      "digest_bodies", "whys", "source_state"):
            sql = f"SELECT count(*) FROM {table}"
            assert old.db.execute(sql).fetchone() == new.db.execute(sql).fetchone(), table
        assert old.db.execute("SELECT count(*) FROM sent").fetchone()[0] > 0
        assert [r.message for r in old.outbox(status="sent") + old.outbox()] == \
            [r.message for r in new.outbox(status="sent") + new.outbox()]
        assert [s.email for s in old.subscribers()] == [s.email for s in new.subscribers()]
        # analyzed once copied: the first plans know the tables' sizes
        assert new.db.execute("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN "
                              "('papers', 'sent', 'digests') AND last_analyze IS NOT NULL"
                              ).fetchone()[0] == 3
        # the copied store sends no paper a second time, and new keys follow the copied ones
        config = load_config(cfg)
        assert build_digests(config, new, force=True).digests == 0
        assert new.add_subscriber("late@example.org", ["x"]).id == \
            max(s.id for s in old.subscribers()) + 1
    # a second copy into the same database is refused: it is not empty any more
    assert main(["-c", str(cfg), "store", "copy", "--to", url]) != 0
    assert "is not empty" in capsys.readouterr().err


def test_both_schemas_have_the_same_tables_and_columns(tmp_path, postgres_url):
    """A migration step added to schema.py needs its twin in postgres_schema.py (and the
    other way round): the columns of every table, by name, are the same on both."""
    def sqlite_columns(store) -> dict[str, set[str]]:
        tables = [r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in store.db.execute(f"PRAGMA table_info({t})")} for t in tables}

    def postgres_columns(store) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for table, column in store.db.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema()"):
            out.setdefault(table, set()).add(column)
        out.pop("schema_version")  # PRAGMA user_version on SQLite
        return out

    with Store(tmp_path / "d.sqlite3") as lite, open_store(postgres_url) as pg:
        assert sqlite_columns(lite) == postgres_columns(pg)


def test_seed_texts_and_vectors_go_with_their_last_seed(store):
    """(on each backend) a text shared by two readers is kept once; its vector is read
    back as bytes; both go when the last seed naming them is removed."""
    from digestd.store import StoredSeed

    a = store.add_subscriber("a@example.org", ["x"])
    b = store.add_subscriber("b@example.org", ["x"])
    seed = StoredSeed("arxiv:2401.00001", "Sparse attention", "We prune heads.")
    store.add_seeds(a.id, [seed])
    store.add_seeds(b.id, [seed])
    by_sub, texts = store.seed_texts_of()
    assert len(texts) == 1 and by_sub[a.id][0] is by_sub[b.id][0]
    (text_id,) = texts
    assert store.add_seed_vectors("m/1", {text_id: b"\x00\x01\xff"}) == 1
    assert store.add_seed_vectors("m/1", {text_id: b"other"}) == 0  # one kept stays
    assert store.seed_vectors([text_id], "m/1") == {text_id: b"\x00\x01\xff"}
    assert store.seeds_of([]) == {} and store.seed_texts_of([]) == ({}, {})
    store.remove_seeds(a.id, [seed.paper_id])
    assert store.seed_vectors([text_id], "m/1") == {text_id: b"\x00\x01\xff"}
    store.remove_seeds(b.id, [seed.paper_id])
    assert store.seed_vectors([text_id], "m/1") == {} and store.seed_texts_of() == ({}, {})


def test_store_copy_moves_a_store_of_the_demo_and_the_bench_generator(
        tmp_path, postgres_server, database, capsys, monkeypatch):
    """Growing from SQLite (issue 18): the demo's store (sent digests, their sent marks) with
    bench/cycle.py's generated readers added (seen papers, rules, seed papers, feedback)
    copies with every table's count equal, and the next build on the copy queues what it
    queues on the original: the same readers, the same papers each."""
    import random
    import sys
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from digestd.jobs import build_digests
    from digestd.store.copy import TABLES

    bench = Path(__file__).resolve().parent.parent / "bench"
    # bench/cycle.py puts its folders first on sys.path when imported: undone after the test
    monkeypatch.setattr(sys, "path", [str(bench), *sys.path])
    from cycle import DEFAULT_CORPUS, fill_profiles, fill_seen, fill_subscribers
    from match import RuleGenerator, last_names, load_corpus

    demo = tmp_path / "demo"
    assert main(["demo", "--dir", str(demo)]) == 0
    cfg = demo / "digestd.toml"
    if not cfg.exists():  # the demo runs on embedded settings: name its store
        cfg.write_text(f'[store]\npath = "{demo / "digestd.sqlite3"}"\n'
                       f'[delivery]\nmethod = "outbox"\noutbox_dir = "{demo / "outbox"}"\n')
    rng = random.Random(3)
    records = load_corpus(DEFAULT_CORPUS)
    names = last_names(rng)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with Store(demo / "digestd.sqlite3") as lite:
        fill_seen(lite, records, 300, rng, names)
        fill_subscribers(lite, 40, RuleGenerator(records, rng, names), rng,
                         (now - timedelta(minutes=1)).strftime("%H:%M"),
                         (now - timedelta(days=1)).isoformat(timespec="seconds"))
        profiles, seeds, marks = fill_profiles(lite, records, 0.5, rng, names, 300)
    assert profiles and seeds and marks
    capsys.readouterr()
    url = postgres_server.url(database)
    assert main(["-c", str(cfg), "store", "copy", "--to", url]) == 0
    assert "every table's count matches" in capsys.readouterr().out
    config = load_config(cfg)
    with Store(demo / "digestd.sqlite3") as old, open_store(url) as new:
        for table in TABLES:
            sql = f"SELECT count(*) FROM {table}"
            assert old.db.execute(sql).fetchone() == new.db.execute(sql).fetchone(), table
        for sql in ("SELECT subscriber_id, paper_pk, value FROM feedback",
                    "SELECT subscriber_id, paper_id, text_id FROM seeds"):
            assert sorted(tuple(r) for r in old.db.execute(sql)) == \
                sorted(tuple(r) for r in new.db.execute(sql)), sql
        there = build_digests(config, new, now=now)
        here = build_digests(config, old, now=now)
    assert here.digests + here.quiet >= 40 and here.digests and here.ranked
    assert (there.digests, there.quiet, there.ranked, there.matches) == \
        (here.digests, here.quiet, here.ranked, here.matches)


def test_store_copy_refuses_a_missing_store_and_takes_from_and_the_password_file(
        tmp_path, postgres_server, capsys, monkeypatch):
    """No store where the config (or the defaults) say: refused, and no empty store made
    and "copied". `--from` names the file instead, and the config's store.password_file
    gives the target's password, as the message after the copy says."""
    from .postgres import PASSWORD, PASSWORD_USER

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DIGESTD_CONFIG", raising=False)
    monkeypatch.delenv("DIGESTD_STORE_PASSWORD", raising=False)
    url = postgres_server.url(postgres_server.new_database(migrated=False), user=PASSWORD_USER)
    assert main(["store", "copy", "--to", url]) != 0
    assert "digestd.sqlite3 does not exist" in capsys.readouterr().err
    assert not (tmp_path / "digestd.sqlite3").exists()

    old = tmp_path / "old" / "kept.sqlite3"
    with Store(old) as store:
        store.add_subscriber("a@example.org", ["x"])
        # a `digestd run` on it holds the running lease (jobs_cluster.Presence): refused
        store.take_lease("running", "vm/4242/ab12", 30)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    cfg = tmp_path / "digestd.toml"
    cfg.write_text('[store]\npassword_file = "pw"\n')
    assert main(["-c", str(cfg), "store", "copy", "--from", str(old), "--to", url]) != 0
    err = capsys.readouterr().err
    assert "in use by a running digestd (vm/4242/ab12): stop it, then copy" in err
    with Store(old) as store:
        store.drop_lease("running", "vm/4242/ab12")  # stopped
    assert main(["-c", str(cfg), "store", "copy", "--from", str(old), "--to", url]) == 0
    out = capsys.readouterr().out
    assert "every table's count matches" in out and f'path = "{old.resolve()}"' in out
    with open_store(url.replace(f"{PASSWORD_USER}@", f"{PASSWORD_USER}:"
                                f"{PASSWORD.replace(' ', '%20')}@")) as new:
        assert [s.email for s in new.subscribers()] == ["a@example.org"]


def _plan(store, sql: str, args=()) -> str:
    return "\n".join(r[0] for r in store.db.execute(f"EXPLAIN {sql}", args).fetchall())


def test_the_tables_a_build_grows_are_analyzed_so_plans_use_their_indexes(
        postgres_url, monkeypatch):
    """A new store's digests table is empty, and a plan made from that (a foreign-key check
    of each sent mark, an outbox claim) scans the whole table, and a connection keeps it:
    a day's first build cost the server 1.7 ms a digest instead of 0.8. Once a table has
    changed by more rows than its statistics counted, the store ANALYZEs it."""
    import digestd.store.postgres as pg

    monkeypatch.setattr(pg, "GROWN_ROWS", 50)
    with open_store(postgres_url) as store:
        store.db.execute("ANALYZE digests")  # statistics of the empty table, as a new store's
        store.add_papers([Paper(id=f"arxiv:{i}", title=f"T {i}") for i in range(5)])
        pks = list(store.paper_pks([f"arxiv:{i}" for i in range(5)]).values())
        claim = ("SELECT id FROM digests WHERE status = 'queued' AND next_attempt_at <= '9' "
                 "ORDER BY next_attempt_at, id LIMIT 10")
        assert "Seq Scan on digests" in _plan(store, claim)
        subs = [store.add_subscriber(f"s{i}@example.org", ["t"]) for i in range(300)]
        # a build's commits; each commit's counts reach the statistics views within a
        # second (PostgreSQL 15 flushes a backend's counts at most once a second), so the
        # look after a commit sees the commits before it
        for start in range(0, 300, 100):
            with store.transaction():
                for sub in subs[start:start + 100]:
                    store.queue_digest(sub.id, "2026-11-30", recipient=sub.email,
                                       message_id=f"<{sub.id}@x>", message=b"m", paper_pks=pks)
            store.db.execute("SELECT pg_stat_force_next_flush()")
        analyzed = store.db.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL").fetchall()
        assert {"digests", "digest_bodies", "sent"} <= {r[0] for r in analyzed}
        # the claim reads its rows off the index, in its order (no sort of every due row)
        plan = _plan(store, claim)
        assert "Index" in plan and "digests_pending" in plan and "Sort" not in plan, plan
        assert "Seq Scan" not in _plan(store, "SELECT 1 FROM digests WHERE id = ?", (1,))


def test_a_message_that_fits_in_a_page_stays_in_its_row(postgres_url):
    """A packed body of a few KB stays in its row (digest_bodies' toast_tuple_target): no
    TOAST chunks to write at queue time and to put together at claim time; a larger one
    goes out of line. Both read back as queued."""
    import random

    rng = random.Random(1)
    small, large = rng.randbytes(6000), rng.randbytes(30000)  # zlib leaves them as large
    with open_store(postgres_url) as store:
        toast = store.db.execute("SELECT reltoastrelid::regclass::text FROM pg_class "
                                 "WHERE relname = 'digest_bodies'").fetchone()[0]

        def chunks() -> int:
            return store.db.execute(f"SELECT count(*) FROM {toast}").fetchone()[0]

        ids = []
        for n, message in enumerate((small, large)):
            sub = store.add_subscriber(f"r{n}@example.org", ["t"])
            ids.append(store.queue_digest(sub.id, "2026-11-30", recipient=sub.email,
                                          message_id=f"<{n}@x>", message=message, paper_pks=[]))
            assert (chunks() > 0) == (n == 1)
        rows, _ = store.claim_outbox("me", limit=5, lease_s=60)
        assert [(r.id, r.message) for r in rows] == list(zip(ids, (small, large)))
