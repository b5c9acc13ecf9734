"""Compact, deterministic Beam coders for the rows that flow between pipeline steps.

Without them Beam pickles each dataclass, repeating the class path in every element. Rows are what
the local runner holds in memory between stages and what each GroupByKey holds while it groups, so
their encoded size matters: a flat tuple of fields through Beam's compiled coder is a fraction of
the pickle and cheaper to encode and decode (figures in bench/RESULTS.md). It is also deterministic,
so rows may be used in keys.

`register_row_coders()` (called when the graph is built) puts them in Beam's coder registry, and the
composites under job/ declare their steps' output types so that Beam picks them. The coders travel
pickled in the job graph, so Dataflow workers need only audioflow installed, as they already do.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Callable
from typing import Any

from apache_beam import coders
from apache_beam.coders import coder_impl
from apache_beam.coders.coders import FastCoder

from audioflow.beam.prep.equal_audio import HashedRecord
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.rows import PlannedRow, Rejection

__all__ = ["HashedRecordCoder", "ManifestRowCoder", "PlannedRowCoder", "RejectionCoder", "register_row_coders"]


class _FieldsCoderImpl(coder_impl.StreamCoderImpl):
    """Encodes a row as one flat tuple of str/int/None with Beam's compiled primitives coder.

    One flat tuple is cheaper than a tuple coder with a coder per field. Decoding interns the fields
    that repeat across rows (split, label), so the decoded copies a GroupByKey holds share one string
    each instead of one per row.
    """

    def __init__(self, to_fields: Callable[[Any], tuple], from_fields: Callable[..., Any], interned: tuple[int, ...]):
        self._to_fields, self._from_fields, self._interned = to_fields, from_fields, interned
        self._primitives = coders.FastPrimitivesCoder().get_impl()

    def encode_to_stream(self, value: Any, stream: Any, nested: bool) -> None:
        self._primitives.encode_to_stream(self._to_fields(value), stream, nested)

    def decode_from_stream(self, stream: Any, nested: bool) -> Any:
        fields = self._primitives.decode_from_stream(stream, nested)
        if self._interned:
            fields = list(fields)
            for index in self._interned:
                if fields[index] is not None:
                    fields[index] = sys.intern(fields[index])
        return self._from_fields(*fields)


class _FieldsCoder(FastCoder):
    """Base of the row coders: how a row becomes a flat tuple of str, int and None, and back."""

    cls: type
    interned: tuple[int, ...] = ()  # positions in the flat tuple of fields that repeat across rows

    @staticmethod
    def to_fields(value: Any) -> tuple:
        raise NotImplementedError

    @staticmethod
    def from_fields(*fields: Any) -> Any:
        raise NotImplementedError

    def _create_impl(self) -> coder_impl.CoderImpl:
        return _FieldsCoderImpl(self.to_fields, self.from_fields, self.interned)

    def is_deterministic(self) -> bool:
        return True  # str, int and None encode one way only

    def to_type_hint(self) -> type:
        return self.cls

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


_ROW_FIELDS = ("line", "label", "blob", "split", "problem")
# Fields that only manifests with segments, text, --split-by or --keep-columns fill: encoded as one
# trailing tuple, and not at all when they are all unset, so plain rows stay as small as before.
_EXTRA_ROW_FIELDS = ("start", "end", "text", "group", "kept")
_EXTRA_PLANNED_FIELDS = ("labels", "label_names", "group")


def _extras(value: Any, names: tuple[str, ...], empty: tuple) -> tuple:
    """(the named fields,), or () when they all hold their defaults."""
    extras = tuple(getattr(value, name) for name in names)
    return () if extras == empty else (extras,)


def _manifest_row_fields(row: ManifestRow) -> tuple:
    return (*(getattr(row, name) for name in _ROW_FIELDS), *_extras(row, _EXTRA_ROW_FIELDS, _NO_ROW_EXTRAS))


_NO_ROW_EXTRAS = (None, None, None, None, ())
_NO_EXTRAS = (None, None, None)


def _manifest_row(line: int, label: str, blob: str, split: str | None, problem: str | None, *extra: Any) -> ManifestRow:
    row = ManifestRow(line, label, blob, split, problem)
    if extra:
        start, end, text, group, kept = extra[0]
        row = ManifestRow(line, label, blob, split, problem, start, end, text, group, tuple(kept))
    return row


class ManifestRowCoder(_FieldsCoder):
    cls = ManifestRow
    to_fields = staticmethod(_manifest_row_fields)
    from_fields = staticmethod(_manifest_row)
    interned = (1, 3)  # label, split


def _planned_fields(planned: PlannedRow) -> tuple:
    row = planned.row
    return (
        *(getattr(row, name) for name in _ROW_FIELDS),
        *(planned.split, planned.uri, planned.label, planned.label_name, planned.size, planned.generation),
        *_planned_tail(planned),
    )


def _planned_tail(planned: PlannedRow) -> tuple:
    row_extra = _extras(planned.row, _EXTRA_ROW_FIELDS, _NO_ROW_EXTRAS)
    planned_extra = _extras(planned, _EXTRA_PLANNED_FIELDS, _NO_EXTRAS)
    return ((row_extra, planned_extra),) if row_extra or planned_extra else ()


def _planned_row(
    line: int,
    raw_label: str,
    blob: str,
    raw_split: str | None,
    problem: str | None,
    split: str,
    uri: str,
    label: int | None,
    label_name: str | None,
    size: int,
    generation: int | None,
    *extra: Any,
) -> PlannedRow:
    row_extra, planned_extra = extra[0] if extra else ((), ())
    row = _manifest_row(line, raw_label, blob, raw_split, problem, *row_extra)
    labels = label_names = group = None
    if planned_extra:
        labels, label_names, group = planned_extra[0]
        labels = None if labels is None else tuple(labels)
        label_names = None if label_names is None else tuple(sys.intern(name) for name in label_names)
    return PlannedRow(row, split, uri, label, label_name, size, generation, labels, label_names, group)


class PlannedRowCoder(_FieldsCoder):
    cls = PlannedRow
    to_fields = staticmethod(_planned_fields)
    from_fields = staticmethod(_planned_row)
    interned = (1, 3, 5, 8)  # the row's label and split, the split, the label name


class RejectionCoder(_FieldsCoder):
    cls = Rejection
    to_fields = staticmethod(operator.attrgetter("line", "blob", "label", "split", "reason", "message"))
    from_fields = Rejection
    interned = (2, 3, 4)  # label, split, reason


class HashedRecordCoder(_FieldsCoder):
    cls = HashedRecord
    to_fields = staticmethod(
        operator.attrgetter("content_hash", "line", "blob", "label", "label_key", "split", "shard", "index")
    )
    from_fields = HashedRecord
    interned = (3, 4, 5, 6)  # label, label key, split, shard file


def register_row_coders() -> None:
    """Tells Beam's coder registry to use these coders wherever a step declares a row type."""
    for coder in (ManifestRowCoder, PlannedRowCoder, RejectionCoder, HashedRecordCoder):
        coders.registry.register_coder(coder.cls, coder)
