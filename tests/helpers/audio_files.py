"""Real audio and real broken files for tests: every format and bit depth the product claims."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

# (extension, soundfile subtype) for every encoding audioflow claims to read.
FORMATS: list[tuple[str, str]] = [
    ("wav", "PCM_U8"),
    ("wav", "PCM_16"),
    ("wav", "PCM_24"),
    ("wav", "PCM_32"),
    ("wav", "FLOAT"),
    ("flac", "PCM_16"),
    ("flac", "PCM_24"),
    ("ogg", "VORBIS"),
    ("mp3", "MPEG_LAYER_III"),
]


def tone(rate: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A deterministic noisy chord in [-0.9, 0.9], shape [frames, channels]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    base = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234 * t)
    columns = [np.clip(base * (0.9 - 0.2 * c) + 0.05 * rng.standard_normal(t.size), -0.9, 0.9) for c in range(channels)]
    return np.stack(columns, axis=1).astype(np.float32)


def write_audio(
    path: Path, rate: int = 16000, seconds: float = 0.5, channels: int = 1, subtype: str = "PCM_16", seed: int = 0
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(rate, seconds, channels, seed), rate, subtype=subtype)
    return path


def write_corrupt_files(folder: Path) -> dict[str, Path]:
    """Real broken inputs: name -> path. Each must be rejected, none may crash a job."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_audio(folder / "_source.wav", seconds=0.5).read_bytes()
    files = {
        "truncated_header": good[:20],
        "truncated_data": good[: len(good) // 2],
        "zero_bytes": b"",
        "text_named_wav": b"this is a text file, not audio\n" * 10,
        "random_bytes": np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.wav"
        paths[name].write_bytes(data)
    (folder / "_source.wav").unlink()
    return paths


def write_manifest(
    path: Path,
    rows: list[tuple[str, str]],
    header: tuple[str, str] = ("Label", "Blob Name"),
    newline: str = "\n",
    bom: bool = False,
) -> Path:
    """Writes a CSV manifest with RFC 4180 quoting."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def write_linked_corpus(root: Path, clips: int, *, corrupt: int, missing: int) -> Path:
    """A corpus of many tiny clips without the disk: `clips` hard links of five 10-50 ms WAV files under
    distinct names in ten folders (labels 0-3), then `corrupt` links of a corrupt file and `missing`
    rows naming no file; writes root/labels.csv and returns `root`."""
    sources = [write_audio(root / "src" / f"{i}.wav", rate=8000, seconds=0.01 * (i + 1), seed=i) for i in range(5)]
    corrupt_file = write_corrupt_files(root / "src" / "corrupt")["random_bytes"]
    audio = root / "audio"
    for folder in range(10):
        (audio / f"d{folder}").mkdir(parents=True)
    rows = []
    for index in range(clips):
        name = f"d{index % 10}/clip-{index:05d}.wav"
        os.link(sources[index % 5], audio / name)
        rows.append((str(index % 4), name))
    for index in range(corrupt):
        os.link(corrupt_file, audio / f"bad-{index}.wav")
        rows.append(("1", f"bad-{index}.wav"))
    rows += [("2", f"missing-{index}.wav") for index in range(missing)]
    write_manifest(root / "labels.csv", rows)
    return root


def expected_int16(path: Path) -> np.ndarray:
    """What an int16 dataset must hold for a file: soundfile's int16 decode, except for float files,
    which libsndfile truncates unscaled (near silence) and audioflow scales like every other source."""
    if sf.info(path).subtype in ("FLOAT", "DOUBLE"):
        as_float, _ = sf.read(path, dtype="float32", always_2d=True)
        return np.clip(np.round(as_float * 32768.0), -32768, 32767).astype("<i2")
    return sf.read(path, dtype="int16", always_2d=True)[0]


def tone_bursts(rate: int, seconds: float, bursts: list[tuple[float, float, float]], channels: int = 1) -> np.ndarray:
    """Quiet noise with sine bursts (start s, end s, Hz) at known offsets, shape [frames, channels]."""
    frames = round(rate * seconds)
    signal = 0.01 * np.random.default_rng(5).standard_normal(frames)
    t = np.arange(frames) / rate
    for start, end, hz in bursts:
        span = slice(round(start * rate), round(end * rate))
        signal[span] += 0.5 * np.sin(2 * np.pi * hz * t[span])
    return np.repeat(signal[:, np.newaxis], channels, axis=1).astype(np.float32)


def write_bursts(path: Path, rate: int, seconds: float, bursts: list[tuple[float, float, float]], subtype: str) -> Path:
    """A file of tone_bursts. MP3s are variable-bitrate (compression level 0.9), the case where
    libsndfile's MPEG seek goes wrong."""
    path.parent.mkdir(parents=True, exist_ok=True)
    level = {"compression_level": 0.9} if subtype == "MPEG_LAYER_III" else {}
    with sf.SoundFile(path, "w", rate, 1, subtype=subtype, **level) as audio_file:
        audio_file.write(tone_bursts(rate, seconds, bursts))
    return path


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    """The strongest frequency of a mono or multichannel clip."""
    mono = samples.astype(np.float64).reshape(samples.shape[0], -1).mean(axis=1)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / rate)[int(np.argmax(spectrum))])


# (extension, subtype) of the four containers segments are tested in.
LONG_FORMATS: list[tuple[str, str]] = [
    ("wav", "PCM_16"),
    ("flac", "PCM_16"),
    ("ogg", "VORBIS"),
    ("mp3", "MPEG_LAYER_III"),
]
