"""Finalize, the last step of a run: prove the accounting, write rejected.jsonl, name shards, dataset.json.

dataset.json is written last, so its presence means the dataset is complete; a run that dies
before this point leaves only temporary files that readers ignore and --overwrite removes.
`finalize_dataset` does the work in plain Python; the `Finalize` transform runs it once, after
every other step, with their outputs as side inputs.
"""

from __future__ import annotations

import datetime
import heapq
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.pvalue import AsIter, AsList, AsSingleton

from audioflow.beam.errors import AccountingError
from audioflow.beam.format import (
    METADATA_FILE,
    REJECTED_EXAMPLES_PER_REASON,
    REJECTED_FILE,
    DatasetInfo,
    ShardInfo,
    SplitInfo,
    shard_file_name,
)
from audioflow.beam.format.index import INDEX_SUFFIX, index_section
from audioflow.beam.job.content import describe_content, format_version_of, label_section_extras
from audioflow.beam.job.quality_summary import write_quality
from audioflow.beam.prep.content import ContentStats
from audioflow.beam.prep.equal_audio import EqualAudioGroup
from audioflow.beam.prep.manifest import LabelPolicy, ManifestColumns
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.rows import Rejection, ShardStats, ShardWritten
from audioflow.beam.storage import delete_if_exists, delete_tree, write_atomically, write_text_atomically

__all__ = ["Finalize", "FinalizeInputs", "finalize_dataset"]

_LOGGER = logging.getLogger(__name__)
_PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)


def _write_rejected(uri: str, rejected: Iterable[Rejection]) -> tuple[Counter, Counter, dict[str, list[dict]]]:
    """Streams the rejections to rejected.jsonl; returns counts by split and reason, and a few examples.

    The examples are the rows with the lowest line numbers, not the first to arrive: arrival order
    depends on the runner's parallelism, and dataset.json should not.
    """
    by_split: Counter = Counter()
    by_reason: Counter = Counter()
    lowest: dict[str, list[tuple[int, str]]] = defaultdict(list)  # reason -> max-heap of (-line, json line)
    with write_atomically(uri) as stream:
        for rejection in rejected:
            line = rejection.to_json_line()
            stream.write(line.encode("utf-8") + b"\n")
            by_split[rejection.split] += 1
            by_reason[rejection.reason] += 1
            heap = lowest[rejection.reason]
            if len(heap) < REJECTED_EXAMPLES_PER_REASON:
                heapq.heappush(heap, (-rejection.line, line))
            elif -rejection.line > heap[0][0]:
                heapq.heapreplace(heap, (-rejection.line, line))
    examples = {reason: [json.loads(line) for _, line in sorted(heap, reverse=True)] for reason, heap in lowest.items()}
    return by_split, by_reason, examples


def _check_accounting(rows_by_split: dict[str, int], written: Counter, rejected: Counter, manifest_rows: int) -> None:
    problems = []
    for split in sorted(set(rows_by_split) | set(written) | set(rejected)):
        rows = rows_by_split.get(split, 0)
        if rows != written[split] + rejected[split]:
            problems.append(f"split {split!r}: {rows} rows != {written[split]} written + {rejected[split]} rejected")
    if sum(rows_by_split.values()) != manifest_rows:
        problems.append(f"{sum(rows_by_split.values())} rows classified != {manifest_rows} manifest rows")
    if problems:
        raise AccountingError("accounting does not balance, so rows were lost: " + "; ".join(problems))


def _percentiles(durations_centiseconds: Counter) -> dict[str, float]:
    total = sum(durations_centiseconds.values())
    if not total:
        return {}
    result, seen = {}, 0
    ordered = sorted(durations_centiseconds.items())
    targets = list(_PERCENTILES)
    for value, count in ordered:
        seen += count
        while targets and seen >= max(1, targets[0] / 100 * total):
            result[f"p{targets.pop(0)}"] = value / 100
    while targets:
        result[f"p{targets.pop(0)}"] = ordered[-1][0] / 100
    return result


def _in_final_order(shards: list[ShardWritten]) -> list[ShardWritten]:
    return sorted(shards, key=lambda shard: (shard.unit, shard.part))


def _name_shards(options: IngestOptions, split: str, shards: list[ShardWritten]) -> tuple[list[ShardInfo], bool]:
    """Renames a split's temporary files to their final names, in a deterministic order, with their
    record indexes; returns the shards, and whether every one of them has its index."""
    ordered = _in_final_order(shards)
    infos, indexed = [], options.compression == "none"
    for index, shard in enumerate(ordered):
        name = shard_file_name(split, index, len(ordered), options.compression)
        final = FileSystems.join(options.output, name)
        if FileSystems.exists(shard.temp_uri):  # a retried Finalize may have renamed it already
            delete_if_exists([final])
            FileSystems.rename([shard.temp_uri], [final])
        if indexed:
            temp_index, final_index = shard.temp_uri + INDEX_SUFFIX, final + INDEX_SUFFIX
            if FileSystems.exists(temp_index):
                delete_if_exists([final_index])
                FileSystems.rename([temp_index], [final_index])
            else:
                indexed = FileSystems.exists(final_index)
        infos.append(ShardInfo(name=name, num_examples=shard.stats.num_examples, num_bytes=shard.num_bytes))
    return infos, indexed


def _histogram(counter: Counter) -> dict[str, int]:
    return {str(key): count for key, count in sorted(counter.items())}


def finalize_dataset(
    options: IngestOptions,
    temp_dir: str,
    tool: dict[str, Any],
    *,
    shards: list[ShardWritten],
    rejected: Iterable[Rejection],
    rows_by_split: dict[str, int],
    label_policy: LabelPolicy,
    manifest_info: dict[str, Any],
    manifest_columns: ManifestColumns | None = None,
    groups: dict[str, Any] | None = None,
    equal_audio: Iterable[EqualAudioGroup] | None = None,
) -> DatasetInfo:
    """Completes the dataset and returns its metadata.

    `manifest_columns` (which optional columns the manifest has) and `groups` (CheckGroups' summary)
    describe the records' content; without them the manifest counts as one of labels and blobs.
    With `equal_audio` (ResolveEqualAudio's output), it also writes quality.jsonl from the shards'
    quality sidecars and dataset.json's `quality` section (job/quality_summary.py).

    Raises:
        AccountingError: if manifest rows != written + rejected for any split (dataset.json is not written).
    """
    rejected_by_split, rejected_by_reason, rejected_examples = _write_rejected(
        FileSystems.join(options.output, REJECTED_FILE), rejected
    )
    shards_by_split: dict[str, list[ShardWritten]] = defaultdict(list)
    for shard in shards:
        shards_by_split[shard.split].append(shard)
    # Rows, not examples: a windowed row is one row however many windows it wrote.
    written_by_split = Counter(
        {
            split: sum(s.stats.num_examples - s.content.extra_examples for s in group)
            for split, group in shards_by_split.items()
        }
    )
    _check_accounting(rows_by_split, written_by_split, rejected_by_split, manifest_info["num_rows"])

    splits: dict[str, SplitInfo] = {}
    overall = ShardStats()
    indexed = options.compression == "none"
    content_stats = ContentStats()
    named: list[tuple[str, ShardWritten]] = []  # (final name, temporary shard), in dataset.json's order
    for split in options.splits.names:
        group = shards_by_split.get(split, [])
        stats = ShardStats()
        for shard in group:
            stats.merge(shard.stats)
            content_stats.merge(shard.content)
        overall.merge(stats)
        files, split_indexed = _name_shards(options, split, group)
        indexed = indexed and split_indexed
        named += zip([file.name for file in files], _in_final_order(group), strict=True)
        splits[split] = SplitInfo(
            num_examples=stats.num_examples,
            num_shards=len(files),
            files=files,
            duration_seconds=round(stats.duration_seconds, 3),
            num_bytes=sum(f.num_bytes for f in files),
            label_counts=_histogram(stats.label_counts),
        )

    quality = None
    if equal_audio is not None and options.audio.checks.enabled and options.windows is None:  # windows: unmeasured
        quality = write_quality(options, named, equal_audio)
    num_rows = manifest_info["num_rows"]
    num_rejected = sum(rejected_by_reason.values())
    fraction = num_rejected / num_rows if num_rows else 0.0
    sample_rates = sorted(overall.sample_rates)
    channels = sorted(overall.channels)
    content = describe_content(
        options,
        label_policy,
        manifest_columns,
        content_stats,
        groups,
        {split: written_by_split.get(split, 0) for split in options.splits.names},
    )
    info = DatasetInfo(
        format_version=format_version_of(content),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        audio={
            "sample_format": options.audio.sample_format,
            "encoding": "pcm_le_interleaved",
            "sample_rate": sample_rates[0] if len(sample_rates) == 1 else None,
            "num_channels": channels[0] if len(channels) == 1 else None,
        },
        compression=options.compression,
        splits=splits,
        labels={
            "names": list(label_policy.names) if label_policy.names is not None else None,
            "counts": _histogram(overall.label_counts),
            **label_section_extras(label_policy),
        },
        rejected={
            "num_rows": num_rejected,
            "by_reason": dict(sorted(rejected_by_reason.items())),
            "by_split": dict(sorted(rejected_by_split.items())),
            "file": REJECTED_FILE,
            "fraction": round(fraction, 6),
            "max_fraction": options.max_rejected_fraction,
            "passed": fraction <= options.max_rejected_fraction,
            "examples": rejected_examples,
        },
        manifest=dict(manifest_info),
        audio_root=options.audio_root,
        stats={
            "num_examples": overall.num_examples,
            "total_hours": round(overall.duration_seconds / 3600, 6),
            "total_bytes": sum(split.num_bytes for split in splits.values()),
            "sample_rates": _histogram(overall.sample_rates),
            "source_sample_rates": _histogram(overall.source_sample_rates),
            "channels": _histogram(overall.channels),
            "duration_seconds_percentiles": _percentiles(overall.durations_centiseconds),
            "duration_seconds_histogram": _duration_histogram(overall.durations_centiseconds),
        },
        options=options.to_json_dict(),
        tool=tool,
        index=index_section(f.name for split in splits.values() for f in split.files) if indexed else None,
        content=content,
        quality=quality,
    )
    write_text_atomically(FileSystems.join(options.output, METADATA_FILE), info.to_json())
    delete_tree(temp_dir)
    _LOGGER.info("dataset complete: %d examples written, %d rows rejected", overall.num_examples, num_rejected)
    return info


def _duration_histogram(durations_centiseconds: Counter) -> dict[str, int]:
    """Counts per whole-second bucket ('0', '1', ...), small enough for any dataset size."""
    buckets: Counter = Counter()
    for centiseconds, count in durations_centiseconds.items():
        buckets[centiseconds // 100] += count
    return _histogram(buckets)


class FinalizeInputs(NamedTuple):
    """What Finalize reads: the outputs of every other step."""

    shards: beam.PCollection  # ShardWritten per temporary file
    rejected: beam.PCollection  # Rejection, from every step
    row_splits: beam.PCollection  # str: the split of every manifest row
    policy: beam.PCollection  # LabelPolicy (one)
    manifest_info: beam.PCollection  # {uri, sha256, num_rows} (one)
    manifest_columns: beam.PCollection | None = None  # ManifestColumns (one)
    groups: beam.PCollection | None = None  # CheckGroups' summary (one)
    equal_audio: beam.PCollection | None = None  # EqualAudioGroup per group of equal audio (job/equal_audio.py)


class _FinalizeFn(beam.DoFn):
    """Runs once, after everything: accounting, rejected.jsonl, renames, dataset.json last."""

    def __init__(self, options: IngestOptions, temp_dir: str, tool: dict[str, Any]):
        self._options, self._temp_dir, self._tool = options, temp_dir, tool

    def process(
        self,
        _: Any,
        shards,
        rejected,
        row_splits,
        policy,
        manifest_info,
        manifest_columns=None,
        groups=None,
        equal_audio=None,
    ) -> Iterator[DatasetInfo]:
        yield finalize_dataset(
            self._options,
            self._temp_dir,
            self._tool,
            shards=shards,
            rejected=rejected,
            rows_by_split=dict(row_splits),
            label_policy=policy,
            manifest_info=manifest_info,
            manifest_columns=manifest_columns,
            groups=groups,
            equal_audio=equal_audio,
        )


class Finalize(beam.PTransform):
    """FinalizeInputs -> DatasetInfo (one), the contents of the dataset.json it wrote.

    Remote runners return no PCollection contents, so the launcher reads dataset.json from storage;
    the output is there for tests and for composing this job into larger pipelines.
    """

    def __init__(self, options: IngestOptions, temp_dir: str, tool: dict[str, Any]):
        super().__init__()
        self._options, self._temp_dir, self._tool = options, temp_dir, tool

    def _extract_input_pvalues(self, pvalueish: Any) -> tuple[Any, dict[str, Any]]:
        """The inputs present: the optional ones (manifest_columns, groups) may be None."""
        if isinstance(pvalueish, FinalizeInputs):
            return pvalueish, {name: value for name, value in pvalueish._asdict().items() if value is not None}
        return super()._extract_input_pvalues(pvalueish)

    def expand(self, inputs: FinalizeInputs) -> beam.PCollection:
        rows_per_split = inputs.row_splits | "RowsPerSplit" >> beam.combiners.Count.PerElement()
        # (split, number of manifest rows)
        return (
            beam.pvalue.PBegin(inputs.shards.pipeline)
            | "FinalizeTrigger" >> beam.Create([None])
            | "FinalizeDataset"
            >> beam.ParDo(
                _FinalizeFn(self._options, self._temp_dir, self._tool),
                shards=AsList(inputs.shards),
                rejected=AsIter(inputs.rejected),
                row_splits=AsList(rows_per_split),
                policy=AsSingleton(inputs.policy),
                manifest_info=AsSingleton(inputs.manifest_info),
                manifest_columns=None if inputs.manifest_columns is None else AsSingleton(inputs.manifest_columns),
                groups=None if inputs.groups is None else AsSingleton(inputs.groups),
                equal_audio=None if inputs.equal_audio is None else AsIter(inputs.equal_audio),
            ).with_output_types(DatasetInfo)
        )
