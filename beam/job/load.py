"""Loading audio for WriteShards: a row's file read, decoded and framed as one TFRecord.

Compressed or resampled files and remote objects are loaded on a thread pool (libsndfile and soxr
release the GIL, and threads hide object-store latency); plain local PCM is loaded on the calling
thread, where it is cheaper than the hand-offs to a pool (bench/RESULTS.md, bench/decode_threads.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from audioflow.beam.format import AudioExample, encode_example, frame_record
from audioflow.beam.job.spans import RecordPlan, WindowRecords, rejection_for
from audioflow.beam.prep.audio import AudioOptions, decode_audio
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import is_remote
from audioflow.beam.prep.quality import SignalQuality
from audioflow.beam.prep.rows import PlannedRow, Rejection
from audioflow.beam.storage import read_bytes

__all__ = ["AudioLoader", "LoadedAudio", "WindowRecords", "load_audio"]

_PROBE_FILES = 8  # files each shard loads on the calling thread before choosing where the rest go
_MAX_BYTES_IN_FLIGHT = 256 * 1024**2  # of source files handed to the pool and not yet written


@dataclass(frozen=True, slots=True)
class LoadedAudio:
    """One file as a finished TFRecord, with what the shard statistics need."""

    record: bytes  # a framed TFRecord holding the tf.train.Example
    sample_rate: int
    source_rate: int  # the file's own rate, before any resampling
    num_channels: int
    num_frames: int
    heavy: bool  # decoding ran a codec or the resampler (C code that releases the GIL)
    clipped: bool = False  # a segment whose end lay past the end of its file
    quality: SignalQuality | None = None  # content hash and signal statistics, before resampling or downmixing


def load_audio(
    planned: PlannedRow, options: AudioOptions, plan: RecordPlan | None = None, max_file_size: int | None = None
) -> LoadedAudio | WindowRecords | Rejection:
    """Reads, decodes and encodes one row's file; a Rejection names the line and the reason.

    With a `plan`, a segment row decodes only its span, and a windowed row returns its WindowRecords
    (decoded as the writer iterates them); other features the manifest asks for are filled in.
    """
    if plan is not None and not plan.is_plain(planned):
        return plan.load(planned, LoadedAudio)
    row, uri = planned.row, planned.uri
    try:
        if is_remote(uri):
            # gs://: one media GET, checked against the size and generation StatFiles listed before
            # its body is read; an object replaced since raises ObjectChangedError (`unreadable`).
            source: str | bytes = read_bytes(uri, planned.size, planned.generation, max_size=max_file_size)
        else:
            source = uri
        decoded = decode_audio(source, options, name=uri)
    except Exception as error:
        return rejection_for(planned, error)
    example = AudioExample(
        audio=decoded.samples.tobytes(),
        label=planned.label,
        sample_rate=decoded.sample_rate,
        num_channels=decoded.num_channels,
        num_frames=decoded.num_frames,
        blob=row.blob,
        label_name=planned.label_name,
        **(plan.extra_features(planned) if plan is not None else {}),
    )
    return LoadedAudio(
        record=frame_record(encode_example(example)),
        sample_rate=decoded.sample_rate,
        source_rate=decoded.source_sample_rate,
        num_channels=decoded.num_channels,
        num_frames=decoded.num_frames,
        heavy=decoded.heavy,
        quality=decoded.quality,
    )


def _bounded_ordered_map(
    pool: ThreadPoolExecutor, fn: Callable[[PlannedRow], Any], items: list[PlannedRow], max_items: int, max_bytes: int
) -> Iterator[Any]:
    """Like pool.map, in order, but with at most max_items / about max_bytes of input in flight."""
    pending: deque[tuple[int, Future]] = deque()
    in_flight = 0
    for item in items:
        while pending and (len(pending) >= max_items or in_flight + item.size > max_bytes):
            size, future = pending.popleft()
            in_flight -= size
            yield future.result()
        pending.append((item.size, pool.submit(fn, item)))
        in_flight += item.size
    while pending:
        yield pending.popleft()[1].result()


class AudioLoader:
    """`load_audio` for a shard's rows, in their order, each on the calling thread or on a pool.

    The first files of each shard are loaded on the calling thread, and the rest too if none of
    them was heavy and the audio is local; otherwise the rest go to the pool.
    """

    def __init__(self, options: IngestOptions):
        self._audio = options.audio
        self._plan = RecordPlan.of(options)
        self._max_file_size = options.max_file_size
        self._remote = is_remote(options.audio_root)
        self._concurrency = options.effective_fetch_concurrency
        self._pool = ThreadPoolExecutor(self._concurrency)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def _load(self, planned: PlannedRow) -> LoadedAudio | WindowRecords | Rejection:
        return load_audio(planned, self._audio, self._plan, self._max_file_size)

    def load_in_order(self, ordered: list[PlannedRow]) -> Iterator[LoadedAudio | WindowRecords | Rejection]:
        """Yields one result per row, in the order of `ordered`. A windowed row's WindowRecords is
        decoded when the caller iterates it, on the caller's thread."""
        if not self._remote:
            probe = ordered[: _PROBE_FILES if self._concurrency > 1 else len(ordered)]
            heavy = False
            for planned in probe:
                loaded = self._load(planned)
                heavy = heavy or (isinstance(loaded, LoadedAudio) and loaded.heavy)
                yield loaded
            ordered = ordered[len(probe) :]
            if not heavy:
                yield from map(self._load, ordered)
                return
        yield from _bounded_ordered_map(self._pool, self._load, ordered, self._concurrency, _MAX_BYTES_IN_FLIGHT)
