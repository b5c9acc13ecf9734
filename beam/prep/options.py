"""IngestOptions: everything the ingestion job needs to know, validated once, shared by CLI and KFP."""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from audioflow.beam.format import COMPRESSIONS
from audioflow.beam.prep.audio import AudioOptions
from audioflow.beam.prep.columns import ColumnSpec
from audioflow.beam.prep.defaults import DEFAULTS
from audioflow.beam.prep.paths import is_remote, normalise_root
from audioflow.beam.prep.quality import QualityChecks
from audioflow.beam.prep.segments import WindowSpec
from audioflow.beam.prep.splits import SplitSpec, parse_splits

__all__ = ["IngestOptions", "build_ingest_options", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}


_SIZE = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?|\.[0-9]+)(?P<unit>[a-z]*)$")


def parse_size(text: str | int) -> int:
    """Parses '128MiB', '64M', '1g' or a plain byte count.

    Raises:
        ValueError: for anything else.
    """
    if isinstance(text, int) and text >= 0:
        return text
    match = _SIZE.match(str(text).strip().lower().replace(" ", ""))
    if match is None or match["unit"] not in _UNITS:
        raise ValueError(f"bad size {text!r}: expected e.g. 128MiB, 64M or a number of bytes")
    return int(float(match["number"]) * _UNITS[match["unit"]])


@dataclass(frozen=True)
class IngestOptions:
    """The ingestion job's own settings (Beam's runner options travel separately)."""

    manifest: str
    output: str
    audio_root: str = ""  # default: the manifest's folder
    splits: SplitSpec = field(default_factory=lambda: parse_splits(DEFAULTS["splits"]))
    audio: AudioOptions = field(default_factory=AudioOptions)
    label_column: str | None = None
    blob_column: str | None = None
    label_type: str = DEFAULTS["label_type"]
    shard_size: int = parse_size(DEFAULTS["shard_size"])
    compression: str = DEFAULTS["compression"]
    max_file_size: int | None = parse_size(DEFAULTS["max_file_size"])
    max_rejected_fraction: float = DEFAULTS["max_rejected_fraction"]
    overwrite: bool = False
    fetch_concurrency: int = DEFAULTS["fetch_concurrency"]  # 0: 16 reads in flight for remote audio, 4 for local
    label_separator: str = DEFAULTS["label_separator"]  # "": one label per row
    windows: WindowSpec | None = None  # None: one example per row
    max_source_duration: float | None = DEFAULTS["max_source_duration"]  # segments and windows only
    columns: ColumnSpec = field(default_factory=ColumnSpec)
    allow_empty: bool = DEFAULTS["allow_empty"]
    resume: bool = DEFAULTS["resume"]  # keep what an interrupted run of the same manifest and options completed
    dedupe: str = DEFAULTS["dedupe"]  # path: rows naming the same file; content: rows whose audio is equal
    on_label_conflict: str = DEFAULTS["on_label_conflict"]  # equal audio under different labels

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {sorted(COMPRESSIONS)}")
        if self.label_type not in ("auto", "int", "string"):
            raise ValueError("label type must be auto, int or string")
        if self.shard_size < 1024:
            raise ValueError("shard size must be at least 1 KiB")
        if not 0 <= self.max_rejected_fraction <= 1:
            raise ValueError("max rejected fraction must be between 0 and 1")
        max_duration = self.audio.max_duration
        if self.windows is not None and max_duration is not None and self.windows.seconds > max_duration:
            raise ValueError(
                f"--window-seconds {self.windows.seconds:g} is over --max-duration {max_duration:g}: "
                "every window would be rejected"
            )
        if self.dedupe not in ("path", "content"):
            raise ValueError(f"dedupe must be path or content, not {self.dedupe!r}")
        if self.on_label_conflict not in ("warn", "keep-first", "reject-all"):
            raise ValueError(
                f"on label conflict must be warn, keep-first or reject-all, not {self.on_label_conflict!r}"
            )
        if not self.audio.checks.enabled and (self.dedupe != "path" or self.on_label_conflict != "warn"):
            raise ValueError("content dedupe and label conflict policies need the content hashes, which are turned off")
        if self.windows is not None and (
            self.dedupe != "path" or self.on_label_conflict != "warn" or self.audio.checks.gating
        ):
            raise ValueError(
                "--dedupe content, --on-label-conflict and the quality gates act on whole files and segments, "
                "which windows are cut from after they are measured: they cannot be used with --window-seconds"
            )
        root = self.audio_root or _parent(self.manifest)
        object.__setattr__(self, "audio_root", normalise_root(root))
        object.__setattr__(self, "output", normalise_root(self.output))
        if not is_remote(self.manifest):
            object.__setattr__(self, "manifest", os.path.abspath(self.manifest))

    @property
    def effective_fetch_concurrency(self) -> int:
        if self.fetch_concurrency > 0:
            return self.fetch_concurrency
        return 16 if is_remote(self.audio_root) else 4

    def to_json_dict(self) -> dict[str, Any]:
        """The options as recorded in dataset.json (no credentials live here: Beam's options are not included).

        `resume` is left out: it says how the run went, and a resumed dataset equals an uninterrupted one."""
        record = dataclasses.asdict(self)
        del record["resume"]
        record["splits"] = dict(self.splits.fractions)
        record["split_salt"] = self.splits.salt
        record["windows"] = None if self.windows is None else self.windows.to_json_dict()
        return record


def _parent(uri: str) -> str:
    return posixpath.dirname(uri) if is_remote(uri) else os.path.dirname(os.path.abspath(uri))


def build_ingest_options(
    *,
    manifest: str,
    output: str,
    audio_root: str = DEFAULTS["audio_root"],
    splits: str = DEFAULTS["splits"],
    sample_rate: int | None = DEFAULTS["sample_rate"],
    mono: bool = DEFAULTS["mono"],
    sample_format: str = DEFAULTS["sample_format"],
    max_duration: float | None = DEFAULTS["max_duration"],
    max_file_size: str | int | None = DEFAULTS["max_file_size"],
    shard_size: str | int = DEFAULTS["shard_size"],
    compression: str = DEFAULTS["compression"],
    label_column: str | None = DEFAULTS["label_column"],
    blob_column: str | None = DEFAULTS["blob_column"],
    label_type: str = DEFAULTS["label_type"],
    max_rejected_fraction: float = DEFAULTS["max_rejected_fraction"],
    fetch_concurrency: int = DEFAULTS["fetch_concurrency"],
    label_separator: str = DEFAULTS["label_separator"],
    window_seconds: float = DEFAULTS["window_seconds"],
    hop_seconds: float = DEFAULTS["hop_seconds"],
    last_window: str = DEFAULTS["last_window"],
    max_source_duration: float | None = DEFAULTS["max_source_duration"],
    keep_columns: str = DEFAULTS["keep_columns"],
    column_types: str = DEFAULTS["column_types"],
    split_by: str = DEFAULTS["split_by"],
    group_pattern: str = DEFAULTS["group_pattern"],
    allow_empty: bool = DEFAULTS["allow_empty"],
    dedupe: str = DEFAULTS["dedupe"],
    on_label_conflict: str = DEFAULTS["on_label_conflict"],
    reject_silent: bool = DEFAULTS["reject_silent"],
    max_clipped_fraction: float = DEFAULTS["max_clipped_fraction"],
    min_rms_dbfs: float = DEFAULTS["min_rms_dbfs"],
    overwrite: bool = False,
    resume: bool = DEFAULTS["resume"],
) -> IngestOptions:
    """IngestOptions from flat, string-friendly values (what the CLI and the KFP component receive).

    Raises:
        ValueError: naming the value that is wrong.
    """
    if hop_seconds and not window_seconds:
        raise ValueError("--hop-seconds needs --window-seconds")
    if column_types and not keep_columns:
        raise ValueError("--column-types needs --keep-columns (the types are those of kept columns)")
    return IngestOptions(
        manifest=manifest,
        output=output,
        audio_root=audio_root,
        splits=parse_splits(splits),
        audio=AudioOptions(
            sample_format=sample_format,
            sample_rate=sample_rate or None,
            mono=mono,
            max_duration=max_duration if max_duration and max_duration > 0 else None,
            checks=QualityChecks(
                reject_silent=reject_silent,
                max_clipped_fraction=float(max_clipped_fraction),
                min_rms_dbfs=float(min_rms_dbfs),
            ),
        ),
        label_column=label_column or None,
        blob_column=blob_column or None,
        label_type=label_type,
        shard_size=parse_size(shard_size),
        compression=compression,
        max_file_size=parse_size(max_file_size) if max_file_size else None,
        max_rejected_fraction=max_rejected_fraction,
        overwrite=overwrite,
        fetch_concurrency=fetch_concurrency,
        label_separator=label_separator or "",
        windows=WindowSpec(window_seconds, hop_seconds or 0.0, last_window) if window_seconds else None,
        max_source_duration=max_source_duration if max_source_duration and max_source_duration > 0 else None,
        columns=ColumnSpec.parse(keep_columns or "", column_types or "", split_by or "", group_pattern or ""),
        allow_empty=allow_empty,
        resume=resume,
        dedupe=dedupe,
        on_label_conflict=on_label_conflict,
    )
