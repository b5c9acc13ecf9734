"""A small, learnable demo dataset: three sound classes in several formats, plus a few bad rows.

`make demo` and the tests generate it, so the product can be tried with nothing but this repo:
hums (low tones), whistles (high tones) and noise bursts, in WAV, FLAC and OGG at mixed sample
rates and channel counts, with a missing file, a corrupt file and a duplicate row in the manifest.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["CLASSES", "make_demo_data", "make_multi_label_demo_data"]

CLASSES = ("hum", "whistle", "noise")
_FORMATS = (("wav", "PCM_16"), ("flac", "PCM_16"), ("ogg", "VORBIS"), ("wav", "FLOAT"))
_RATES = (16000, 22050, 44100)


def _clip(kind: str, rate: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    if kind == "hum":
        signal = np.sin(2 * np.pi * rng.uniform(90, 300) * t)
    elif kind == "whistle":
        start = rng.uniform(1500, 3000)
        signal = np.sin(2 * np.pi * (start * t + rng.uniform(-400, 400) * t**2))
    else:
        # Gaussian bursts at a fifth of full scale (RMS): peaks stay under full scale, so the demo's
        # quality report flags no clipping (at unit variance, 0.5 * 4σ went past the rails).
        signal = 0.35 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * rng.uniform(2, 6) * t) > 0)
    envelope = np.minimum(1, np.minimum(t, t[-1] - t) * 20)  # 50 ms fades, no clicks
    return (0.5 * signal * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def make_demo_data(folder: str | Path, clips_per_class: int = 40, seed: int = 0) -> Path:
    """Writes audio under folder/audio and folder/labels.csv (blob names relative to folder); returns the manifest."""
    folder = Path(folder)
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    for index in range(clips_per_class * len(CLASSES)):
        kind = CLASSES[index % len(CLASSES)]
        extension, subtype = _FORMATS[index % len(_FORMATS)]
        rate = _RATES[(index // len(_FORMATS)) % len(_RATES)]
        samples = _clip(kind, rate, rng.uniform(0.8, 1.6), rng)
        if index % 5 == 0:
            samples = np.stack([samples, 0.8 * samples], axis=1)
        name = f"{kind}/{kind}-{index:04d}.{extension}"
        (audio_dir / kind).mkdir(exist_ok=True)
        sf.write(audio_dir / name, samples, rate, subtype=subtype)
        rows.append((kind, f"audio/{name}"))
    (audio_dir / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt this is not audio")
    rows += [("hum", "audio/corrupt.wav"), ("noise", "audio/not-recorded-yet.wav"), rows[0]]
    manifest = folder / "labels.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Label", "Blob Name"])
        writer.writerows(rows)
    return manifest


def make_multi_label_demo_data(folder: str | Path, clips: int = 120, seed: int = 0) -> Path:
    """Clips holding one, two or all three sounds mixed, labelled with every sound they hold: a
    `labels` column of comma-separated names (ingest with --label-separator ','). Returns the manifest.

    Each sound is present with probability one half (at least one per clip), so a classifier has to
    detect each sound on its own: what sigmoid outputs learn.
    """
    folder = Path(folder)
    audio_dir = folder / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str]] = []
    for index in range(clips):
        present = [kind for kind in CLASSES if rng.random() < 0.5] or [CLASSES[index % len(CLASSES)]]
        rate = _RATES[index % len(_RATES)]
        seconds = rng.uniform(0.9, 1.4)
        mixed = sum(_clip(kind, rate, seconds, rng) for kind in present) / len(present)
        name = f"mix-{index:04d}.flac"
        sf.write(audio_dir / name, mixed, rate, subtype="PCM_16")
        rows.append((",".join(present), f"audio/{name}"))
    manifest = folder / "labels.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["labels", "path"])
        writer.writerows(rows)
    return manifest
