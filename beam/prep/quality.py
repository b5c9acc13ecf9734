"""Content identity and signal checks of one decoded file, from the samples already in memory.

`decode_audio` calls `measure_signal` on the samples as libsndfile returned them, before resampling or
downmixing, so a file is read once whatever is checked. The hash is of the samples in the dataset's
sample format (format/quality.py CONTENT_HASH): a 16-bit WAV and a 16-bit FLAC of one recording decode
to the same samples and hash equal, and without resampling or downmixing it is the hash of exactly the
samples in the record. The gates (`QualityChecks`) turn what was measured into a stable reject reason.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xxhash

from audioflow.beam.format.quality import CLIP_LEVEL, SILENT_PEAK_DBFS, to_dbfs
from audioflow.beam.prep.defaults import DEFAULTS

__all__ = ["QualityChecks", "SignalQuality", "content_hash", "measure_signal"]

_HASH_PREFIX = b"audioflow-content-2"
_CHUNK_SAMPLES = 1 << 20  # samples converted to float32 at once: bounds the extra memory of a long file
_FFT_SIZE = 512
_FFT_FRAMES = 4
_BANDWIDTH_RANGE = 1e-3  # 60 dB below the strongest frequency bin (in magnitude)
# Periodic Hann: a constant (a DC offset) then leaks into bins 0 and 1 only, which are left out.
_WINDOW = np.hanning(_FFT_SIZE + 1)[:-1].astype(np.float32)


@dataclass(frozen=True, slots=True)
class SignalQuality:
    """What one file's samples are (their content hash) and how they sound, in plain numbers."""

    content_hash: str  # 32 hex digits
    peak_dbfs: float
    rms_dbfs: float
    dc_offset: float
    clipped_fraction: float
    silence_fraction: float
    bandwidth_hz: float

    def to_json_dict(self) -> dict[str, float | str]:
        return {
            "hash": self.content_hash,
            "peak_dbfs": self.peak_dbfs,
            "rms_dbfs": self.rms_dbfs,
            "dc_offset": self.dc_offset,
            "clipped_fraction": self.clipped_fraction,
            "silence_fraction": self.silence_fraction,
            "bandwidth_hz": self.bandwidth_hz,
        }


@dataclass(frozen=True)
class QualityChecks:
    """The optional gates, and whether anything is measured at all.

    Attributes:
        reject_silent: reject digital silence (`silent`).
        max_clipped_fraction: reject files with more of their samples on the rails (`clipped`); 1 is off.
        min_rms_dbfs: reject files quieter than this RMS level (`too_quiet`); 0 is off.
        enabled: False measures nothing (no content hashes, no statistics, no gates). Only
            bench/quality_overhead.py turns it off, to time the job without these checks.
    """

    reject_silent: bool = DEFAULTS["reject_silent"]
    max_clipped_fraction: float = DEFAULTS["max_clipped_fraction"]
    min_rms_dbfs: float = DEFAULTS["min_rms_dbfs"]
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.max_clipped_fraction <= 1:
            raise ValueError(f"max clipped fraction must be between 0 and 1, not {self.max_clipped_fraction}")
        if not self.min_rms_dbfs <= 0:
            raise ValueError(f"min RMS level must be at most 0 dBFS (0 turns the gate off), not {self.min_rms_dbfs}")
        if not self.enabled and self.gating:
            raise ValueError("the quality gates need the signal checks, which are turned off")

    @property
    def gating(self) -> bool:
        """Any gate is on."""
        return self.reject_silent or self.max_clipped_fraction < 1 or self.min_rms_dbfs < 0

    def rejection(self, quality: SignalQuality) -> tuple[str, str] | None:
        """(reason, what is wrong) for a file a gate refuses, or None."""
        if self.reject_silent and quality.peak_dbfs <= SILENT_PEAK_DBFS:
            return "silent", f"digital silence (peak {quality.peak_dbfs:g} dBFS), and --reject-silent is on"
        if quality.clipped_fraction > self.max_clipped_fraction:
            return "clipped", (
                f"{quality.clipped_fraction:.4%} of the samples are clipped, "
                f"over --max-clipped-fraction {self.max_clipped_fraction:g}"
            )
        if self.min_rms_dbfs < 0 and quality.rms_dbfs < self.min_rms_dbfs:
            return "too_quiet", f"RMS level {quality.rms_dbfs:g} dBFS is under --min-rms-dbfs {self.min_rms_dbfs:g}"
        return None


def content_hash(
    samples: np.ndarray, sample_rate: int, sample_format: str, to_format: Callable[[np.ndarray], np.ndarray]
) -> str:
    """The content hash (format/quality.py CONTENT_HASH) of [frames, channels] samples.

    Args:
        samples: as decoded, in the dataset's sample format or as float32 (then converted a chunk at a time).
        sample_rate: the file's own rate.
        sample_format: the dataset's sample format, int16 or float32.
        to_format: converts float32 samples into the dataset's sample format, as the record does.
    """
    header = _HASH_PREFIX + struct.pack("<IH", sample_rate, samples.shape[1]) + sample_format.encode("ascii")
    seed = xxhash.xxh3_64_intdigest(header)
    want = np.dtype("<i2" if sample_format == "int16" else "<f4")
    if samples.dtype == want:
        return xxhash.xxh3_128_hexdigest(np.ascontiguousarray(samples).data, seed)
    digest = xxhash.xxh3_128(seed=seed)  # the same hash, fed a chunk at a time
    frames = max(1, _CHUNK_SAMPLES // samples.shape[1])
    for start in range(0, samples.shape[0], frames):
        digest.update(np.ascontiguousarray(to_format(samples[start : start + frames])).data)
    return digest.hexdigest()


def _levels(samples: np.ndarray) -> tuple[float, float, float, int, int]:
    """(peak, sum of squares, largest channel mean by magnitude, clipped samples, zero samples), in full-scale units.

    Whole-array numpy passes (min, max, a count, one float32 copy, a BLAS dot product, a sum): this
    runs on every file, so each pass and each numpy call counts (bench/RESULTS.md). Long files are
    converted a chunk at a time.
    """
    flat = samples.reshape(-1)
    integer = samples.dtype.kind == "i"
    scale = 1 / 32768 if integer else 1.0
    peak = max(-float(flat.min()), float(flat.max())) * scale
    zeros = flat.size - int(np.count_nonzero(flat))
    clipped = 0
    if peak >= CLIP_LEVEL:  # counting is another pass over the samples: only for files that reach the rails
        level = 32767 if integer else CLIP_LEVEL
        clipped = int(np.count_nonzero(flat >= level)) + int(np.count_nonzero(flat <= -level))
    channels = samples.shape[1]
    if channels == 1 and flat.size <= _CHUNK_SAMPLES and integer:  # the common case, in the fewest numpy calls
        values = flat.astype(np.float32)
        squares = float(np.dot(values, values))  # at most 2^20 · 2^30: float32 cannot overflow
        means = [float(np.einsum("i->", values))]
    else:
        squares, sums = 0.0, np.zeros(channels)
        step = _CHUNK_SAMPLES - _CHUNK_SAMPLES % channels
        for start in range(0, flat.size, step):
            values = flat[start : start + step].astype(np.float32)
            with np.errstate(over="ignore"):
                squares += float(np.dot(values, values))
            sums += values.reshape(-1, channels).sum(axis=0, dtype=np.float64)
        means = sums.tolist()
    if not math.isfinite(squares):  # float sources far beyond full scale overflow float32: sum them in float64
        squares = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))
    dc = max(means, key=abs) * scale / samples.shape[0]
    return peak, squares * scale * scale, dc, clipped, zeros


def _bandwidth(samples: np.ndarray, sample_rate: int) -> float:
    """The highest frequency within 60 dB of the strongest, from the mean spectrum of a few frames.

    Up to 4 frames, evenly spread over the file, their channels averaged. The two lowest bins are
    left out: a DC offset (which the Hann window spreads over bins 0 and 1) would otherwise be the
    strongest "frequency". Resampling up leaves nothing above the old Nyquist frequency but
    quantisation noise, far below that range, so 8 kHz audio upsampled to 44.1 kHz shows under 4 kHz.
    """
    frames, channels = samples.shape
    if frames < _FFT_SIZE:
        view = np.zeros((1, _FFT_SIZE, channels), dtype=samples.dtype)
        view[0, :frames] = samples
    else:
        count = min(_FFT_FRAMES, frames // _FFT_SIZE)
        step = frames // count
        view = samples[: count * step].reshape(count, step, channels)[:, :_FFT_SIZE]
    signal = view[:, :, 0] if channels == 1 else view.mean(axis=2, dtype=np.float32)
    magnitude = np.abs(np.fft.rfft(signal * _WINDOW, axis=1)).sum(axis=0)
    magnitude[:2] = 0.0
    strongest = float(magnitude.max())
    if strongest <= 0.0:
        return 0.0
    above = magnitude[::-1] >= strongest * _BANDWIDTH_RANGE
    top = magnitude.size - 1 - int(above.argmax())  # the last bin within range (argmax: the first True)
    return round(top * sample_rate / _FFT_SIZE, 1)


def measure_signal(
    samples: np.ndarray, sample_rate: int, sample_format: str, to_format: Callable[[np.ndarray], np.ndarray]
) -> SignalQuality:
    """The content hash and signal statistics of [frames, channels] samples as decoded (int16 or float32).

    Args:
        samples: the file's samples at its own rate and channel count, in full-scale units
            (int16 counts of 1/32768, or float32).
        sample_rate: the file's own rate.
        sample_format: the dataset's sample format (the hash is of the samples in that format).
        to_format: converts float32 samples into the dataset's sample format, as the record does.
    """
    peak, squares, dc, clipped, zeros = _levels(samples)
    count = samples.size
    return SignalQuality(
        content_hash=content_hash(samples, sample_rate, sample_format, to_format),
        peak_dbfs=to_dbfs(peak),
        rms_dbfs=to_dbfs(math.sqrt(squares / count)),
        dc_offset=round(dc, 6),
        clipped_fraction=clipped / count,
        silence_fraction=zeros / count,
        bandwidth_hz=_bandwidth(samples, sample_rate),
    )
