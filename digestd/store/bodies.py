"""How the outbox keeps a message: packed with Zstandard (RFC 8878) for the store and its
WAL, unpacked byte for byte for the sender.

A day's digest packs about 6x at zstd level 1 (a 63 KB digest of 25 papers to 10 KB in
~0.08 ms of CPU, unpacked in ~0.03 ms), and every byte stored is written at least twice (to
the WAL, then into the store file at a checkpoint). zlib level 1, which packed the
outbox before, took 0.42 ms and 0.18 ms for the same message and packed it 4.6x: at 100,000
digests a day that was 40 s of CPU of the build's and 15 s of the sender's. Rows packed
with zlib (packing 1) and raw rows from before either step (packing 0) still read as they
are. The bytes that go out are the ones the build rendered and signed, whatever the
packing, so the Message-ID, a DKIM signature and the bytes of a retried message never
change. Packing is Python's, not the database's: any backend stores the packed bytes as a
blob beside their `packing`.

`packing` also carries the CRLF flag: set for a message built by render.py, whose every
line ends in CRLF and which ends in CRLF (mime.build_alternative's contract), it spares
the sender the three scans of the message that check its line ends (~0.09 ms of CPU for a
38 KB digest, a sixth of sending it); the message is still dot-stuffed as it goes out.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass

import zstandard

from ..errors import StoreError

RAW = 0  # the message as it goes out (rows from before the "body_packing" step)
ZLIB = 1  # zlib (RFC 1950) of the message: what digestd wrote before ZSTD
ZSTD = 2  # a Zstandard frame (RFC 8878) of the message, with its size and a checksum
# a flag added to the above: every line of the message ends in CRLF and so does the message
# (RFC 5322 2.1, as SMTP carries it, RFC 5321 2.3.8); a digestd before it reads the row as a
# packing it does not know, and says so
CRLF = 4
LEVEL = 1  # zstd level: 1 packs a digest ~6x; 3 (zstd's default) ~6.4x for 1.3x the CPU
# a frame that claims more than this is damaged (a digest at max_papers is ~130 KB)
MAX_MESSAGE = 64 << 20

_local = threading.local()  # a compression context is for one thread at a time


def _contexts() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    pair = getattr(_local, "zstd", None)
    if pair is None:
        pair = _local.zstd = (zstandard.ZstdCompressor(level=LEVEL, write_checksum=True),
                              zstandard.ZstdDecompressor())
    return pair


@dataclass(frozen=True)
class PackedMessage:
    """A message as the outbox stores it: `data` in `packing` (RAW, ZLIB or ZSTD)."""

    data: bytes
    packing: int


def pack_message(message: bytes, *, crlf: bool = False) -> PackedMessage:
    """`message` (RFC 5322 bytes) packed for the outbox: ZSTD, or RAW when that is not
    smaller (an empty or tiny message). `crlf`: the caller vouches that every line of
    `message` ends in CRLF and that it ends in CRLF (render.py's digests), recorded as the
    CRLF flag of the packing (see has_crlf)."""
    packed = _contexts()[0].compress(message)
    flag = CRLF if crlf else 0
    if len(packed) < len(message):
        return PackedMessage(packed, ZSTD | flag)
    return PackedMessage(bytes(message), RAW | flag)


def has_crlf(packing: int) -> bool:
    """Whether a body stored with `packing` was vouched to have CRLF line ends only."""
    return bool(packing & CRLF)


def unpack_message(data: bytes, packing: int) -> bytes:
    """The message bytes of a stored body (`data` in `packing`, its CRLF flag ignored),
    exactly as they were queued. Raises StoreError for a packing this digestd does not know
    (a store written by a newer version) or a body that does not unpack (a damaged row)."""
    if packing in (RAW | CRLF, ZSTD | CRLF):
        packing &= ~CRLF
    if packing == RAW:
        return bytes(data)
    if packing == ZSTD:
        try:
            # the frame's header says the size (pack_message writes it); a damaged one could
            # claim terabytes, which decompress() would try to allocate
            if not 0 <= zstandard.frame_content_size(data) <= MAX_MESSAGE:
                raise zstandard.ZstdError("the frame's content size is missing or too large")
            return _contexts()[1].decompress(data)
        except zstandard.ZstdError as e:
            raise StoreError(f"the stored message does not unpack (zstd: {e})") from None
    if packing == ZLIB:
        try:
            return zlib.decompress(data)
        except zlib.error as e:
            raise StoreError(f"the stored message does not unpack (zlib: {e})") from None
    raise StoreError(f"the stored message has packing {packing!r}, unknown to this digestd "
                     "(written by a newer version?)")
