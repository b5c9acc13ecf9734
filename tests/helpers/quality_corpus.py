"""Real inputs for the data-quality tests: duplicates built the way they happen, and defective signals.

Duplicates: one recording written as a 16-bit WAV and as a FLAC (the same samples, two encodings),
byte copies of it under other names and folders, some listed under another label, some routed to
another split by the manifest's `split` column. Signals: digital silence, clipped, DC-shifted,
band-limited then upsampled, too quiet, and clean references.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audio_files import write_manifest

RATE = 16000

# The duplicate corpus's manifest: (line, label, blob, split). Rows 2-5 are one recording; 6-7 another.
DUPLICATE_ROWS = [
    (2, "dog", "audio/dogs/bark.wav", "train"),  # group A, the first row
    (3, "dog", "audio/dogs/bark.flac", "train"),  # A: the same samples as FLAC, same label and split
    (4, "cat", "audio/copies/bark-copy.wav", "train"),  # A: a byte copy in another folder, another label
    (5, "dog", "audio/other/renamed.wav", "test"),  # A: a copy under another name, routed to test
    (6, "cat", "audio/cats/meow.wav", "train"),  # group B, the first row
    (7, "cat", "audio/cats/meow-again.wav", "test"),  # B: a copy routed to test
    (8, "dog", "audio/fill/f0.wav", "train"),
    (9, "cat", "audio/fill/f1.wav", "train"),
    (10, "dog", "audio/fill/f2.wav", "test"),
    (11, "cat", "audio/fill/f3.wav", "test"),
]


def recording(seed: int, seconds: float = 0.5, rate: int = RATE) -> np.ndarray:
    """A distinct int16 recording: a chord with noise, [frames, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    chord = sum(0.2 * np.sin(2 * np.pi * f * t) for f in rng.uniform(200, 3000, size=3))
    samples = (chord + 0.05 * rng.standard_normal(t.size)) * 32767
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16)[:, np.newaxis]


def write_duplicate_corpus(root: Path) -> Path:
    """Writes the audio of DUPLICATE_ROWS under root and its manifest (with a split column); returns it."""
    audio = root / "audio"
    for folder in ("dogs", "cats", "copies", "other", "fill"):
        (audio / folder).mkdir(parents=True, exist_ok=True)
    bark, meow = recording(1), recording(2)
    sf.write(audio / "dogs/bark.wav", bark, RATE, subtype="PCM_16")
    sf.write(audio / "dogs/bark.flac", bark, RATE, subtype="PCM_16")
    shutil.copyfile(audio / "dogs/bark.wav", audio / "copies/bark-copy.wav")
    shutil.copyfile(audio / "dogs/bark.wav", audio / "other/renamed.wav")
    sf.write(audio / "cats/meow.wav", meow, RATE, subtype="PCM_16")
    shutil.copyfile(audio / "cats/meow.wav", audio / "cats/meow-again.wav")
    for index in range(4):
        sf.write(audio / f"fill/f{index}.wav", recording(10 + index), RATE, subtype="PCM_16")
    rows = [(label, blob, split) for _, label, blob, split in DUPLICATE_ROWS]
    return write_manifest(root / "labels.csv", rows, header=("label", "blob", "split"))


def _noise(seconds: float, rate: int, level: float, seed: int) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


def write_signal_corpus(root: Path) -> dict[str, Path]:
    """Files with one defect each (and clean references), all 16-bit WAV: name -> path."""
    root.mkdir(parents=True, exist_ok=True)
    t = np.arange(RATE) / RATE
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    files = {
        "clean": (_noise(1.0, 44100, 0.1, 1), 44100),
        "silent": (np.zeros(RATE, np.float32), RATE),
        # dither: +-1 LSB noise on zeros, still digital silence
        "dithered_silence": (np.random.default_rng(3).integers(-1, 2, RATE).astype(np.float32) / 32768, RATE),
        "clipped": (np.clip(2.5 * tone, -1, 1).astype(np.float32), RATE),  # a tone driven 8 dB past full scale
        "dc_shifted": ((0.25 + _noise(1.0, RATE, 0.05, 4)).astype(np.float32), RATE),
        # 8 kHz audio upsampled to 44.1 kHz: nothing above 4 kHz
        "upsampled": (soxr.resample(_noise(1.0, 8000, 0.1, 5), 8000, 44100), 44100),
        "quiet": ((0.0005 * np.sin(2 * np.pi * 440 * t) + _noise(1.0, RATE, 0.0002, 6)).astype(np.float32), RATE),
    }
    paths = {}
    for name, (samples, rate) in files.items():
        paths[name] = root / f"{name}.wav"
        sf.write(paths[name], samples, rate, subtype="PCM_16")
    return paths
