"""Loading rows that are more than one whole file: segments (one record) and windows (a stream of records).

A segment is decoded on its own (seek, then only the span) and becomes one record, like a whole
file. A windowed row becomes a `WindowRecords`: its windows are decoded block by block while the
writer iterates it, so a row's audio is never all in memory. Both also fill the features a manifest
may add to any row (labels list, text, group, kept columns): `RecordPlan.extra_features`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.format import AudioExample, encode_example, frame_record
from audioflow.beam.prep.audio import AudioOptions, AudioRejected
from audioflow.beam.prep.columns import ColumnSpec, normalise_text
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import is_remote
from audioflow.beam.prep.rows import PlannedRow, Rejection
from audioflow.beam.prep.segments import Span, WindowSpec, decode_span, iter_windows, parse_span
from audioflow.beam.storage import ObjectTooLargeError

__all__ = ["RecordPlan", "WindowRecords", "rejection_for"]


def rejection_for(planned: PlannedRow, error: Exception) -> Rejection:
    """The stable reject reason of a row whose file could not be read or decoded: `missing`,
    `too_large`, the reason an AudioRejected names, and `unreadable` for anything else."""
    row = planned.row
    if isinstance(error, AudioRejected):
        return Rejection.of(row, planned.split, error.reason, f"line {row.line}: {error.message}")
    if isinstance(error, ObjectTooLargeError):
        return Rejection.of(row, planned.split, "too_large", f"line {row.line}: {error}")
    if isinstance(error, FileNotFoundError):
        return Rejection.of(row, planned.split, "missing", f"line {row.line}: no file at {planned.uri}")
    message = f"line {row.line}: {planned.uri}: {type(error).__name__}: {error}"
    return Rejection.of(row, planned.split, "unreadable", message)


@dataclass(frozen=True)
class RecordPlan:
    """What a job's records hold besides audio, decided once from its options."""

    audio: AudioOptions
    columns: ColumnSpec
    windows: WindowSpec | None
    max_source_duration: float | None

    @classmethod
    def of(cls, options: IngestOptions) -> RecordPlan:
        return cls(options.audio, options.columns, options.windows, options.max_source_duration)

    @staticmethod
    def span(planned: PlannedRow) -> Span | None:
        """The row's segment (checked by ClassifyRows, so it parses), or None for the whole file."""
        return parse_span(planned.row.start, planned.row.end)

    def is_plain(self, planned: PlannedRow) -> bool:
        """A whole file, one record, in a manifest without segment columns: the original path
        (decode_audio), byte-identical records. In a manifest of segments, every record says where it
        lies, a whole-file row's too."""
        return self.windows is None and planned.row.start is None

    def extra_features(self, planned: PlannedRow) -> dict[str, Any]:
        """AudioExample fields beyond audio and the single label, as the manifest asks for them."""
        row = planned.row
        return {
            "labels": planned.labels,
            "label_names": planned.label_names,
            "text": None if row.text is None else normalise_text(row.text),
            "group": planned.group,
            "columns": self.columns.typed_columns(row.kept) if self.columns.keep else (),
        }

    def load(self, planned: PlannedRow, loaded_type: Any) -> Any:
        """A segment as `loaded_type` (LoadedAudio), a windowed row as WindowRecords, or a Rejection."""
        if self.windows is not None:
            return WindowRecords(planned, self, loaded_type)
        row, uri = planned.row, planned.uri
        span = self.span(planned)
        try:
            with _open(uri) as source:
                decoded = decode_span(source, self.audio, span, name=uri, max_source_duration=self.max_source_duration)
        except Exception as error:
            return rejection_for(planned, error)
        audio = decoded.audio
        example = AudioExample(
            audio=audio.samples.tobytes(),
            label=planned.label,
            sample_rate=audio.sample_rate,
            num_channels=audio.num_channels,
            num_frames=audio.num_frames,
            blob=row.blob,
            label_name=planned.label_name,
            source_sample_rate=audio.source_sample_rate,
            segment_start=decoded.start,
            segment_end=decoded.end,
            **self.extra_features(planned),
        )
        return loaded_type(
            record=frame_record(encode_example(example)),
            sample_rate=audio.sample_rate,
            source_rate=audio.source_sample_rate,
            num_channels=audio.num_channels,
            num_frames=audio.num_frames,
            heavy=audio.heavy,
            clipped=decoded.clipped,
            quality=audio.quality,
        )


class _Opened:
    """A local path as is, or a gs:// object as a seekable stream of ranged reads (a segment of an
    hour-long object reads its span, not the object)."""

    def __init__(self, uri: str):
        self._uri = uri
        self._stream: BinaryIO | None = None

    def __enter__(self) -> str | BinaryIO:
        if not is_remote(self._uri):
            return self._uri
        self._stream = FileSystems.open(self._uri)
        return self._stream

    def __exit__(self, *exc: object) -> None:
        if self._stream is not None:
            self._stream.close()


def _open(uri: str) -> _Opened:
    return _Opened(uri)


class WindowRecords:
    """The records of one windowed row, decoded while they are iterated (on the writer's thread).

    Iterating yields one LoadedAudio per window; if the file turns out bad part-way, the last item is
    a Rejection, and the writer discards the row's windows written so far.
    """

    def __init__(self, planned: PlannedRow, plan: RecordPlan, loaded_type: Any):
        self.planned = planned
        self._plan = plan
        self._loaded_type = loaded_type

    def __iter__(self) -> Iterator[Any]:
        planned, plan = self.planned, self._plan
        row, uri = planned.row, planned.uri
        assert plan.windows is not None
        try:
            extra = plan.extra_features(planned)
            with _open(uri) as source:
                windows = iter_windows(
                    source,
                    plan.audio,
                    plan.windows,
                    span=plan.span(planned),
                    name=uri,
                    max_source_duration=plan.max_source_duration,
                )
                for window in windows:
                    example = AudioExample(
                        audio=window.samples.tobytes(),
                        label=planned.label,
                        sample_rate=window.sample_rate,
                        num_channels=window.samples.shape[1],
                        num_frames=window.samples.shape[0],
                        blob=row.blob,
                        label_name=planned.label_name,
                        source_sample_rate=window.source_sample_rate,
                        segment_start=window.start,
                        segment_end=window.end,
                        window_offset=window.offset,
                        **extra,
                    )
                    yield self._loaded_type(
                        record=frame_record(encode_example(example)),
                        sample_rate=window.sample_rate,
                        source_rate=window.source_sample_rate,
                        num_channels=window.samples.shape[1],
                        num_frames=window.samples.shape[0],
                        heavy=window.heavy,
                    )
        except Exception as error:
            yield rejection_for(planned, error)
