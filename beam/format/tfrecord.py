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

__all__ = ["frame_record", "iter_records"]

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
