"""ClassifyRows: the label policy, each row's split, and the row checks that need no storage access."""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsSingleton, TaggedOutput

from audioflow.beam.job.metrics import NAMESPACE, REJECTED, rejected
from audioflow.beam.prep.manifest import LabelPolicy, ManifestRow
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import OutsideRootError, resolve_blob
from audioflow.beam.prep.rows import PlannedRow, Rejection

__all__ = ["Classified", "ClassifyRows"]

_LOGGER = logging.getLogger(__name__)
_ROW_SPLITS = "row_splits"


class Classified(NamedTuple):
    """What ClassifyRows outputs."""

    planned: beam.PCollection  # PlannedRow: a row that passed the checks
    rejected: beam.PCollection  # Rejection: malformed_row, bad_split, bad_blob, bad_label, outside_root
    row_splits: beam.PCollection  # str: the split of every manifest row, rejected or not (for accounting)
    policy: beam.PCollection  # LabelPolicy (one)


def _label_policy(labels: list[str], label_type: str) -> LabelPolicy:
    policy = LabelPolicy.from_distinct_labels(labels, label_type)
    if policy.names is not None and label_type == "auto" and any(label.lstrip("+-").isdigit() for label in labels):
        _LOGGER.warning(
            "labels mix integers and strings, so all %d are treated as strings (sorted vocabulary); "
            "pass --label-type int to reject the non-integer ones instead",
            len(policy.names),
        )
    return policy


class _ClassifyRowFn(beam.DoFn):
    """ManifestRow -> PlannedRow, or a Rejection; every row also reports its split for accounting."""

    def __init__(self, options: IngestOptions):
        self._options = options
        self._rejected = Metrics.counter(NAMESPACE, "rows_rejected")

    def process(self, row: ManifestRow, policy: LabelPolicy) -> Iterator[Any]:
        split = row.split if row.split else self._options.splits.assign(row.blob)
        yield TaggedOutput(_ROW_SPLITS, split)
        outcome = self._check(row, split, policy)
        if isinstance(outcome, Rejection):
            self._rejected.inc()
            yield rejected(outcome)
        else:
            yield outcome

    def _check(self, row: ManifestRow, split: str, policy: LabelPolicy) -> PlannedRow | Rejection:
        if row.problem:
            return Rejection.of(row, split, "malformed_row", f"line {row.line}: {row.problem}")
        if split not in self._options.splits.names:
            return Rejection.of(
                row,
                split,
                "bad_split",
                f"line {row.line}: split {split!r} is not one of {list(self._options.splits.names)}",
            )
        if not row.blob:
            return Rejection.of(row, split, "bad_blob", f"line {row.line}: empty blob name")
        encoded = policy.encode(row.label)
        if encoded is None:
            what = "empty label" if not row.label else f"label {row.label!r} is not an int64 integer"
            return Rejection.of(row, split, "bad_label", f"line {row.line}: {what}")
        try:
            uri = resolve_blob(self._options.audio_root, row.blob)
        except (OutsideRootError, ValueError) as error:
            return Rejection.of(row, split, "outside_root", f"line {row.line}: {error}")
        return PlannedRow(row=row, split=split, uri=uri, label=encoded[0], label_name=encoded[1])


class ClassifyRows(beam.PTransform):
    """ManifestRow -> Classified.

    The label policy (integer labels, or a sorted vocabulary of strings) needs every distinct label
    of the manifest, so it is computed first and reaches each row as a side input.
    """

    def __init__(self, options: IngestOptions):
        super().__init__()
        self._options = options

    def expand(self, rows: beam.PCollection) -> Classified:
        policy = (
            rows
            | "Labels" >> beam.Map(operator.attrgetter("label"))
            | "DistinctLabels" >> beam.Distinct()
            | "AllLabels" >> beam.combiners.ToList()
            | "LabelPolicy" >> beam.Map(_label_policy, self._options.label_type)
        )
        classified = rows | "Classify" >> (
            beam.ParDo(_ClassifyRowFn(self._options), AsSingleton(policy))
            .with_output_types(PlannedRow, **{REJECTED: Rejection, _ROW_SPLITS: str})
            .with_outputs(REJECTED, _ROW_SPLITS, main="planned")
        )
        return Classified(classified.planned, classified[REJECTED], classified[_ROW_SPLITS], policy)
