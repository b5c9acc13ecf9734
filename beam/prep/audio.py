"""Decoding one audio file into the dataset's sample format (plain Python: soundfile + soxr).

Limits are checked from the header before any sample is decoded, so a file that claims hours of
audio, or billions of frames, costs a header read and becomes a `too_long` (or `too_large`)
rejection instead of taking a worker's memory.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import soundfile as sf
import soxr

from audioflow.beam.format import SAMPLE_FORMATS
from audioflow.beam.prep.defaults import DEFAULTS
from audioflow.beam.prep.quality import QualityChecks, SignalQuality, measure_signal

__all__ = ["DEFAULT_MAX_DECODED_BYTES", "AudioOptions", "AudioRejected", "DecodedAudio", "decode_audio"]

# One example's samples must fit in a tf.train.Example (protobuf refuses messages of 2 GiB) and in a
# worker's memory next to the other decodes in flight. --max-duration and --max-file-size do not bound
# that: a header's frame count is only a claim (libsndfile allocates what it claims), silence compresses
# to almost nothing (a few MB of FLAC can hold gigabytes of samples) and resampling multiplies frames.
# So the largest array a decode would allocate is computed from the header and refused above this.
DEFAULT_MAX_DECODED_BYTES = 1024**3

# Formats whose header states the exact frame count: fewer decoded frames means a truncated file.
_DATA_SIZE_MISMATCH = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_DATA_SIZE = 0xFFFFFFFF - 1
_EXACT_LENGTH_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "FLAC", "CAF", "AU"})
# Containers and sample encodings libsndfile reads by copying, with no codec (FLAC reports PCM_16
# too, so both count): decoding them is mostly Python and memcpy. Anything else counts as heavy.
_PLAIN_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF", "CAF", "AU", "RAW"})
_PLAIN_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})


class AudioRejected(Exception):
    """The file cannot become an example; `reason` is a stable code from REJECT_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class AudioOptions:
    """What every example is converted to, and the limits a file must respect."""

    sample_format: str = DEFAULTS["sample_format"]
    sample_rate: int | None = None  # None: keep each file's rate
    mono: bool = DEFAULTS["mono"]
    max_duration: float | None = DEFAULTS["max_duration"]
    resample_quality: str = "HQ"
    max_decoded_bytes: int | None = DEFAULT_MAX_DECODED_BYTES  # None: no limit (trusted inputs only)
    checks: QualityChecks = field(default_factory=QualityChecks)  # content hash, signal statistics, gates

    def __post_init__(self) -> None:
        if self.sample_format not in SAMPLE_FORMATS:
            raise ValueError(f"sample format must be one of {sorted(SAMPLE_FORMATS)}, not {self.sample_format!r}")


@dataclass(frozen=True)
class DecodedAudio:
    """Samples as a C-contiguous [frames, channels] array of the dataset's dtype."""

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    # Decoding ran a codec or the resampler: C code that releases the GIL, so decoding several such
    # files on threads uses more cores. Plain PCM without resampling gains nothing from threads.
    heavy: bool = False
    quality: SignalQuality | None = None  # of the samples before resampling or downmixing (prep/quality.py)

    @property
    def num_frames(self) -> int:
        return self.samples.shape[0]

    @property
    def num_channels(self) -> int:
        return self.samples.shape[1]


def _to_sample_format(samples: np.ndarray, sample_format: str) -> np.ndarray:
    if sample_format == "float32":
        return np.ascontiguousarray(samples, dtype="<f4")
    # Same scaling soundfile/libsndfile use for int16 <-> float: x * 32768, clipped.
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")


def _check_not_truncated(audio_file: sf.SoundFile, name: str) -> None:
    """libsndfile quietly shortens a WAV whose data chunk runs past the end of the file; its header
    log says so ("data : 16000 (should be 7978)"). A truncated file is refused, not half-written."""
    match = _DATA_SIZE_MISMATCH.search(audio_file.extra_info)
    if match:
        declared, present = int(match[1]), int(match[2])
        if present < declared < _UNKNOWN_DATA_SIZE:  # streaming writers leave 0 or 0xFFFFFFFF: not truncation
            raise AudioRejected(
                "unreadable", f"{name}: truncated: header declares {declared} data bytes, file has {present}"
            )


def _largest_allocation(frames: int, rate: int, channels: int, transform: bool, options: AudioOptions) -> int:
    """Bytes of the largest array decoding this header allocates: the samples as read (float32 when
    they are downmixed or resampled), or soxr's float32 output when resampling."""
    largest = frames * channels * (4 if transform else SAMPLE_FORMATS[options.sample_format][1])
    if options.sample_rate is not None and options.sample_rate != rate:
        out_channels = 1 if options.mono else channels
        largest = max(largest, math.ceil(frames * options.sample_rate / rate) * out_channels * 4)
    return largest


def _downmix(samples: np.ndarray) -> np.ndarray:
    """The float32 mean over channels, as [frames, 1].

    Bit-identical to `samples.mean(axis=1, keepdims=True, dtype=np.float32)` (channels summed in
    order, then divided by their count, in float32), but adds whole columns instead of reducing
    each short row, which made numpy's mean the largest cost of `--mono` (bench/RESULTS.md). From
    8 channels on, numpy sums each row pairwise (a different rounding order), so those files keep
    numpy's mean.
    """
    if samples.shape[1] >= 8:
        return samples.mean(axis=1, keepdims=True, dtype=np.float32)
    total = samples[:, 0].copy()
    for channel in range(1, samples.shape[1]):
        total += samples[:, channel]
    total /= np.float32(samples.shape[1])
    return total[:, np.newaxis]


def decode_audio(source: str | bytes, options: AudioOptions, name: str = "") -> DecodedAudio:
    """Decodes a file (a local path, or the file's bytes) into the requested format.

    Without resampling or downmixing, samples come straight from libsndfile in the target dtype,
    so they are bit-exact with `soundfile.read(path, dtype=sample_format)`.

    Raises:
        AudioRejected: unreadable, empty_audio, too_long, too_large or invalid_samples, with the details.
    """
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with sf.SoundFile(opened) as audio_file:
            frames, rate, channels = audio_file.frames, audio_file.samplerate, audio_file.channels
            if rate <= 0 or channels <= 0:
                raise AudioRejected("unreadable", f"{name}: header declares {rate} Hz, {channels} channel(s)")
            if frames <= 0:
                raise AudioRejected("empty_audio", f"{name}: the file holds no audio frames")
            duration = frames / rate
            if options.max_duration is not None and duration > options.max_duration:
                raise AudioRejected(
                    "too_long", f"{name}: {duration:.1f} s is over --max-duration {options.max_duration:g} s"
                )
            # libsndfile does not scale float files read as int16 (it truncates them to about
            # silence), so float sources always go through float32 and our own quantisation.
            float_to_int = options.sample_format == "int16" and audio_file.subtype in ("FLOAT", "DOUBLE")
            transform = (
                float_to_int
                or (options.mono and channels > 1)
                or (options.sample_rate is not None and options.sample_rate != rate)
            )
            largest = _largest_allocation(frames, rate, channels, transform, options)
            if options.max_decoded_bytes is not None and largest > options.max_decoded_bytes:
                raise AudioRejected(
                    "too_large",
                    f"{name}: the header's {frames} frames × {channels} channel(s) would decode to {largest} bytes, "
                    f"over the limit of {options.max_decoded_bytes} bytes for one example",
                )
            _check_not_truncated(audio_file, name)
            dtype = "float32" if transform else options.sample_format
            if audio_file.seekable():
                audio_file.seek(0)  # as soundfile.read does; MP3 decodes differently without it
            # The header's frame count, not -1: soundfile refuses -1 on files libsndfile cannot seek
            # (GSM 6.10 WAVs, a valid encoding); `frames` has passed the limits above either way.
            samples = audio_file.read(frames, dtype=dtype, always_2d=True)
            exact = audio_file.format in _EXACT_LENGTH_FORMATS
            codec = audio_file.format not in _PLAIN_FORMATS or audio_file.subtype not in _PLAIN_SUBTYPES
    except sf.LibsndfileError as error:
        raise AudioRejected("unreadable", f"{name}: {error.error_string}") from None
    except (RuntimeError, TypeError, ValueError, OverflowError, MemoryError) as error:
        raise AudioRejected("unreadable", f"{name}: {type(error).__name__}: {error}") from None

    if samples.shape[0] == 0:
        raise AudioRejected("empty_audio", f"{name}: no frames could be decoded")
    if exact and samples.shape[0] < frames:
        raise AudioRejected("unreadable", f"{name}: truncated: decoded {samples.shape[0]} of {frames} frames")
    if samples.dtype.kind == "f" and not np.isfinite(samples).all():
        raise AudioRejected("invalid_samples", f"{name}: NaN or infinite samples")
    quality = _check_quality(samples, rate, options, name)

    if transform:
        if options.mono and samples.shape[1] > 1:
            samples = _downmix(samples)
        if options.sample_rate is not None and options.sample_rate != rate:
            decoded_frames = samples.shape[0]
            samples = soxr.resample(samples, rate, options.sample_rate, quality=options.resample_quality)
            if samples.ndim == 1:
                samples = samples[:, np.newaxis]
            if samples.shape[0] == 0:  # a frame or two at a high rate: an empty example would fail verify
                raise AudioRejected(
                    "empty_audio",
                    f"{name}: resampling {decoded_frames} frame(s) from {rate} Hz to {options.sample_rate} Hz "
                    "leaves no frames",
                )
        samples = _to_sample_format(samples, options.sample_format)
    else:
        samples = np.ascontiguousarray(samples, dtype=SAMPLE_FORMATS[options.sample_format][0])
    output_rate = options.sample_rate if options.sample_rate is not None else rate
    return DecodedAudio(
        samples=samples,
        sample_rate=output_rate,
        source_sample_rate=rate,
        heavy=codec or output_rate != rate,
        quality=quality,
    )


def _check_quality(samples: np.ndarray, rate: int, options: AudioOptions, name: str) -> SignalQuality | None:
    """Measures the samples as decoded and applies the gates (prep/quality.py).

    Raises:
        AudioRejected: silent, clipped or too_quiet, when a gate refuses the file.
    """
    if not options.checks.enabled:
        return None
    to_format = partial(_to_sample_format, sample_format=options.sample_format)
    quality = measure_signal(samples, rate, options.sample_format, to_format)
    refused = options.checks.rejection(quality)
    if refused is not None:
        raise AudioRejected(refused[0], f"{name}: {refused[1]}")
    return quality
