"""Long-file windowing: `audioflow ingest --window-seconds 1` on a 5-minute and a 3-hour recording.

Two questions, each answered by whole processes measured with bench/monitor.py (wall time, peak RSS of
the process tree):

- Memory: does the job's peak RSS stay within 1.2× of the 5-minute file's when the file is 3 hours
  long? Windows are streamed in blocks, and a row's records are held back only up to 8 MiB.
- Speed: how does the job compare with the plainest loop that writes the same records, one process,
  `soundfile.blocks` over the file (no Beam, no thread pool, no manifest)? Both produce the same
  number of records with the same features (checked).

The sources are FLAC, 16 kHz mono: a tone sweep under noise, written block by block. Rounds alternate
the contenders, so load from other processes on this shared machine hits them alike; medians are
reported with the range. `--append bench/RESULTS.md` appends the section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from monitor import run_measured

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RATE = 16000
MEMORY_TARGET = 1.2

# The plainest loop producing the same records as `audioflow ingest --window-seconds 1` (pad): fixed
# blocks from soundfile, each encoded with the format's own encoder and framed, one output file.
PLAIN_LOOP = r"""
import sys
import soundfile as sf
from audioflow.beam.format import AudioExample, encode_example, frame_record
path, blob, out = sys.argv[1:4]
info = sf.info(path)
rate, frames = info.samplerate, info.frames
count = 0
with open(out, "wb") as handle:
    for start, block in enumerate(sf.blocks(path, blocksize=rate, dtype="int16", always_2d=True, fill_value=0)):
        real = min(rate, frames - start * rate)
        example = AudioExample(
            audio=block.tobytes(), label=None, sample_rate=rate, num_channels=block.shape[1],
            num_frames=block.shape[0], blob=blob, source_sample_rate=rate, segment_start=start * rate,
            segment_end=start * rate + real, window_offset=start * rate,
        )
        handle.write(frame_record(encode_example(example)))
        count += 1
print("records", count)
"""


def make_source(path: Path, seconds: int) -> Path:
    """A FLAC of `seconds` seconds, written a minute at a time (never the whole file in memory)."""
    if path.exists() and sf.info(path).frames == seconds * RATE:
        return path
    rng = np.random.default_rng(seconds)
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as audio_file:
        for minute in range(0, seconds, 60):
            t = np.arange(minute * RATE, min(seconds, minute + 60) * RATE) / RATE
            tone = 0.3 * np.sin(2 * np.pi * (300 + 200 * np.sin(2 * np.pi * t / 97)) * t)
            audio_file.write((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
    return path


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} ({min(values):,.1f}–{max(values):,.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each contender per source")
    parser.add_argument("--long-minutes", type=int, default=180)
    parser.add_argument("--short-minutes", type=int, default=5)
    parser.add_argument("--work", type=Path, default=BENCH / "out" / "windowing")
    parser.add_argument("--append", type=Path, help="append the results section to this Markdown file")
    args = parser.parse_args()

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    python = str(REPO / ".venv" / "bin" / "python")
    audioflow = str(REPO / ".venv" / "bin" / "audioflow")
    sources = {
        f"{args.short_minutes} min": make_source(work / f"{args.short_minutes}min.flac", args.short_minutes * 60),
        f"{args.long_minutes} min": make_source(work / f"{args.long_minutes}min.flac", args.long_minutes * 60),
    }
    results: dict[tuple[str, str], list] = {}
    for round_index in range(args.rounds):
        for name, source in sources.items():
            manifest = work / f"{source.stem}.csv"
            manifest.write_text(f"path\n{source.name}\n")
            output = work / f"dataset-{source.stem}"
            ingest = [audioflow, "ingest", "--manifest", str(manifest), "--output", str(output), "--overwrite",
                      "--window-seconds", "1", "--max-source-duration", "0"]  # fmt: skip
            plain = [python, "-c", PLAIN_LOOP, str(source), source.name, str(work / f"plain-{source.stem}.tfrecord")]
            for contender, command in (("audioflow ingest", ingest), ("plain soundfile loop", plain)):
                log = work / "logs" / f"{contender.split()[0]}-{source.stem}-{round_index}.log"
                result = run_measured(command, log)
                if not result.ok:
                    sys.exit(f"{contender} on {name} failed: see {log}")
                results.setdefault((contender, name), []).append(result)
                print(f"round {round_index}: {contender:22s} {name:>8s} {result.wall_seconds:7.1f} s "
                      f"{result.peak_rss_bytes / 2**20:7.1f} MiB", flush=True)  # fmt: skip
        for name, source in sources.items():  # the same records, counted once per source
            from audioflow.beam.storage import load_dataset_info

            info = load_dataset_info(str(work / f"dataset-{source.stem}"))
            assert info.num_examples == -(-sf.info(source).frames // RATE), (name, info.num_examples)

    section = render(results, sources, args)
    print(section)
    if args.append:
        with args.append.open("a", encoding="utf-8") as handle:
            handle.write("\n" + section)


def render(results: dict, sources: dict[str, Path], args: argparse.Namespace) -> str:
    short, long = list(sources)
    rows = []
    for contender in ("audioflow ingest", "plain soundfile loop"):
        for name in sources:
            runs = results[(contender, name)]
            rows.append(
                f"| {contender} | {name} | {_median([r.wall_seconds for r in runs])} | "
                f"{_median([r.peak_rss_bytes / 2**20 for r in runs])} | {_median([r.others_cores for r in runs])} |"
            )
    peak = {key: statistics.median(r.peak_rss_bytes for r in runs) for key, runs in results.items()}
    wall = {key: statistics.median(r.wall_seconds for r in runs) for key, runs in results.items()}
    ratio = peak[("audioflow ingest", long)] / peak[("audioflow ingest", short)]
    speed = wall[("audioflow ingest", long)] / wall[("plain soundfile loop", long)]
    windows = -(-sf.info(sources[long]).frames // RATE)
    verdict = "met" if ratio <= MEMORY_TARGET else "missed"
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return "\n".join(
        [
            f"## Long-file windowing ({datetime.date.today().isoformat()})",
            "",
            f"`bench/windowing.py --rounds {args.rounds}`: one FLAC per run (16 kHz mono, PCM_16), cut into "
            f"1-second windows with `--last-window pad` ({windows:,} windows for the long file). "
            f"Machine: {machine}. Medians of {args.rounds} alternating rounds, range in brackets.",
            "",
            "| contender | source | wall s | peak RSS MiB | others' cores |",
            "|---|---|---:|---:|---:|",
            *rows,
            "",
            f"- Peak RSS of the job, {long} against {short}: **{ratio:.2f}×** (target ≤ {MEMORY_TARGET}×: "
            f"**{verdict}**).",
            f"- Time of the job against the plain loop on the {long} file: **{speed:.2f}×**.",
        ]
    )


if __name__ == "__main__":
    main()
