"""Record indexes: a sidecar per shard with the byte offset of every record, for random access.

TFRecord has no random access of its own; an index gives it without changing the shards. Shard
`train-00000-of-00004.tfrecord` gets `train-00000-of-00004.tfrecord.index`, written by the worker
that writes the shard, renamed with it and listed in dataset.json (`index.files`). Datasets written
before indexes existed get theirs from `audioflow index DATASET`. Gzip shards have none: a deflate
stream cannot be entered in the middle, so they can only be iterated.

The file, all integers little-endian (8 bytes a record, plus 28):

    offset     size  field
    0          8     magic b"AFINDEX" + version byte 0x01
    8          8     uint64 record count n
    16         8     uint64 shard size in bytes (of the file as stored)
    24         8 n   uint64 start offset of each record (its length header), ascending
    24 + 8 n   4     uint32 CRC32C of all the bytes before it

Record i spans [offsets[i], offsets[i + 1]) (the last one ends at the shard size): one positioned
read of that span returns the framed record, whose own CRCs are then checked as in any read. An
index is never trusted blindly: its checksum, its count and shard size (against dataset.json and
the file), and its offsets (first at 0, ascending, every span at least a 16-byte frame) are checked.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import google_crc32c

from audioflow.beam.errors import DatasetError

__all__ = [
    "INDEX_SUFFIX",
    "INDEX_VERSION",
    "RecordIndex",
    "decode_index",
    "index_file_name",
    "index_section",
]

INDEX_SUFFIX = ".index"
INDEX_VERSION = 1
_MAGIC = b"AFINDEX" + bytes((INDEX_VERSION,))
_HEADER = struct.Struct("<8sQQ")  # magic, record count, shard size
_CRC = struct.Struct("<I")
_FRAME_BYTES = 16  # length (8) + length CRC (4) + data CRC (4)


def index_file_name(shard_name: str) -> str:
    """The index sidecar of a shard: its name plus `.index`."""
    return shard_name + INDEX_SUFFIX


def index_section(shard_names: Iterable[str]) -> dict:
    """dataset.json's `index` section for these (uncompressed) shards: version and shard -> index file."""
    return {"version": INDEX_VERSION, "files": {name: index_file_name(name) for name in sorted(shard_names)}}


def _little_endian(values: array) -> array:
    if sys.byteorder != "little":
        values = array("Q", values)
        values.byteswap()
    return values


@dataclass(frozen=True)
class RecordIndex:
    """Where each record of one shard starts, and how large the shard is."""

    offsets: array  # array("Q"), one start offset per record
    shard_size: int

    @classmethod
    def from_record_sizes(cls, sizes: Iterable[int]) -> RecordIndex:
        """The index of a shard whose framed records (payload + 16 bytes) have these sizes, in order."""
        offsets, position = array("Q"), 0
        for size in sizes:
            offsets.append(position)
            position += size
        return cls(offsets, position)

    def __len__(self) -> int:
        return len(self.offsets)

    def span(self, index: int) -> tuple[int, int]:
        """(start offset, framed length) of record `index` (0-based, within the shard)."""
        start = self.offsets[index]
        end = self.offsets[index + 1] if index + 1 < len(self.offsets) else self.shard_size
        return start, end - start

    def encode(self) -> bytes:
        body = _HEADER.pack(_MAGIC, len(self.offsets), self.shard_size) + _little_endian(self.offsets).tobytes()
        return body + _CRC.pack(google_crc32c.value(body))

    def mismatch(self, other: RecordIndex) -> str | None:
        """Why `other` (e.g. what a scan of the shard found) disagrees with this index, or None."""
        if len(other) != len(self):
            return f"{len(self)} records indexed, {len(other)} in the shard"
        if other.shard_size != self.shard_size:
            return f"indexed shard size {self.shard_size} bytes, the shard has {other.shard_size}"
        for number, (mine, theirs) in enumerate(zip(self.offsets, other.offsets, strict=True)):
            if mine != theirs:
                return f"record {number} indexed at byte {mine}, it starts at byte {theirs}"
        return None


def decode_index(
    data: bytes, name: str, *, num_records: int | None = None, shard_size: int | None = None
) -> RecordIndex:
    """Parses and checks an index file.

    Args:
        data: the index file's bytes.
        name: the index file's name, for error messages.
        num_records: the shard's record count (from dataset.json), if known: must match.
        shard_size: the shard's size in bytes (from dataset.json or the file), if known: must match.

    Raises:
        DatasetError: naming the index file and what is wrong (not an index, corrupt, or not the
            index of this shard).
    """
    if len(data) < _HEADER.size + _CRC.size or data[:7] != _MAGIC[:7]:
        raise DatasetError(f"{name}: not an audioflow record index")
    if data[:8] != _MAGIC:
        raise DatasetError(f"{name}: record index version {data[7]} is not supported (expected {INDEX_VERSION})")
    _, count, size = _HEADER.unpack_from(data)
    if len(data) != _HEADER.size + 8 * count + _CRC.size:
        raise DatasetError(
            f"{name}: {len(data)} bytes, expected {_HEADER.size + 8 * count + _CRC.size} for {count} records"
        )
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if google_crc32c.value(data[: -_CRC.size]) != crc:
        raise DatasetError(f"{name}: checksum mismatch (corrupt index)")
    if num_records is not None and count != num_records:
        raise DatasetError(f"{name}: indexes {count} records, the shard has {num_records} (stale or wrong index)")
    if shard_size is not None and size != shard_size:
        raise DatasetError(
            f"{name}: indexes a shard of {size} bytes, the shard has {shard_size} (stale or wrong index)"
        )
    offsets = array("Q")
    offsets.frombytes(data[_HEADER.size : -_CRC.size])
    offsets = _little_endian(offsets)
    previous = None
    for number, offset in enumerate(offsets):
        expected_min = 0 if previous is None else previous + _FRAME_BYTES
        if (previous is None and offset != 0) or offset < expected_min:
            raise DatasetError(f"{name}: record {number} at byte {offset} is out of order (corrupt index)")
        previous = offset
    if previous is not None and previous + _FRAME_BYTES > size:
        raise DatasetError(f"{name}: record {count - 1} at byte {previous} runs past the shard's {size} bytes")
    if previous is None and size != 0:
        raise DatasetError(f"{name}: indexes no records in a shard of {size} bytes")
    return RecordIndex(offsets, size)
