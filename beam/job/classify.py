"""ClassifyRows: the label policy, each row's split, and the row checks that need no storage access."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.pvalue import AsSingleton, TaggedOutput

from audioflow.beam.job.metrics import REJECTED, rejected
from audioflow.beam.prep.manifest import LabelPolicy, ManifestColumns, ManifestRow
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import OutsideRootError, resolve_blob
from audioflow.beam.prep.rows import PlannedRow, Rejection
from audioflow.beam.prep.segments import SpanError, parse_span

__all__ = ["Classified", "ClassifyRows"]

_LOGGER = logging.getLogger(__name__)
_ROW_SPLITS = "row_splits"


class Classified(NamedTuple):
    """What ClassifyRows outputs."""

    planned: beam.PCollection  # PlannedRow: a row that passed the checks
    rejected: beam.PCollection  # Rejection: malformed_row, bad_split, bad_blob, bad_label, bad_segment,
    # too_long (segments), bad_column, bad_group, outside_root
    row_splits: beam.PCollection  # str: the split of every manifest row, rejected or not (for accounting)
    policy: beam.PCollection  # LabelPolicy (one)


def _cell_labels(row: ManifestRow, separator: str) -> list[str]:
    """The labels a row's cell names, for the vocabulary: the cell, or its parts for multi-label."""
    if not separator:
        return [row.label]
    return [part.strip() for part in row.label.split(separator)]


def _label_policy(
    labels: list[str], label_type: str, separator: str = "", columns: ManifestColumns | None = None
) -> LabelPolicy:
    labeled = columns is None or columns.label is not None
    policy = LabelPolicy.from_distinct_labels(labels, label_type, separator=separator, labeled=labeled)
    if policy.names is not None and label_type == "auto" and any(label.lstrip("+-").isdigit() for label in labels):
        _LOGGER.warning(
            "labels mix integers and strings, so all %d are treated as strings (sorted vocabulary); "
            "pass --label-type int to reject the non-integer ones instead",
            len(policy.names),
        )
    if policy.kind in ("int", "string") and columns is not None and columns.label is not None:
        header = columns.header[columns.label].strip().lower().replace("_", "")
        if header in ("labels", "positivelabels", "tags") and any("," in label for label in labels):
            _LOGGER.warning(
                "the label column %r holds commas but each cell is read as one label; "
                "pass --label-separator ',' for multi-label data",
                columns.header[columns.label],
            )
    return policy


class _ClassifyRowFn(beam.DoFn):
    """ManifestRow -> PlannedRow, or a Rejection; every row also reports its split for accounting."""

    def __init__(self, options: IngestOptions):
        self._options = options

    def process(self, row: ManifestRow, policy: LabelPolicy) -> Iterator[Any]:
        columns = self._options.columns
        group = columns.group_of(row.group or "") if columns.split_by else None
        # Every row of a group hashes to the same split: the group is the --split-by value, or the
        # blob (the source file: all segments and windows of a recording go to one split).
        split = row.split if row.split else self._options.splits.assign(group or row.blob)
        yield TaggedOutput(_ROW_SPLITS, split)
        outcome = self._check(row, split, policy, group)
        if isinstance(outcome, Rejection):
            yield rejected(outcome)
        else:
            yield outcome

    def _check(self, row: ManifestRow, split: str, policy: LabelPolicy, group: str | None) -> PlannedRow | Rejection:
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
        label: int | None = None
        label_name: str | None = None
        labels: tuple[int, ...] | None = None
        label_names: tuple[str, ...] | None = None
        if policy.separator and policy.labeled:
            encoded_many = policy.encode_many(row.label)
            if isinstance(encoded_many, str):
                return Rejection.of(row, split, "bad_label", f"line {row.line}: {encoded_many}")
            labels, label_names = encoded_many
        elif policy.labeled:
            encoded = policy.encode(row.label)
            if encoded is None:
                what = "empty label" if not row.label else f"label {row.label!r} is not an int64 integer"
                return Rejection.of(row, split, "bad_label", f"line {row.line}: {what}")
            label, label_name = encoded
        problem = self._check_span(row) or self._check_columns(row)
        if problem is not None:
            reason, message = problem
            return Rejection.of(row, split, reason, f"line {row.line}: {message}")
        if self._options.columns.split_by and group is None:
            columns = self._options.columns
            what = f"--split-by {columns.split_by!r} value {row.group!r}"
            why = (
                "is empty"
                if not (row.group or "").strip()
                else f"does not match --group-pattern {columns.group_pattern!r}"
            )
            return Rejection.of(row, split, "bad_group", f"line {row.line}: {what} {why}")
        try:
            uri = resolve_blob(self._options.audio_root, row.blob)
        except (OutsideRootError, ValueError) as error:
            return Rejection.of(row, split, "outside_root", f"line {row.line}: {error}")
        return PlannedRow(
            row=row,
            split=split,
            uri=uri,
            label=label,
            label_name=label_name,
            labels=labels,
            label_names=label_names,
            group=group,
        )

    def _check_span(self, row: ManifestRow) -> tuple[str, str] | None:
        """bad_segment for a span that is not one; too_long for a segment over --max-duration (without
        windows, a segment is one example, so the row alone decides it)."""
        try:
            span = parse_span(row.start, row.end)
        except SpanError as error:
            return "bad_segment", str(error)
        max_duration = self._options.audio.max_duration
        if span is not None and self._options.windows is None and max_duration and span.seconds > max_duration:
            return "too_long", f"the segment's {span.seconds:g} s is over --max-duration {max_duration:g} s"
        return None

    def _check_columns(self, row: ManifestRow) -> tuple[str, str] | None:
        try:
            self._options.columns.typed_columns(row.kept)
        except ValueError as error:
            return "bad_column", str(error)
        return None


class ClassifyRows(beam.PTransform):
    """ManifestRow -> Classified.

    The label policy (integer labels, or a sorted vocabulary of strings) needs every distinct label
    of the manifest, so it is computed first and reaches each row as a side input.
    """

    def __init__(self, options: IngestOptions, columns: beam.PCollection | None = None):
        """`columns`: the manifest's ManifestColumns (one), from ReadManifest; without it the
        manifest counts as labelled."""
        super().__init__()
        self._options = options
        self._columns = columns

    def expand(self, rows: beam.PCollection) -> Classified:
        options = self._options
        columns = AsSingleton(self._columns) if self._columns is not None else None
        policy = (
            rows
            | "Labels" >> beam.FlatMap(_cell_labels, options.label_separator)
            | "DistinctLabels" >> beam.Distinct()
            | "AllLabels" >> beam.combiners.ToList()
            | "LabelPolicy" >> beam.Map(_label_policy, options.label_type, options.label_separator, columns)
        )
        classified = rows | "Classify" >> (
            beam.ParDo(_ClassifyRowFn(self._options), AsSingleton(policy))
            .with_output_types(PlannedRow, **{REJECTED: Rejection, _ROW_SPLITS: str})
            .with_outputs(REJECTED, _ROW_SPLITS, main="planned")
        )
        return Classified(classified.planned, classified[REJECTED], classified[_ROW_SPLITS], policy)
