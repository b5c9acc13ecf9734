"""WriteShards: rows assigned to shard units and grouped, then each unit's audio streamed to files.

Only rows are grouped; a unit's audio is read, encoded and written inside one DoFn call, so memory
stays flat however large the dataset, and Dataflow never shuffles audio bytes. The files are
temporary: Finalize gives them their final names once every unit is written. With a run state, a
completed unit leaves a marker, and a resumed run keeps the units whose markers still hold (resume.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, TaggedOutput

from audioflow.beam.format import COMPRESSIONS
from audioflow.beam.format.index import INDEX_SUFFIX, RecordIndex
from audioflow.beam.job.equal_audio import HashBuckets, QualitySidecar, hashed_records
from audioflow.beam.job.load import AudioLoader, LoadedAudio, WindowRecords
from audioflow.beam.job.metrics import NAMESPACE, REJECTED, rejected
from audioflow.beam.job.resume import RUN_FILE, MarkedFile, RunState, UnitMarker, rows_digest
from audioflow.beam.prep.columns import normalise_text
from audioflow.beam.prep.content import ContentStats
from audioflow.beam.prep.equal_audio import HashedRecord
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.rows import PlannedRow, Rejection, ShardStats, ShardWritten
from audioflow.beam.storage import delete_if_exists, write_text_atomically

__all__ = ["HASHES", "AssignShards", "WriteShards", "Written", "shard_key"]

_LOGGER = logging.getLogger(__name__)
ShardKey = tuple[str, int]  # (split, unit)
# A windowed row's records are held in memory up to this size, then streamed to files of the row's
# own, which are deleted if the row fails part-way (nothing of a rejected row may stay in a shard).
_ROW_BUFFER_BYTES = 8 << 20
HASHES = "hashes"  # the tagged output that carries (hash bucket, [HashedRecord]) of the examples written


class Written(NamedTuple):
    """What WriteShards outputs."""

    shards: beam.PCollection  # ShardWritten per temporary file
    rejected: beam.PCollection  # Rejection: the file could not be read or decoded, or a quality gate refused it
    hashes: beam.PCollection  # (hash bucket, [HashedRecord]) of the examples written (none without measurements)


def shard_key(planned: PlannedRow, split_bytes: dict[str, int], shard_size: int) -> tuple[ShardKey, PlannedRow]:
    """Spreads a split's rows over ceil(bytes / shard_size) units by a hash of the URI (deterministic)."""
    units = max(1, math.ceil(split_bytes.get(planned.split, 0) / shard_size))
    unit = int.from_bytes(hashlib.sha256(planned.uri.encode()).digest()[:8], "big") % units
    return (planned.split, unit), planned


def _split_and_size(planned: PlannedRow) -> tuple[str, int]:
    return planned.split, planned.size


class AssignShards(beam.PTransform):
    """PlannedRow with size -> ((split, unit), PlannedRow), about `shard_size` bytes of files per unit."""

    def __init__(self, shard_size: int):
        super().__init__()
        self._shard_size = shard_size

    def expand(self, sized: beam.PCollection) -> beam.PCollection:
        split_bytes = sized | "SizeBySplit" >> beam.Map(_split_and_size) | "SumSizes" >> beam.CombinePerKey(sum)
        return sized | "KeyByShard" >> beam.Map(shard_key, AsDict(split_bytes), self._shard_size).with_output_types(
            tuple[ShardKey, PlannedRow]
        )


class _Progress:
    """Logs a worker's examples written and rows rejected, with the rate, at most every 10 s."""

    def __init__(self) -> None:
        self.written = self.rejected = 0
        self._start = self._last = time.monotonic()

    def maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._last >= 10:
            self._last = now
            _LOGGER.info(
                "worker %d: %d examples written, %d rows rejected (%.0f examples/s)",
                os.getpid(),
                self.written,
                self.rejected,
                self.written / (now - self._start),
            )


def _listed(shard: ShardWritten | None) -> list[ShardWritten]:
    return [] if shard is None else [shard]


class _TemporaryShards:
    """The temporary files of one unit: part 0, 1, ..., each closed once it would pass `roll_at` bytes.

    Next to each uncompressed file goes its record index (`{file}.index`, format/index.py), written
    when the file is closed; Finalize renames the two together. Gzip files get none.
    """

    def __init__(self, temp_dir: str, key: ShardKey, compression: str, roll_at: int):
        self._temp_dir = temp_dir
        self._split, self._unit = key
        self._suffix = COMPRESSIONS[compression]
        self._compression = CompressionTypes.GZIP if compression == "gzip" else CompressionTypes.UNCOMPRESSED
        self._roll_at = roll_at
        self._indexed = compression == "none"
        self._part, self._writer, self._uri, self._num_bytes = 0, None, "", 0
        self._stats, self._content = ShardStats(), ContentStats()
        self._record_sizes: list[int] = []
        self._sidecar: QualitySidecar | None = None  # the open file's quality sidecar (job/equal_audio.py)

    @property
    def uri(self) -> str:
        """The open file (the one the last record went to)."""
        return self._uri

    @property
    def index(self) -> int:
        """The position of the last record written in the open file."""
        return len(self._record_sizes) - 1

    def write(
        self, loaded: LoadedAudio, planned: PlannedRow, first: bool = True, quality_line: bytes | None = None
    ) -> ShardWritten | None:
        """Appends one record (and its quality sidecar line); returns the previous file if this record
        starts a new one. `first` is False for a row's second and later windows (examples, not rows)."""
        finished = None
        if self._writer is not None and self._num_bytes + len(loaded.record) > self._roll_at:
            finished = self.close()
        if self._writer is None:
            self._open(with_sidecar=quality_line is not None)
        self._writer.write(loaded.record)
        if quality_line is not None:
            self._sidecar.write_line(quality_line)
        self._num_bytes += len(loaded.record)
        self._record_sizes.append(len(loaded.record))
        self._stats.add(
            _label_key(planned),
            loaded.sample_rate,
            loaded.source_rate,
            loaded.num_channels,
            loaded.num_frames,
        )
        if not first:
            self._content.extra_examples += 1
        if loaded.clipped:
            self._content.clipped_segments += 1
        if planned.row.text is not None:
            self._content.add_text(normalise_text(planned.row.text))
        return finished

    def write_row(self, records: WindowRecords) -> tuple[list[ShardWritten], Rejection | None, int, int]:
        """Writes every record of a windowed row, or none of them.

        Records are held in memory up to _ROW_BUFFER_BYTES; a longer row is streamed into files of its
        own, kept back until the row completes and deleted if it fails. Returns the files finished on
        the way, the row's rejection (the source failed part-way: nothing of the row stays), and the
        records and bytes written.
        """
        planned = records.planned
        held: list[LoadedAudio] | None = []  # None once the row streams into files of its own
        held_bytes = count = total_bytes = 0
        finished: list[ShardWritten] = []
        own: list[ShardWritten] = []
        for item in records:
            if isinstance(item, Rejection):
                if held is None:
                    own += self._closed()
                    delete_if_exists([uri for shard in own for uri in (shard.temp_uri, shard.temp_uri + INDEX_SUFFIX)])
                return finished, item, 0, 0
            count += 1
            total_bytes += len(item.record)
            if held is None:
                own += _listed(self.write(item, planned, first=False))
                continue
            held.append(item)
            held_bytes += len(item.record)
            if held_bytes > _ROW_BUFFER_BYTES:
                finished += self._closed()  # the files before this row are complete
                for index, loaded in enumerate(held):
                    own += _listed(self.write(loaded, planned, first=index == 0))
                held = None
        if held is None:
            own += self._closed()
            own[-1].content.examples_per_row[count] += 1
            return finished + own, None, count, total_bytes
        for index, loaded in enumerate(held):
            finished += _listed(self.write(loaded, planned, first=index == 0))
        if count:
            self._content.examples_per_row[count] += 1
        return finished, None, count, total_bytes

    def _closed(self) -> list[ShardWritten]:
        return _listed(self.close())

    def close(self) -> ShardWritten | None:
        """Closes the open file, if any, and returns what it holds."""
        if self._writer is None:
            return None
        self._writer.close()
        if self._sidecar is not None:
            self._sidecar.close()
            self._sidecar = None
        if self._indexed:
            with FileSystems.create(self._uri + INDEX_SUFFIX, compression_type=CompressionTypes.UNCOMPRESSED) as index:
                index.write(RecordIndex.from_record_sizes(self._record_sizes).encode())
        shard = ShardWritten(
            self._split, self._unit, self._part, self._uri, self._num_bytes, self._stats, self._content
        )
        self._part, self._writer = self._part + 1, None
        self._stats, self._content = ShardStats(), ContentStats()
        return shard

    def _open(self, with_sidecar: bool = False) -> None:
        name = f"{self._split}-{self._unit:05d}-{self._part:04d}{self._suffix}"
        self._uri = FileSystems.join(self._temp_dir, name)
        self._writer = FileSystems.create(self._uri, compression_type=self._compression)
        self._sidecar = QualitySidecar(self._uri) if with_sidecar else None
        self._num_bytes, self._record_sizes = 0, []


def _label_key(planned: PlannedRow) -> str | list[str]:
    """The label as dataset.json counts it: its name, or the integer as text; a list for multi-label
    rows (each label counts once) and unlabeled ones (none)."""
    if planned.labels is not None or planned.label is None:
        return planned.label_keys
    return planned.label_name if planned.label_name is not None else str(planned.label)


_json = json.JSONEncoder(ensure_ascii=False).encode


def _quality_line(planned: PlannedRow, loaded: LoadedAudio, label_key: str | list[str]) -> bytes | None:
    """The example's quality sidecar entry (format/quality.py) as a JSON line, or None when nothing was measured.

    Formatted by hand rather than with json.dumps of a dict: it runs once per example, and only the
    strings need JSON escaping (the numbers are finite: levels are floored at DBFS_FLOOR).
    """
    quality = loaded.quality
    if quality is None:
        return None
    return (
        f'{{"line": {planned.row.line}, "blob": {_json(planned.row.blob)}, "split": {_json(planned.split)}, '
        f'"label": {_json(label_key)}, "sample_rate": {loaded.sample_rate}, '
        f'"source_sample_rate": {loaded.source_rate}, "num_channels": {loaded.num_channels}, '
        f'"num_frames": {loaded.num_frames}, "hash": "{quality.content_hash}", "peak_dbfs": {quality.peak_dbfs!r}, '
        f'"rms_dbfs": {quality.rms_dbfs!r}, "dc_offset": {quality.dc_offset!r}, '
        f'"clipped_fraction": {quality.clipped_fraction!r}, "silence_fraction": {quality.silence_fraction!r}, '
        f'"bandwidth_hz": {quality.bandwidth_hz!r}}}'
    ).encode()


def _hashed_record(planned: PlannedRow, loaded: LoadedAudio, label_key: str | list[str], shard: str, index: int):
    """What ResolveEqualAudio groups for one example: its hash and row ids; labels compare as one text."""
    key = label_key if isinstance(label_key, str) else json.dumps(sorted(label_key), ensure_ascii=False)
    row = planned.row
    return HashedRecord(loaded.quality.content_hash, row.line, row.blob, row.label, key, planned.split, shard, index)


class _WriteShardFn(beam.DoFn):
    """((split, unit), [PlannedRow]) -> ShardWritten per temporary file, plus rejections.

    Records are streamed in manifest order to files that roll over at twice --shard-size; a windowed
    row's records are written all or none (see _TemporaryShards.write_row). With a run state, run.json
    and a marker per completed unit are written, and with --resume a unit whose marker still holds is
    kept: its files and rejections are handed on, and nothing is read or decoded.
    """

    def __init__(self, options: IngestOptions, temp_dir: str, run_state: RunState | None = None):
        self._options = options
        self._temp_dir = temp_dir
        self._run_state = run_state
        self._written = Metrics.counter(NAMESPACE, "examples_written")
        self._bytes = Metrics.counter(NAMESPACE, "bytes_written")
        self._decoded = Metrics.counter(NAMESPACE, "files_decoded")
        self._units_kept = Metrics.counter(NAMESPACE, "shard_units_kept")
        self._examples_kept = Metrics.counter(NAMESPACE, "examples_kept")

    def setup(self) -> None:
        self._loader = AudioLoader(self._options)
        self._progress = _Progress()
        self._run_file_written = False

    def teardown(self) -> None:
        self._loader.close()

    def process(self, element: tuple[ShardKey, Iterable[PlannedRow]]) -> Iterator[Any]:
        key, rows = element
        ordered = sorted(rows, key=lambda planned: planned.row.line)
        digest = rows_digest(ordered) if self._run_state is not None else ""
        if self._run_state is not None and self._options.resume:
            marker = UnitMarker.read(self._temp_dir, *key)
            if marker is not None and marker.still_holds(digest):
                yield from self._keep(marker)
                return
        roll_at = 2 * self._options.shard_size
        files = _TemporaryShards(self._temp_dir, key, self._options.compression, roll_at)
        shards: list[ShardWritten] = []  # yielded at the end, the last one with the unit's per-source counts
        per_source: Counter = Counter()  # examples per source file: every row of a file is in this unit
        rejections: list[Rejection] = []  # recorded in the unit's marker
        buckets = HashBuckets()  # the examples' content hashes, for ResolveEqualAudio
        for planned, loaded in zip(ordered, self._loader.load_in_order(ordered), strict=True):
            self._decoded.inc()
            if isinstance(loaded, Rejection):
                rejections.append(loaded)
                yield self._reject(loaded)
                continue
            if isinstance(loaded, WindowRecords):
                finished, rejection, count, num_bytes = files.write_row(loaded)
                shards += finished
                if rejection is not None:
                    rejections.append(rejection)
                    yield self._reject(rejection)
                    continue
                per_source[planned.uri] += count
                self._count_written(num_bytes, count)
                continue
            label_key = _label_key(planned)
            quality_line = _quality_line(planned, loaded, label_key)
            shards += _listed(files.write(loaded, planned, quality_line=quality_line))
            if quality_line is not None:
                buckets.add(_hashed_record(planned, loaded, label_key, files.uri, files.index))
            if planned.row.start is not None:
                per_source[planned.uri] += 1
            self._count_written(len(loaded.record))
        shards += _listed(files.close())
        if shards and per_source:
            shards[-1].content.examples_per_source.update(per_source.values())
        if self._run_state is not None:
            self._mark_done(key, digest, shards, rejections)
        yield from shards
        for batch in buckets.items():
            yield TaggedOutput(HASHES, batch)

    def _mark_done(self, key: ShardKey, digest: str, shards: list[ShardWritten], rejections: list[Rejection]) -> None:
        """Records a unit whose files are all closed, so that a resumed run can keep it."""
        if not self._run_file_written:
            run_file = FileSystems.join(self._temp_dir, RUN_FILE)
            if not FileSystems.exists(run_file):
                write_text_atomically(run_file, self._run_state.to_json())
            self._run_file_written = True
        files = tuple(MarkedFile.of(shard) for shard in shards)
        if any(file.stored_bytes is None for file in files):  # not where it was written: nothing to vouch for
            _LOGGER.warning("unit %s-%05d: a file it closed cannot be found; --resume will write it again", *key)
            return
        UnitMarker(key[0], key[1], digest, files, tuple(rejections)).write(self._temp_dir)

    def _keep(self, marker: UnitMarker) -> Iterator[Any]:
        self._units_kept.inc()
        buckets = HashBuckets()
        measured = self._options.audio.checks.enabled and self._options.windows is None
        for file in marker.files:
            self._examples_kept.inc(file.shard.stats.num_examples)
            if measured:  # the kept files' examples take part in ResolveEqualAudio like new ones
                for record in hashed_records(file.shard.temp_uri):
                    buckets.add(record)
            yield file.shard
        for rejection in marker.rejected:
            yield self._reject(rejection)
        for batch in buckets.items():
            yield TaggedOutput(HASHES, batch)

    def _reject(self, rejection: Rejection) -> TaggedOutput:
        self._progress.rejected += 1
        return rejected(rejection)

    def _count_written(self, num_bytes: int, examples: int = 1) -> None:
        self._written.inc(examples)
        self._bytes.inc(num_bytes)
        self._progress.written += examples
        self._progress.maybe_log()


class WriteShards(beam.PTransform):
    """PlannedRow with size -> Written: temporary shard files, in `temp_dir`, and rejections.

    With `run_state`, completed units are recorded in `temp_dir` and, with --resume, kept.
    """

    def __init__(self, options: IngestOptions, temp_dir: str, run_state: RunState | None = None):
        super().__init__()
        self._options, self._temp_dir, self._run_state = options, temp_dir, run_state

    def expand(self, sized: beam.PCollection) -> Written:
        written = (
            sized
            | "AssignShards" >> AssignShards(self._options.shard_size)
            # ((split, unit), PlannedRow): rows only, never audio
            | "GroupRowsByShard" >> beam.GroupByKey()
            # ((split, unit), [PlannedRow])
            | "WriteTemporaryShards"
            >> beam.ParDo(_WriteShardFn(self._options, self._temp_dir, self._run_state))
            .with_output_types(ShardWritten, **{REJECTED: Rejection, HASHES: tuple[int, list[HashedRecord]]})
            .with_outputs(REJECTED, HASHES, main="shards")
        )
        return Written(written.shards, written[REJECTED], written[HASHES])
