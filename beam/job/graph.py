"""The Beam graph: manifest rows in, shards + rejected report + dataset.json out.

    ReadManifest | ClassifyRows | DropDuplicates | StatFiles | AssignShards | GroupRowsByShard
                 | WriteShards | Finalize

Only manifest rows are ever grouped or shuffled; audio is read, decoded, encoded and streamed to a
temporary shard file inside one DoFn call, so memory stays flat however large the dataset grows
and Dataflow never shuffles audio bytes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from stat import S_ISLNK
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, AsIter, AsList, AsSingleton, TaggedOutput

from audioflow.beam.format import AudioExample, encode_example
from audioflow.beam.format.tfrecord import frame_record
from audioflow.beam.job.coders import register_row_coders
from audioflow.beam.job.finalize import finalize_dataset
from audioflow.beam.prep.audio import AudioRejected, decode_audio
from audioflow.beam.prep.manifest import HashingReader, LabelPolicy, ManifestRow, iter_manifest_rows
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import OutsideRootError, is_remote, real_path_inside, resolve_blob
from audioflow.beam.prep.rows import PlannedRow, Rejection, ShardStats, ShardWritten
from audioflow.beam.storage import read_bytes, stat_object

__all__ = ["IngestDataset", "temp_folder"]

_LOGGER = logging.getLogger(__name__)
NAMESPACE = "audioflow"
REJECTED = "rejected"
ROW_SPLITS = "row_splits"
MANIFEST_INFO = "manifest_info"


def temp_folder(options: IngestOptions, run_id: str) -> str:
    """Where shards are written before Finalize renames them; removed when the job completes."""
    return FileSystems.join(options.output, f"_temporary-{run_id}")


class _ReadManifestFn(beam.DoFn):
    """Streams the CSV from any Beam filesystem on a worker (never embedded in the job graph)."""

    def __init__(self, label_column: str | None, blob_column: str | None):
        self._label_column = label_column
        self._blob_column = blob_column
        self._rows = Metrics.counter(NAMESPACE, "manifest_rows")

    def process(self, uri: str) -> Iterator[Any]:
        with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as raw:
            hashing = HashingReader(raw)
            count = 0
            for row in iter_manifest_rows(hashing, self._label_column, self._blob_column, name=uri):
                count += 1
                self._rows.inc()
                if count % 100_000 == 0:
                    _LOGGER.info("manifest: %d rows read", count)
                yield row
            while hashing.read(1 << 20):  # hash whatever follows the last row (trailing blank lines)
                pass
        yield TaggedOutput(MANIFEST_INFO, {"uri": uri, "sha256": hashing.sha256.hexdigest(), "num_rows": count})


class ReadManifest(beam.PTransform):
    """uri -> ManifestRow, rebalanced across workers; tagged `manifest_info`: {uri, sha256, num_rows}."""

    def __init__(self, uri: str, label_column: str | None, blob_column: str | None):
        super().__init__()
        self._uri, self._label_column, self._blob_column = uri, label_column, blob_column

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        return (
            pbegin
            | "ManifestUri" >> beam.Create([self._uri])
            | "ParseCsv"
            >> beam.ParDo(_ReadManifestFn(self._label_column, self._blob_column))
            .with_output_types(ManifestRow, **{MANIFEST_INFO: dict[str, Any]})
            .with_outputs(MANIFEST_INFO, main="rows")
        )


class _ClassifyRowFn(beam.DoFn):
    """ManifestRow -> PlannedRow, or a Rejection; every row also reports its split for accounting."""

    def __init__(self, options: IngestOptions):
        self._options = options
        self._rejected = Metrics.counter(NAMESPACE, "rows_rejected")

    def process(self, row: ManifestRow, policy: LabelPolicy) -> Iterator[Any]:
        splits = self._options.splits
        split = row.split if row.split else splits.assign(row.blob)
        yield TaggedOutput(ROW_SPLITS, split)
        rejection = self._check(row, split, policy)
        if isinstance(rejection, Rejection):
            self._rejected.inc()
            Metrics.counter(NAMESPACE, f"rejected_{rejection.reason}").inc()
            yield TaggedOutput(REJECTED, rejection)
        else:
            yield rejection

    def _check(self, row: ManifestRow, split: str, policy: LabelPolicy) -> PlannedRow | Rejection:
        if row.problem:
            return Rejection.of(row, split, "malformed_row", f"line {row.line}: {row.problem}")
        if split not in self._options.splits.names:
            return Rejection.of(
                row,
                split,
                "bad_split",
                f"line {row.line}: split {split!r} is not one of {list(self._options.splits.names)}",
            )
        if not row.blob:
            return Rejection.of(row, split, "bad_blob", f"line {row.line}: empty blob name")
        encoded = policy.encode(row.label)
        if encoded is None:
            what = "empty label" if not row.label else f"label {row.label!r} is not an int64 integer"
            return Rejection.of(row, split, "bad_label", f"line {row.line}: {what}")
        try:
            uri = resolve_blob(self._options.audio_root, row.blob)
        except (OutsideRootError, ValueError) as error:
            return Rejection.of(row, split, "outside_root", f"line {row.line}: {error}")
        return PlannedRow(row=row, split=split, uri=uri, label=encoded[0], label_name=encoded[1])


def _label_policy(labels: list[str], label_type: str) -> LabelPolicy:
    policy = LabelPolicy.from_distinct_labels(labels, label_type)
    if policy.names is not None and label_type == "auto" and any(label.lstrip("+-").isdigit() for label in labels):
        _LOGGER.warning(
            "labels mix integers and strings, so all %d are treated as strings (sorted vocabulary); "
            "pass --label-type int to reject the non-integer ones instead",
            len(policy.names),
        )
    return policy


def _pick_first_of_duplicates(element: tuple[str, Iterable[PlannedRow]]) -> Iterator[Any]:
    _, rows = element
    first, *later = sorted(rows, key=lambda planned: planned.row.line)
    yield first
    for planned in later:
        Metrics.counter(NAMESPACE, "rejected_duplicate").inc()
        yield TaggedOutput(
            REJECTED,
            Rejection.of(
                planned.row,
                planned.split,
                "duplicate",
                f"line {planned.row.line}: {planned.row.blob!r} is already listed on line {first.row.line}",
            ),
        )


class _RealPathsInside:
    """`real_path_inside(root, path)` for many files, with each folder's real path resolved once.

    `os.path.realpath` is pure Python and lstat()s every component of every path: about 80 µs per
    file, holding the GIL (over a second per 8,000 files in the benchmark, more than the stat
    itself). Resolving a file's folder once per folder and then only checking whether the file
    itself is a symlink gives the same real path (realpath resolves components left to right).
    Files that are symlinks, or that cannot be lstat()ed, take the full `real_path_inside` path,
    and so does any path that falls outside the root, so errors and messages are unchanged.
    """

    _MAX_FOLDERS = 65536  # bounds the cache for manifests spread over very many folders

    def __init__(self, root: str):
        self._root = root
        self._real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, name = os.path.split(path)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = os.path.realpath(folder)
            if len(self._folders) < self._MAX_FOLDERS:
                self._folders[folder] = real_folder
        real = os.path.join(real_folder, name)
        try:
            plain = name not in ("", ".", "..") and not S_ISLNK(os.lstat(real).st_mode)
        except OSError:
            plain = False
        if plain and real.startswith(self._real_root):
            return real
        return real_path_inside(self._root, path)


class _StatFilesFn(beam.DoFn):
    """[PlannedRow] -> PlannedRow with its size, or missing/too_large/outside_root (symlinks) rejections.

    Works on batches with a thread pool so object stores see many metadata requests in flight.
    """

    def __init__(self, options: IngestOptions):
        self._options = options

    def setup(self) -> None:
        self._pool = ThreadPoolExecutor(self._options.effective_fetch_concurrency)
        self._real_path = _RealPathsInside(self._options.audio_root)

    def teardown(self) -> None:
        self._pool.shutdown(wait=False)

    def process(self, batch: list[PlannedRow]) -> Iterator[Any]:
        # A local stat takes microseconds: handing it to a thread would cost more than it saves.
        local = not is_remote(self._options.audio_root)
        for outcome in map(self._stat, batch) if local else self._pool.map(self._stat, batch):
            if isinstance(outcome, Rejection):
                Metrics.counter(NAMESPACE, f"rejected_{outcome.reason}").inc()
                yield TaggedOutput(REJECTED, outcome)
            else:
                yield outcome

    def _stat(self, planned: PlannedRow) -> PlannedRow | Rejection:
        line = planned.row.line
        generation = None
        try:
            if is_remote(planned.uri):
                stat = stat_object(planned.uri)  # gs://: one metadata GET on this thread's client
                size, generation = stat.size, stat.generation
            else:
                real = self._real_path(planned.uri)
                if not os.path.isfile(real):
                    raise FileNotFoundError(planned.uri)
                size = os.path.getsize(real)
        except OutsideRootError as error:
            return Rejection.of(planned.row, planned.split, "outside_root", f"line {line}: {error}")
        except Exception as error:
            if isinstance(error, FileNotFoundError) or not FileSystems.exists(planned.uri):
                return Rejection.of(planned.row, planned.split, "missing", f"line {line}: no file at {planned.uri}")
            return Rejection.of(
                planned.row, planned.split, "unreadable", f"line {line}: {planned.uri}: {type(error).__name__}: {error}"
            )
        limit = self._options.max_file_size
        if limit is not None and size > limit:
            return Rejection.of(
                planned.row,
                planned.split,
                "too_large",
                f"line {line}: {planned.uri} has {size} bytes, over --max-file-size {limit}",
            )
        return PlannedRow(planned.row, planned.split, planned.uri, planned.label, planned.label_name, size, generation)


def _shard_key(planned: PlannedRow, split_bytes: dict[str, int], shard_size: int) -> tuple[tuple[str, int], PlannedRow]:
    """Spreads a split's rows over ceil(bytes / shard_size) units by a hash of the blob (deterministic)."""
    units = max(1, math.ceil(split_bytes.get(planned.split, 0) / shard_size))
    unit = int.from_bytes(hashlib.sha256(planned.uri.encode()).digest()[:8], "big") % units
    return (planned.split, unit), planned


def _bounded_ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[PlannedRow], Any], items: list[PlannedRow], max_items: int, max_bytes: int
) -> Iterator[Any]:
    """Like pool.map, in order, but with at most max_items / about max_bytes of input in flight."""
    pending: deque[tuple[int, Future]] = deque()
    in_flight = 0
    for item in items:
        while pending and (len(pending) >= max_items or in_flight + item.size > max_bytes):
            size, future = pending.popleft()
            in_flight -= size
            yield future.result()
        pending.append((item.size, pool.submit(fn, item)))
        in_flight += item.size
    while pending:
        yield pending.popleft()[1].result()


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


_PROBE_FILES = 8  # files each shard decodes on the writing thread before choosing where the rest go


class _WriteShardFn(beam.DoFn):
    """((split, unit), [PlannedRow]) -> ShardWritten per temporary file, plus rejections.

    Compressed or resampled files and remote objects are fetched and decoded by a thread pool
    (libsndfile and soxr release the GIL, so this uses several cores in one process and hides
    object-store latency); plain local PCM is decoded on this thread (see `_loads`). Records are
    streamed, in manifest order, to temporary shards that roll over at twice --shard-size.
    """

    def __init__(self, options: IngestOptions, temp_dir: str):
        self._options = options
        self._temp_dir = temp_dir
        self._written = Metrics.counter(NAMESPACE, "examples_written")
        self._bytes = Metrics.counter(NAMESPACE, "bytes_written")
        self._rejected = Metrics.counter(NAMESPACE, "rows_rejected")

    def setup(self) -> None:
        self._pool = ThreadPoolExecutor(self._options.effective_fetch_concurrency)
        self._progress = _Progress()

    def teardown(self) -> None:
        self._pool.shutdown(wait=False)

    def _load(self, planned: PlannedRow) -> tuple[bytes, int, int, int, int, bool] | Rejection:
        """Reads, decodes and serializes one file: (record, sample_rate, source_rate, channels, frames, heavy)."""
        name = planned.uri
        try:
            if is_remote(planned.uri):
                # gs://: one media GET of at most size + 1 bytes, of the generation StatFiles saw; an
                # object replaced since raises ObjectChangedError, an `unreadable` rejection.
                source: str | bytes = read_bytes(planned.uri, planned.size, planned.generation)
            else:
                source = planned.uri
            decoded = decode_audio(source, self._options.audio, name=name)
        except AudioRejected as rejected:
            return Rejection.of(
                planned.row, planned.split, rejected.reason, f"line {planned.row.line}: {rejected.message}"
            )
        except FileNotFoundError:
            return Rejection.of(planned.row, planned.split, "missing", f"line {planned.row.line}: no file at {name}")
        except Exception as error:
            return Rejection.of(
                planned.row,
                planned.split,
                "unreadable",
                f"line {planned.row.line}: {name}: {type(error).__name__}: {error}",
            )
        record = frame_record(
            encode_example(
                AudioExample(
                    audio=decoded.samples.tobytes(),
                    label=planned.label,
                    sample_rate=decoded.sample_rate,
                    num_channels=decoded.num_channels,
                    num_frames=decoded.num_frames,
                    blob=planned.row.blob,
                    label_name=planned.label_name,
                )
            )
        )
        return (
            record,
            decoded.sample_rate,
            decoded.source_sample_rate,
            decoded.num_channels,
            decoded.num_frames,
            decoded.heavy,
        )

    def _loads(self, ordered: list[PlannedRow]) -> Iterator[Any]:
        """`_load` of every row, in order: on this thread while files are plain PCM, else on the pool.

        Threads pay off when decoding runs C code that releases the GIL (codecs, resampling: 2-5 ms
        per 5-s clip) or waits on an object store. Plain local PCM takes about 0.25 ms, mostly Python
        and memcpy under the GIL, and there a pool of 4 threads costs more in hand-offs and contention
        than it saves: 0.67 ms per clip against 0.46 ms on one thread (bench/decode_threads.py). So the
        first files of each shard are decoded here, and the rest too if none of them was heavy.
        """
        concurrency = self._options.effective_fetch_concurrency
        if not is_remote(self._options.audio_root):
            probe = ordered[: _PROBE_FILES if concurrency > 1 else len(ordered)]
            heavy = False
            for planned in probe:
                loaded = self._load(planned)
                heavy = heavy or (not isinstance(loaded, Rejection) and loaded[5])
                yield loaded
            ordered = ordered[len(probe) :]
            if not heavy:
                yield from map(self._load, ordered)
                return
        yield from _bounded_ordered_map(self._pool, self._load, ordered, concurrency, 256 * 1024**2)

    def process(self, element: tuple[tuple[str, int], Iterable[PlannedRow]]) -> Iterator[Any]:
        (split, unit), rows = element
        ordered = sorted(rows, key=lambda planned: planned.row.line)
        suffix = ".tfrecord.gz" if self._options.compression == "gzip" else ".tfrecord"
        compression = CompressionTypes.GZIP if self._options.compression == "gzip" else CompressionTypes.UNCOMPRESSED
        roll_at = 2 * self._options.shard_size
        part, writer, temp_uri, stats, written_bytes = 0, None, "", ShardStats(), 0

        def close() -> ShardWritten:
            writer.close()
            return ShardWritten(split, unit, part, temp_uri, written_bytes, stats)

        for planned, loaded in zip(ordered, self._loads(ordered), strict=True):
            if isinstance(loaded, Rejection):
                self._rejected.inc()
                Metrics.counter(NAMESPACE, f"rejected_{loaded.reason}").inc()
                self._progress.rejected += 1
                yield TaggedOutput(REJECTED, loaded)
                continue
            record, rate, source_rate, channels, frames, _ = loaded
            if writer is not None and written_bytes + len(record) > roll_at:
                yield close()
                part, writer = part + 1, None
            if writer is None:
                temp_uri = FileSystems.join(self._temp_dir, f"{split}-{unit:05d}-{part:04d}{suffix}")
                writer = FileSystems.create(temp_uri, compression_type=compression)
                stats, written_bytes = ShardStats(), 0
            writer.write(record)
            written_bytes += len(record)
            label_key = planned.label_name if planned.label_name is not None else str(planned.label)
            stats.add(label_key, rate, source_rate, channels, frames)
            self._written.inc()
            self._bytes.inc(len(record))
            self._progress.written += 1
            self._progress.maybe_log()
        if writer is not None:
            yield close()


class _FinalizeFn(beam.DoFn):
    """Runs once, after everything: accounting, rejected.jsonl, renames, dataset.json last."""

    def __init__(self, options: IngestOptions, temp_dir: str, tool: dict[str, Any]):
        self._options, self._temp_dir, self._tool = options, temp_dir, tool

    def process(self, _: Any, shards, rejected, row_splits, policy, manifest_info) -> Iterator[str]:
        info = finalize_dataset(
            self._options,
            self._temp_dir,
            self._tool,
            shards=shards,
            rejected=rejected,
            rows_by_split=dict(row_splits),
            label_policy=policy,
            manifest_info=manifest_info,
        )
        yield info.to_json()


class IngestDataset(beam.PTransform):
    """The whole ingestion job as one composite transform: PBegin -> [dataset.json text]."""

    def __init__(self, options: IngestOptions, run_id: str, tool: dict[str, Any], *, spread_rows: bool = True):
        """`spread_rows=False` drops the SpreadRows reshuffle, for the local runner: there it has no
        workers to spread rows over, yet it costs a shuffle of every row (about 1.7 s of CPU per
        32,000 rows in bench/, a twentieth of the whole job). The dataset written is the same."""
        super().__init__()
        self._options, self._run_id, self._tool = options, run_id, tool
        self._spread_rows = spread_rows

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[str]:
        register_row_coders()
        options = self._options
        temp_dir = temp_folder(options, self._run_id)
        manifest = pbegin | "ReadManifest" >> ReadManifest(options.manifest, options.label_column, options.blob_column)
        rows = (manifest.rows | "SpreadRows" >> beam.Reshuffle()) if self._spread_rows else manifest.rows
        # ManifestRow
        policy = (
            rows
            | "Labels" >> beam.Map(lambda row: row.label)
            | "DistinctLabels" >> beam.Distinct()
            | "AllLabels" >> beam.combiners.ToList()
            | "LabelPolicy" >> beam.Map(_label_policy, options.label_type)
        )
        # LabelPolicy (one)
        classified = rows | "ClassifyRows" >> (
            beam.ParDo(_ClassifyRowFn(options), AsSingleton(policy))
            .with_output_types(PlannedRow, **{REJECTED: Rejection, ROW_SPLITS: str})
            .with_outputs(REJECTED, ROW_SPLITS, main="planned")
        )
        # PlannedRow | Rejection | split name per row
        unique = (
            classified.planned
            | "KeyByUri" >> beam.Map(lambda planned: (planned.uri, planned)).with_output_types(tuple[str, PlannedRow])
            | "GroupByUri" >> beam.GroupByKey()
            | "DropDuplicates"
            >> beam.FlatMap(_pick_first_of_duplicates)
            .with_output_types(PlannedRow, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="unique")
        )
        # PlannedRow, one per distinct file
        stat = (
            unique.unique
            | "BatchForStat" >> beam.BatchElements(min_batch_size=16, max_batch_size=256)
            | "StatFiles"
            >> beam.ParDo(_StatFilesFn(options))
            .with_output_types(PlannedRow, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="sized")
        )
        # PlannedRow with size
        split_bytes = (
            stat.sized
            | "SizeBySplit" >> beam.Map(lambda planned: (planned.split, planned.size))
            | "SumSizes" >> beam.CombinePerKey(sum)
        )
        written = (
            stat.sized
            | "AssignShards"
            >> beam.Map(_shard_key, AsDict(split_bytes), options.shard_size).with_output_types(
                tuple[tuple[str, int], PlannedRow]
            )
            # ((split, unit), PlannedRow): rows only, never audio
            | "GroupRowsByShard" >> beam.GroupByKey()
            | "WriteShards"
            >> beam.ParDo(_WriteShardFn(options, temp_dir))
            .with_output_types(ShardWritten, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="shards")
        )
        # ShardWritten per temporary file
        rejections = (
            classified[REJECTED],
            unique[REJECTED],
            stat[REJECTED],
            written[REJECTED],
        ) | "AllRejections" >> beam.Flatten()
        row_splits = classified[ROW_SPLITS] | "RowsPerSplit" >> beam.combiners.Count.PerElement()
        return (
            pbegin
            | "FinalizeTrigger" >> beam.Create([None])
            | "Finalize"
            >> beam.ParDo(
                _FinalizeFn(options, temp_dir, self._tool),
                shards=AsList(written.shards),
                rejected=AsIter(rejections),
                row_splits=AsList(row_splits),
                policy=AsSingleton(policy),
                manifest_info=AsSingleton(manifest[MANIFEST_INFO]),
            )
        )
        # dataset.json text (one)
