"""Shard files: their names, and the one way every reader turns a shard's bytes into records.

The gzip policy lives here so the reader, `inspect --verify` and the report agree on what a bad
shard is: Python's gzip reader checks the gzip trailer (a shard cut after its last whole record
fails) and turns a bad deflate block into an error, where Beam's GZIP stream does neither.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from audioflow.beam.errors import DatasetError
from audioflow.beam.format.tfrecord import iter_records

__all__ = ["COMPRESSIONS", "is_gzip_shard", "iter_shard_records", "parse_shard_name", "shard_file_name"]

# compression option -> shard file suffix
COMPRESSIONS: dict[str, str] = {"none": ".tfrecord", "gzip": ".tfrecord.gz"}
_SHARD_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord(\.gz)?$")


def shard_file_name(split: str, index: int, count: int, compression: str = "none") -> str:
    """Returns the file name of shard `index` (0-based) of `count` in `split`."""
    return f"{split}-{index:05d}-of-{count:05d}{COMPRESSIONS[compression]}"


def parse_shard_name(name: str) -> tuple[str, int, int] | None:
    """Returns (split, index, count) for a shard file name, or None for any other name."""
    match = _SHARD_NAME.match(name)
    if not match:
        return None
    return match["split"], int(match["index"]), int(match["count"])


def is_gzip_shard(name: str) -> bool:
    return name.endswith(COMPRESSIONS["gzip"])


def iter_shard_records(raw: BinaryIO, name: str) -> Iterator[bytes]:
    """Yields each record's payload from a shard's raw (still compressed) bytes, CRCs checked.

    Args:
        raw: the shard file's bytes as stored, from any filesystem.
        name: the shard's name (or URI): picks the compression and goes into error messages.

    Raises:
        DatasetError: naming the shard, the record and what is wrong (framing, checksum, gzip, I/O).
    """
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip_shard(name) else raw
    index = 0  # the record being read when a stream error strikes
    try:
        for payload in iter_records(stream, name):
            yield payload
            index += 1
    except (OSError, EOFError, zlib.error) as error:  # gzip framing and checksum errors, storage failures
        raise DatasetError(f"{name}: record {index}: cannot be read: {type(error).__name__}: {error}") from None
