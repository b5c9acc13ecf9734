"""The small values that flow between pipeline steps (rows, rejections, shard results).

Frozen dataclasses with slots (the local runner holds every row in memory, so their size matters);
job/coders.py encodes them between steps. Their shape is what the comment after each step in
job/graph.py refers to.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from audioflow.beam.prep.content import ContentStats
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.segments import SpanError, parse_span

__all__ = ["PlannedRow", "Rejection", "ShardStats", "ShardWritten"]


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """A manifest row that passed the row checks: where its file is and what it becomes."""

    row: ManifestRow
    split: str
    uri: str
    label: int | None  # None: unlabeled, or multi-label (see labels)
    label_name: str | None
    size: int = -1  # bytes on storage, known after StatFiles
    generation: int | None = None  # gs:// object generation (the read insists on it), or a local file's mtime in ns
    labels: tuple[int, ...] | None = None  # multi-label: the label indices (or integers), ascending
    label_names: tuple[str, ...] | None = None  # multi-label string labels: their names, in that order
    group: str | None = None  # with --split-by: the group the split was decided by

    @property
    def label_keys(self) -> list[str]:
        """The labels as dataset.json counts them (names, or integers as text); none when unlabeled."""
        if self.labels is not None:
            return list(self.label_names) if self.label_names is not None else [str(v) for v in self.labels]
        if self.label is None:
            return []
        return [self.label_name if self.label_name is not None else str(self.label)]

    @property
    def dedupe_key(self) -> str:
        """Rows are duplicates when this repeats: the file, and for segments the span as written
        (numbers compared by value, so '1.5' and '1.50' are the same start)."""
        if self.row.start is None or (not self.row.start and not self.row.end):
            return self.uri
        try:
            span = parse_span(self.row.start, self.row.end)
        except SpanError:
            return f"{self.uri}\x00{self.row.start}\x00{self.row.end}"
        return self.uri if span is None else f"{self.uri}\x00{span.key()}"


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

    def add(self, label_key: str | list[str], sample_rate: int, source_rate: int, channels: int, frames: int) -> None:
        """Counts one example; a list of labels (multi-label, or none) counts the example once per label."""
        duration = frames / sample_rate
        self.num_examples += 1
        self.num_frames += frames
        self.duration_seconds += duration
        if isinstance(label_key, str):
            self.label_counts[label_key] += 1
        else:
            self.label_counts.update(label_key)
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
    content: ContentStats = field(default_factory=ContentStats)  # segments, windows, text, groups
