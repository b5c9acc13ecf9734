"""The CSV manifest: column detection, row parsing and label rules (plain Python, no Beam).

A manifest is RFC 4180 CSV in UTF-8 (with or without BOM, CRLF or LF) whose header names a blob
column and usually a label column (without one the audio is unlabeled). Optional columns: `split`,
`start`/`end` (a segment of the file, in seconds), a text target, the --split-by column and the
--keep-columns. Blank lines are not rows.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator
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
    "read_manifest_header",
]

_LABEL_NAMES = ("label", "labels", "class", "classname", "target", "category", "positivelabels", "tags")
_BLOB_NAMES = ("blobname", "blob", "path", "file", "filename", "fname", "filepath", "audio", "audiopath", "uri", "name")
_SPLIT_NAMES = ("split", "subset", "fold")
_START_NAMES = ("start", "startseconds", "starttime", "onset")
_END_NAMES = ("end", "endseconds", "endtime", "offset")
_TEXT_NAMES = ("text", "transcript", "transcription", "sentence")
_INT_LABEL = re.compile(r"^[+-]?\d+$")
_INT64_RANGE = range(-(2**63), 2**63)
_SETTING = re.compile(r"^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*)=.*$", re.DOTALL)  # KEY=VALUE, .env style


def _normalise(name: str) -> str:
    """'Blob Name', 'blob_name' and ' BLOB-name ' all become 'blobname'."""
    return re.sub(r"[\s_\-]+", "", name).lower()


@dataclass(frozen=True)
class ManifestColumns:
    """Where each column the job reads sits in a row (None: the manifest has no such column)."""

    label: int | None
    blob: int
    split: int | None
    header: tuple[str, ...]
    start: int | None = None
    end: int | None = None
    text: int | None = None
    group: int | None = None
    kept: tuple[int, ...] = ()

    @property
    def unused(self) -> list[str]:
        """Header cells no option reads (candidates for --keep-columns or --label-column)."""
        used = {self.label, self.blob, self.split, self.start, self.end, self.text, self.group, *self.kept}
        return [name for index, name in enumerate(self.header) if index not in used and name.strip()]


def _shown(header: list[str]) -> list[str]:
    """The header as error messages show it. A cell like KEY=VALUE is what a settings file (.env)
    passed as --manifest by mistake looks like, and its value may be a credential: shown as KEY=…"""
    return [_SETTING.sub(r"\1=…", cell) for cell in header]


def detect_columns(
    header: list[str],
    label_column: str | None = None,
    blob_column: str | None = None,
    *,
    split_by: str = "",
    keep: tuple[str, ...] = (),
) -> ManifestColumns:
    """Finds the columns by name, case- and space-insensitively; explicit names win.

    A manifest without a label column is unlabeled audio; one with `start` and `end` columns names
    segments. `split_by` and `keep` name columns that must exist.

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
    if blob is None or label == blob:
        raise ManifestError(
            f"manifest header {_shown(header)!r} does not name a label and a blob column "
            "(expected e.g. 'Label,Blob Name'; use --label-column/--blob-column for other names)"
        )
    start, end = find(None, _START_NAMES, "start"), find(None, _END_NAMES, "end")
    if (start is None) != (end is None):
        present, missing = ("start", "end") if end is None else ("end", "start")
        raise ManifestError(
            f"manifest header {_shown(header)!r} has a segment {present} column but no {missing} column "
            f"(segments need both, in seconds: {', '.join(_START_NAMES[:2])} / {', '.join(_END_NAMES[:2])}, ...)"
        )
    return ManifestColumns(
        label=label,
        blob=blob,
        split=find(None, _SPLIT_NAMES, "split"),
        header=tuple(header),
        start=start,
        end=end,
        text=find(None, _TEXT_NAMES, "text"),
        group=find(split_by, (), "--split-by") if split_by else None,
        kept=tuple(find(name, (), "--keep-columns") for name in keep),  # type: ignore[misc]
    )


@dataclass(frozen=True, slots=True)
class ManifestRow:
    """One data row as written. `line` is the 1-based line of the CSV where the row starts."""

    line: int
    label: str
    blob: str
    split: str | None = None
    problem: str | None = None  # set when the row itself is malformed (e.g. too few fields)
    start: str | None = None  # segment start and end in seconds, as written (None: no such column)
    end: str | None = None
    text: str | None = None  # the text target, as written
    group: str | None = None  # the --split-by column's value, as written
    kept: tuple[str, ...] = ()  # the --keep-columns' values, as written, in --keep-columns order


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
    stream: BinaryIO,
    label_column: str | None = None,
    blob_column: str | None = None,
    name: str = "manifest",
    *,
    split_by: str = "",
    keep: tuple[str, ...] = (),
    on_columns: Callable[[ManifestColumns], None] | None = None,
) -> Iterator[ManifestRow]:
    """Yields every non-blank data row of a CSV manifest, streaming (memory does not grow with rows).
    `on_columns` is called with the columns found in the header, before the first row.

    Raises:
        ManifestError: when the file is empty, not UTF-8, or its header is not recognised.
    """
    return _iter_rows(stream, label_column, blob_column, name, split_by, keep, on_columns)


def read_manifest_header(
    stream: BinaryIO,
    label_column: str | None = None,
    blob_column: str | None = None,
    name: str = "manifest",
    *,
    split_by: str = "",
    keep: tuple[str, ...] = (),
) -> tuple[ManifestColumns, bool]:
    """The manifest's columns, and whether it has at least one data row (what launch checks).

    Raises:
        ManifestError: as iter_manifest_rows.
    """
    found: list[ManifestColumns] = []
    rows = _iter_rows(stream, label_column, blob_column, name, split_by, keep, found.append)
    has_rows = next(rows, None) is not None
    return found[0], has_rows


def _iter_rows(
    stream: BinaryIO,
    label_column: str | None,
    blob_column: str | None,
    name: str,
    split_by: str,
    keep: tuple[str, ...],
    on_columns: Callable[[ManifestColumns], None] | None,
) -> Iterator[ManifestRow]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=False)
    try:
        header = next((cells for cells in reader if any(cell.strip() for cell in cells)), None)
        if header is None:
            raise ManifestError(f"{name} is empty: expected a header such as 'Label,Blob Name'")
        columns = detect_columns(header, label_column, blob_column, split_by=split_by, keep=keep)
        if on_columns is not None:
            on_columns(columns)
        # A row needs every column the job reads, except the split (a missing split cell means "hash it").
        used = (columns.label, columns.blob, columns.start, columns.end, columns.text, columns.group, *columns.kept)
        needed = max(index for index in used if index is not None)
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
        start=None if columns.start is None else cell(columns.start) or "",
        end=None if columns.end is None else cell(columns.end) or "",
        text=None if columns.text is None else _raw_cell(cells, columns.text),
        group=None if columns.group is None else cell(columns.group) or "",
        kept=tuple(_raw_cell(cells, index) for index in columns.kept),
    )


def _raw_cell(cells: list[str], index: int) -> str:
    """A cell stripped of surrounding whitespace, like every other cell ("" when the row is short)."""
    return cells[index].strip() if index < len(cells) else ""


def parse_int_label(raw: str) -> int | None:
    """Returns the label as an int64, or None if it is not an integer in range."""
    if not _INT_LABEL.match(raw):
        return None
    value = int(raw)
    return value if value in _INT64_RANGE else None


@dataclass(frozen=True)
class LabelPolicy:
    """How labels become the `label` feature (or `labels`, for multi-label datasets).

    Integer labels are used as written. Otherwise every distinct label string is mapped to its
    index in the sorted vocabulary, which dataset.json records as `labels.names`. With a
    `separator`, a cell holds several labels (multi-label); without a label column, none (unlabeled).
    """

    names: tuple[str, ...] | None  # None: integer labels
    separator: str | None = None  # multi-label: the separator between a cell's labels
    labeled: bool = True  # False: the manifest has no label column

    @classmethod
    def from_distinct_labels(
        cls, labels: Iterable[str], label_type: str = "auto", separator: str | None = None, labeled: bool = True
    ) -> LabelPolicy:
        """Decides the policy from every distinct non-empty label in the manifest (single labels:
        for multi-label manifests, the cells split by `split_cell`).

        `auto` picks integers when every label is an integer, strings otherwise; `int` and `string`
        force the choice (with `int`, non-integer labels are rejected as bad_label).
        """
        distinct = sorted({label for label in labels if label})
        if label_type == "int" or (
            label_type == "auto" and all(parse_int_label(label) is not None for label in distinct)
        ):
            return cls(names=None, separator=separator or None, labeled=labeled)
        return cls(names=tuple(distinct), separator=separator or None, labeled=labeled)

    @property
    def kind(self) -> str:
        """ "int" or "string", "multi_int" or "multi_string", or "none" (as dataset.json's content says)."""
        if not self.labeled:
            return "none"
        base = "int" if self.names is None else "string"
        return f"multi_{base}" if self.separator else base

    def split_cell(self, raw: str) -> list[str]:
        """The labels a cell names, for building the vocabulary (blank entries are left out here)."""
        if not self.labeled:
            return []
        if not self.separator:
            return [raw]
        return [part.strip() for part in raw.split(self.separator) if part.strip()]

    def encode(self, raw: str) -> tuple[int, str | None] | None:
        """Returns (label, label_name) for a raw label, or None if the label is not acceptable."""
        if not raw:
            return None
        if self.names is None:
            value = parse_int_label(raw)
            return None if value is None else (value, None)
        index = _bisect(self.names, raw)
        return None if index is None else (index, raw)

    def encode_many(self, raw: str) -> tuple[tuple[int, ...], tuple[str, ...] | None] | str:
        """A multi-label cell as (label indices ascending, their names or None), or why it is refused.

        Repeated labels count once.
        """
        if not raw.strip():
            return "empty label list"
        parts = [part.strip() for part in raw.split(self.separator)]
        if not all(parts):
            return f"label list {raw!r} has a blank entry"
        encoded = {}
        for part in parts:
            label = self.encode(part)
            if label is None:
                return f"label {part!r} is not an int64 integer"
            encoded[label[0]] = label[1]
        indices = tuple(sorted(encoded))
        return indices, None if self.names is None else tuple(encoded[index] for index in indices)


def _bisect(names: tuple[str, ...], value: str) -> int | None:
    index = bisect.bisect_left(names, value)
    return index if index < len(names) and names[index] == value else None
