"""Data quality in a dataset: quality.jsonl (one line per example) and what its flags mean.

The writer, `inspect --verify`, the report and `inspect --compare` read the same definitions from
here: what a content hash is, which signal statistics each example carries, and the thresholds
behind the flags counted in dataset.json's `quality` section. Imports neither Beam nor TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "BAND_LIMITED_FRACTION",
    "CLIPPED_FLAG_FRACTION",
    "CLIP_LEVEL",
    "CONTENT_HASH",
    "DBFS_FLOOR",
    "DC_OFFSET_FLAG",
    "FLAGS",
    "QUALITY_FILE",
    "QUALITY_VERSION",
    "SIGNAL_FIELDS",
    "SILENT_PEAK",
    "SILENT_PEAK_DBFS",
    "flags_of",
    "to_dbfs",
]

QUALITY_VERSION = 1
QUALITY_FILE = "quality.jsonl"

# What the `hash` field of quality.jsonl is, recorded in dataset.json so a reader can tell hashes apart.
# XXH3 128 rather than SHA-256 (or MurmurHash3, which datasets written before this change name here):
# the hash runs over every sample of every file, and costs a twentieth as much (bench/RESULTS.md).
# Equal hashes mean equal audio but for a chance of about 2^-64 among a billion examples; it is not a
# cryptographic hash, so someone who writes two files can make them collide on purpose (which gains
# nothing a manifest author could not do by editing rows).
CONTENT_HASH = (
    "xxh3_128 of the samples as decoded, before resampling or downmixing, in the dataset's sample format "
    "(little-endian, interleaved), seeded with the xxh3_64 (seed 0) of b'audioflow-content-2' + the "
    "source sample rate (uint32 LE) + the channel count (uint16 LE) + the sample format ('int16' or 'float32'); "
    "as 32 hex digits"
)

# Levels in dBFS are 20·log10 of a value where 1.0 is full scale (a full-scale square wave is 0 dBFS,
# a full-scale sine -3.01). Digital silence has no finite level: anything below the floor is the floor.
DBFS_FLOOR = -150.0
CLIP_LEVEL = 32767 / 32768  # a sample this close to full scale, or beyond it, sits on the 16-bit rails
SILENT_PEAK = 1 / 32768  # no sample louder than one 16-bit step: digital silence (dither included)
CLIPPED_FLAG_FRACTION = 0.001  # from 0.1% of the samples on the rails, an example counts as clipped
DC_OFFSET_FLAG = 0.01  # a channel whose mean is 1% of full scale or more counts as DC-shifted
BAND_LIMITED_FRACTION = 0.5  # content ending below half of the file's Nyquist frequency: probably upsampled

# The per-example signal statistics in quality.jsonl, with their meaning.
SIGNAL_FIELDS: dict[str, str] = {
    "peak_dbfs": "the largest absolute sample, in dBFS",
    "rms_dbfs": "the root mean square over every sample of every channel, in dBFS",
    "dc_offset": "the mean of the channel whose mean is furthest from 0, in full-scale units (-1 to 1)",
    "clipped_fraction": "the fraction of samples on or beyond the 16-bit rails (|x| >= 32767/32768)",
    "silence_fraction": "the fraction of samples that are exactly 0",
    "bandwidth_hz": "the highest frequency within 60 dB of the strongest, averaged over up to 4 frames of 512 samples",
}

# The flags dataset.json counts, with their meaning: hints for a person, not rejections (see the gates).
FLAGS: dict[str, str] = {
    "silent": "digital silence: no sample louder than one 16-bit step (peak <= -90.3 dBFS)",
    "clipped": f"at least {CLIPPED_FLAG_FRACTION:.1%} of the samples on the 16-bit rails",
    "dc_offset": f"a channel's mean is at least {DC_OFFSET_FLAG:.0%} of full scale",
    "band_limited": f"no content above {BAND_LIMITED_FRACTION:.0%} of the file's Nyquist frequency "
    "(e.g. 8 kHz audio upsampled to 44.1 kHz)",
}


def to_dbfs(value: float) -> float:
    """20·log10(value), rounded to 0.01 dB, never below DBFS_FLOOR."""
    if value <= 0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, round(20 * math.log10(value), 2))


SILENT_PEAK_DBFS = to_dbfs(SILENT_PEAK)  # -90.31


def flags_of(entry: Mapping[str, Any]) -> list[str]:
    """The FLAGS an example's quality.jsonl entry raises, in FLAGS order."""
    flags = []
    if entry["peak_dbfs"] <= SILENT_PEAK_DBFS:
        flags.append("silent")
    if entry["clipped_fraction"] >= CLIPPED_FLAG_FRACTION:
        flags.append("clipped")
    if abs(entry["dc_offset"]) >= DC_OFFSET_FLAG:
        flags.append("dc_offset")
    nyquist = entry["source_sample_rate"] / 2
    if "silent" not in flags and entry["bandwidth_hz"] < BAND_LIMITED_FRACTION * nyquist:
        flags.append("band_limited")
    return flags
