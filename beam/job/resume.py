"""Resuming an interrupted run: the state a run keeps in its temporary folder, and what a re-run may reuse.

Shard assignment is deterministic, so the shard units an interrupted run completed are the ones a
re-run would write again. A run's temporary folder `_temporary-<run id>` holds:

- `run.json`: what the shards depend on: the manifest's sha256, a digest of the options that shape
  them, the audioflow version and the format version (`RunState`). WriteShards writes it before its
  first unit marker.
- `units/<split>-<unit>.json`, one per completed shard unit, written after the unit's files are closed
  (`UnitMarker`): a digest of the unit's rows (every field of each row: line, file, labels, span,
  text, group, size, generation), and for each file its name, stored size (and its record index's),
  record bytes, statistics and content counts, and the rows the unit rejected.

`--resume` reuses a temporary folder whose run.json equals the new run's state, and WriteShards keeps
a unit whose marker has the digest of its rows and whose files (and record indexes) all exist with the
stored sizes the marker recorded; any other unit is written again. A folder from another manifest or other options is
deleted with one log line saying why, and the run starts over.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from audioflow.beam.format import FORMAT_VERSION
from audioflow.beam.format.index import INDEX_SUFFIX
from audioflow.beam.job.coders import PlannedRowCoder
from audioflow.beam.prep.content import ContentStats
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import is_remote
from audioflow.beam.prep.rows import PlannedRow, Rejection, ShardStats, ShardWritten
from audioflow.beam.storage import read_text, write_text_atomically
from audioflow.beam.version import package_version

__all__ = [
    "RUN_FILE",
    "UNITS_FOLDER",
    "MarkedFile",
    "RunState",
    "UnitMarker",
    "find_resumable",
    "manifest_sha256",
    "rows_digest",
    "shaping_options",
    "stored_size",
]

_LOGGER = logging.getLogger(__name__)

RUN_FILE = "run.json"
UNITS_FOLDER = "units"
# Options that do not change a single shard byte, or only say how this run is executed. The manifest
# is identified by its sha256, not by where it is; the output is where the temporary folder is.
_NOT_SHAPING = frozenset({"manifest", "output", "overwrite", "resume", "fetch_concurrency", "max_rejected_fraction"})


def shaping_options(recorded: dict[str, Any]) -> dict[str, Any]:
    """The options (as IngestOptions.to_json_dict records them) that decide what the shards hold."""
    return {name: value for name, value in sorted(recorded.items()) if name not in _NOT_SHAPING}


def manifest_sha256(uri: str) -> str:
    """The sha256 of the manifest's content (decompressed, as ReadManifest hashes it for dataset.json)."""
    digest = hashlib.sha256()
    with FileSystems.open(uri, compression_type=CompressionTypes.AUTO) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunState:
    """What a run's shards depend on; two runs with equal states write identical shard units."""

    manifest_sha256: str
    options_sha256: str
    audioflow_version: str
    format_version: int

    @classmethod
    def of(cls, options: IngestOptions, manifest_sha256: str) -> RunState:
        shaping = json.dumps(shaping_options(options.to_json_dict()), sort_keys=True, ensure_ascii=False)
        return cls(
            manifest_sha256=manifest_sha256,
            options_sha256=hashlib.sha256(shaping.encode("utf-8")).hexdigest(),
            audioflow_version=package_version(),
            format_version=FORMAT_VERSION,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RunState:
        return cls(**json.loads(text))

    def differs_from(self, other: RunState) -> str | None:
        """Why shards made under `other` cannot be kept for this state, or None if they can."""
        if other.manifest_sha256 != self.manifest_sha256:
            then, now = other.manifest_sha256[:12], self.manifest_sha256[:12]
            return f"was made from another manifest (sha256 {then}…, now {now}…)"
        if other.options_sha256 != self.options_sha256:
            return "was made with other options"
        if (other.audioflow_version, other.format_version) != (self.audioflow_version, self.format_version):
            return f"was made by audioflow {other.audioflow_version} (format {other.format_version})"
        return None


def find_resumable(temporaries: list[str], state: RunState) -> str | None:
    """The temporary folder an interrupted run of the same state left, if any; says why others don't qualify.

    Args:
        temporaries: the `_temporary-*` folders of the output, oldest first.
        state: the new run's state.
    """
    for folder in reversed(temporaries):  # the most recent run first
        uri = FileSystems.join(folder, RUN_FILE)
        try:
            other = RunState.from_json(read_text(uri)) if FileSystems.exists(uri) else None
        except (ValueError, TypeError, KeyError, OSError, BeamIOError) as error:
            _LOGGER.warning("--resume: starting over: %s is unreadable (%s)", uri, error)
            continue
        reason = "completed no shard unit" if other is None else state.differs_from(other)
        if reason is None:
            return folder
        _LOGGER.warning("--resume: starting over: the interrupted run in %s %s", folder, reason)
    return None


def rows_digest(rows: Iterable[PlannedRow]) -> str:
    """A digest of a unit's rows, in manifest order: every field a row carries between steps (the row
    coder's fields: the manifest row as written, split, file, labels, span, text, group, size, generation)."""
    digest = hashlib.sha256()
    for planned in rows:
        digest.update(json.dumps(PlannedRowCoder.to_fields(planned), ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def stored_size(uri: str) -> int | None:
    """The size of a file as stored (compressed, for gzip shards), or None if it does not exist.

    Looked up by name, never matched as a pattern: an output path may hold `[` or `*`.
    """
    if not is_remote(uri):
        try:
            return os.stat(uri).st_size
        except OSError:
            return None
    try:
        return FileSystems.get_filesystem(uri).metadata(uri).size_in_bytes
    except (BeamIOError, OSError):  # Beam wraps the store's NotFound in a BeamIOError
        return None


_COUNTERS_WITH_INT_KEYS = ("sample_rates", "source_sample_rates", "channels", "durations_centiseconds")


def _stats_to_json(stats: ShardStats) -> dict[str, Any]:
    record = {"num_examples": stats.num_examples, "num_frames": stats.num_frames}
    record["duration_seconds"] = stats.duration_seconds  # a float: JSON keeps every bit of it
    record["label_counts"] = dict(stats.label_counts)
    for name in _COUNTERS_WITH_INT_KEYS:
        record[name] = {str(key): count for key, count in getattr(stats, name).items()}
    return record


def _stats_from_json(record: dict[str, Any]) -> ShardStats:
    counters = {
        name: Counter({int(key): count for key, count in record[name].items()}) for name in _COUNTERS_WITH_INT_KEYS
    }
    return ShardStats(
        num_examples=record["num_examples"],
        num_frames=record["num_frames"],
        duration_seconds=record["duration_seconds"],
        label_counts=Counter(record["label_counts"]),
        **counters,
    )


_CONTENT_COUNTERS = ("examples_per_row", "examples_per_source", "text_lengths")  # all with int keys


def _content_to_json(content: ContentStats) -> dict[str, Any]:
    record: dict[str, Any] = {"extra_examples": content.extra_examples, "clipped_segments": content.clipped_segments}
    for name in _CONTENT_COUNTERS:
        record[name] = {str(key): count for key, count in getattr(content, name).items()}
    return record


def _content_from_json(record: dict[str, Any]) -> ContentStats:
    counters = {name: Counter({int(k): n for k, n in record[name].items()}) for name in _CONTENT_COUNTERS}
    return ContentStats(
        extra_examples=record["extra_examples"], clipped_segments=record["clipped_segments"], **counters
    )


class MarkedFile(NamedTuple):
    """One closed file of a unit: what WriteShards handed on, its stored size and its index's (None: no index)."""

    shard: ShardWritten
    stored_bytes: int | None
    index_bytes: int | None

    @classmethod
    def of(cls, shard: ShardWritten) -> MarkedFile:
        """The file as it is stored now (its index is written when the file is closed, if it has one)."""
        return cls(shard, stored_size(shard.temp_uri), stored_size(shard.temp_uri + INDEX_SUFFIX))

    def still_there(self) -> bool:
        return MarkedFile.of(self.shard) == self


@dataclass(frozen=True)
class UnitMarker:
    """A completed shard unit: the digest of its rows, its files, and the rows it rejected."""

    split: str
    unit: int
    rows: str  # rows_digest of the unit's rows
    files: tuple[MarkedFile, ...]
    rejected: tuple[Rejection, ...]

    @staticmethod
    def uri(temp_dir: str, split: str, unit: int) -> str:
        return FileSystems.join(temp_dir, UNITS_FOLDER, f"{split}-{unit:05d}.json")

    @property
    def num_rows(self) -> int:
        """Rows, not examples: a windowed row's windows beyond its first are its content's extra_examples."""
        examples = sum(file.shard.stats.num_examples - file.shard.content.extra_examples for file in self.files)
        return examples + len(self.rejected)

    def to_json(self) -> str:
        files = [
            {
                "part": shard.part,
                "name": shard.temp_uri.rsplit("/", 1)[-1],
                "stored_bytes": stored,
                "index_bytes": index,
                "num_bytes": shard.num_bytes,
                "stats": _stats_to_json(shard.stats),
                "content": _content_to_json(shard.content),
            }
            for shard, stored, index in self.files
        ]
        rejected = [dataclasses.asdict(rejection) for rejection in self.rejected]
        record = {"split": self.split, "unit": self.unit, "rows": self.rows, "files": files, "rejected": rejected}
        return json.dumps(record, ensure_ascii=False, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, temp_dir: str) -> UnitMarker:
        record = json.loads(text)
        split, unit = record["split"], record["unit"]
        files = tuple(
            MarkedFile(
                ShardWritten(
                    split,
                    unit,
                    entry["part"],
                    FileSystems.join(temp_dir, entry["name"]),
                    entry["num_bytes"],
                    _stats_from_json(entry["stats"]),
                    _content_from_json(entry["content"]),
                ),
                entry["stored_bytes"],
                entry["index_bytes"],
            )
            for entry in record["files"]
        )
        rejected = tuple(Rejection(**entry) for entry in record["rejected"])
        return cls(split, unit, record["rows"], files, rejected)

    def write(self, temp_dir: str) -> None:
        write_text_atomically(self.uri(temp_dir, self.split, self.unit), self.to_json())

    @classmethod
    def read(cls, temp_dir: str, split: str, unit: int) -> UnitMarker | None:
        """The unit's marker, or None if there is none (or it is unreadable: the unit is written again)."""
        uri = cls.uri(temp_dir, split, unit)
        try:
            return cls.from_json(read_text(uri), temp_dir) if FileSystems.exists(uri) else None
        except (ValueError, TypeError, KeyError, OSError, BeamIOError) as error:
            _LOGGER.warning("%s is unreadable, so its unit is written again: %s", uri, error)
            return None

    def still_holds(self, rows: str) -> bool:
        """True if the marker is for these rows and every file it names is there with its stored size."""
        return self.rows == rows and all(file.still_there() for file in self.files)
