"""Message bodies packed in the store (issue 19): what goes out is byte for byte what was
rendered, retries included, for packed rows and for the raw rows of stores from before."""

from __future__ import annotations

import json
import sqlite3
import zlib

import pytest
import zstandard

from digestd.cli import main
from digestd.deliver import send_smtp
from digestd.errors import StoreError
from digestd.store import MIGRATIONS, Store, pack_message, unpack_message
from digestd.store.bodies import CRLF, RAW, ZLIB, ZSTD, has_crlf

from .test_deliver import queue, smtp, write_cfg


def test_pack_and_unpack_give_back_the_same_bytes():
    message = ("Subject: x\r\n\r\nZoë wrote: é ü\r\n" + "Abstract. " * 3000).encode()
    packed = pack_message(message)
    assert packed.packing == ZSTD and len(packed.data) < len(message) // 4
    assert unpack_message(packed.data, packed.packing) == message
    # nothing to gain: kept as it is
    for tiny in (b"", b"x"):
        assert pack_message(tiny).packing == RAW
        assert unpack_message(pack_message(tiny).data, RAW) == tiny


def test_a_message_vouched_crlf_keeps_the_flag_and_its_bytes():
    message = b"Subject: x\r\n\r\n" + b"An abstract, line after line.\r\n" * 300
    packed = pack_message(message, crlf=True)
    assert packed.packing == ZSTD | CRLF and has_crlf(packed.packing)
    assert unpack_message(packed.data, packed.packing) == message
    tiny = pack_message(b"x\r\n", crlf=True)
    assert tiny.packing == RAW | CRLF and unpack_message(tiny.data, tiny.packing) == b"x\r\n"
    assert not has_crlf(pack_message(message).packing)
    with pytest.raises(StoreError, match="packing 5, unknown"):  # zlib never had the flag
        unpack_message(zlib.compress(message), ZLIB | CRLF)


def test_a_built_digest_is_stored_with_the_crlf_flag_and_goes_out_as_built(
        write_config, store_toml, smtp_sink):
    """The build vouches for the CRLF line ends of what it rendered (the sender then skips
    checking them); web mail and rows queued otherwise are checked as before."""
    import asyncio

    from digestd.jobs import build_digests, poll_sources
    from digestd.store import open_store

    config = write_config(f'[store]\n{store_toml}\n[smtp]\nhost = "127.0.0.1"\n'
                          f'port = {smtp_sink.port}\nsecurity = "none"\n'
                          '[[sources]]\nname = "sample"\nkind = "sample"\n')
    with open_store(config.store) as store:
        asyncio.run(poll_sources(config.sources, store))
        store.add_subscriber("a@example.org", ["diffusion OR segmentation"])
        assert build_digests(config, store, force=True).digests == 1
        queue(store, ["b@example.org"])  # queued as bytes: not vouched
        rows = {r.recipient: r for r in store.outbox()}
        assert rows["a@example.org"].crlf and not rows["b@example.org"].crlf
        built = rows["a@example.org"].message
        assert built.count(b"\n") == built.count(b"\r\n") == built.count(b"\r")
        claimed, _ = store.claim_outbox("me/1/x", limit=10, lease_s=60)
        assert {r.recipient: r.crlf for r in claimed} == {"a@example.org": True,
                                                          "b@example.org": False}
        store.release_claims("me/1/x")
        report = asyncio.run(send_smtp(store, smtp(smtp_sink), "Digest <digest@example.org>"))
        assert report.sent == 2
    got = {r.rcpt_tos[0]: r.data for r in smtp_sink.received}
    assert got["a@example.org"] == built  # the server undid the dot-stuffing: the same bytes


def test_a_body_that_does_not_unpack_or_an_unknown_packing_is_an_error():
    with pytest.raises(StoreError, match="does not unpack"):
        unpack_message(b"not zlib at all", ZLIB)
    with pytest.raises(StoreError, match="does not unpack"):
        unpack_message(b"not zstd at all", ZSTD)
    good = pack_message(b"Subject: x\r\n\r\n" + b"An abstract. " * 200)
    damaged = bytearray(good.data)
    damaged[len(damaged) // 2] ^= 0xFF  # the frame's checksum (or its blocks) give it away
    with pytest.raises(StoreError, match="does not unpack"):
        unpack_message(bytes(damaged), ZSTD)
    # a damaged header that claims a huge size is refused before anything is allocated
    huge = zstandard.ZstdCompressor().compress(b"x" * 100)
    # descriptor 0xE0: single segment, an 8-byte content size (RFC 8878 3.1.1.1.1)
    huge = huge[:4] + bytes([0xE0]) + (2**40).to_bytes(8, "little") + huge[6:]
    with pytest.raises(StoreError, match="does not unpack"):
        unpack_message(huge, ZSTD)
    with pytest.raises(StoreError, match="packing 7, unknown"):
        unpack_message(zlib.compress(b"x"), 7)


def test_a_queued_digest_is_stored_packed_and_read_back_byte_for_byte(store):
    (did,) = queue(store, ["a@example.org"])
    stored, packing = store.db.execute(
        "SELECT message, packing FROM digest_bodies WHERE digest_id = ?", (did,)).fetchone()
    assert packing == ZSTD
    message = zstandard.ZstdDecompressor().decompress(stored)
    assert len(stored) * 2 < len(message)  # one paper; a day's digest packs ~6x
    (row,) = store.outbox()
    assert row.message == message and row.message.startswith(b"From: ")
    claimed, cancelled = store.claim_outbox("me/1/x", limit=10, lease_s=60)
    assert cancelled == 0 and [r.message for r in claimed] == [message]
    assert claimed[0].message_id in message.decode()


def test_web_mail_is_packed_too(store):
    sub = store.add_subscriber("a@example.org", ["x"])
    message = b"From: d@example.org\r\nSubject: confirm\r\n\r\n" + b"Confirm here.\r\n" * 100
    did = store.queue_message(sub.id, "confirm", recipient=sub.email, message_id="<c@x>",
                              message=message, now=1_800_000_000)
    assert store.db.execute("SELECT packing FROM digest_bodies WHERE digest_id = ?",
                            (did,)).fetchone()[0] == ZSTD
    assert [r.message for r in store.outbox()] == [message]


def test_a_store_from_before_packing_still_reads_and_sends_its_raw_messages(tmp_path):
    """Rows written before "body_packing" are raw: after the migration they read as they
    are, and new rows beside them are packed."""
    step = [name for name, _ in MIGRATIONS].index("body_packing")
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for n, (_name, sql) in enumerate(MIGRATIONS[:step], start=1):
        db.executescript(f"BEGIN;\n{sql}\n;PRAGMA user_version = {n};\nCOMMIT;")
    old = b"From: d@example.org\r\nMessage-ID: <old@x>\r\n\r\n" + b"An old digest.\r\n" * 50
    db.execute("INSERT INTO subscribers (id, email, created_at) VALUES (1, 'a@example.org', 'x')")
    # as the queue_digest of that version did: the row, then its body
    db.execute("INSERT INTO digests (id, subscriber_id, period, created_at, papers, message_id, "
               "recipient, message, next_attempt_at) VALUES (1, 1, '2026-11-01', "
               "'2026-11-01T07:00:00+00:00', 1, '<old@x>', 'a@example.org', x'', "
               "'2026-11-01T07:00:00+00:00')")
    db.execute("INSERT INTO digest_bodies (digest_id, message) VALUES (1, ?)", (old,))
    db.close()
    with Store(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        assert store.db.execute("SELECT packing FROM digest_bodies").fetchall() == [(RAW,)]
        (new,) = queue(store, ["b@example.org"])
        (row,) = [r for r in store.outbox() if r.id == 1]
        assert row.message == old and row.message_id == "<old@x>"
        claimed, _ = store.claim_outbox("me/1/x", limit=10, lease_s=60)
        assert [r.id for r in claimed] == [1, new] and claimed[0].message == old
        assert store.db.execute("SELECT packing FROM digest_bodies WHERE digest_id = ?",
                                (new,)).fetchone()[0] == ZSTD


async def test_rows_packed_with_zlib_by_the_version_before_still_read_and_send(store, smtp_sink):
    """Before zstd the outbox packed with zlib (packing 1): such rows, queued by the version
    before and left in the outbox across an upgrade, go out byte for byte."""
    old, new = queue(store, ["a@example.org", "b@example.org"])
    (before,) = [r.message for r in store.outbox() if r.id == old]
    store.db.execute("UPDATE digest_bodies SET message = ?, packing = ? WHERE digest_id = ?",
                     (zlib.compress(before, 1), ZLIB, old))
    assert [r.message for r in store.outbox() if r.id == old] == [before]
    report = await send_smtp(store, smtp(smtp_sink), "Digest <digest@example.org>")
    assert report.sent == 2
    got = {r.rcpt_tos[0]: r.data for r in smtp_sink.received}
    assert got["a@example.org"].replace(b"\r\n", b"\n") == before.replace(b"\r\n", b"\n")


async def test_a_retried_message_goes_out_with_the_same_bytes_and_message_id(store, smtp_sink):
    (did,) = queue(store, ["a@example.org"])
    (queued,) = store.outbox()
    smtp_sink.handler.data_answers.append("451 4.3.0 try again later")
    first = await send_smtp(store, smtp(smtp_sink), "Digest <digest@example.org>")
    assert first.deferred == 1 and not smtp_sink.received
    store.retry_outbox([did])
    again = await send_smtp(store, smtp(smtp_sink), "Digest <digest@example.org>")
    assert again.sent == 1
    (got,) = smtp_sink.received
    # the bytes on the wire are the rendered ones (the server saw them dot-stuffed and
    # ending in CRLF, as they are)
    assert got.data.replace(b"\r\n", b"\n") == queued.message.replace(b"\r\n", b"\n")
    assert got.message["Message-ID"] == queued.message_id


async def test_a_damaged_body_fails_its_row_alone(store, smtp_sink, caplog):
    bad, good = queue(store, ["a@example.org", "b@example.org"])
    store.db.execute("UPDATE digest_bodies SET message = ? WHERE digest_id = ?",
                     (b"\x00\xff\x00", bad))
    report = await send_smtp(store, smtp(smtp_sink), "Digest <digest@example.org>")
    assert report.sent == 1 and [r.rcpt_tos for r in smtp_sink.received] == [["b@example.org"]]
    status, error = store.db.execute("SELECT status, last_error FROM digests WHERE id = ?",
                                     (bad,)).fetchone()
    assert status == "failed" and "does not unpack" in error
    assert "event=message_unreadable" in caplog.text


def test_digestd_outbox_lists_packed_messages_with_their_size(tmp_path, smtp_sink, capsys):
    cfg = write_cfg(tmp_path, smtp_sink)
    with Store(tmp_path / "digestd.sqlite3") as store:
        ids = queue(store, ["a@example.org", "b@example.org"])
        sizes = {r.id: len(r.message) for r in store.outbox()}
    capsys.readouterr()
    assert main(["-c", cfg, "outbox", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["bytes"]) for r in rows] == [(i, sizes[i]) for i in ids]
    assert all(r["bytes"] > 2000 and r["message_id"].startswith("<digest.") for r in rows)
    assert main(["-c", cfg, "outbox"]) == 0
    out = capsys.readouterr().out
    assert "a@example.org" in out and "2 waiting" in out


def test_the_outbox_method_writes_the_unpacked_message(tmp_path, store):
    from digestd.deliver import write_outbox

    queue(store, ["a@example.org"])
    (row,) = store.outbox()
    report = write_outbox(store, tmp_path / "out")
    assert report.sent == 1
    (path,) = (tmp_path / "out").glob("*.eml")
    assert path.read_bytes() == row.message
