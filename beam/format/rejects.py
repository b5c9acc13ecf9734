"""The stable reason codes of rejected.jsonl: a row that is not written gets exactly one of these."""

from __future__ import annotations

__all__ = ["REJECTED_EXAMPLES_PER_REASON", "REJECT_REASONS"]

# How many rejected rows per reason dataset.json quotes (the lowest line numbers); the report shows them.
REJECTED_EXAMPLES_PER_REASON = 5

# The stable codes of rejected.jsonl's `reason` field; the messages say what happened to each row.
REJECT_REASONS: dict[str, str] = {
    "malformed_row": "the CSV row lacks the label or blob field",
    "bad_blob": "the blob name is empty",
    "bad_label": "the label is empty, or not an integer in int64 range with --label-type int",
    "bad_split": "the split column names a split that --splits does not define",
    "outside_root": "the blob lies outside the audio root ('..', absolute path, other bucket, symlink)",
    "duplicate": "the same blob appears on an earlier row, which was kept",
    "missing": "no file exists at the blob's path",
    "too_large": "the file is larger than --max-file-size, or its header says it decodes to more than one example "
    "may hold (1 GiB)",
    "unreadable": "the file cannot be opened or decoded as audio (corrupt, truncated, unsupported)",
    "empty_audio": "the file decodes to zero frames",
    "too_long": "the header says the audio is longer than --max-duration",
    "invalid_samples": "the decoded audio holds NaN or infinite samples",
}
