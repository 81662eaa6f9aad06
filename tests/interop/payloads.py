"""Deterministic test payloads, identical to `tachyon_tests` in Rust (tests/src/lib.rs).

Message ``i`` of a stream with ``seed`` has ``splitmix64(seed ^ i) % (max + 1)`` bytes;
byte ``j`` is ``(i + 31 j) mod 251``; its ``type_id`` is the CRC-32 of the payload.
"""

from __future__ import annotations

import zlib

_M64 = (1 << 64) - 1


def splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def payload_size(seed: int, i: int, max_size: int) -> int:
    return splitmix64(seed ^ i) % (max_size + 1)


def payload(i: int, size: int) -> bytes:
    block = bytes((i + 31 * j) % 251 for j in range(251))
    reps = size // 251 + 1
    return (block * reps)[:size]


def checksum(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def message(seed: int, i: int, max_size: int) -> tuple[bytes, int]:
    data = payload(i, payload_size(seed, i, max_size))
    return data, checksum(data)


def channel_entry(writer: int, seq: int, max_size: int) -> bytes:
    """The payload of entry ``seq`` of channel writer ``writer`` (``tachyon_tests::channel_entry``):
    writer and seq (u64 LE), the CRC-32 of the rest, then ``payload`` content."""
    n = payload_size(((writer * 0x1_0000_0001) & _M64) ^ 7, seq, max_size)
    body = payload(seq ^ writer, n)
    return writer.to_bytes(8, "little") + seq.to_bytes(8, "little") + checksum(body).to_bytes(4, "little") + body


def check_channel_entry(data: bytes, max_size: int) -> tuple[int, int]:
    """Checks a :func:`channel_entry` payload; returns ``(writer, seq)``."""
    if len(data) < 20:
        raise AssertionError(f"{len(data)} bytes is shorter than the prefix")
    writer = int.from_bytes(data[:8], "little")
    seq = int.from_bytes(data[8:16], "little")
    if channel_entry(writer, seq, max_size) != data:
        raise AssertionError(f"writer {writer} seq {seq}: content differs")
    return writer, seq
