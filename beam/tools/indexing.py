"""`audioflow index DATASET` (record indexes for datasets written before ingest wrote them), and their check.

Each shard is read once (both CRCs of every record checked), its index written next to it under a
temporary name and renamed, and dataset.json rewritten last with its `index` section, so a reader
never sees dataset.json promise an index that is not complete. Running it again rewrites them.
"""

from __future__ import annotations

import dataclasses
import logging

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import METADATA_FILE, DatasetInfo, ShardInfo
from audioflow.beam.format.index import RecordIndex, decode_index, index_file_name, index_section
from audioflow.beam.storage import read_bytes, read_shard_records, write_atomically, write_text_atomically

__all__ = ["index_problems", "write_indexes"]

_LOGGER = logging.getLogger(__name__)
_FRAME_BYTES = 16


def write_indexes(dataset: str, info: DatasetInfo) -> DatasetInfo:
    """Writes every shard's index and lists them in dataset.json; returns the new metadata.

    Raises:
        DatasetError: gzip shards (they have no random access), or a shard that is corrupt or
            disagrees with dataset.json (nothing is listed then; `inspect --verify` says more).
    """
    if info.compression == "gzip":
        raise DatasetError(f"{dataset}: gzip shards have no random access, so they get no index; iterate them")
    base = dataset.rstrip("/")
    names = []
    for split in info.splits.values():
        for shard in split.files:
            uri = FileSystems.join(base, shard.name)
            index = RecordIndex.from_record_sizes(len(payload) + _FRAME_BYTES for payload in read_shard_records(uri))
            if len(index) != shard.num_examples or index.shard_size != shard.num_bytes:
                raise DatasetError(
                    f"{shard.name}: {len(index)} records in {index.shard_size} bytes, dataset.json says "
                    f"{shard.num_examples} in {shard.num_bytes}: not indexed (run `audioflow inspect --verify`)"
                )
            with write_atomically(FileSystems.join(base, index_file_name(shard.name))) as stream:
                stream.write(index.encode())
            names.append(shard.name)
            _LOGGER.debug("indexed %s: %d records", shard.name, len(index))
    updated = dataclasses.replace(info, index=index_section(names))
    write_text_atomically(FileSystems.join(base, METADATA_FILE), updated.to_json())
    return updated


def index_problems(dataset: str, shard: ShardInfo, info: DatasetInfo, payload_sizes: list[int]) -> list[str]:
    """What is wrong with a shard's listed index, given the payload sizes a full read of the shard found.

    Nothing for datasets without indexes (written before them, or gzip): only a listed index is checked.
    """
    if info.index is None:
        return []
    name = info.index.get("files", {}).get(shard.name)
    if name is None:
        return [f"{shard.name}: dataset.json lists no index for it"]
    try:
        data = read_bytes(FileSystems.join(dataset.rstrip("/"), name))
    except FileNotFoundError:
        return [f"{name}: listed in dataset.json but missing (`audioflow index` rewrites it)"]
    try:
        index = decode_index(data, name, num_records=shard.num_examples, shard_size=shard.num_bytes)
    except DatasetError as error:
        return [str(error)]
    if len(payload_sizes) != shard.num_examples:
        return []  # the shard itself is bad, and already reported
    mismatch = index.mismatch(RecordIndex.from_record_sizes(size + _FRAME_BYTES for size in payload_sizes))
    return [f"{name}: does not match its shard: {mismatch}"] if mismatch else []
