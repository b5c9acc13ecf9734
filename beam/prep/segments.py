"""Segments and windows: a span of a file decoded without decoding the rest, and fixed windows streamed.

Positions are exact integers: frames at the source file's own rate, so an example's place in its
source is `[segment_start, segment_end) / source_sample_rate` seconds with no rounding drift. A row's
`start`/`end` in seconds become frames by `round(seconds × rate)` (decimal text is read exactly).

Only the span is decoded: the decoder seeks to the start. WAV, FLAC and OGG/Vorbis seek exactly (the
samples are bit-exact with a decode from the start). After an MP3 seek the first two MPEG frames come
out wrong (the decoder lacks the bit reservoir and overlap of the frames before), so MP3 spans start
decoding `MP3_PREROLL_FRAMES` earlier and drop them: the samples then match a decode from the start
within one int16 step (bench/RESULTS.md, tests/beam/prep/test_segments.py).

Windows (`--window-seconds`, `--hop-seconds`, `--last-window`) follow lhotse's `cut_into_windows`:
full windows start every hop while they fit; after them comes at most one shorter window at the next
hop, unless the last full window already reached the end. `pad` zero-pads it to the window length,
`keep` keeps it short, `drop` drops it. They are read in blocks, so memory does not grow with the file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from audioflow.beam.format import SAMPLE_FORMATS
from audioflow.beam.prep.audio import (
    _EXACT_LENGTH_FORMATS,
    _PLAIN_FORMATS,
    _PLAIN_SUBTYPES,
    AudioOptions,
    AudioRejected,
    DecodedAudio,
    _check_not_truncated,
    _check_quality,
    _downmix,
    _largest_allocation,
    _to_sample_format,
)

__all__ = [
    "LAST_WINDOW_MODES",
    "MP3_PREROLL_FRAMES",
    "DecodedSpan",
    "DecodedWindow",
    "Span",
    "SpanError",
    "WindowSpec",
    "decode_span",
    "expected_window_count",
    "iter_windows",
    "parse_span",
]

MP3_PREROLL_FRAMES = 4608  # decoded before an MP3 span and dropped: 4 MPEG-1 frames, 8 MPEG-2.5 frames
LAST_WINDOW_MODES = ("pad", "drop", "keep")
_BLOCK_BYTES = 1 << 20  # samples read per block when streaming windows (float32), besides one window


class SpanError(ValueError):
    """A row's start/end cannot name a span (the message says why, without the line)."""


def _seconds(raw: str, what: str) -> Fraction:
    try:
        value = Fraction(raw.strip())
    except (ValueError, ZeroDivisionError):
        raise SpanError(f"{what} {raw!r} is not a number of seconds") from None
    if value < 0:
        raise SpanError(f"{what} {raw!r} is negative")
    return value


@dataclass(frozen=True)
class Span:
    """A segment of a file in seconds, as the row gives it (exact decimals)."""

    start: Fraction
    end: Fraction

    @property
    def seconds(self) -> float:
        return float(self.end - self.start)

    def key(self) -> str:
        """The same text for the same span however it was written ('1.50' and '1.5')."""
        return f"{self.start}-{self.end}"

    def frames(self, rate: int) -> tuple[int, int]:
        """[start, end) in frames at `rate`: round(seconds × rate), half to even."""
        return round(self.start * rate), round(self.end * rate)


def parse_span(start: str | None, end: str | None) -> Span | None:
    """The row's segment, or None for the whole file (no segment columns, or both cells empty).

    Raises:
        SpanError: not a number, negative, or end <= start.
    """
    if start is None or end is None or (not start.strip() and not end.strip()):
        return None
    span = Span(_seconds(start, "start"), _seconds(end, "end"))
    if span.end <= span.start:
        raise SpanError(f"end {end!r} is not after start {start!r}")
    return span


@dataclass(frozen=True)
class WindowSpec:
    """Fixed windows: length and hop in seconds, and what happens to a last, shorter window."""

    seconds: float
    hop_seconds: float = 0.0  # 0: the window length (windows touch, no overlap)
    last: str = "pad"

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError("--window-seconds must be positive")
        if self.hop_seconds < 0:
            raise ValueError("--hop-seconds must not be negative")
        if self.last not in LAST_WINDOW_MODES:
            raise ValueError(f"--last-window must be one of {list(LAST_WINDOW_MODES)}, not {self.last!r}")

    @property
    def hop(self) -> float:
        return self.hop_seconds or self.seconds

    def frames(self, rate: int) -> tuple[int, int]:
        """(window, hop) in frames at `rate`, at least one each."""
        window = max(1, round(Fraction(str(self.seconds)) * rate))
        return window, max(1, round(Fraction(str(self.hop)) * rate))

    def to_json_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "hop_seconds": self.hop, "last_window": self.last}


@dataclass(frozen=True)
class DecodedSpan:
    """A segment's samples, and where they lie in the source (frames at `audio.source_sample_rate`)."""

    audio: DecodedAudio
    start: int
    end: int
    clipped: bool  # the row's end lay past the end of the file: the segment ends with the file


@dataclass(frozen=True)
class DecodedWindow:
    """One window's samples (padded for `pad`), with its real span in the source."""

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    start: int  # absolute, in source frames
    end: int  # end of the real audio (a padded window's padding lies beyond it)
    offset: int  # start relative to the parent row's start
    heavy: bool


@dataclass(frozen=True)
class _Source:
    """An open file's header facts, after the checks every span and window path shares."""

    frames: int
    rate: int
    channels: int
    transform: bool
    exact: bool
    heavy: bool
    mp3: bool


def _check_source(
    audio_file: sf.SoundFile, options: AudioOptions, name: str, max_source_duration: float | None
) -> _Source:
    frames, rate, channels = audio_file.frames, audio_file.samplerate, audio_file.channels
    if rate <= 0 or channels <= 0:
        raise AudioRejected("unreadable", f"{name}: header declares {rate} Hz, {channels} channel(s)")
    if frames <= 0:
        raise AudioRejected("empty_audio", f"{name}: the file holds no audio frames")
    if max_source_duration is not None and frames / rate > max_source_duration:
        raise AudioRejected(
            "too_long",
            f"{name}: the source's {frames / rate:.1f} s is over --max-source-duration {max_source_duration:g} s",
        )
    float_to_int = options.sample_format == "int16" and audio_file.subtype in ("FLOAT", "DOUBLE")
    transform = (
        float_to_int
        or (options.mono and channels > 1)
        or (options.sample_rate is not None and options.sample_rate != rate)
    )
    _check_not_truncated(audio_file, name)
    codec = audio_file.format not in _PLAIN_FORMATS or audio_file.subtype not in _PLAIN_SUBTYPES
    output_rate = options.sample_rate if options.sample_rate is not None else rate
    return _Source(
        frames=frames,
        rate=rate,
        channels=channels,
        transform=transform,
        exact=audio_file.format in _EXACT_LENGTH_FORMATS,
        heavy=codec or output_rate != rate,
        mp3=audio_file.format == "MP3",
    )


def _check_allocation(frames: int, source: _Source, options: AudioOptions, name: str) -> None:
    largest = _largest_allocation(frames, source.rate, source.channels, source.transform, options)
    if options.max_decoded_bytes is not None and largest > options.max_decoded_bytes:
        raise AudioRejected(
            "too_large",
            f"{name}: {frames} frames × {source.channels} channel(s) would decode to {largest} bytes, "
            f"over the limit of {options.max_decoded_bytes} bytes for one example",
        )


def _read_span(audio_file: sf.SoundFile, start: int, count: int, source: _Source, dtype: str) -> np.ndarray:
    """Reads `count` frames from frame `start` (fewer at the end of the file).

    MP3 spans are read in one call that starts `MP3_PREROLL_FRAMES` earlier: libsndfile's MPEG decoder
    gives wrong samples when a span is read in several calls (measured with VBR files, libsndfile
    1.2.2), and right after a seek without the pre-roll. Other formats seek exactly; a file that
    cannot seek is read up to the start.
    """
    if not audio_file.seekable():
        try:
            position = max(0, audio_file.tell())
        except (RuntimeError, sf.LibsndfileError):
            position = 0
        remaining = start - position
        while remaining > 0:
            skipped = len(audio_file.read(min(remaining, 1 << 16), dtype=dtype, always_2d=True))
            if skipped == 0:
                break
            remaining -= skipped
        return audio_file.read(count, dtype=dtype, always_2d=True)
    preroll = min(start, MP3_PREROLL_FRAMES) if source.mp3 else 0
    audio_file.seek(start - preroll)
    return audio_file.read(preroll + count, dtype=dtype, always_2d=True)[preroll:]


def _finish(samples: np.ndarray, source: _Source, options: AudioOptions, name: str) -> np.ndarray:
    """Raw samples (float32 when transformed) -> the dataset's format: downmix, resample, quantise."""
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise AudioRejected("invalid_samples", f"{name}: NaN or infinite samples")
    if not source.transform:
        return np.ascontiguousarray(samples, dtype=SAMPLE_FORMATS[options.sample_format][0])
    if options.mono and samples.shape[1] > 1:
        samples = _downmix(samples)
    if options.sample_rate is not None and options.sample_rate != source.rate:
        samples = soxr.resample(samples, source.rate, options.sample_rate, quality=options.resample_quality)
        if samples.ndim == 1:
            samples = samples[:, np.newaxis]
    return _to_sample_format(samples, options.sample_format)


def _opened(source: str | bytes | BinaryIO) -> str | BinaryIO:
    return io.BytesIO(source) if isinstance(source, bytes) else source


def decode_span(
    source: str | bytes | BinaryIO,
    options: AudioOptions,
    span: Span | None,
    name: str = "",
    max_source_duration: float | None = None,
) -> DecodedSpan:
    """Decodes only `span` of a file (a path, its bytes, or a seekable binary stream); None is the
    whole file (a row without times in a manifest of segments: its record still says where it lies).

    An end past the end of the file ends the segment with the file (`clipped`); a start at or past it
    is a `bad_segment`. `options.max_duration` limits the segment, `max_source_duration` the file.

    Raises:
        AudioRejected: bad_segment, unreadable, empty_audio, too_long, too_large or invalid_samples.
    """
    try:
        with sf.SoundFile(_opened(source)) as audio_file:
            checked = _check_source(audio_file, options, name, max_source_duration)
            start, end = (0, checked.frames) if span is None else span.frames(checked.rate)
            if start >= checked.frames:
                raise AudioRejected(
                    "bad_segment",
                    f"{name}: the segment starts at {start / checked.rate:g} s (frame {start}), at or past the end "
                    f"of the file ({checked.frames} frames, {checked.frames / checked.rate:g} s)",
                )
            clipped = end > checked.frames
            end = min(end, checked.frames)
            if end <= start:
                raise AudioRejected(
                    "bad_segment", f"{name}: the segment is shorter than one frame at {checked.rate} Hz"
                )
            if options.max_duration is not None and (end - start) / checked.rate > options.max_duration:
                raise AudioRejected(
                    "too_long",
                    f"{name}: the segment's {(end - start) / checked.rate:.1f} s is over --max-duration "
                    f"{options.max_duration:g} s",
                )
            _check_allocation(end - start, checked, options, name)
            dtype = "float32" if checked.transform else options.sample_format
            samples = _read_span(audio_file, start, end - start, checked, dtype)
    except sf.LibsndfileError as error:
        raise AudioRejected("unreadable", f"{name}: {error.error_string}") from None
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as error:
        raise AudioRejected("unreadable", f"{name}: {type(error).__name__}: {error}") from None
    if samples.shape[0] == 0:
        raise AudioRejected("empty_audio", f"{name}: no frames could be decoded in the segment")
    if checked.exact and samples.shape[0] < end - start:
        raise AudioRejected(
            "unreadable", f"{name}: truncated: decoded {samples.shape[0]} of the segment's {end - start} frames"
        )
    end = start + samples.shape[0]
    # Measured as decoded, before _finish resamples or downmixes (prep/quality.py); NaN is _finish's to refuse.
    finite = samples.dtype.kind != "f" or bool(np.isfinite(samples).all())
    quality = _check_quality(samples, checked.rate, options, name) if finite else None
    out = _finish(samples, checked, options, name)
    if out.shape[0] == 0:
        raise AudioRejected("empty_audio", f"{name}: resampling the segment leaves no frames")
    output_rate = options.sample_rate if options.sample_rate is not None else checked.rate
    decoded = DecodedAudio(
        samples=out, sample_rate=output_rate, source_sample_rate=checked.rate, heavy=checked.heavy, quality=quality
    )
    return DecodedSpan(audio=decoded, start=start, end=end, clipped=clipped)


def iter_windows(
    source: str | bytes | BinaryIO,
    options: AudioOptions,
    windows: WindowSpec,
    span: Span | None = None,
    name: str = "",
    max_source_duration: float | None = None,
) -> Iterator[DecodedWindow]:
    """Yields the windows of a file, or of `span` of it, reading the audio in blocks.

    Memory holds one block and one window, whatever the file's length. The generator may raise after
    it has yielded windows (a file found truncated or corrupt part-way): the caller discards the row's
    windows then.

    Raises:
        AudioRejected: as decode_span, and shorter_than_window when `drop` leaves no window.
    """
    try:
        with sf.SoundFile(_opened(source)) as audio_file:
            checked = _check_source(audio_file, options, name, max_source_duration)
            start, end = (0, checked.frames) if span is None else span.frames(checked.rate)
            if start >= checked.frames:
                raise AudioRejected(
                    "bad_segment",
                    f"{name}: the segment starts at frame {start}, at or past the end of the file "
                    f"({checked.frames} frames, {checked.frames / checked.rate:g} s)",
                )
            end = min(end, checked.frames)
            window, _ = windows.frames(checked.rate)
            block = max(window, _BLOCK_BYTES // (4 * checked.channels))
            _check_allocation(window + block, checked, options, name)
            yield from _windows(audio_file, checked, options, windows, start, end, block, name)
    except sf.LibsndfileError as error:
        raise AudioRejected("unreadable", f"{name}: {error.error_string}") from None
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as error:
        raise AudioRejected("unreadable", f"{name}: {type(error).__name__}: {error}") from None


def _windows(
    audio_file: sf.SoundFile,
    source: _Source,
    options: AudioOptions,
    windows: WindowSpec,
    start: int,
    end: int,
    block: int,
    name: str,
) -> Iterator[DecodedWindow]:
    window, hop = windows.frames(source.rate)
    output_rate = options.sample_rate if options.sample_rate is not None else source.rate
    out_window = window if output_rate == source.rate else round(window * output_rate / source.rate)
    dtype = "float32" if source.transform else options.sample_format
    total = end - start
    emitted = 0

    def emit(samples: np.ndarray, lo: int, hi: int, full: bool) -> DecodedWindow:
        samples = _finish(samples, source, options, name)
        if full or windows.last == "pad":
            if samples.shape[0] < out_window:
                padding = np.zeros((out_window - samples.shape[0], samples.shape[1]), dtype=samples.dtype)
                samples = np.concatenate([samples, padding])
            samples = samples[:out_window]
        return DecodedWindow(
            samples=samples,
            sample_rate=output_rate,
            source_sample_rate=source.rate,
            start=start + lo,
            end=start + hi,
            offset=lo,
            heavy=source.heavy,
        )

    # Window boundaries relative to `start`; `available` is how much audio there is, known once read.
    offset = reached = 0
    available = total
    if source.mp3:  # each window read on its own (see _read_span)
        while offset < available:
            samples = _read_span(audio_file, start + offset, min(window, total - offset), source, dtype)
            got = offset + samples.shape[0]
            if samples.shape[0] == window:
                yield emit(samples, offset, got, full=True)
                emitted, reached, offset = emitted + 1, got, offset + hop
                continue
            available = got
            if windows.last != "drop" and samples.shape[0] and reached < available:
                yield emit(samples, offset, got, full=False)
                emitted += 1
            break
    else:  # read front to back in blocks; the buffer holds what windows still need
        buffer = _read_span(audio_file, start, 0, source, dtype)  # positions the decoder at `start`
        buffer_start = read_to = 0
        eof = False
        while True:
            while read_to < min(offset + window, total) and not eof:
                wanted = min(block, total - read_to)
                chunk = audio_file.read(wanted, dtype=dtype, always_2d=True)
                if chunk.shape[0] < wanted:
                    eof = True
                    if source.exact:
                        raise AudioRejected(
                            "unreadable", f"{name}: truncated: decoded {read_to + chunk.shape[0]} of {total} frames"
                        )
                drop = min(max(0, offset - buffer_start), buffer.shape[0])  # frames no window needs any more
                buffer = np.concatenate([buffer[drop:], chunk])
                buffer_start += drop
                read_to += chunk.shape[0]
            if offset + window <= read_to:
                lo = offset - buffer_start
                yield emit(buffer[lo : lo + window], offset, offset + window, full=True)
                emitted, reached, offset = emitted + 1, offset + window, offset + hop
                continue
            available = read_to
            if windows.last != "drop" and offset < available and reached < available:
                yield emit(buffer[offset - buffer_start : available - buffer_start], offset, available, full=False)
                emitted += 1
            break
    if available == 0:
        raise AudioRejected("empty_audio", f"{name}: no frames could be decoded")
    if emitted == 0:
        raise AudioRejected(
            "shorter_than_window",
            f"{name}: {available / source.rate:g} s of audio is shorter than one {windows.seconds:g} s window "
            "(--last-window drop)",
        )


def expected_window_count(num_frames: int, windows: WindowSpec, rate: int) -> int:
    """How many windows `num_frames` frames at `rate` give (the formula the tests check against)."""
    window, hop = windows.frames(rate)
    full = (num_frames - window) // hop + 1 if num_frames >= window else 0
    reached = (full - 1) * hop + window if full else 0
    partial = windows.last != "drop" and full * hop < num_frames and reached < num_frames
    return full + int(partial)
