"""Building in shards: n processes split the subscribers, and every digest is built once."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from digestd.config import DigestConfig, load_config
from digestd.jobs import build_and_send, build_digests, poll_sources
from digestd.models import Paper
from digestd.store import open_store


def test_shards_together_build_each_digest_once(write_config, store_toml):
    config = write_config(f'[store]\n{store_toml}\n[[sources]]\nname = "sample"\nkind = "sample"\n')
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        for i in range(30):
            store.add_subscriber(f"r{i}@example.org", ["diffusion OR segmentation"])
        first = build_digests(config, store, force=True, shard=(0, 2))
        second = build_digests(config, store, force=True, shard=(1, 2))
        assert first.digests and second.digests
        assert first.digests + second.digests == 30
        assert not set(first.matches) & set(second.matches)
        assert build_digests(config, store, force=True).digests == 0  # nothing left unsent


def _sending_config(tmp_path, store_toml, smtp_sink):
    """A config that polls the sample source and sends to `smtp_sink`."""
    path = tmp_path / "digestd.toml"
    path.write_text(f'[store]\n{store_toml}\n'
                    f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\nsecurity = "none"\n'
                    '[[sources]]\nname = "sample"\nkind = "sample"\n')
    return load_config(path)


def test_build_and_send_with_two_workers(tmp_path, store_toml, smtp_sink, monkeypatch):
    from digestd import jobs

    monkeypatch.setattr(jobs, "SUBSCRIBERS_PER_WORKER", 10)  # 20 subscribers: 2 workers
    config = _sending_config(tmp_path, store_toml, smtp_sink)
    config = dataclasses.replace(config, digest=DigestConfig(build_workers=2))
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        for i in range(20):
            store.add_subscriber(f"r{i}@example.org", ["diffusion"])
        built, sent = asyncio.run(build_and_send(config, store, force=True))
    assert built.digests == sent.sent == 20
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(
        f"r{i}@example.org" for i in range(20))


def test_the_store_reads_one_shard_of_the_subscribers(store):
    """A shard's build reads its own subscribers' rows only (ids k modulo n), on both
    backends, and the same rows as reading everyone and keeping the shard's."""
    from digestd.store import StoredSeed
    from digestd.store.feedback import LESS, MORE

    (paper,) = store.add_papers([Paper(id="arxiv:1", title="Diffusion")])
    pk = store.paper_pks([paper.id])[paper.id]
    subs = [store.add_subscriber(f"r{i}@example.org", [f"rule{i}"]) for i in range(9)]
    store.add_seeds(subs[1].id, [StoredSeed("arxiv:9", "Seed", "Text.")])
    store.record_feedback(subs[2].id, pk, MORE)
    store.record_feedback(subs[5].id, pk, LESS)
    store.queue_digest(subs[4].id, "p", recipient=subs[4].email, message_id="<m@x>",
                       message=b"m", paper_pks=[pk])
    store.queue_digest(subs[3].id, "p", recipient=subs[3].email, message_id="<n@x>",
                       message=b"n", paper_pks=[pk])
    everyone = store.subscribers("active")
    positives = store.subscribers_with_positives()
    feedback = store.feedback_values()
    sent = store.sent_among([pk])
    for k in range(3):
        shard = (k, 3)
        mine = [s for s in everyone if s.id % 3 == k]
        assert store.subscribers("active", shard=shard) == mine
        assert [s.rules for s in store.subscribers(shard=shard)] == [s.rules for s in mine]
        assert set(store.schedule_marks(shard)) == {s.id for s in mine}
        assert store.subscribers_with_positives(shard) == {i for i in positives if i % 3 == k}
        assert store.feedback_values(shard=shard) == {
            i: v for i, v in feedback.items() if i % 3 == k}
        assert store.sent_among([pk], shard) == {i: v for i, v in sent.items() if i % 3 == k}
    assert len(positives) == 2 and len(sent) == 2
    with pytest.raises(ValueError, match="shard 3 of 3"):
        store.subscribers(shard=(3, 3))


def test_one_build_process_builds_shard_after_shard(write_config, store_toml):
    """jobs_cluster's workers keep their build process from shard to shard: one start, the
    shards' digests all built once; a process that died is said so, not waited for."""
    from digestd.errors import DigestdError
    from digestd.jobs import BuildProcess

    config = write_config(f'[store]\n{store_toml}\n[[sources]]\nname = "sample"\nkind = "sample"\n')
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        for i in range(30):
            store.add_subscriber(f"r{i}@example.org", ["diffusion OR segmentation"])
        target = store.target

    async def run() -> tuple[list, set[int]]:
        child = BuildProcess()
        pids, reports = set(), []
        try:
            for k in range(3):
                built, _ = await child.build(config, target, True, None, None, (k, 3))
                reports.append(built)
                pids.add(child._proc.pid)
            child._proc.kill()
            await child._proc.wait()
            with pytest.raises(DigestdError, match="building the digests failed"):
                await child.build(config, target, True, None, None, (0, 3))
        finally:
            await child.close()
        assert child._proc is None
        return reports, pids

    reports, pids = asyncio.run(run())
    assert len(pids) == 1 and [r.digests for r in reports] == [10, 10, 10]
    with open_store(config.store) as store:
        assert build_digests(config, store, force=True).digests == 0  # each built once


def test_a_big_build_goes_in_turns_and_builds_each_digest_once(tmp_path, store_toml,
                                                               smtp_sink, monkeypatch):
    """Past SUBSCRIBERS_PER_TURN subscribers a build process builds its part shard after
    shard (its memory is one turn's); every reader gets one digest, the ranked ones too."""
    from digestd import jobs
    from digestd.store import StoredSeed

    assert jobs.build_turns(100_000, 1) == 1
    assert jobs.build_turns(1_000_000, 1) == 4
    assert jobs.build_turns(1_000_000, 3) == 2
    monkeypatch.setattr(jobs, "SUBSCRIBERS_PER_TURN", 6)  # 20 subscribers: 4 turns
    config = _sending_config(tmp_path, store_toml, smtp_sink)
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        for i in range(20):
            sub = store.add_subscriber(f"r{i}@example.org", ["diffusion"])
            if i % 3 == 0:  # a profile: ranked in each turn's ranking process
                store.add_seeds(sub.id, [StoredSeed("arxiv:9", "Diffusion models",
                                                    "Denoising diffusion.")])
        built, sent = asyncio.run(build_and_send(config, store, force=True))
        assert built.digests == sent.sent == 20 and built.ranked == 7
        assert build_digests(config, store, force=True).digests == 0
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(
        f"r{i}@example.org" for i in range(20))
