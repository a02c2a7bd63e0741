"""The SQLite store on a real file: migrations, papers seen once, aliases, the outbox."""

from __future__ import annotations

import sqlite3

from digestd.models import Paper
from digestd.store import MIGRATIONS, SCHEMA_VERSION, Store


def test_migrations_on_an_empty_file(tmp_path):
    with Store(tmp_path / "a.sqlite3") as store:
        assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_on_an_existing_file_apply_only_the_missing_steps(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0][1])
    db.execute("INSERT INTO papers (id, title, first_seen) VALUES ('arxiv:1', 'Old', 'x')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.count_papers() == 1
    with Store(path) as store:  # reopening applies nothing
        assert store.migrate() == 0


def test_a_paper_seen_twice_is_stored_once(store):
    p = Paper(id="arxiv:2401.00001", title="Noisy labels", abstract="A.")
    assert store.add_papers([p]) == [p]
    assert store.add_papers([p]) == []
    assert store.count_papers() == 1


def test_one_paper_from_two_sources_is_one_row(store):
    a = Paper(id="arxiv:2401.00001", title="Noisy Labels Revisited", source="arxiv",
              aliases=("doi:10.48550/arxiv.2401.00001",))
    b = Paper(id="doi:10.48550/arxiv.2401.00001", title="Noisy labels revisited", source="hf",
              upvotes=12)
    c = Paper(id="url:https://example.org/x", title="Noisy labels — revisited!")
    assert store.add_papers([a]) == [a]
    assert store.add_papers([b, c]) == []
    (only,) = store.papers_since("0", with_aliases=True)
    assert only.id == "arxiv:2401.00001" and only.upvotes == 12
    assert set(only.ids) >= {"arxiv:2401.00001", "doi:10.48550/arxiv.2401.00001",
                             "url:https://example.org/x", "title:noisy labels revisited"}


def test_duplicates_within_one_batch(store):
    p = Paper(id="arxiv:1", title="Same")
    assert len(store.add_papers([p, p])) == 1


def test_subscribers_and_rules(store):
    sub = store.add_subscriber("a@example.org", ["diffusion", '"noisy labels"'], name="A")
    assert sub.rules == ("diffusion", '"noisy labels"') and sub.status == "active"
    assert store.get_subscriber("A@EXAMPLE.ORG").id == sub.id
    store.set_status(sub.id, "paused")
    assert store.active_rules() == {}
    store.remove_subscriber("a@example.org")
    assert store.subscribers() == []
    assert store.db.execute("SELECT count(*) FROM rules").fetchone()[0] == 0


def test_seed_and_feedback_counts_of_every_subscriber_at_once(store):
    """What `subscribers list` shows: one read for all subscribers, only those with any."""
    from digestd.store import StoredSeed
    from digestd.store.feedback import LESS, MORE

    store.add_papers([Paper(id=f"arxiv:{i}", title=f"T{i}") for i in range(3)])
    pks = [store.paper_pks([f"arxiv:{i}"])[f"arxiv:{i}"] for i in range(3)]
    a, b, c, gone = (store.add_subscriber(f"{n}@example.org", ["t"]) for n in "abcg")
    store.add_seeds(a.id, [StoredSeed("arxiv:8", "S", "x"), StoredSeed("arxiv:9", "S", "y")])
    store.add_seeds(c.id, [StoredSeed("arxiv:8", "S", "x")])  # a shared text counts for each
    for sub, pk, value in ((a, pks[0], MORE), (a, pks[1], MORE), (a, pks[2], LESS),
                           (b, pks[0], MORE), (b, pks[0], LESS),  # changed: one mark
                           (gone, pks[0], MORE)):
        store.record_feedback(sub.id, pk, value)
    store.add_seeds(gone.id, [StoredSeed("arxiv:8", "S", "x")])
    store.remove_subscriber(gone.email)
    assert store.seed_counts() == {a.id: 2, c.id: 1}
    assert store.all_feedback_counts() == {a.id: (2, 1), b.id: (0, 1)}
    assert store.all_feedback_counts()[a.id] == store.feedback_counts(a.id)


def test_one_digest_per_subscriber_and_period(store):
    store.add_papers([Paper(id="arxiv:1", title="T")])
    sub = store.add_subscriber("a@example.org", ["t"])
    pk = store.paper_pks(["arxiv:1"])["arxiv:1"]
    first = store.queue_digest(sub.id, "2026-11-23", recipient=sub.email, message_id="<1@x>",
                               message=b"m", paper_pks=[pk])
    again = store.queue_digest(sub.id, "2026-11-23", recipient=sub.email, message_id="<2@x>",
                               message=b"m", paper_pks=[pk])
    assert first is not None and again is None
    assert store.sent_among([pk]) == {sub.id: {pk}}
    assert [r.id for r in store.outbox()] == [first]
    store.mark_sent(first)
    assert store.outbox() == [] and store.digest_counts() == {"sent": 1}
    # a subscriber removed takes their digests and sent marks along (through the digest's
    # key on PostgreSQL, which checks a mark against its digest only)
    other = store.add_subscriber("b@example.org", ["t"])
    store.queue_digest(other.id, "2026-11-23", recipient=other.email, message_id="<3@x>",
                       message=b"m", paper_pks=[pk])
    store.remove_subscriber("a@example.org")
    assert store.sent_among([pk]) == {other.id: {pk}}
    assert store.db.execute("SELECT count(*) FROM digests").fetchone()[0] == 1


def test_sent_among_gives_the_marks_of_the_papers_asked_for_only(store):
    """Marks are read from the smallest key asked for up: a mark of a paper between the
    keys asked for, or of an older one, is not among them."""
    store.add_papers([Paper(id=f"arxiv:{i}", title=f"T {i}") for i in range(5)])
    pks = [store.paper_pks([f"arxiv:{i}"])[f"arxiv:{i}"] for i in range(5)]
    a, b, c = (store.add_subscriber(f"{n}@example.org", ["t"]) for n in "abc")
    for sub, got in ((a, pks), (b, [pks[0], pks[2]]), (c, [pks[3]])):
        store.queue_digest(sub.id, "2026-11-23", recipient=sub.email,
                           message_id=f"<{sub.id}@x>", message=b"m", paper_pks=got)
    assert store.sent_among([pks[1], pks[4]]) == {a.id: {pks[1], pks[4]}}
    assert store.sent_among([pks[2], pks[4]]) == {a.id: {pks[2], pks[4]}, b.id: {pks[2]}}
    assert store.sent_among([]) == {}
    assert store.sent_among([pks[2]], (b.id % 2, 2)) == {
        s.id: {pks[2]} for s in (a, b) if s.id % 2 == b.id % 2}


def test_a_parents_delete_finds_the_rows_that_cascade_by_an_index(store):
    """Deleting a row that others reference with ON DELETE CASCADE looks its children up by
    the referencing column: without an index on it, every delete reads the whole child
    table (a deleted subscriber's digests each read every sent mark there is). Papers are
    never deleted, so the marks' reference to them needs none."""
    never_deleted = {("sent", "paper_pk")}
    if store.target.startswith("postgresql"):
        rows = store.db.execute(
            "SELECT c.conrelid::regclass::text, a.attname FROM pg_constraint c JOIN "
            "pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND c.confdeltype = 'c' AND NOT EXISTS (SELECT 1 FROM "
            "pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])"
        ).fetchall()
        unindexed = {(t, col) for t, col in rows}
    else:
        unindexed = set()
        tables = [r[0] for r in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            first = [[c[2] for c in store.db.execute(f"PRAGMA index_info('{i[1]}')")][:1]
                     for i in store.db.execute(f"PRAGMA index_list('{table}')")]
            key = sorted((r[5], r[1]) for r in store.db.execute(f"PRAGMA table_info('{table}')")
                         if r[5])
            if key:
                first.append([key[0][1]])
            for fk in store.db.execute(f"PRAGMA foreign_key_list('{table}')"):
                if fk[6] == "CASCADE" and [fk[3]] not in first:
                    unindexed.add((table, fk[3]))
    assert unindexed <= never_deleted, unindexed


def test_a_digest_for_a_subscriber_gone_is_refused_and_the_batch_goes_on(store):
    """A subscriber deleted while their digest was built: no digest (None), no marks, and
    the other digests of the same transaction commit."""
    store.add_papers([Paper(id="arxiv:1", title="T")])
    gone = store.add_subscriber("gone@example.org", ["t"])
    kept = store.add_subscriber("kept@example.org", ["t"])
    pk = store.paper_pks(["arxiv:1"])["arxiv:1"]
    store.remove_subscriber("gone@example.org")
    with store.transaction():
        refused = store.queue_digest(gone.id, "2026-11-23", recipient=gone.email,
                                     message_id="<1@x>", message=b"m", paper_pks=[pk],
                                     whys=["t"], kinds=[0], slot_at="2026-11-23T07:00:00Z")
        queued = store.queue_digest(kept.id, "2026-11-23", recipient=kept.email,
                                    message_id="<2@x>", message=b"m", paper_pks=[pk],
                                    whys=["t"], kinds=[0], slot_at="2026-11-23T07:00:00Z")
    assert refused is None and queued is not None
    assert store.sent_among([pk]) == {kept.id: {pk}}
    assert [r.id for r in store.outbox()] == [queued]


def test_source_state(store):
    store.record_poll("arxiv", ok=True, new=3, etag='"abc"', last_modified="Mon")
    store.record_poll("arxiv", ok=False, error="timeout")
    store.record_poll("arxiv", ok=False, error="timeout")
    st = store.source_state("arxiv")
    assert (st.etag, st.papers_seen, st.consecutive_errors, st.last_error) == (
        '"abc"', 3, 2, "timeout")
    store.record_poll("arxiv", ok=True, new=0, etag='"abc"')
    assert store.source_state("arxiv").consecutive_errors == 0


def test_transactions_nest_into_one_commit(store):
    import pytest

    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_subscriber("a@example.org", ["x"])
            store.add_subscriber("b@example.org", ["y"])
            raise RuntimeError("crash before the group commits")
    assert store.subscribers() == []
    with store.transaction():
        store.add_subscriber("a@example.org", ["x"])
        store.add_subscriber("b@example.org", ["y"])
    assert len(store.subscribers()) == 2


def test_prune_drops_old_bodies_but_keeps_sent_marks(store):
    store.add_papers([Paper(id="arxiv:1", title="T")])
    sub = store.add_subscriber("a@example.org", ["t"])
    pk = store.paper_pks(["arxiv:1"])["arxiv:1"]
    did = store.queue_digest(sub.id, "2026-11-01", recipient=sub.email, message_id="<1@x>",
                             message=b"body", paper_pks=[pk])
    assert store.prune_sent("2100-01-01") == 0  # queued, not sent: kept
    store.mark_sent(did, now="2026-11-01T08:00:00+00:00")
    assert store.prune_sent("2026-10-01") == 0  # sent after the cut-off: kept
    assert store.prune_sent("2026-11-02") == 1
    assert store.sent_among([pk]) == {sub.id: {pk}}
    assert store.queue_digest(sub.id, "2026-11-01", recipient=sub.email, message_id="<2@x>",
                              message=b"again", paper_pks=[pk]) is None


def test_prune_goes_in_chunks_and_keeps_what_is_not_old_or_not_sent(store):
    sub = store.add_subscriber("a@example.org", ["t"])
    ids = [store.queue_digest(sub.id, f"2026-10-{day:02d}", recipient=sub.email,
                              message_id=f"<{day}@x>", message=b"body" * 100, paper_pks=[])
           for day in range(1, 12)]
    for day, did in enumerate(ids[:9], 1):  # 9 sent, on Oct 1 to 9; 2 still queued
        store.mark_sent(did, now=f"2026-10-{day:02d}T08:00:00+00:00")
    assert store.prune_sent("2026-10-06", chunk=2) == 5
    kept = [r[0] for r in store.db.execute("SELECT digest_id FROM digest_bodies")]
    assert kept == ids[5:]
    assert store.prune_sent("2026-10-06", chunk=2) == 0


def test_digests_built_before_digest_pages_still_have_a_page_after_the_migration(tmp_path):
    """A store of the version before "digest_pages": its digests have no stored order or
    reasons; after the migration their pages list their papers all the same."""
    import sqlite3

    from digestd.store import MIGRATIONS

    step = [name for name, _ in MIGRATIONS].index("digest_pages")
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for n, (_name, sql) in enumerate(MIGRATIONS[:step], start=1):
        db.executescript(f"BEGIN;\n{sql}\n;PRAGMA user_version = {n};\nCOMMIT;")
    db.executescript("""
        INSERT INTO papers (pk, id, title, first_seen) VALUES (1, 'arxiv:1', 'One', 'x'),
            (2, 'arxiv:2', 'Two', 'x');
        INSERT INTO subscribers (id, email, created_at) VALUES (1, 'a@example.org', 'x');
        INSERT INTO digests (id, subscriber_id, period, created_at, papers, message_id,
            recipient, message, status, sent_at)
            VALUES (1, 1, '2026-11-01', '2026-11-01T07:00:00+00:00', 2, '<m@x>',
                    'a@example.org', x'', 'sent', '2026-11-01T07:00:05+00:00');
        INSERT INTO sent (subscriber_id, paper_pk, digest_id) VALUES (1, 2, 1), (1, 1, 1);
    """)
    db.close()
    with Store(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        sub = store.get_subscriber(1)
        assert not sub.feed_only and sub.link_gen == 0
        digest = store.digest_of(1, "2026-11-01")
        assert digest is not None and digest.papers == 2 and digest.checked is None
        papers = store.digest_papers(digest)
        assert [(p.paper.id, p.why, p.position) for p in papers] == [
            ("arxiv:1", "", None), ("arxiv:2", "", None)]
        assert store.feed_validators(1) == (0, 1, "2026-11-01T07:00:05+00:00")
        assert [p.paper.id for p in store.feed_entries(1, since="2026-10-01")] == [
            "arxiv:1", "arxiv:2"]


def test_a_digest_keeps_its_order_and_reasons(store):
    store.add_papers([Paper(id=f"arxiv:{i}", title=f"T{i}") for i in range(3)])
    pks = store.paper_pks([f"arxiv:{i}" for i in range(3)])
    sub = store.add_subscriber("a@example.org", ["t"])
    order = [pks["arxiv:2"], pks["arxiv:0"], pks["arxiv:1"]]
    did = store.queue_digest(sub.id, "2026-11-23", recipient=sub.email, message_id="<1@x>",
                             message=b"m", paper_pks=order, whys=["b", "c", "a"], checked=40)
    digest = store.digest_of(sub.id, "2026-11-23")
    assert digest.id == did and digest.checked == 40 and digest.status == "queued"
    assert [(p.paper.id, p.why, p.position) for p in store.digest_papers(digest)] == [
        ("arxiv:2", "b", 0), ("arxiv:0", "c", 1), ("arxiv:1", "a", 2)]
    # not delivered yet: not in the feed
    assert store.feed_entries(sub.id, since="2000") == []
    assert store.feed_validators(sub.id) == (0, 0, None)
    store.mark_sent(did, now="2026-11-23T07:00:00+00:00")
    assert [p.paper.id for p in store.feed_entries(sub.id, since="2000")] == [
        "arxiv:2", "arxiv:0", "arxiv:1"]
    assert store.reset_links(sub.id) == 1 and store.get_subscriber(sub.id).link_gen == 1
    # each reason's text is stored once, however many papers and digests give it
    store.queue_digest(sub.id, "2026-11-24", recipient=sub.email, message_id="<2@x>",
                       message=b"m", paper_pks=[], whys=[])
    other = store.add_subscriber("b@example.org", ["t"])
    store.queue_digest(other.id, "2026-11-23", recipient=other.email, message_id="<3@x>",
                       message=b"m", paper_pks=order, whys=["a", "a", "b"])
    assert store.db.execute("SELECT count(*) FROM whys").fetchone()[0] == 3
    assert [p.why for p in store.digest_papers(store.digest_of(other.id, "2026-11-23"))] == [
        "a", "a", "b"]


def test_seeds_made_before_seed_texts_keep_their_text_shared_after_the_migration(tmp_path):
    """A store of the version before "seed_texts": each seed row held its own text. After
    the migration every reader's seeds read the same, one text row per distinct text, and
    a text goes with the last seed that names it (removed, replaced, or its reader gone)."""
    from digestd.store import StoredSeed

    step = [name for name, _ in MIGRATIONS].index("seed_texts")
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for n, (_name, sql) in enumerate(MIGRATIONS[:step], start=1):
        db.executescript(f"BEGIN;\n{sql}\n;PRAGMA user_version = {n};\nCOMMIT;")
    db.executescript("""
        INSERT INTO subscribers (id, email, created_at) VALUES (1, 'a@example.org', 'x'),
            (2, 'b@example.org', 'x');
        INSERT INTO seeds (subscriber_id, paper_id, title, abstract, origin, added_at) VALUES
            (1, 'arxiv:1', 'One', 'About one.', 'lib.bib', '2026-11-01'),
            (1, 'arxiv:2', 'Two', '', '', '2026-11-02'),
            (2, 'arxiv:1', 'One', 'About one.', '', '2026-11-03'),
            (2, 'arxiv:2', 'Two', 'Two, with an abstract from a RIS file.', 'x.ris', '2026-11-03');
    """)
    db.close()
    with Store(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.seeds(1) == [
            StoredSeed("arxiv:1", "One", "About one.", "lib.bib", "2026-11-01"),
            StoredSeed("arxiv:2", "Two", "", "", "2026-11-02")]
        assert [(s.paper_id, s.abstract, s.origin) for s in store.seeds(2)] == [
            ("arxiv:1", "About one.", ""),
            ("arxiv:2", "Two, with an abstract from a RIS file.", "x.ris")]
        texts = lambda: store.db.execute("SELECT count(*) FROM seed_texts").fetchone()[0]  # noqa: E731
        assert texts() == 3  # arxiv:1 once; arxiv:2 with and without its abstract
        shared, _ = store.seed_texts_of([1, 2])
        assert shared[1][0] is shared[2][0]  # one object for the text both gave
        assert [s.abstract for s in shared[2]] == ["About one.",
                                                    "Two, with an abstract from a RIS file."]
        # a new seed with a known text takes the kept one; a changed text replaces it
        store.add_seeds(1, [StoredSeed("arxiv:2", "Two", "Two, with an abstract from a RIS file.")])
        assert texts() == 2  # the abstract-less "Two" was named by no seed any more
        assert store.remove_seeds(2, ["arxiv:1"]) == ["arxiv:1"]
        assert texts() == 2  # reader 1 still names arxiv:1
        store.remove_subscriber("a@example.org")
        assert texts() == 1 and store.seeds_of() == {2: store.seeds(2)}


def test_why_ids_add_new_texts_once_and_find_the_old_ones(store):
    first = store.why_ids(["title: diffusion", "abstract: noisy labels", "title: diffusion"])
    assert set(first) == {"title: diffusion", "abstract: noisy labels"}
    assert len(set(first.values())) == 2
    again = store.why_ids(["abstract: noisy labels", "authors: Doe", "Ünïcode: ∑ 'quoted'"])
    assert again["abstract: noisy labels"] == first["abstract: noisy labels"]
    assert len(set(again.values()) | set(first.values())) == 4
    assert store.why_ids([]) == {}
    assert store.db.execute("SELECT count(*) FROM whys").fetchone()[0] == 4


def test_queue_digests_writes_what_queue_digest_writes_for_each(store, monkeypatch):
    """The batch (one statement per 250 on PostgreSQL, 2 here): rows, bodies, marks in
    order with why and kind, the subscriber's slot marks; None for a subscriber gone, for
    one with a digest for the period, and for a second digest of one period in the same
    batch."""
    from digestd.store import QueuedDigest, ScheduleMark
    from digestd.store.postgres import PostgresStore

    monkeypatch.setattr(PostgresStore, "QUEUE_BATCH", 2)

    store.add_papers([Paper(id=f"arxiv:{i}", title=f"T {i}") for i in range(4)])
    pks = [store.paper_pks([f"arxiv:{i}"])[f"arxiv:{i}"] for i in range(4)]
    a, b, c, gone = (store.add_subscriber(f"{n}@example.org", ["t"]) for n in "abcg")
    store.remove_subscriber("g@example.org")
    before = store.queue_digest(c.id, "2026-11-30", recipient=c.email, message_id="<c0@x>",
                                message=b"old", paper_pks=[pks[0]])
    slot = "2026-11-30T07:00:00+00:00"
    ids = store.queue_digests([
        QueuedDigest(a.id, "2026-11-30", a.email, "<a@x>", b"mail a", [pks[2], pks[1]],
                     whys=["title: t", "abstract: t"], kinds=[0, 1], checked=4, slot_at=slot),
        QueuedDigest(gone.id, "2026-11-30", gone.email, "<g@x>", b"g", [pks[1]]),
        QueuedDigest(c.id, "2026-11-30", c.email, "<c@x>", b"again", [pks[3]]),
        QueuedDigest(b.id, "2026-11-30", b.email, "", b"", [pks[0]], whys=["title: t"],
                     deliver=False),
        QueuedDigest(a.id, "2026-11-30", a.email, "<a2@x>", b"twice", [pks[3]]),
    ], now="2026-11-30T07:00:05+00:00", checked_through="2026-11-30T06:00:00+00:00")
    assert ids[0] is not None and ids[3] is not None and len(set(ids[0::3])) == 2
    assert ids[1] is None and ids[2] is None and ids[4] is None and before is not None
    assert store.stored_message(ids[0]) == b"mail a"
    assert store.stored_message(ids[3]) is None  # feed-only: stored as sent, no message
    assert [r.message_id for r in store.outbox()] == ["<c0@x>", "<a@x>"]
    assert store.sent_among(pks) == {a.id: {pks[1], pks[2]}, b.id: {pks[0]},
                                     c.id: {pks[0]}}
    digest = store.digest_of(a.id, "2026-11-30")
    assert digest.checked == 4 and digest.papers == 2
    papers = store.digest_papers(digest)
    assert [p.paper.id for p in papers] == ["arxiv:2", "arxiv:1"]
    assert [(p.why, p.kind) for p in papers] == [("title: t", 0), ("abstract: t", 1)]
    marks = store.schedule_marks()
    assert marks[a.id] == ScheduleMark(slot, "2026-11-30T06:00:00+00:00")
    assert b.id not in marks or marks[b.id].last_slot_at is None
    assert store.get_subscriber(a.id).last_digest_at == "2026-11-30T07:00:05+00:00"
