"""`inspect --verify`: re-read every shard and check it against dataset.json (CRC, parse, counts, index,
labels, and that no group of examples, a source file or a --split-by group, is in two splits)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import SAMPLE_FORMATS, AudioExample, DatasetInfo, decode_example, parse_shard_name
from audioflow.beam.storage import list_names, read_shard_records
from audioflow.beam.tools.indexing import index_problems
from audioflow.beam.tools.quality_checks import content_problems, quality_warnings

__all__ = ["VerifyReport", "verify_dataset"]


@dataclass
class VerifyReport:
    """What a full re-read found: records per split, and every problem with its file and record."""

    records_by_split: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # known and recorded in dataset.json, not failures
    groups_by_split: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.problems


class _Groups:
    """Which splits each group of examples was found in (a group is the --split-by value, else the
    blob). Groups are kept as 8-byte digests, so memory stays small per group; names are kept only
    for the first few that cross splits."""

    _NAMED = 20

    def __init__(self, split_names: list[str]):
        self._bits = {name: 1 << index for index, name in enumerate(split_names)}
        self._names = split_names
        self._seen: dict[int, int] = {}
        self.crossing: dict[str, set[str]] = {}
        self.num_crossing = 0

    def add(self, example: AudioExample, split: str) -> None:
        group = example.group if example.group is not None else example.blob
        key = int.from_bytes(hashlib.blake2b(group.encode(), digest_size=8).digest(), "big")
        before = self._seen.get(key, 0)
        after = before | self._bits[split]
        if after == before:
            return
        self._seen[key] = after
        if before and before.bit_count() == 1:
            self.num_crossing += 1
        if before and (group in self.crossing or len(self.crossing) < self._NAMED):
            self.crossing[group] = {name for name, bit in self._bits.items() if after & bit}

    def per_split(self) -> Counter:
        counts: Counter = Counter()
        for bits in self._seen.values():
            counts.update(name for name, bit in self._bits.items() if bits & bit)
        return counts


def _label_problem(example: AudioExample, info: DatasetInfo) -> str | None:
    """Why the record's labels do not fit dataset.json's labels, if they do not."""
    names, kind = info.label_names, info.label_kind
    if kind == "none":
        return "holds a label, but the dataset is unlabeled" if example.label_keys else None
    if info.multi_label:
        if example.labels is None or not example.labels:
            return "has no labels list"
        if names is None:
            return None
        if example.label_names is None or len(example.label_names) != len(example.labels):
            return "has no label_names matching its labels"
        for index, name in zip(example.labels, example.label_names, strict=True):
            if not (0 <= index < len(names) and names[index] == name):
                return f"label {index} / {name!r} is not in labels.names"
        return None
    if example.label is None:
        return "has no label"
    if names is not None and not (0 <= example.label < len(names) and names[example.label] == example.label_name):
        return f"label {example.label} / {example.label_name!r} is not in labels.names"
    return None


def _check_shard(
    uri: str, name: str, info: DatasetInfo, sizes: list[int], groups: _Groups | None = None, split: str = ""
) -> Iterator[str | None]:
    """Yields None per good record and a message per problem; stops at the first framing error.
    Appends each record's payload size to `sizes` (to check the shard's index against)."""
    bytes_per_sample = SAMPLE_FORMATS[info.sample_format][1]
    try:
        for index, payload in enumerate(read_shard_records(uri)):
            sizes.append(len(payload))
            try:
                example = decode_example(payload)
            except ValueError as error:
                yield f"{name}: record {index}: cannot be parsed: {error}"
                continue
            expected = example.num_frames * example.num_channels * bytes_per_sample
            if len(example.audio) != expected or example.num_frames <= 0:
                yield (
                    f"{name}: record {index} ({example.blob}): {len(example.audio)} audio bytes, "
                    f"expected {expected} for {example.num_frames} frames × {example.num_channels} channels"
                )
            elif (problem := _label_problem(example, info)) is not None:
                yield f"{name}: record {index} ({example.blob}): {problem}"
            else:
                if groups is not None:
                    groups.add(example, split)
                yield None
    except DatasetError as error:
        yield str(error)


def verify_dataset(dataset: str, info: DatasetInfo) -> VerifyReport:
    """Reads every record of every shard and compares with the metadata; never raises for bad data."""
    report = VerifyReport()
    groups = _Groups(list(info.splits))
    listed = set()
    for split, split_info in info.splits.items():
        for shard in split_info.files:
            listed.add(shard.name)
            uri = FileSystems.join(dataset.rstrip("/"), shard.name)
            if not FileSystems.exists(uri):
                report.problems.append(f"{shard.name}: listed in dataset.json but missing")
                continue
            good, sizes = 0, []
            for problem in _check_shard(uri, shard.name, info, sizes, groups, split):
                if problem is None:
                    good += 1
                else:
                    report.problems.append(problem)
            report.problems.extend(index_problems(dataset, shard, info, sizes))
            report.records_by_split[split] += good
            if good != shard.num_examples:
                report.problems.append(f"{shard.name}: {good} valid records, dataset.json says {shard.num_examples}")
        if report.records_by_split[split] != split_info.num_examples:
            found = report.records_by_split[split]
            report.problems.append(f"split {split}: {found} valid records, dataset.json says {split_info.num_examples}")
    for name in list_names(dataset):
        if parse_shard_name(name) and name not in listed:
            report.problems.append(f"{name}: a shard file that dataset.json does not list")
    _check_groups(report, groups, info)
    if info.quality is not None:
        report.problems.extend(content_problems(dataset, info))
        report.warnings.extend(quality_warnings(info))
    return report


def _check_groups(report: VerifyReport, groups: _Groups, info: DatasetInfo) -> None:
    """A group in two splits is a problem, unless dataset.json records at least that many crossings: a
    manifest's split column put them there, and ingest warned (then they are reported as warnings)."""
    report.groups_by_split = groups.per_split()
    if not groups.num_crossing:
        return
    grouping = (info.content or {}).get("grouping") or {}
    by = f"--split-by {grouping['column']!r}" if grouping.get("by") == "column" else "source file (blob)"
    named = "; ".join(f"{group!r} in {', '.join(sorted(splits))}" for group, splits in sorted(groups.crossing.items()))
    message = f"{groups.num_crossing} group(s) by {by} are in more than one split: {named}"
    recorded = (grouping.get("crossing") or {}).get("num_groups", 0)
    if groups.num_crossing <= recorded:
        report.warnings.append(message + " (the manifest's split column put them there; dataset.json records it)")
    else:
        report.problems.append(message + f" (dataset.json records {recorded})")
