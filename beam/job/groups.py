"""CheckGroups: how many groups each split holds, and the groups a `split` column puts in two splits.

A group is what the split is decided by: the --split-by value, or else the source file (its blob),
so every segment and window of a recording lands in one split. Hashing alone never splits a group;
a manifest's `split` column still wins, and the groups it splits are named in a warning and in
dataset.json (`content.grouping.crossing`). Only rows that can share a group are looked at (segment
manifests, or --split-by): otherwise each row is its own file and no pair is ever emitted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.rows import PlannedRow

__all__ = ["CROSSING_EXAMPLES", "CheckGroups"]

CROSSING_EXAMPLES = 20  # groups named in dataset.json (the lowest by name), of however many cross splits


def _group_and_split(planned: PlannedRow, by_column: bool) -> Iterator[tuple[str, str]]:
    if by_column or planned.row.start is not None:
        yield (planned.group if planned.group is not None else planned.row.blob), planned.split


class _SummariseFn(beam.CombineFn):
    """(group, [split]) -> {groups_per_split, crossing: {num_groups, examples: [{group, splits}]}}.

    The accumulator is (groups per split, number of crossing groups, the lowest crossing groups), so
    its size does not grow with the groups.
    """

    def create_accumulator(self) -> tuple[Counter, int, list[tuple[str, list[str]]]]:
        return Counter(), 0, []

    def add_input(self, accumulator: tuple, element: tuple[str, Iterable[str]]) -> tuple:
        per_split, crossing, lowest = accumulator
        group, splits = element
        distinct = sorted(set(splits))
        per_split.update(distinct)
        if len(distinct) > 1:
            crossing += 1
            lowest = sorted([*lowest, (group, distinct)])[:CROSSING_EXAMPLES]
        return per_split, crossing, lowest

    def merge_accumulators(self, accumulators: Iterable[tuple]) -> tuple:
        per_split: Counter = Counter()
        crossing, lowest = 0, []
        for counts, number, examples in accumulators:
            per_split.update(counts)
            crossing += number
            lowest = sorted([*lowest, *examples])[:CROSSING_EXAMPLES]
        return per_split, crossing, lowest

    def extract_output(self, accumulator: tuple) -> dict[str, Any]:
        per_split, crossing, lowest = accumulator
        return {
            "groups_per_split": dict(sorted(per_split.items())),
            "crossing": {
                "num_groups": crossing,
                "examples": [{"group": group, "splits": splits} for group, splits in lowest],
            },
        }


class CheckGroups(beam.PTransform):
    """PlannedRow -> the grouping summary (one dict; empty counts when no rows can share a group)."""

    def __init__(self, options: IngestOptions):
        super().__init__()
        self._by_column = bool(options.columns.split_by)

    def expand(self, planned: beam.PCollection) -> beam.PCollection:
        return (
            planned
            | "GroupAndSplit" >> beam.FlatMap(_group_and_split, self._by_column).with_output_types(tuple[str, str])
            # (group, split), for rows that can share a group
            | "DistinctPairs" >> beam.Distinct()
            | "SplitsPerGroup" >> beam.GroupByKey()
            # (group, [split])
            | "Summarise" >> beam.CombineGlobally(_SummariseFn())
        )
