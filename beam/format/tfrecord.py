"""TFRecord framing (length, masked CRC32C, payload, masked CRC32C) without importing TensorFlow.

Workers write and `inspect --verify` reads shards through this module, so neither pays TensorFlow's
import (about 2 s and 450 MB per process) and both work on any Beam filesystem (local, gs://).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

from audioflow.beam.errors import DatasetError

__all__ = ["check_record", "frame_record", "iter_records"]

_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def _masked_crc(data: bytes | memoryview) -> int:
    crc = google_crc32c.value(bytes(data) if isinstance(data, memoryview) else data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """Returns one TFRecord: the payload wrapped in its length and checksums."""
    length = _LENGTH.pack(len(payload))
    return b"".join((length, _CRC.pack(_masked_crc(length)), payload, _CRC.pack(_masked_crc(payload))))


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def check_record(
    header: bytes, payload: bytes, footer: bytes, where: str, *, expected_length: int | None = None
) -> bytes:
    """Checks one record read by position (its 12-byte header, payload and 4-byte footer); returns the payload.

    Args:
        header, payload, footer: the record's bytes as read (shorter where the file ended).
        where: file, record and offset, the prefix of every error message.
        expected_length: the payload length an index promised, if any.

    Raises:
        DatasetError: truncated record, checksum mismatch, or a record whose length is not the
            index's (the index does not match its shard).
    """
    if len(header) < 12:
        raise DatasetError(f"{where}: truncated record header ({len(header)} of 12 bytes)")
    length_bytes, (length_crc,) = header[:8], _CRC.unpack(header[8:12])
    if _masked_crc(length_bytes) != length_crc:
        raise DatasetError(f"{where}: length checksum mismatch (corrupt shard, or an index that does not match it)")
    (length,) = _LENGTH.unpack(length_bytes)
    if expected_length is not None and length != expected_length:
        raise DatasetError(f"{where}: a record of {length} bytes, its index says {expected_length} (stale index)")
    if len(payload) != length or len(footer) < 4:
        raise DatasetError(f"{where}: truncated record ({len(payload)} of {length} bytes)")
    if _masked_crc(payload) != _CRC.unpack(footer[:4])[0]:
        raise DatasetError(f"{where}: data checksum mismatch (corrupt shard)")
    return payload


def iter_records(stream: BinaryIO, name: str) -> Iterator[bytes]:
    """Yields each record's payload, checking both checksums.

    Raises:
        DatasetError: naming the file, the record index and the byte offset of the first bad record.
    """
    index, offset = 0, 0
    while True:
        header = _read_exactly(stream, 12)
        if not header:
            return
        where = f"{name}: record {index} at byte {offset}"
        if len(header) < 12:
            raise DatasetError(f"{where}: truncated record header")
        length_bytes, (length_crc,) = header[:8], _CRC.unpack(header[8:])
        if _masked_crc(length_bytes) != length_crc:
            raise DatasetError(f"{where}: length checksum mismatch (corrupt shard)")
        (length,) = _LENGTH.unpack(length_bytes)
        payload = _read_exactly(stream, length)
        footer = _read_exactly(stream, 4)
        if len(payload) < length or len(footer) < 4:
            raise DatasetError(f"{where}: truncated record ({len(payload)} of {length} bytes)")
        if _masked_crc(payload) != _CRC.unpack(footer)[0]:
            raise DatasetError(f"{where}: data checksum mismatch (corrupt shard)")
        yield payload
        index += 1
        offset += 16 + length
