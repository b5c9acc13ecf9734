"""Manifest columns beyond label and blob: text targets, kept columns with their types, and groups.

Plain Python, decided once per row. Kept columns become features named as given in
`--keep-columns`; their names are checked against the format's own feature names at launch.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from audioflow.beam.format import COLUMN_TYPES, FEATURE_TYPES

__all__ = [
    "ColumnSpec",
    "normalise_text",
    "parse_column_types",
    "parse_keep_columns",
    "typed_value",
]

_FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT = re.compile(r"^[+-]?\d+$")
_INT64_RANGE = range(-(2**63), 2**63)
_FLOAT32_MAX = 3.4028234663852886e38


def normalise_text(text: str) -> str:
    """A text target as records hold it: Unicode NFC (composed), so 'é' is one code point however
    the manifest spelled it. Nothing else is changed (no case folding, no whitespace rules)."""
    return unicodedata.normalize("NFC", text)


def parse_keep_columns(text: str) -> tuple[str, ...]:
    """'speaker, age' -> ('speaker', 'age').

    Raises:
        ValueError: a name is not a valid feature name, is given twice, or is one of the format's own.
    """
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        if not _FEATURE_NAME.match(name):
            raise ValueError(
                f"--keep-columns: {name!r} cannot name a feature (letters, digits and _, not starting with a digit)"
            )
        if name.lower() in FEATURE_TYPES:
            raise ValueError(
                f"--keep-columns: {name!r} is a feature of the format itself; reserved names are "
                f"{', '.join(sorted(FEATURE_TYPES))}"
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"--keep-columns names {duplicates[0]!r} twice")
    return names


def parse_column_types(text: str, kept: tuple[str, ...]) -> dict[str, str]:
    """'age=int,weight=float' -> {'age': 'int', 'weight': 'float'}; columns not named are 'str'.

    Raises:
        ValueError: a malformed entry, an unknown type, or a column that --keep-columns does not keep.
    """
    types = dict.fromkeys(kept, "str")
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, kind = (piece.strip() for piece in part.partition("="))
        if not sep or kind not in COLUMN_TYPES:
            raise ValueError(
                f"--column-types: bad entry {part!r}: expected name=type with a type of {list(COLUMN_TYPES)}"
            )
        if name not in types:
            raise ValueError(f"--column-types: {name!r} is not in --keep-columns {list(kept)}")
        types[name] = kind
    return types


def typed_value(raw: str, kind: str) -> str | int | float:
    """A kept column's cell as its type.

    Raises:
        ValueError: naming the value and the type it does not fit.
    """
    if kind == "str":
        return raw
    if kind == "int":
        if _INT.match(raw) and int(raw) in _INT64_RANGE:
            return int(raw)
        raise ValueError(f"{raw!r} is not an int64 integer")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if value != value or abs(value) > _FLOAT32_MAX:  # NaN, or beyond float32 (infinities included)
        raise ValueError(f"{raw!r} is not a finite float32 number")
    return value


@dataclass(frozen=True)
class ColumnSpec:
    """Which extra columns a job reads: kept columns and their types, and the split grouping.

    Attributes:
        keep: kept columns, in the order given (their feature names).
        types: kept column -> "str", "int" or "float".
        split_by: the column whose value groups rows for splitting ("" for the default grouping).
        group_pattern: a regular expression; the group is its first capture group (or whole match)
            in the --split-by value, e.g. a speaker id inside a file name.
    """

    keep: tuple[str, ...] = ()
    types: dict[str, str] = field(default_factory=dict)
    split_by: str = ""
    group_pattern: str = ""

    def __post_init__(self) -> None:
        if self.group_pattern:
            try:
                compiled = re.compile(self.group_pattern)
            except re.error as error:
                raise ValueError(
                    f"--group-pattern {self.group_pattern!r} is not a regular expression: {error}"
                ) from None
            if not self.split_by:
                raise ValueError("--group-pattern needs --split-by (the column it applies to)")
            if compiled.groups > 1:
                raise ValueError("--group-pattern may have at most one capture group")

    @classmethod
    def parse(cls, keep_columns: str, column_types: str, split_by: str, group_pattern: str) -> ColumnSpec:
        keep = parse_keep_columns(keep_columns)
        return cls(keep, parse_column_types(column_types, keep), split_by.strip(), group_pattern)

    def group_of(self, raw: str) -> str | None:
        """The group a --split-by value names, or None when it is empty or does not match the pattern."""
        value = raw.strip()
        if not value:
            return None
        if not self.group_pattern:
            return value
        match = re.search(self.group_pattern, value)
        if match is None:
            return None
        group = match.group(1) if match.re.groups else match.group(0)
        return group or None

    def typed_columns(self, raw: tuple[str, ...]) -> tuple[tuple[str, str | int | float], ...]:
        """The kept cells as (name, typed value), sorted by name (the record's order).

        Raises:
            ValueError: naming the column and the value that does not fit its type.
        """
        values = []
        for name, cell in zip(self.keep, raw, strict=True):
            try:
                values.append((name, typed_value(cell, self.types[name])))
            except ValueError as error:
                raise ValueError(f"column {name!r} ({self.types[name]}): {error}") from None
        return tuple(sorted(values))
