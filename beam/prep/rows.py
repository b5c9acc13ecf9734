"""The small values that flow between pipeline steps (rows, rejections, shard results).

Frozen dataclasses with slots (the local runner holds every row in memory, so their size matters);
job/coders.py encodes them between steps. Their shape is what the comment after each step in
job/graph.py refers to.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from audioflow.beam.prep.manifest import ManifestRow

__all__ = ["PlannedRow", "Rejection", "ShardStats", "ShardWritten"]


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """A manifest row that passed the row checks: where its file is and what it becomes."""

    row: ManifestRow
    split: str
    uri: str
    label: int
    label_name: str | None
    size: int = -1  # bytes on storage, known after StatFiles
    generation: int | None = None  # gs:// object generation seen by StatFiles; the read insists on it


@dataclass(frozen=True, slots=True)
class Rejection:
    """A manifest row that was not written, with a stable reason code and a human message."""

    line: int
    blob: str
    label: str
    split: str
    reason: str
    message: str

    @classmethod
    def of(cls, row: ManifestRow, split: str, reason: str, message: str) -> Rejection:
        return cls(line=row.line, blob=row.blob, label=row.label, split=split, reason=reason, message=message)

    def to_json_line(self) -> str:
        return json.dumps(
            {
                "line": self.line,
                "blob": self.blob,
                "label": self.label,
                "split": self.split,
                "reason": self.reason,
                "message": self.message,
            },
            ensure_ascii=False,
        )


@dataclass
class ShardStats:
    """Mergeable counts describing the examples of one shard (and, merged, of a split or dataset)."""

    num_examples: int = 0
    num_frames: int = 0
    duration_seconds: float = 0.0
    label_counts: Counter = field(default_factory=Counter)
    sample_rates: Counter = field(default_factory=Counter)
    source_sample_rates: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    durations_centiseconds: Counter = field(default_factory=Counter)

    def add(self, label_key: str, sample_rate: int, source_rate: int, channels: int, frames: int) -> None:
        duration = frames / sample_rate
        self.num_examples += 1
        self.num_frames += frames
        self.duration_seconds += duration
        self.label_counts[label_key] += 1
        self.sample_rates[sample_rate] += 1
        self.source_sample_rates[source_rate] += 1
        self.channels[channels] += 1
        self.durations_centiseconds[round(duration * 100)] += 1

    def merge(self, other: ShardStats) -> None:
        self.num_examples += other.num_examples
        self.num_frames += other.num_frames
        self.duration_seconds += other.duration_seconds
        for name in ("label_counts", "sample_rates", "source_sample_rates", "channels", "durations_centiseconds"):
            getattr(self, name).update(getattr(other, name))


@dataclass(frozen=True, slots=True)
class ShardWritten:
    """A complete temporary shard file, to be renamed to its final name by Finalize."""

    split: str
    unit: int
    part: int
    temp_uri: str
    num_bytes: int
    stats: ShardStats
