"""How exact are segments decoded by seeking? Each container against a decode of the whole file.

For OGG/Vorbis and MP3 at several rates, channel counts and compression levels (MP3: constant and
variable bitrate), 25 random 4,000-frame spans per file are read three ways and compared, as int16,
with the same span of a decode from the start:

- "seek": soundfile's own seek, then one read (what `soundfile.read(start=…, stop=…)` does);
- "pre-roll": audioflow's segment read (`prep/segments.py`): start MP3_PREROLL_FRAMES earlier, one read;
- "split reads": the pre-roll, then the span read in 1,000-frame calls (what block streaming would do).

The table gives the largest difference in int16 steps and how many samples differ. Prints Markdown;
`--append bench/RESULTS.md` appends it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from audioflow.beam.prep.audio import AudioOptions
from audioflow.beam.prep.segments import MP3_PREROLL_FRAMES, Span, decode_span

CASES = [(8000, 1), (16000, 1), (22050, 2), (44100, 2), (48000, 1)]
CODECS = [("ogg", "VORBIS", (0.0, 0.9)), ("mp3", "MPEG_LAYER_III", (0.0, 0.5, 0.9))]
SPAN = 4000


def _signal(rate: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(rate * 40) / rate
    columns = [
        0.3 * np.sin(2 * np.pi * (440 + 100 * c) * t)
        + 0.2 * np.sin(2 * np.pi * 1234 * t * (1 + t / 200))
        + 0.05 * rng.standard_normal(t.size)
        for c in range(channels)
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _compare(got: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    difference = np.abs(got.astype(int) - expected.astype(int))
    return int(difference.max()), int((difference > 0).sum())


def measure(folder: Path) -> list[str]:
    rng = np.random.default_rng(1)
    rows = []
    options = AudioOptions(max_duration=None)
    for extension, subtype, levels in CODECS:
        for rate, channels in CASES:
            for level in levels:
                path = folder / f"{rate}-{channels}-{level}.{extension}"
                with sf.SoundFile(path, "w", rate, channels, subtype=subtype, compression_level=level) as out:
                    out.write(_signal(rate, channels, rng))
                full = sf.read(path, dtype="int16", always_2d=True)[0]
                kbps = os.path.getsize(path) * 8 / 40 / 1000
                results = {"seek": [0, 0], "pre-roll": [0, 0], "split reads": [0, 0]}
                for start in rng.integers(MP3_PREROLL_FRAMES + 1, len(full) - SPAN - 1, 25):
                    start = int(start)
                    expected = full[start : start + SPAN]
                    seek = sf.read(path, start=start, stop=start + SPAN, dtype="int16", always_2d=True)[0]
                    span = Span(start / rate, (start + SPAN) / rate)  # exact: integers over the rate
                    ours = decode_span(str(path), options, span).audio.samples
                    with sf.SoundFile(path) as audio_file:
                        audio_file.seek(start - MP3_PREROLL_FRAMES)
                        audio_file.read(MP3_PREROLL_FRAMES, dtype="int16", always_2d=True)
                        split = np.concatenate(
                            [audio_file.read(1000, dtype="int16", always_2d=True) for _ in range(SPAN // 1000)]
                        )
                    for name, got in (("seek", seek), ("pre-roll", ours), ("split reads", split)):
                        worst, count = _compare(got, expected)
                        results[name][0] = max(results[name][0], worst)
                        results[name][1] += count
                cells = " | ".join(f"{worst:,} ({count:,})" for worst, count in results.values())
                rows.append(f"| {extension} | {rate} | {channels} | {level} | {kbps:.0f} | {cells} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--append", type=Path, help="append the section to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(Path(folder))
    section = "\n".join(
        [
            "## Segment seek accuracy, OGG and MP3",
            "",
            f"`bench/seek_accuracy.py`: 25 random {SPAN:,}-frame spans per file of 40 s, compared as int16 with",
            "a decode from the start. Cells: the largest difference in int16 steps (samples that differ, over",
            f"all spans). Pre-roll: {MP3_PREROLL_FRAMES:,} frames for MP3, none for OGG. libsndfile "
            f"{sf.__libsndfile_version__}.",
            "",
            "| codec | Hz | channels | compression level | kbit/s | seek | pre-roll, one read (audioflow) | "
            "pre-roll, split reads |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    print(section)
    if args.append:
        with args.append.open("a", encoding="utf-8") as handle:
            handle.write("\n" + section + "\n")


if __name__ == "__main__":
    main()
