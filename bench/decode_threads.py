"""Per-clip cost of decode + encode + write on the writing thread versus on a thread pool.

The measurement behind `AudioLoader.load_in_order` (beam/job/load.py): for plain PCM WAV, a pool of
threads costs more in hand-offs and GIL contention than it saves. Runs each way `--rounds` times,
alternating, in one process, and prints wall and CPU milliseconds per clip.

Usage: decode_threads.py MANIFEST AUDIO_ROOT [--clips 4000] [--rounds 3]
  e.g. .venv/bin/python bench/decode_threads.py bench/out/data/wav-5s/manifest-8000.csv bench/out/data/wav-5s
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from audioflow.beam.format import AudioExample, encode_example
from audioflow.beam.format.tfrecord import frame_record
from audioflow.beam.prep.audio import AudioOptions, decode_audio


def load(path: str, options: AudioOptions) -> bytes:
    """What WriteShards does per file before writing: decode, encode the example, frame the record."""
    decoded = decode_audio(path, options, name=path)
    example = AudioExample(
        audio=decoded.samples.tobytes(),
        label=0,
        sample_rate=decoded.sample_rate,
        num_channels=decoded.num_channels,
        num_frames=decoded.num_frames,
        blob=path,
        label_name=None,
    )
    return frame_record(encode_example(example))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", type=Path)
    parser.add_argument("audio_root", type=Path)
    parser.add_argument("--clips", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with open(args.manifest, newline="") as handle:
        paths = [str(args.audio_root / row[1]) for row in list(csv.reader(handle))[1:]][: args.clips]
    options = AudioOptions()
    output = Path(tempfile.mkdtemp(prefix="audioflow-decode-threads-")) / "out.tfrecord"

    def inline() -> None:
        with open(output, "wb") as sink:
            for path in paths:
                sink.write(load(path, options))

    def pooled(threads: int) -> Callable[[], None]:
        def run() -> None:
            with ThreadPoolExecutor(threads) as pool, open(output, "wb") as sink:
                for record in pool.map(lambda path: load(path, options), paths):
                    sink.write(record)

        return run

    ways = {"writing thread": inline, "pool of 1": pooled(1), "pool of 4": pooled(4)}
    inline()  # warm-up: page cache, imports
    for round_ in range(args.rounds):
        for name, run in ways.items():
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
            run()
            wall = time.perf_counter() - wall
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime - cpu
            print(
                f"round {round_ + 1}  {name:<15} wall {1e3 * wall / len(paths):.3f} ms/clip  "
                f"CPU {1e3 * cpu / len(paths):.3f} ms/clip",
                flush=True,
            )
    output.unlink()
    output.parent.rmdir()


if __name__ == "__main__":
    main()
