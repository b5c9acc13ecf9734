"""Rows of equal audio: what each written example says about its content, and how a group is resolved.

Plain Python that the Beam steps call (job/equal_audio.py): every written example becomes a
`HashedRecord`; records are grouped by content hash (hashes and row ids only, never audio), and
`resolve_group` decides, by manifest line, which rows of a group stay and which become
`duplicate_content` or `label_conflict` rejections. Groups of two rows or more are summarised as a
`EqualAudioGroup` for dataset.json: duplicates, label conflicts and split leakage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from audioflow.beam.prep.rows import Rejection

__all__ = ["MEMBERS_SHOWN", "EqualAudioGroup", "GroupMember", "HashedRecord", "resolve_group"]

MEMBERS_SHOWN = 10  # rows of a group that dataset.json lists (the lowest lines)
KEPT = "kept"  # a member's outcome when it stays in the dataset


@dataclass(frozen=True, slots=True)
class HashedRecord:
    """One written example: its content hash, its manifest row, and where its record is (temporarily)."""

    content_hash: str
    line: int
    blob: str
    label: str  # as written in the manifest
    label_key: str  # as dataset.json counts it: the name, or the integer as text
    split: str
    shard: str  # the temporary shard file's URI
    index: int  # the record's position in that file


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One row of a group of equal audio, as dataset.json lists it."""

    line: int
    blob: str
    label: str  # the label key
    split: str
    outcome: str  # "kept", or the reason it was rejected

    def to_json_dict(self) -> dict:
        return {"line": self.line, "blob": self.blob, "label": self.label, "split": self.split, "outcome": self.outcome}


@dataclass(frozen=True, slots=True)
class EqualAudioGroup:
    """Two or more written rows whose audio is equal: what dataset.json needs to count and show them."""

    content_hash: str
    num_rows: int
    labels: tuple[str, ...]  # distinct label keys of every row, sorted
    kept_splits: tuple[tuple[str, int], ...]  # (split, rows kept there), sorted by split
    kept_labels: tuple[str, ...]  # distinct label keys of the rows kept, sorted
    num_rejected: int
    members: tuple[GroupMember, ...]  # the first MEMBERS_SHOWN rows by line

    @property
    def first_line(self) -> int:
        return self.members[0].line

    @property
    def conflicting(self) -> bool:
        return len(self.labels) > 1

    @property
    def conflicting_in_dataset(self) -> bool:
        """The dataset itself holds this audio under more than one label."""
        return len(self.kept_labels) > 1

    @property
    def leaking(self) -> bool:
        return len(self.kept_splits) > 1


@dataclass(frozen=True)
class Resolution:
    """What happens to a group's rows."""

    rejected: list[tuple[HashedRecord, Rejection]]
    group: EqualAudioGroup | None  # None for a group of one row


def _rejection(record: HashedRecord, reason: str, message: str) -> Rejection:
    return Rejection(
        line=record.line, blob=record.blob, label=record.label, split=record.split, reason=reason, message=message
    )


def _outcome(
    record: HashedRecord, first: HashedRecord, labels: list[str], rows: list[HashedRecord], dedupe: str, policy: str
) -> Rejection | None:
    """The rejection of one row of a group, or None if it stays."""
    same = f"line {record.line}: {record.blob!r} has the same audio as line"
    if len(labels) > 1 and policy == "reject-all":
        other = next(row for row in rows if row.label_key != record.label_key)
        return _rejection(
            record,
            "label_conflict",
            f"{same} {other.line} ({other.blob!r}) under label {other.label_key!r}, not {record.label_key!r}; "
            "--on-label-conflict reject-all rejects every row of it",
        )
    if record is first:
        return None
    if policy == "keep-first" and record.label_key != first.label_key:
        return _rejection(
            record,
            "label_conflict",
            f"{same} {first.line} ({first.blob!r}), which was kept with label {first.label_key!r}, "
            f"not {record.label_key!r} (--on-label-conflict keep-first)",
        )
    if dedupe == "content":
        return _rejection(record, "duplicate_content", f"{same} {first.line} ({first.blob!r}), which was kept")
    return None


def resolve_group(records: Iterable[HashedRecord], dedupe: str, on_label_conflict: str) -> Resolution:
    """Decides a group of rows with equal audio; the row with the lowest manifest line is the first.

    Args:
        records: the written rows sharing one content hash.
        dedupe: "content" rejects every row after the first as duplicate_content; "path" keeps them.
        on_label_conflict: "warn" keeps rows under other labels (they are only reported), "keep-first"
            rejects the rows whose label differs from the first row's, "reject-all" rejects every row
            of a group with more than one label.
    """
    rows = sorted(records, key=lambda record: record.line)
    if len(rows) == 1:
        return Resolution(rejected=[], group=None)
    first = rows[0]
    labels = sorted({row.label_key for row in rows})
    rejected, members, kept_splits, kept_labels = [], [], {}, set()
    for row in rows:
        rejection = _outcome(row, first, labels, rows, dedupe, on_label_conflict)
        if rejection is None:
            kept_splits[row.split] = kept_splits.get(row.split, 0) + 1
            kept_labels.add(row.label_key)
        else:
            rejected.append((row, rejection))
        if len(members) < MEMBERS_SHOWN:
            outcome = KEPT if rejection is None else rejection.reason
            members.append(GroupMember(row.line, row.blob, row.label_key, row.split, outcome))
    group = EqualAudioGroup(
        content_hash=first.content_hash,
        num_rows=len(rows),
        labels=tuple(labels),
        kept_splits=tuple(sorted(kept_splits.items())),
        kept_labels=tuple(sorted(kept_labels)),
        num_rejected=len(rejected),
        members=tuple(members),
    )
    return Resolution(rejected=rejected, group=group)
