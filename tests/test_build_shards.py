"""Building in shards: n processes split the subscribers, and every digest is built once."""

from __future__ import annotations

import asyncio
import dataclasses

from digestd.config import DigestConfig, load_config
from digestd.jobs import build_and_send, build_digests, poll_sources
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


def test_build_and_send_with_two_workers(tmp_path, store_toml, smtp_sink, monkeypatch):
    from digestd import jobs

    monkeypatch.setattr(jobs, "SUBSCRIBERS_PER_WORKER", 10)  # 20 subscribers: 2 workers
    path = tmp_path / "digestd.toml"
    path.write_text(f'[store]\n{store_toml}\n'
                    f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_sink.port}\nsecurity = "none"\n'
                    '[[sources]]\nname = "sample"\nkind = "sample"\n')
    config = load_config(path)
    config = dataclasses.replace(config, digest=DigestConfig(build_workers=2))
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        for i in range(20):
            store.add_subscriber(f"r{i}@example.org", ["diffusion"])
        built, sent = asyncio.run(build_and_send(config, store, force=True))
    assert built.digests == sent.sent == 20
    assert sorted(r.rcpt_tos[0] for r in smtp_sink.received) == sorted(
        f"r{i}@example.org" for i in range(20))
