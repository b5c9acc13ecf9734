"""What a shard's examples hold beyond audio and labels: segments, windows and text, as mergeable counts.

Kept apart from ShardStats (durations, rates, labels) so that each grows on its own; both travel in
ShardWritten and are merged by Finalize into dataset.json (`content.stats`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["TEXT_LENGTH_BUCKET", "ContentStats"]

TEXT_LENGTH_BUCKET = 10  # characters per bucket of the text-length histogram


@dataclass
class ContentStats:
    """Mergeable counts for one temporary shard (and, merged, a split or the dataset).

    Attributes:
        extra_examples: examples beyond the first of their row (windows), so that rows written =
            examples - extra_examples, wherever a row's windows landed.
        examples_per_row: windows per row -> rows (only with windows).
        examples_per_source: examples per source file -> files (segments and windows).
        text_lengths: text length bucket (characters, rounded down to TEXT_LENGTH_BUCKET) -> examples.
        clipped_segments: segments whose end lay past the end of their file.
    """

    extra_examples: int = 0
    examples_per_row: Counter = field(default_factory=Counter)
    examples_per_source: Counter = field(default_factory=Counter)
    text_lengths: Counter = field(default_factory=Counter)
    clipped_segments: int = 0

    def add_text(self, text: str) -> None:
        self.text_lengths[len(text) // TEXT_LENGTH_BUCKET * TEXT_LENGTH_BUCKET] += 1

    def merge(self, other: ContentStats) -> None:
        self.extra_examples += other.extra_examples
        self.clipped_segments += other.clipped_segments
        for name in ("examples_per_row", "examples_per_source", "text_lengths"):
            getattr(self, name).update(getattr(other, name))
