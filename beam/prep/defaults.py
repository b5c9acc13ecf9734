"""The one table of ingest options: name, default, help, environment variable and allowed values.

The CLI's `ingest` options, `build_ingest_options`, the `ingest_audio` component's parameters and
the pipeline's ingest parameters are all generated from or checked against this table (a test
compiles the component and compares), so a default is changed in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["COMPONENT_DEFAULTS", "DEFAULTS", "INGEST_OPTIONS", "PIPELINE_DEFAULTS", "IngestOption", "option"]


@dataclass(frozen=True)
class IngestOption:
    """One ingest setting as every surface shows it.

    Attributes:
        name: the Python and KFP parameter name; the CLI flag is `--name-with-dashes`.
        kind: str, int, float or bool (KFP parameter types).
        default: what an omitted value means; None only for options that have no value by default.
        help: one line, shown by `--help`, the component docstring and the Flex Template metadata.
        env: the environment variable (or .env key) the CLI reads it from, if any.
        choices: the allowed values, for options that are an enumeration.
        pattern: a regular expression a valid value matches (Flex Template parameter validation).
    """

    name: str
    kind: type
    default: Any
    help: str
    env: str | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_SIZE = r"^[0-9]+(\.[0-9]+)?\s*([kKmMgG]([iI]?[bB])?|[bB])?$"
_SPLITS = r"^[A-Za-z0-9_]+=[0-9.]+(,[A-Za-z0-9_]+=[0-9.]+)*$"
_NUMBER = r"^[0-9]+(\.[0-9]+)?$"
_INTEGER = r"^[0-9]+$"
_FRACTION = r"^(0(\.[0-9]+)?|1(\.0+)?)$"
_LEVEL = r"^(0(\.0+)?|-[0-9]+(\.[0-9]+)?)$"  # dBFS: 0 or below

INGEST_OPTIONS: tuple[IngestOption, ...] = (
    IngestOption(
        "audio_root",
        str,
        "",
        "Where blob names are resolved (default: the manifest's folder).",
        env="AUDIO_ROOT",
    ),
    IngestOption(
        "splits",
        str,
        "train=1",
        "Split fractions, e.g. train=0.8,validation=0.1,test=0.1 (a split column in the manifest wins).",
        env="SPLITS",
        pattern=_SPLITS,
    ),
    IngestOption(
        "sample_rate", int, 0, "Resample every file to this rate in Hz (0 keeps each file's rate).", env="SAMPLE_RATE"
    ),
    IngestOption("mono", bool, False, "Downmix to one channel.", env="MONO"),
    IngestOption(
        "sample_format",
        str,
        "int16",
        "Sample format in the records.",
        env="SAMPLE_FORMAT",
        choices=("int16", "float32"),
    ),
    IngestOption(
        "max_duration",
        float,
        1200.0,
        "Reject examples longer than this many seconds: files, or segments (0 for no limit).",
        env="MAX_DURATION",
        pattern=_NUMBER,
    ),
    IngestOption("max_file_size", str, "2GiB", "Reject larger files.", env="MAX_FILE_SIZE", pattern=_SIZE),
    IngestOption("shard_size", str, "128MiB", "Target shard size.", env="SHARD_SIZE", pattern=_SIZE),
    IngestOption("compression", str, "none", "Shard compression.", env="COMPRESSION", choices=("none", "gzip")),
    IngestOption("label_column", str, "", "Header of the label column, if not a usual name.", env="LABEL_COLUMN"),
    IngestOption("blob_column", str, "", "Header of the blob column, if not a usual name.", env="BLOB_COLUMN"),
    IngestOption(
        "label_type", str, "auto", "How labels are read.", env="LABEL_TYPE", choices=("auto", "int", "string")
    ),
    IngestOption(
        "max_rejected_fraction",
        float,
        0.01,
        "Fail if more rows than this fraction are rejected (the dataset is still written).",
        env="MAX_REJECTED_FRACTION",
        pattern=_NUMBER,
    ),
    IngestOption(
        "label_separator",
        str,
        "",
        "Multi-label: the separator between a label cell's labels, e.g. ',' (empty: one label per row).",
        env="LABEL_SEPARATOR",
    ),
    IngestOption(
        "window_seconds",
        float,
        0.0,
        "Cut each file (or segment) into windows of this many seconds, one example each (0: no windows).",
        env="WINDOW_SECONDS",
        pattern=_NUMBER,
    ),
    IngestOption(
        "hop_seconds",
        float,
        0.0,
        "Seconds between window starts (0: the window length).",
        env="HOP_SECONDS",
        pattern=_NUMBER,
    ),
    IngestOption(
        "last_window",
        str,
        "pad",
        "A last window shorter than --window-seconds: zero-pad it, drop it or keep it short.",
        env="LAST_WINDOW",
        choices=("pad", "drop", "keep"),
    ),
    IngestOption(
        "max_source_duration",
        float,
        86400.0,
        "With segments or windows: reject source files longer than this many seconds (0 for no limit).",
        env="MAX_SOURCE_DURATION",
        pattern=_NUMBER,
    ),
    IngestOption(
        "keep_columns",
        str,
        "",
        "Manifest columns to keep as features, e.g. speaker,age.",
        env="KEEP_COLUMNS",
    ),
    IngestOption(
        "column_types",
        str,
        "",
        "Types of kept columns, e.g. age=int,weight=float (others are str).",
        env="COLUMN_TYPES",
    ),
    IngestOption(
        "split_by",
        str,
        "",
        "Column whose value groups rows into one split, e.g. speaker (default: the source file).",
        env="SPLIT_BY",
    ),
    IngestOption(
        "group_pattern",
        str,
        "",
        "Regular expression taking the group out of the --split-by value (its first capture group).",
        env="GROUP_PATTERN",
    ),
    IngestOption(
        "allow_empty",
        bool,
        False,
        "Write an empty dataset for a manifest with a header and no rows (refused otherwise).",
        env="ALLOW_EMPTY",
    ),
    IngestOption(
        "dedupe",
        str,
        "path",
        "What makes a row a duplicate of an earlier one: the same file (path) or the same decoded audio (content).",
        env="DEDUPE",
        choices=("path", "content"),
    ),
    IngestOption(
        "on_label_conflict",
        str,
        "warn",
        "Identical audio under different labels: report it (warn), keep the first row's label only "
        "(keep-first) or reject every row of it (reject-all).",
        env="ON_LABEL_CONFLICT",
        choices=("warn", "keep-first", "reject-all"),
    ),
    IngestOption("reject_silent", bool, False, "Reject files that are digital silence.", env="REJECT_SILENT"),
    IngestOption(
        "max_clipped_fraction",
        float,
        1.0,
        "Reject files with more than this fraction of their samples clipped (1: no limit).",
        env="MAX_CLIPPED_FRACTION",
        pattern=_FRACTION,
    ),
    IngestOption(
        "min_rms_dbfs",
        float,
        0.0,
        "Reject files whose RMS level is under this many dBFS, e.g. -60 (0: no limit).",
        env="MIN_RMS_DBFS",
        pattern=_LEVEL,
    ),
    IngestOption(
        "fetch_concurrency",
        int,
        0,
        "Reads in flight per worker (0: 16 for remote audio, 4 for local files).",
        env="FETCH_CONCURRENCY",
        pattern=_INTEGER,
    ),
    IngestOption(
        "resume",
        bool,
        False,
        "Keep the shards an interrupted run of the same manifest and options completed; write only the rest.",
    ),
)

DEFAULTS: dict[str, Any] = {entry.name: entry.default for entry in INGEST_OPTIONS}

# Where a surface deliberately differs from the CLI, it says so here and nowhere else.
# The component is the first step of a training pipeline, so it holds out validation and test data.
COMPONENT_DEFAULTS: dict[str, Any] = {**DEFAULTS, "splits": "train=0.8,validation=0.1,test=0.1"}
# The pipeline trains one classifier, which needs one sample rate and one channel.
PIPELINE_DEFAULTS: dict[str, Any] = {**COMPONENT_DEFAULTS, "sample_rate": 16000, "mono": True}


def option(name: str) -> IngestOption:
    """The table entry for `name`.

    Raises:
        KeyError: no such ingest option.
    """
    for entry in INGEST_OPTIONS:
        if entry.name == name:
            return entry
    raise KeyError(name)
