"""ResolveEqualAudio: equal audio grouped by content hash, duplicates and label conflicts resolved, shards compacted.

WriteShards writes every example and, next to each temporary shard, a quality sidecar: one JSON line
per record (its row, content hash and signal statistics), in record order. It also hands on a
`HashedRecord` per example (hash and row ids only, never audio), batched by hash bucket: a Beam
element costs more than the hashing itself, so a unit emits one element per bucket it touches, not
one per example. Here the buckets are grouped, the records of each bucket grouped by hash, each
group resolved by manifest line (prep/equal_audio.py), and the rows it rejects are removed from
their temporary shard and its sidecar by rewriting the two files without them. A shard is rewritten
only if it holds such a row, so with the defaults (duplicates by path, conflicts only reported) no
file is touched, and the cost of content dedupe is one copy of the shards that hold duplicates: no
audio file is read twice. Finalize concatenates the sidecars into quality.jsonl.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from audioflow.beam.format import COMPRESSIONS, frame_record
from audioflow.beam.format.index import INDEX_SUFFIX, RecordIndex
from audioflow.beam.job.metrics import NAMESPACE, REJECTED, rejected
from audioflow.beam.prep.equal_audio import EqualAudioGroup, HashedRecord, resolve_group
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.rows import Rejection, ShardStats, ShardWritten
from audioflow.beam.storage import read_shard_records

__all__ = [
    "HASH_BUCKETS",
    "SIDECAR_SUFFIX",
    "HashBuckets",
    "QualitySidecar",
    "ResolveEqualAudio",
    "Resolved",
    "hashed_records",
    "read_sidecar_lines",
    "sidecar_of",
]

# Hash buckets the content records are grouped by. All records of a bucket meet in one DoFn call, so
# a bucket holds rows / 128 records (about 40 MB of them at 30 million rows); a unit of a few hundred
# examples emits a few dozen elements.
HASH_BUCKETS = 128

_DROPS = "drops"
_COMPACTED = "-compacted"


SIDECAR_SUFFIX = ".quality.jsonl"


def sidecar_of(shard_uri: str) -> str:
    """The quality sidecar of a temporary shard file: next to it, so --resume keeps the two together
    and Finalize's removal of the temporary folder takes both."""
    return shard_uri + SIDECAR_SUFFIX


def hashed_records(shard_uri: str) -> Iterator[HashedRecord]:
    """The HashedRecords of a temporary shard's examples, from its sidecar: for units --resume keeps.

    The sidecar has the label as dataset.json counts it, not as the manifest wrote it; that is what a
    rejection of a kept row then names.
    """
    for index, line in enumerate(read_sidecar_lines(shard_uri)):
        entry = json.loads(line)
        label = entry["label"]
        key = label if isinstance(label, str) else json.dumps(sorted(label), ensure_ascii=False)
        text = label if isinstance(label, str) else ",".join(label)
        yield HashedRecord(entry["hash"], entry["line"], entry["blob"], text, key, entry["split"], shard_uri, index)


class QualitySidecar:
    """The quality sidecar of one temporary shard, written line by line as its records are."""

    def __init__(self, shard_uri: str):
        self._stream = FileSystems.create(sidecar_of(shard_uri), compression_type=CompressionTypes.UNCOMPRESSED)

    def write(self, entry: dict[str, Any]) -> None:
        self.write_line(json.dumps(entry, ensure_ascii=False).encode("utf-8"))

    def write_line(self, line: bytes) -> None:
        self._stream.write(line + b"\n")

    def close(self) -> None:
        self._stream.close()


def read_sidecar_lines(shard_uri: str) -> Iterator[bytes]:
    """The entries of a temporary shard's quality sidecar as JSON text (UTF-8, no newline), in record order."""
    with FileSystems.open(sidecar_of(shard_uri), compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        data = stream.read()
    for line in data.split(b"\n"):
        if line:
            yield line


def add_to_stats(stats: ShardStats, entry: dict[str, Any]) -> None:
    """Counts one sidecar entry's example in `stats`, exactly as WriteShards counted it."""
    stats.add(
        entry["label"], entry["sample_rate"], entry["source_sample_rate"], entry["num_channels"], entry["num_frames"]
    )


class HashBuckets:
    """A unit's HashedRecords, by hash bucket, for WriteShards to hand on as (bucket, [HashedRecord])."""

    def __init__(self) -> None:
        self._buckets: dict[int, list[HashedRecord]] = {}

    def add(self, record: HashedRecord) -> None:
        self._buckets.setdefault(int(record.content_hash[:8], 16) % HASH_BUCKETS, []).append(record)

    def items(self) -> list[tuple[int, list[HashedRecord]]]:
        return sorted(self._buckets.items())


class Resolved(NamedTuple):
    """What ResolveEqualAudio outputs."""

    shards: beam.PCollection  # ShardWritten per temporary file, without the rows rejected here
    rejected: beam.PCollection  # Rejection: duplicate_content, label_conflict
    groups: beam.PCollection  # EqualAudioGroup per group of two rows or more with equal audio


class _ResolveGroupsFn(beam.DoFn):
    """(bucket, [[HashedRecord]]) -> EqualAudioGroup (groups of two or more), Rejections, (shard, index) to drop."""

    def __init__(self, dedupe: str, on_label_conflict: str):
        self._dedupe, self._policy = dedupe, on_label_conflict

    def process(self, element: tuple[int, Iterable[list[HashedRecord]]]) -> Iterator[Any]:
        _, batches = element
        by_hash: dict[str, list[HashedRecord]] = {}
        for batch in batches:
            for record in batch:
                by_hash.setdefault(record.content_hash, []).append(record)
        for records in by_hash.values():
            if len(records) == 1:
                continue
            resolution = resolve_group(records, self._dedupe, self._policy)
            for record, rejection in resolution.rejected:
                yield rejected(rejection)
                yield TaggedOutput(_DROPS, (record.shard, record.index))
            yield resolution.group


def _compacted_uri(shard_uri: str, compression: str) -> str:
    suffix = COMPRESSIONS[compression]
    return shard_uri[: -len(suffix)] + _COMPACTED + suffix


class _CompactShardFn(beam.DoFn):
    """(shard URI, {shard: [ShardWritten], drops: [index]}) -> the shard, rewritten without the dropped records.

    The rewrite (and its record index, for uncompressed shards) goes to a new temporary name; the
    original stays until the job's temporary folders are removed, so a retried bundle writes it again.
    """

    def __init__(self, compression: str):
        self._compression = compression
        self._written = Metrics.counter(NAMESPACE, "examples_written")
        self._bytes = Metrics.counter(NAMESPACE, "bytes_written")

    def process(self, element: tuple[str, dict[str, list]]) -> Iterator[ShardWritten]:
        _, joined = element
        for shard in joined["shard"]:
            drops = set(joined["drops"])
            yield from [shard] if not drops else self._compact(shard, drops)

    def _compact(self, shard: ShardWritten, drops: set[int]) -> Iterator[ShardWritten]:
        target = _compacted_uri(shard.temp_uri, self._compression)
        kind = CompressionTypes.GZIP if self._compression == "gzip" else CompressionTypes.UNCOMPRESSED
        stats, sizes = ShardStats(), []
        records = FileSystems.create(target, compression_type=kind)
        sidecar = QualitySidecar(target)
        try:
            entries = read_sidecar_lines(shard.temp_uri)
            for index, (payload, line) in enumerate(zip(read_shard_records(shard.temp_uri), entries, strict=True)):
                if index in drops:
                    continue
                record = frame_record(payload)
                records.write(record)
                sidecar.write_line(line)
                add_to_stats(stats, json.loads(line))
                sizes.append(len(record))
        finally:
            records.close()
            sidecar.close()
        num_bytes = sum(sizes)
        if self._compression == "none":  # the rewritten shard's record index, as WriteShards writes one
            with FileSystems.create(target + INDEX_SUFFIX, compression_type=CompressionTypes.UNCOMPRESSED) as index:
                index.write(RecordIndex.from_record_sizes(sizes).encode())
        self._written.dec(shard.stats.num_examples - stats.num_examples)
        self._bytes.dec(shard.num_bytes - num_bytes)
        if stats.num_examples:  # a shard whose every record was dropped is no shard: shards are never empty
            yield ShardWritten(shard.split, shard.unit, shard.part, target, num_bytes, stats, shard.content)


def _keyed_by_uri(shard: ShardWritten) -> tuple[str, ShardWritten]:
    return shard.temp_uri, shard


class ResolveEqualAudio(beam.PTransform):
    """(shards, hashes) -> Resolved: WriteShards' ShardWritten and (bucket, [HashedRecord]), resolved by content."""

    def __init__(self, options: IngestOptions):
        super().__init__()
        self._options = options

    def expand(self, written: tuple[beam.PCollection, beam.PCollection]) -> Resolved:
        shards, hashes = written
        resolved = (
            hashes
            | "GroupByHashBucket" >> beam.GroupByKey()
            # (bucket, [[HashedRecord]]): hashes and row ids only, never audio
            | "ResolveGroups"
            >> beam.ParDo(_ResolveGroupsFn(self._options.dedupe, self._options.on_label_conflict))
            .with_output_types(EqualAudioGroup, **{REJECTED: Rejection, _DROPS: tuple[str, int]})
            .with_outputs(REJECTED, _DROPS, main="groups")
        )
        # groups: EqualAudioGroup; rejected: Rejection; drops: (shard URI, record index)
        keyed_shards = shards | "KeyShardsByUri" >> beam.Map(_keyed_by_uri).with_output_types(tuple[str, ShardWritten])
        compacted = (
            {"shard": keyed_shards, "drops": resolved[_DROPS]}
            | "JoinDropsToShards" >> beam.CoGroupByKey()
            # (shard URI, {shard: [ShardWritten], drops: [index]})
            | "CompactShards" >> beam.ParDo(_CompactShardFn(self._options.compression)).with_output_types(ShardWritten)
        )
        return Resolved(shards=compacted, rejected=resolved[REJECTED], groups=resolved.groups)
