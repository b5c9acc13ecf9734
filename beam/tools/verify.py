"""`inspect --verify`: re-read every shard and check it against dataset.json (CRC, parse, counts, index)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import SAMPLE_FORMATS, DatasetInfo, decode_example, parse_shard_name
from audioflow.beam.storage import list_names, read_shard_records
from audioflow.beam.tools.indexing import index_problems

__all__ = ["VerifyReport", "verify_dataset"]


@dataclass
class VerifyReport:
    """What a full re-read found: records per split, and every problem with its file and record."""

    records_by_split: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _check_shard(uri: str, name: str, info: DatasetInfo, sizes: list[int]) -> Iterator[str | None]:
    """Yields None per good record and a message per problem; stops at the first framing error.
    Appends each record's payload size to `sizes` (to check the shard's index against)."""
    bytes_per_sample = SAMPLE_FORMATS[info.sample_format][1]
    names = info.label_names
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
            elif names is not None and not (
                0 <= example.label < len(names) and names[example.label] == example.label_name
            ):
                label = f"{example.label} / {example.label_name!r}"
                yield f"{name}: record {index} ({example.blob}): label {label} is not in labels.names"
            else:
                yield None
    except DatasetError as error:
        yield str(error)


def verify_dataset(dataset: str, info: DatasetInfo) -> VerifyReport:
    """Reads every record of every shard and compares with the metadata; never raises for bad data."""
    report = VerifyReport()
    listed = set()
    for split, split_info in info.splits.items():
        for shard in split_info.files:
            listed.add(shard.name)
            uri = FileSystems.join(dataset.rstrip("/"), shard.name)
            if not FileSystems.exists(uri):
                report.problems.append(f"{shard.name}: listed in dataset.json but missing")
                continue
            good, sizes = 0, []
            for problem in _check_shard(uri, shard.name, info, sizes):
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
    return report
