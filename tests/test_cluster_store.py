"""The store's part in running several instances (store/cluster.py), on each backend: the
leader's lease, the shards of a build round, rate windows; and on PostgreSQL, that claims
pass over the rows another instance is claiming (SKIP LOCKED) instead of waiting for them."""

from __future__ import annotations

import time

import pytest

from digestd.store import open_store

from .test_deliver import queue


def test_a_lease_is_held_renewed_and_taken_over_once_it_ran_out(store):
    assert store.take_lease("leader", "a", 60)
    assert not store.take_lease("leader", "b", 60)
    assert store.take_lease("leader", "a", 0.2)  # renewed by its holder
    holder, left = store.lease_holder("leader")
    assert holder == "a" and 0 < left < 0.21
    time.sleep(0.3)
    assert store.lease_holder("leader") is None
    assert store.take_lease("leader", "b", 60)  # a is gone
    assert not store.drop_lease("leader", "a")
    assert store.drop_lease("leader", "b")
    assert store.take_lease("leader", "c", 60)


def test_a_round_is_shared_out_by_shard_and_a_dead_holders_shard_claimed_again(store):
    assert store.open_build_round("2026-11-30T07:00:00+00:00", 3)
    assert not store.open_build_round("2026-11-30T07:01:00+00:00", 3)  # one is open
    first = store.claim_build_shard("a", 0.2)
    second = store.claim_build_shard("b", 60)
    assert first == ("2026-11-30T07:00:00+00:00", 0, 3)
    assert second == ("2026-11-30T07:00:00+00:00", 1, 3)
    assert store.renew_build_shard(*second[:2], "b", 60)
    assert not store.renew_build_shard(*second[:2], "a", 60)  # not a's
    time.sleep(0.3)  # a died: its lease runs out, and its shard comes first again
    assert store.claim_build_shard("c", 60) == first
    assert store.claim_build_shard("c", 60)[1] == 2
    assert store.claim_build_shard("c", 60) is None
    store.finish_build_shard(first[0], 0, next_due="2026-12-01T07:00:00+00:00")
    store.finish_build_shard(first[0], 1, next_due="2026-11-30T08:00:00+00:00")
    store.finish_build_shard(first[0], 2, done=False)  # stopped: handed back at once
    assert store.build_round_open()
    assert store.claim_build_shard("b", 60)[1] == 2
    store.finish_build_shard(first[0], 2, next_due=None)
    assert not store.build_round_open()
    # nothing is due before 08:00 and no schedule changed: no round before then
    assert not store.open_build_round("2026-11-30T07:30:00+00:00", 3)
    assert store.open_build_round("2026-11-30T08:00:01+00:00", 2)
    assert store.claim_build_shard("a", 60) == ("2026-11-30T08:00:01+00:00", 0, 2)
    store.finish_build_shard("2026-11-30T08:00:01+00:00", 0)
    store.finish_build_shard("2026-11-30T08:00:01+00:00", 1)
    store.add_subscriber("new@example.org", ["x"])  # a schedule changed: a round at once
    assert store.open_build_round("2026-11-30T08:00:02+00:00", 1)


def test_rate_windows_count_across_connections_and_forget_after_the_span(store_url):
    with open_store(store_url) as one, open_store(store_url) as two:
        now = 1_800_000_000.0
        kw = {"window_s": 600, "span_s": 3600}
        assert one.rate_hit("k", 3, now=now, **kw)
        assert two.rate_hit("k", 3, now=now + 1, **kw)
        assert one.rate_hit("k", 3, now=now + 700, **kw)  # the next window, same hour
        assert not two.rate_hit("k", 3, now=now + 800, **kw)
        assert one.rate_hit("other", 3, now=now + 800, **kw)
        assert two.rate_hit("k", 3, now=now + 3700, **kw)  # the first window is past
        one.prune_web(events_before=now + 7200, pending_before="2000-01-01T00:00:00+00:00")
        assert one.db.execute("SELECT count(*) FROM rate_windows").fetchone()[0] == 0


def test_claims_pass_over_rows_another_instance_is_claiming(postgres_url):
    """PostgreSQL: while one connection's claim is not committed yet, another claims other
    rows at once (SKIP LOCKED), for outbox rows and build shards alike."""
    with open_store(postgres_url, timeout=2) as one, open_store(postgres_url, timeout=2) as two:
        ids = queue(one, [f"r{i}@example.org" for i in range(6)])
        one.open_build_round("2026-11-30T07:00:00+00:00", 2)
        with one.transaction(exclusive=False):
            mine, _ = one.claim_outbox("host-a/1/x", limit=3, lease_s=60)
            shard = one.claim_build_shard("host-a/1/x", 60)
            began = time.monotonic()
            theirs, _ = two.claim_outbox("host-b/2/y", limit=6, lease_s=60)
            other = two.claim_build_shard("host-b/2/y", 60)
            assert time.monotonic() - began < 1.0  # no waiting for the first claim's locks
        assert sorted(r.id for r in mine + theirs) == sorted(ids)
        assert not {r.id for r in mine} & {r.id for r in theirs}
        assert {shard[1], other[1]} == {0, 1}
        assert one.outbox_claimants() == {"host-a/1/x": 3, "host-b/2/y": 3}


def test_outbox_claims_go_by_the_stores_clock_not_the_senders(store, monkeypatch):
    """A sender whose own clock runs ten minutes ahead neither takes a claim another sender
    holds for one more minute, nor writes leases that end early or late: claims and their
    renewals are timed by the store's clock (the database server's on PostgreSQL)."""
    import datetime as dt

    import digestd.store.cluster as cluster
    import digestd.store.digests as digests

    ids = queue(store, ["a@example.org", "b@example.org"])
    held, _ = store.claim_outbox("host-a/1/x", limit=2, lease_s=60)
    assert sorted(r.id for r in held) == sorted(ids)

    class Ahead(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime.now(tz) + dt.timedelta(minutes=10)

    monkeypatch.setattr(digests, "datetime", Ahead)
    monkeypatch.setattr(cluster, "datetime", Ahead)
    taken, _ = store.claim_outbox("host-b/2/y", limit=2, lease_s=60)
    assert taken == []
    assert store.renew_outbox_claims("host-a/1/x", 60) == 2
    until = dt.datetime.fromisoformat(store.db.execute(
        "SELECT max(claimed_until) FROM digests").fetchone()[0])
    left = (until - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 55 <= left <= 61


@pytest.mark.parametrize("seconds", ["1s", "11m"])
def test_config_check_refuses_a_lease_out_of_range(tmp_path, capsys, seconds):
    from digestd.cli import main

    path = tmp_path / "digestd.toml"
    path.write_text(f'[store]\nleader_lease = "{seconds}"\n')
    assert main(["--config", str(path), "config", "check"]) == 2
    assert "store.leader_lease must be" in capsys.readouterr().err


def test_a_round_has_a_shard_per_25_000_subscribers_two_from_four_thousand():
    """Few shards, each big enough that its fixed costs (a process, the day's papers,
    TF-IDF for its ranked readers) stay small next to its digests; two as soon as two
    instances have something worth sharing; two per build process of the leader, to keep
    its cores busy to the end; never more than MAX_SHARDS."""
    from digestd.jobs_cluster import MAX_SHARDS, shard_count

    assert [shard_count(n) for n in (0, 1, 3999, 4000, 19_999, 20_000, 100_000,
                                     1_000_000)] == [1, 1, 1, 2, 2, 2, 4, 40]
    assert shard_count(10_000_000) == MAX_SHARDS
    # a leader with 7 build processes: two shards for each, of 2,000 subscribers at least
    assert [shard_count(n, 7) for n in (3999, 8000, 30_000, 100_000, 500_000)] == \
        [1, 4, 14, 14, 20]
