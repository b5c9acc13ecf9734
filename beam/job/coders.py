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

from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.rows import PlannedRow, Rejection

__all__ = ["ManifestRowCoder", "PlannedRowCoder", "RejectionCoder", "register_row_coders"]


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


class ManifestRowCoder(_FieldsCoder):
    cls = ManifestRow
    to_fields = staticmethod(operator.attrgetter("line", "label", "blob", "split", "problem"))
    from_fields = ManifestRow
    interned = (1, 3)  # label, split


def _planned_fields(planned: PlannedRow) -> tuple:
    row = planned.row
    return (
        *(row.line, row.label, row.blob, row.split, row.problem),
        *(planned.split, planned.uri, planned.label, planned.label_name, planned.size, planned.generation),
    )


def _planned_row(
    line: int, raw_label: str, blob: str, raw_split: str | None, problem: str | None, *planned: Any
) -> PlannedRow:
    return PlannedRow(ManifestRow(line, raw_label, blob, raw_split, problem), *planned)


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


def register_row_coders() -> None:
    """Tells Beam's coder registry to use these coders wherever a step declares a row type."""
    for coder in (ManifestRowCoder, PlannedRowCoder, RejectionCoder):
        coders.registry.register_coder(coder.cls, coder)
