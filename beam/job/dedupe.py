"""DropDuplicates: one row per file (per file and span, for segments); the lowest manifest line wins."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from audioflow.beam.job.metrics import REJECTED, rejected
from audioflow.beam.prep.rows import PlannedRow, Rejection

__all__ = ["Deduplicated", "DropDuplicates"]


class Deduplicated(NamedTuple):
    """What DropDuplicates outputs."""

    unique: beam.PCollection  # PlannedRow, one per distinct file
    rejected: beam.PCollection  # Rejection: duplicate


def _keyed_by_uri(planned: PlannedRow) -> tuple[str, PlannedRow]:
    return planned.dedupe_key, planned


def _pick_first_of_duplicates(element: tuple[str, Iterable[PlannedRow]]) -> Iterator[Any]:
    _, rows = element
    first, *later = sorted(rows, key=lambda planned: planned.row.line)
    yield first
    for planned in later:
        row = planned.row
        span = f" from {row.start} s to {row.end} s" if row.start else ""
        message = f"line {row.line}: {row.blob!r}{span} is already listed on line {first.row.line}"
        yield rejected(Rejection.of(planned.row, planned.split, "duplicate", message))


class DropDuplicates(beam.PTransform):
    """PlannedRow -> Deduplicated. Rows are duplicates when they name the same file (URI) and, for
    segments, the same start and end."""

    def expand(self, planned: beam.PCollection) -> Deduplicated:
        picked = (
            planned
            | "KeyByUri" >> beam.Map(_keyed_by_uri).with_output_types(tuple[str, PlannedRow])
            | "GroupByUri" >> beam.GroupByKey()
            | "PickFirst"
            >> beam.FlatMap(_pick_first_of_duplicates)
            .with_output_types(PlannedRow, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="unique")
        )
        return Deduplicated(picked.unique, picked[REJECTED])
