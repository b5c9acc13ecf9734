"""The CSV manifest: column detection, row parsing and label rules (plain Python, no Beam).

A manifest is RFC 4180 CSV in UTF-8 (with or without BOM, CRLF or LF) whose header names a label
column and a blob column; an optional `split` column assigns splits. Blank lines are not rows.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from audioflow.beam.errors import ManifestError

__all__ = [
    "HashingReader",
    "LabelPolicy",
    "ManifestColumns",
    "ManifestRow",
    "detect_columns",
    "iter_manifest_rows",
    "parse_int_label",
]

_LABEL_NAMES = ("label", "labels", "class", "classname", "target", "category")
_BLOB_NAMES = ("blobname", "blob", "path", "file", "filename", "filepath", "audio", "audiopath", "uri", "name")
_SPLIT_NAMES = ("split", "subset", "fold")
_INT_LABEL = re.compile(r"^[+-]?\d+$")
_INT64_RANGE = range(-(2**63), 2**63)
_SETTING = re.compile(r"^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*)=.*$", re.DOTALL)  # KEY=VALUE, .env style


def _normalise(name: str) -> str:
    """'Blob Name', 'blob_name' and ' BLOB-name ' all become 'blobname'."""
    return re.sub(r"[\s_\-]+", "", name).lower()


@dataclass(frozen=True)
class ManifestColumns:
    """Where the label, blob and (optional) split sit in each row."""

    label: int
    blob: int
    split: int | None
    header: tuple[str, ...]


def _shown(header: list[str]) -> list[str]:
    """The header as error messages show it. A cell like KEY=VALUE is what a settings file (.env)
    passed as --manifest by mistake looks like, and its value may be a credential: shown as KEY=…"""
    return [_SETTING.sub(r"\1=…", cell) for cell in header]


def detect_columns(
    header: list[str], label_column: str | None = None, blob_column: str | None = None
) -> ManifestColumns:
    """Finds the columns by name, case- and space-insensitively; explicit names win.

    Raises:
        ManifestError: naming the header that was found and what was expected.
    """
    names = [_normalise(cell) for cell in header]

    def find(override: str | None, candidates: tuple[str, ...], what: str) -> int | None:
        wanted = (_normalise(override),) if override else candidates
        for candidate in wanted:
            if candidate in names:
                return names.index(candidate)
        if override:
            raise ManifestError(f"manifest has no {what} column {override!r}; its header is {_shown(header)!r}")
        return None

    label = find(label_column, _LABEL_NAMES, "label")
    blob = find(blob_column, _BLOB_NAMES, "blob")
    if label is None or blob is None or label == blob:
        raise ManifestError(
            f"manifest header {_shown(header)!r} does not name a label and a blob column "
            "(expected e.g. 'Label,Blob Name'; use --label-column/--blob-column for other names)"
        )
    return ManifestColumns(label=label, blob=blob, split=find(None, _SPLIT_NAMES, "split"), header=tuple(header))


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One data row as written. `line` is the 1-based line of the CSV where the row starts."""

    line: int
    label: str
    blob: str
    split: str | None = None
    problem: str | None = None  # set when the row itself is malformed (e.g. too few fields)


class HashingReader(io.RawIOBase):
    """Wraps a binary stream and hashes everything read through it (for manifest.sha256)."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        self.sha256.update(data)
        buffer[: len(data)] = data
        return len(data)


def iter_manifest_rows(
    stream: BinaryIO, label_column: str | None = None, blob_column: str | None = None, name: str = "manifest"
) -> Iterator[ManifestRow]:
    """Yields every non-blank data row of a CSV manifest, streaming (memory does not grow with rows).

    Raises:
        ManifestError: when the file is empty, not UTF-8, or its header is not recognised.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=False)
    try:
        header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
        if header is None:
            raise ManifestError(f"{name} is empty: expected a header such as 'Label,Blob Name'")
        columns = detect_columns(header, label_column, blob_column)
        needed = max(columns.label, columns.blob)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line; a line of empty fields (",") is a row, and gets rejected
            yield _row(cells, columns, needed, line)
    except UnicodeDecodeError as error:
        raise ManifestError(f"{name} is not UTF-8 near line {reader.line_num + 1}: {error.reason}") from None
    except csv.Error as error:
        raise ManifestError(f"{name} line {reader.line_num}: {error}") from None


def _row(cells: list[str], columns: ManifestColumns, needed: int, line: int) -> ManifestRow:
    def cell(index: int | None) -> str | None:
        return cells[index].strip() if index is not None and index < len(cells) else None

    problem = None
    if len(cells) <= needed:
        problem = f"row has {len(cells)} field(s); the header has {len(columns.header)}"
    return ManifestRow(
        line=line,
        label=cell(columns.label) or "",
        blob=cell(columns.blob) or "",
        split=cell(columns.split),
        problem=problem,
    )


def parse_int_label(raw: str) -> int | None:
    """Returns the label as an int64, or None if it is not an integer in range."""
    if not _INT_LABEL.match(raw):
        return None
    value = int(raw)
    return value if value in _INT64_RANGE else None


@dataclass(frozen=True)
class LabelPolicy:
    """How labels become the int64 `label` feature.

    Integer labels are used as written. Otherwise every distinct label string is mapped to its
    index in the sorted vocabulary, which dataset.json records as `labels.names`.
    """

    names: tuple[str, ...] | None  # None: integer labels

    @classmethod
    def from_distinct_labels(cls, labels: Iterable[str], label_type: str = "auto") -> LabelPolicy:
        """Decides the policy from every distinct non-empty label in the manifest.

        `auto` picks integers when every label is an integer, strings otherwise; `int` and `string`
        force the choice (with `int`, non-integer labels are rejected as bad_label).
        """
        distinct = sorted({label for label in labels if label})
        if label_type == "int" or (
            label_type == "auto" and all(parse_int_label(label) is not None for label in distinct)
        ):
            return cls(names=None)
        return cls(names=tuple(distinct))

    def encode(self, raw: str) -> tuple[int, str | None] | None:
        """Returns (label, label_name) for a raw label, or None if the label is not acceptable."""
        if not raw:
            return None
        if self.names is None:
            value = parse_int_label(raw)
            return None if value is None else (value, None)
        index = _bisect(self.names, raw)
        return None if index is None else (index, raw)


def _bisect(names: tuple[str, ...], value: str) -> int | None:
    index = bisect.bisect_left(names, value)
    return index if index < len(names) and names[index] == value else None
