"""Finalize's part of data quality: quality.jsonl from the shards' sidecars, and dataset.json's `quality` section.

Runs inside Finalize once the shards have their final names. The sidecars are read one shard at a
time in the final shard order, so quality.jsonl lists examples in the order readers see them and
memory stays flat. Everything summarised is either a count, a histogram, or the few examples with
the lowest manifest lines: dataset.json does not depend on the order in which workers finished.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.errors import AccountingError
from audioflow.beam.format.quality import CONTENT_HASH, FLAGS, QUALITY_FILE, QUALITY_VERSION, flags_of
from audioflow.beam.job.equal_audio import read_sidecar_lines
from audioflow.beam.prep.equal_audio import KEPT, EqualAudioGroup
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.rows import ShardWritten
from audioflow.beam.storage import write_atomically

__all__ = ["EXAMPLES_SHOWN", "PERCENTILES", "histogram_percentiles", "write_quality"]

EXAMPLES_SHOWN = 5  # groups (duplicates, conflicts, leakage) and flagged examples dataset.json lists
PERCENTILES = (0, 1, 5, 25, 50, 75, 95, 99, 100)


# Each statistic's histogram: its bin width and the decimals of a bin's name (its lower edge). Every
# one is a quality.jsonl field but bandwidth_fraction: bandwidth_hz over the file's own Nyquist
# frequency, so that files at any rate compare.
_BINS = {
    "peak_dbfs": (1, 0),
    "rms_dbfs": (1, 0),
    "dc_offset": (0.01, 2),
    "clipped_fraction": (0.01, 2),
    "silence_fraction": (0.01, 2),
    "bandwidth_fraction": (0.05, 2),
}
_FIELD_BINS = [(name, width) for name, (width, _) in _BINS.items() if name != "bandwidth_fraction"]


def histogram_percentiles(histogram: dict[str, int]) -> dict[str, float]:
    """PERCENTILES of a histogram whose keys are bin lower edges (so each is exact to one bin width)."""
    ordered = sorted((float(key), count) for key, count in histogram.items())
    total = sum(count for _, count in ordered)
    if not total:
        return {}
    result, seen, targets = {}, 0, list(PERCENTILES)
    for value, count in ordered:
        seen += count
        while targets and seen >= max(1, targets[0] / 100 * total):
            result[f"p{targets.pop(0)}"] = value
    while targets:
        result[f"p{targets.pop(0)}"] = ordered[-1][0]
    return result


class _Lowest:
    """The `size` items with the lowest keys seen so far (a bounded max-heap)."""

    def __init__(self, size: int = EXAMPLES_SHOWN):
        self._size, self._heap, self._counter = size, [], 0

    def add(self, key: int, item: Any) -> None:
        self._counter += 1
        entry = (-key, -self._counter, item)
        if len(self._heap) < self._size:
            heapq.heappush(self._heap, entry)
        elif entry > self._heap[0]:
            heapq.heapreplace(self._heap, entry)

    def items(self) -> list[Any]:
        return [item for _, _, item in sorted(self._heap, reverse=True)]


class _Groups:
    """Counts over every group of equal audio, and the first few of each kind."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.leak_pairs: Counter = Counter()
        self.duplicates, self.conflicts, self.leaks = _Lowest(), _Lowest(), _Lowest()

    def add(self, group: EqualAudioGroup) -> None:
        self.counts["duplicate_groups"] += 1
        self.counts["duplicate_rows"] += group.num_rows
        self.counts["rejected"] += group.num_rejected
        self.duplicates.add(group.first_line, group)
        if group.conflicting:
            self.counts["conflict_groups"] += 1
            self.counts["conflict_rows"] += group.num_rows
            self.counts["conflict_groups_written"] += group.conflicting_in_dataset
            self.conflicts.add(group.first_line, group)
        if group.leaking:
            self.counts["leak_groups"] += 1
            self.counts["leak_examples"] += sum(count for _, count in group.kept_splits)
            self.leak_pairs["+".join(split for split, _ in group.kept_splits)] += 1
            self.leaks.add(group.first_line, group)

    def wanted_lines(self) -> set[int]:
        """The lines of kept rows that dataset.json lists, whose shard and index quality.jsonl will tell."""
        groups = [*self.duplicates.items(), *self.conflicts.items(), *self.leaks.items()]
        return {member.line for group in groups for member in group.members if member.outcome == KEPT}


def _group_json(group: EqualAudioGroup, located: dict[int, tuple[str, int]]) -> dict[str, Any]:
    rows = []
    for member in group.members:
        row = member.to_json_dict()
        if member.line in located:
            row["shard"], row["index"] = located[member.line]
        rows.append(row)
    return {
        "hash": group.content_hash,
        "num_rows": group.num_rows,
        "labels": list(group.labels),
        "kept_by_split": dict(group.kept_splits),
        "rows": rows,
    }


class _Signals:
    """Histograms of every signal statistic, and the flagged examples, over the written examples."""

    def __init__(self) -> None:
        self.histograms: dict[str, Counter] = {name: Counter() for name in _BINS}
        self.flag_counts: Counter = Counter()
        self.flagged = {flag: _Lowest() for flag in FLAGS}

    def add(self, entry: dict[str, Any], shard: str, index: int) -> None:
        histograms = self.histograms
        for name, width in _FIELD_BINS:
            histograms[name][math.floor(entry[name] / width + 1e-9)] += 1
        fraction = entry["bandwidth_hz"] / (entry["source_sample_rate"] / 2)
        histograms["bandwidth_fraction"][math.floor(fraction / _BINS["bandwidth_fraction"][0] + 1e-9)] += 1
        for flag in flags_of(entry):
            self.flag_counts[flag] += 1
            self.flagged[flag].add(entry["line"], {"shard": shard, "index": index, **entry})

    def to_json(self) -> tuple[dict, dict]:
        signal = {}
        for name, counts in self.histograms.items():
            width, decimals = _BINS[name]
            histogram = {f"{key * width:.{decimals}f}": counts[key] for key in sorted(counts)}
            signal[name] = {"percentiles": histogram_percentiles(histogram), "histogram": histogram}
        flags = {flag: {"count": self.flag_counts[flag], "examples": self.flagged[flag].items()} for flag in FLAGS}
        return signal, flags


def write_quality(
    options: IngestOptions, named_shards: list[tuple[str, ShardWritten]], groups: Iterable[EqualAudioGroup]
) -> dict[str, Any]:
    """Writes quality.jsonl (every shard's sidecar, in final shard order) and returns the `quality` section.

    Args:
        options: the job's options.
        named_shards: (final name, temporary shard) of every shard, in the order dataset.json lists them.
        groups: every group of two rows or more with equal audio.

    Raises:
        AccountingError: a sidecar does not hold one entry per record of its shard.
    """
    summary = _Groups()
    for group in groups:
        summary.add(group)
    wanted, located = summary.wanted_lines(), {}
    signals = _Signals()
    with write_atomically(FileSystems.join(options.output, QUALITY_FILE)) as stream:
        for name, shard in named_shards:
            count, prefix = 0, b'{"shard": ' + json.dumps(name, ensure_ascii=False).encode("utf-8") + b', "index": '
            for index, raw in enumerate(read_sidecar_lines(shard.temp_uri)):
                entry = json.loads(raw)  # the sidecar's entry, written again with its final shard name in front
                stream.write(b"%s%d, %s\n" % (prefix, index, raw[1:]))
                signals.add(entry, name, index)
                if entry["line"] in wanted:
                    located[entry["line"]] = (name, index)
                count += 1
            if count != shard.stats.num_examples:
                raise AccountingError(
                    f"{name}: the content side data lists {count} examples, the shard holds {shard.stats.num_examples}"
                )
    signal, flags = signals.to_json()
    counts = summary.counts
    return {
        "version": QUALITY_VERSION,
        "file": QUALITY_FILE,
        "content_hash": CONTENT_HASH,
        "dedupe": options.dedupe,
        "on_label_conflict": options.on_label_conflict,
        "duplicates": {
            "num_groups": counts["duplicate_groups"],
            "num_rows": counts["duplicate_rows"],
            "num_rejected": counts["rejected"],
            "examples": [_group_json(group, located) for group in summary.duplicates.items()],
        },
        "label_conflicts": {
            "num_groups": counts["conflict_groups"],
            "num_rows": counts["conflict_rows"],
            "num_groups_written": counts["conflict_groups_written"],
            "examples": [_group_json(group, located) for group in summary.conflicts.items()],
        },
        "split_leakage": {
            "num_groups": counts["leak_groups"],
            "num_examples": counts["leak_examples"],
            "by_splits": dict(sorted(summary.leak_pairs.items())),
            "examples": [_group_json(group, located) for group in summary.leaks.items()],
        },
        "signal": signal,
        "flags": flags,
    }
