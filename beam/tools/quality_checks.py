"""What `inspect --verify` checks of data quality: quality.jsonl against the shards, and the warnings worth a look.

quality.jsonl is read as a stream (one shard's counters in memory at a time), so checking it costs
far less than the shards' full re-read that --verify does anyway.
"""

from __future__ import annotations

import json
from collections import Counter

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audioflow.beam.format import DatasetInfo
from audioflow.beam.format.quality import QUALITY_FILE

__all__ = ["content_problems", "quality_warnings"]

_MAX_PROBLEMS = 20


def _check_entry(line: bytes, expected: dict[str, int], counts: Counter) -> str | None:
    try:
        entry = json.loads(line)
        shard, index = entry["shard"], entry["index"]
    except (ValueError, KeyError, TypeError) as error:
        return f"not a content entry: {type(error).__name__}: {error}"
    if shard not in expected:
        return f"shard {shard!r} is not in dataset.json"
    counts[shard] += 1
    if index != counts[shard] - 1:
        return f"{shard} record {index}, expected record {counts[shard] - 1}"
    return None


def content_problems(dataset: str, info: DatasetInfo) -> list[str]:
    """Every way quality.jsonl disagrees with dataset.json: a missing file, unknown shards, counts, order."""
    name = info.quality.get("file", QUALITY_FILE)
    uri = FileSystems.join(dataset.rstrip("/"), name)
    if not FileSystems.exists(uri):
        return [f"{name}: listed in dataset.json but missing"]
    expected = {shard.name: shard.num_examples for split in info.splits.values() for shard in split.files}
    counts: Counter = Counter()
    problems = []
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        for number, line in enumerate(stream, start=1):
            problem = _check_entry(line, expected, counts)
            if problem:
                problems.append(f"{name}: line {number}: {problem}")
            if len(problems) >= _MAX_PROBLEMS:
                return [*problems, f"{name}: stopped after {_MAX_PROBLEMS} problems"]
    for shard, number in expected.items():
        if counts[shard] != number:
            problems.append(f"{name}: {counts[shard]} entries for {shard}, dataset.json says {number} records")
    return problems


def quality_warnings(info: DatasetInfo) -> list[str]:
    """Equal audio in more than one split (inflates test metrics) and under more than one label."""
    quality = info.quality or {}
    warnings = []
    leakage = quality.get("split_leakage", {})
    if leakage.get("num_groups"):
        pairs = ", ".join(f"{splits}: {count}" for splits, count in leakage.get("by_splits", {}).items())
        warnings.append(
            f"split leakage: {leakage['num_examples']} examples in {leakage['num_groups']} groups of equal audio "
            f"are in several splits ({pairs}); see dataset.json quality.split_leakage, or ingest with "
            "--dedupe content"
        )
    conflicts = quality.get("label_conflicts", {})
    if conflicts.get("num_groups_written"):
        warnings.append(
            f"label conflicts: {conflicts['num_groups_written']} groups of equal audio are in the dataset under "
            "more than one label; see dataset.json quality.label_conflicts, or ingest with --on-label-conflict"
        )
    return warnings
