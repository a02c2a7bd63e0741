"""How the outbox keeps a message: packed with zlib for the store and its WAL, unpacked
byte for byte for the sender.

A day's digest packs 4-5x at zlib level 1 (in bench/cycle.py 18.7 KB to 4.3 KB, and 38.8
KB to 7.8 KB at full size; ~0.06 ms of CPU, unpacking ~0.03 ms), and every byte stored is
written at least twice (to the WAL, then into the store file at a checkpoint). The bytes
that go out are the ones the build rendered and signed, whatever the packing, so the
Message-ID, a DKIM signature and the bytes of a retried message never change. Packing is
Python's, not the database's: any backend stores the packed bytes as a blob beside their
`packing`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from ..errors import StoreError

RAW = 0  # the message as it goes out (rows from before the "body_packing" step)
ZLIB = 1  # zlib (RFC 1950) of the message
LEVEL = 1  # zlib level: 1 packs a digest 4-5x; 6 saves ~10% more for ~2x the CPU


@dataclass(frozen=True)
class PackedMessage:
    """A message as the outbox stores it: `data` in `packing` (RAW or ZLIB)."""

    data: bytes
    packing: int


def pack_message(message: bytes) -> PackedMessage:
    """`message` (RFC 5322 bytes) packed for the outbox: ZLIB, or RAW when that is not
    smaller (an empty or tiny message)."""
    packed = zlib.compress(message, LEVEL)
    if len(packed) < len(message):
        return PackedMessage(packed, ZLIB)
    return PackedMessage(bytes(message), RAW)


def unpack_message(data: bytes, packing: int) -> bytes:
    """The message bytes of a stored body (`data` in `packing`), exactly as they were
    queued. Raises StoreError for a packing this digestd does not know (a store written by
    a newer version) or a body that does not unpack (a damaged row)."""
    if packing == RAW:
        return bytes(data)
    if packing == ZLIB:
        try:
            return zlib.decompress(data)
        except zlib.error as e:
            raise StoreError(f"the stored message does not unpack (zlib: {e})") from None
    raise StoreError(f"the stored message has packing {packing!r}, unknown to this digestd "
                     "(written by a newer version?)")
