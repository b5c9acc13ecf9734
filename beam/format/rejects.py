"""The stable reason codes of rejected.jsonl: a row that is not written gets exactly one of these."""

from __future__ import annotations

__all__ = ["REJECTED_EXAMPLES_PER_REASON", "REJECT_REASONS"]

# How many rejected rows per reason dataset.json quotes (the lowest line numbers); the report shows them.
REJECTED_EXAMPLES_PER_REASON = 5

# The stable codes of rejected.jsonl's `reason` field; the messages say what happened to each row.
REJECT_REASONS: dict[str, str] = {
    "malformed_row": "the CSV row lacks the label or blob field",
    "bad_blob": "the blob name is empty",
    "bad_label": "the label is empty, or not an integer in int64 range with --label-type int; for multi-label "
    "datasets, an empty label list or a list with a blank entry",
    "bad_split": "the split column names a split that --splits does not define",
    "outside_root": "the blob lies outside the audio root ('..', absolute path, other bucket, symlink)",
    "duplicate": "the same blob appears on an earlier row, which was kept",
    "missing": "no file exists at the blob's path",
    "too_large": "the file is larger than --max-file-size, or its header says it decodes to more than one example "
    "may hold (1 GiB)",
    "unreadable": "the file cannot be opened or decoded as audio (corrupt, truncated, unsupported)",
    "empty_audio": "the file decodes to zero frames",
    "too_long": "the audio is longer than --max-duration (from the header; with segments, from the row), or the "
    "source of a segment or windows is longer than --max-source-duration",
    "invalid_samples": "the decoded audio holds NaN or infinite samples",
    "bad_segment": "start or end is not a number, is negative, end <= start, the span is shorter than one frame, "
    "or the segment starts at or past the end of the file",
    "shorter_than_window": "with --last-window drop, the file or segment is shorter than one window",
    "bad_column": "a kept column's value does not parse as its --column-types type",
    "bad_group": "the --split-by value is empty, or does not match --group-pattern",
    "duplicate_content": "the same decoded audio as an earlier row, which was kept (--dedupe content)",
    "label_conflict": "the same decoded audio as another row under another label (--on-label-conflict)",
    "silent": "the audio is digital silence (--reject-silent)",
    "clipped": "more of the samples are clipped than --max-clipped-fraction allows",
    "too_quiet": "the RMS level is under --min-rms-dbfs",
}
