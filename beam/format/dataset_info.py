"""dataset.json: what a finished dataset holds. Its presence in a folder means the dataset is complete."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXTENDED_FORMAT_VERSION",
    "FORMAT_VERSION",
    "METADATA_FILE",
    "READABLE_FORMAT_VERSIONS",
    "REJECTED_FILE",
    "DatasetInfo",
    "ShardInfo",
    "SplitInfo",
]

# Version 1: one whole file and one label (or none of the features below) per record. Version 2 adds
# what a manifest may ask for: multi-label, text, unlabeled audio, segments and windows, kept columns,
# groups; its records list their features in `content.features`. A dataset that uses none of these is
# still written as version 1, byte for byte, so readers that know only version 1 keep reading it.
FORMAT_VERSION = 1
EXTENDED_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (FORMAT_VERSION, EXTENDED_FORMAT_VERSION)
METADATA_FILE = "dataset.json"
REJECTED_FILE = "rejected.jsonl"


@dataclass(frozen=True)
class ShardInfo:
    """One shard file: its name (relative to the dataset folder), record count and size."""

    name: str
    num_examples: int
    num_bytes: int


@dataclass(frozen=True)
class SplitInfo:
    """One split: what it holds and which files hold it."""

    num_examples: int
    num_shards: int
    files: list[ShardInfo]
    duration_seconds: float
    num_bytes: int
    label_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    """The contents of dataset.json. Its presence in a folder means the dataset is complete.

    Sections beyond the typed ones (`stats`, `options`, `tool`, ...) are plain JSON objects so that
    adding a statistic never breaks older readers.
    """

    format_version: int
    created: str
    audio: dict[str, Any]  # sample_format, encoding, sample_rate (fixed or null), num_channels (fixed or null)
    compression: str
    splits: dict[str, SplitInfo]
    labels: dict[str, Any]  # names (list or null), counts {label: n}
    rejected: dict[str, Any]  # num_rows, by_reason, file, fraction, max_fraction, passed
    manifest: dict[str, Any]  # uri, sha256, num_rows
    audio_root: str
    stats: dict[str, Any]  # sample_rates, channels, duration_percentiles, total_hours, ...
    options: dict[str, Any]
    tool: dict[str, Any]
    # Record indexes for random access (format/index.py): {"version": 1, "files": {shard: index file}};
    # None for gzip shards and for datasets written before indexes (`audioflow index` adds it).
    index: dict[str, Any] | None = None
    # What the records hold beyond audio (README, "The dataset format"): the label kind, text, segments, windows,
    # kept columns, the split grouping and every feature's type. None in datasets written before it.
    content: dict[str, Any] | None = None
    # Data quality (format/quality.py): content hashes in quality.jsonl, signal statistics, duplicates,
    # label conflicts and split leakage; None for datasets written before it.
    quality: dict[str, Any] | None = None

    @property
    def sample_format(self) -> str:
        return self.audio["sample_format"]

    @property
    def label_names(self) -> list[str] | None:
        return self.labels.get("names")

    @property
    def features(self) -> dict[str, str] | None:
        """Every feature of the records and its wire type; None for datasets that predate the list
        (their records are version 1's: the label, and label_name for string labels)."""
        return (self.content or {}).get("features")

    @property
    def label_kind(self) -> str:
        """ "int" or "string" (one label per example), "multi_int" or "multi_string", or "none"."""
        kind = (self.content or {}).get("label_kind")
        return kind or ("int" if self.label_names is None else "string")

    @property
    def multi_label(self) -> bool:
        return self.label_kind.startswith("multi_")

    @property
    def labeled(self) -> bool:
        return self.label_kind != "none"

    @property
    def num_examples(self) -> int:
        return sum(split.num_examples for split in self.splits.values())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DatasetInfo:
        raw = json.loads(text)
        version = raw.get("format_version")
        if version not in READABLE_FORMAT_VERSIONS:
            raise ValueError(
                f"dataset format_version {version!r} is not supported (this audioflow reads "
                f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))})"
            )
        splits = {
            name: SplitInfo(
                num_examples=split["num_examples"],
                num_shards=split["num_shards"],
                files=[ShardInfo(**shard) for shard in split["files"]],
                duration_seconds=split["duration_seconds"],
                num_bytes=split["num_bytes"],
                label_counts=split.get("label_counts", {}),
            )
            for name, split in raw["splits"].items()
        }
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**{k: v for k, v in raw.items() if k in known}, "splits": splits})
