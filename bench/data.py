"""Benchmark inputs: a small pool of generated clips, hard-linked under many distinct names.

audioflow drops rows that name the same file twice, so every row must name its own file; hard
links give N distinct names for the price of a pool of a few dozen real files (a 32,000-clip
dataset costs megabytes of disk, not gigabytes). All contenders read the same names, so they all
see the same page cache.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["VARIANTS", "Variant", "Workload", "make_workload"]

POOL_SIZE = 64
NUM_LABELS = 10


@dataclass(frozen=True)
class Variant:
    """One kind of input file, and the ingest flags that turn it into 16 kHz mono int16."""

    name: str
    extension: str
    subtype: str
    sample_rate: int
    channels: int
    ingest_flags: tuple[str, ...] = ()
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "wav": Variant("wav", "wav", "PCM_16", 16000, 1, (), "16 kHz mono 16-bit WAV"),
    "flac": Variant("flac", "flac", "PCM_16", 16000, 1, (), "16 kHz mono 16-bit FLAC"),
    "resample": Variant(
        "resample",
        "wav",
        "PCM_16",
        44100,
        2,
        ("--sample-rate", "16000", "--mono"),
        "44.1 kHz stereo 16-bit WAV -> 16 kHz mono",
    ),
}


@dataclass(frozen=True)
class Workload:
    """A manifest of `clips` rows over distinct hard-linked files, and what it amounts to."""

    variant: Variant
    clips: int
    seconds: float
    manifest: Path
    audio_root: Path
    input_bytes: int  # sum of the listed files' sizes (each link counted as the file it names)
    pcm_bytes: int  # raw 16 kHz mono int16 bytes of the output audio: the floor for output size

    @property
    def audio_seconds(self) -> float:
        return self.clips * self.seconds


def _clip(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    """Noisy tones, different per seed, so FLAC compresses it like real audio rather than silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    freqs = rng.uniform(100, 4000, size=3)
    base = sum(0.25 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs)
    columns = [np.clip(base * (1 - 0.2 * c) + 0.05 * rng.standard_normal(t.size), -0.95, 0.95) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def _ensure_pool(folder: Path, variant: Variant, seconds: float) -> list[Path]:
    pool = folder / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(POOL_SIZE):
        path = pool / f"p{index:03d}.{variant.extension}"
        if not path.exists():
            partial = path.with_suffix(".part")
            sf.write(
                partial,
                _clip(variant.sample_rate, seconds, variant.channels, index),
                variant.sample_rate,
                subtype=variant.subtype,
                format=variant.extension.upper(),
            )
            partial.rename(path)
        paths.append(path)
    return paths


def make_workload(root: Path, variant: Variant, clips: int, seconds: float = 5.0) -> Workload:
    """Creates (or reuses) the pool, the links and the manifest for `clips` rows of this variant."""
    folder = root / f"{variant.name}-{seconds:g}s"
    pool = _ensure_pool(folder, variant, seconds)
    links = folder / "clips"
    links.mkdir(exist_ok=True)
    rows, input_bytes = [], 0
    sizes = {path: path.stat().st_size for path in pool}
    for index in range(clips):
        source = pool[index % POOL_SIZE]
        name = f"c{index:06d}.{variant.extension}"
        link = links / name
        if not link.exists():
            os.link(source, link)
        rows.append((str(index % NUM_LABELS), f"clips/{name}"))
        input_bytes += sizes[source]
    manifest = folder / f"manifest-{clips}.csv"
    if not manifest.exists():
        partial = manifest.with_suffix(".part")
        with open(partial, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("Label", "Blob Name"))
            writer.writerows(rows)
        partial.rename(manifest)
    frames_out = int(16000 * seconds)
    return Workload(variant, clips, seconds, manifest, folder, input_bytes, clips * frames_out * 2)
