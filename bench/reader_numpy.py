"""The NumPy reader against read_split, random access, and the memory of a process that only reads.

    .venv/bin/python bench/reader_numpy.py [--clips 2000] [--rounds 5] [--random-reads 20000]
                                           [--append bench/RESULTS.md]

On one dataset of 5-second 16 kHz mono int16 clips (bench/data.py's WAV pool, ingested with the
default 128 MiB shards and indexed), each contender runs as a whole process, imports included, as a
user's reading job would:

    numpy int16     iter_split(audio="int16"): the samples as stored
    numpy float32   iter_split(): float32 in [-1, 1], what read_split gives
    read_split      `for example in read_split(...)` (TensorFlow, its own parallel reads)
    random access   RandomAccessSource: every index read once to warm the page cache, then
                    --random-reads reads at uniformly random indices, timed inside the process

The contenders alternate over --rounds rounds (order reversed every other round), so drifting load
from other processes on the machine hits them alike; medians are reported, with the range. Peak
RSS is the process's VmHWM (ru_maxrss would carry over the parent's peak across exec). Random access
maps the shards, so its RSS also counts every shard page it touched (file pages: shared with the page
cache, which reclaims them under pressure); its private memory (RssAnon at exit) is shown apart. Bytecode
goes to bench/out/pycache, as in bench/run.py, so no contender pays for compiling sources.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from data import VARIANTS, make_workload  # noqa: E402 (bench/ is not a package)

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))

_PEAK = """
def status_mb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024

def peak_mb():
    return status_mb("VmHWM")
"""

NUMPY_ITERATE = (
    _PEAK
    + """
import json, sys, time
start = time.perf_counter()
from audioflow.beam.arrays import iter_split
imported = time.perf_counter()
examples = frames = 0
for example in iter_split(sys.argv[1], "train", audio=sys.argv[2]):
    examples += 1
    frames += example["audio"].shape[0]
print(json.dumps({"examples": examples, "frames": frames, "import_s": imported - start,
                  "loop_s": time.perf_counter() - imported, "peak_mb": peak_mb()}))
"""
)

TF_ITERATE = (
    _PEAK
    + """
import json, sys, time
start = time.perf_counter()
from audioflow.beam.reader import read_split
import tensorflow
imported = time.perf_counter()
examples = frames = 0
for example in read_split(sys.argv[1], "train"):
    examples += 1
    frames += int(example["audio"].shape[0])
print(json.dumps({"examples": examples, "frames": frames, "import_s": imported - start,
                  "loop_s": time.perf_counter() - imported, "peak_mb": peak_mb()}))
"""
)

RANDOM_ACCESS = (
    _PEAK
    + """
import json, sys, time
import numpy as np
from audioflow.beam.arrays import RandomAccessSource
source = RandomAccessSource(sys.argv[1], "train", audio=sys.argv[2])
for i in range(len(source)):  # warm the page cache and load every index
    source[i]
order = np.random.default_rng(0).integers(len(source), size=int(sys.argv[3])).tolist()
start = time.perf_counter()
for i in order:
    source[i]
seconds = time.perf_counter() - start
print(json.dumps({"reads": len(order), "reads_per_s": len(order) / seconds, "peak_mb": peak_mb(),
                  "private_mb": status_mb("RssAnon"), "mapped_mb": status_mb("RssFile")}))
"""
)


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPYCACHEPREFIX"] = str(BENCH / "out" / "pycache")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_child(script: str, *args: str) -> dict:
    """Runs a contender as its own process; adds its wall time (interpreter start to exit)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=environment(), check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"contender failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def prepare(clips: int) -> str:
    """The dataset: bench/data.py's 5-second WAV clips, ingested and indexed once, then reused."""
    workload = make_workload(BENCH / "out" / "reader-numpy", VARIANTS["wav"], clips, 5.0)
    dataset = BENCH / "out" / "reader-numpy" / f"dataset-{clips}"
    if not (dataset / "dataset.json").exists():
        subprocess.run(
            [AUDIOFLOW, "ingest", "--manifest", str(workload.manifest), "--output", str(dataset), "--overwrite"],
            check=True,
            env=environment(),
            capture_output=True,
        )
    info = json.loads((dataset / "dataset.json").read_text())
    if not info.get("index"):
        subprocess.run([AUDIOFLOW, "index", str(dataset)], check=True, env=environment(), capture_output=True)
    return str(dataset)


def median_range(values: list[float], digits: int = 0) -> str:
    def fmt(value: float) -> str:
        return f"{value:,.{digits}f}"

    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def measure(dataset: str, rounds: int, random_reads: int) -> dict[str, list[dict]]:
    contenders = {
        "numpy int16": (NUMPY_ITERATE, dataset, "int16"),
        "numpy float32": (NUMPY_ITERATE, dataset, "float32"),
        "read_split": (TF_ITERATE, dataset),
        "random access int16": (RANDOM_ACCESS, dataset, "int16", str(random_reads)),
        "random access float32": (RANDOM_ACCESS, dataset, "float32", str(random_reads)),
    }
    names = list(contenders)
    for name in names:  # warm-up: page cache, bytecode
        run_child(*contenders[name])
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            runs[name].append(run_child(*contenders[name]))
            print(f"round {index + 1} {name}: {json.dumps(runs[name][-1])}", file=sys.stderr, flush=True)
    return runs


def report(dataset: str, runs: dict[str, list[dict]], rounds: int) -> str:
    info = json.loads((Path(dataset) / "dataset.json").read_text())
    train = info["splits"]["train"]
    load = os.getloadavg()[0]
    lines = [
        "",
        f"### NumPy reader and random access, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`.venv/bin/python bench/reader_numpy.py --clips {train['num_examples']} --rounds {rounds}` "
        f"(git {git_head()}): {train['num_examples']:,} five-second 16 kHz mono int16 clips in "
        f"{train['num_shards']} shards ({train['num_bytes'] / 1e6:,.0f} MB), local disk, page cache warm; "
        f"each contender a whole process, imports included; {rounds} alternating rounds, median (range); "
        f"load average {load:.1f} at the end on 2 shared cores.",
        "",
        "| contender | process wall s | examples/s (whole process) | import s | loop examples/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rates: dict[str, list[float]] = {}
    for name in ("numpy int16", "numpy float32", "read_split"):
        results = runs[name]
        rates[name] = [r["examples"] / r["wall_s"] for r in results]
        lines.append(
            f"| {name} | {median_range([r['wall_s'] for r in results], 2)} | {median_range(rates[name])} | "
            f"{median_range([r['import_s'] for r in results], 2)} | "
            f"{median_range([r['examples'] / r['loop_s'] for r in results])} | "
            f"{median_range([r['peak_mb'] for r in results])} |"
        )
    lines += [
        "",
        "| random access | `__getitem__`/s, one process | peak RSS MB | private MB | mapped file MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("random access int16", "random access float32"):
        results = runs[name]
        lines.append(
            f"| {name.removeprefix('random access ')} | {median_range([r['reads_per_s'] for r in results])} | "
            f"{median_range([r['peak_mb'] for r in results])} | {median_range([r['private_mb'] for r in results])} | "
            f"{median_range([r['mapped_mb'] for r in results])} |"
        )
    ratios = [a / b for a, b in zip(rates["numpy int16"], rates["read_split"], strict=True)]
    random_rate = statistics.median(r["reads_per_s"] for r in runs["random access int16"])
    iterating_peak = max(r["peak_mb"] for name in ("numpy int16", "numpy float32") for r in runs[name])
    random_names = ("random access int16", "random access float32")
    private = max(r["private_mb"] for name in random_names for r in runs[name])
    mapped = max(r["mapped_mb"] for name in random_names for r in runs[name])
    tf_peak = statistics.median(r["peak_mb"] for r in runs["read_split"])
    lines += [
        "",
        "Targets:",
        "",
        f"- NumPy reader (int16) ≥ 2× read_split's whole-process throughput: "
        f"**{'met' if statistics.median(ratios) >= 2 else 'missed'}** "
        f"({statistics.median(ratios):.2f}×, per-round ratios {min(ratios):.2f}–{max(ratios):.2f}×)",
        f"- ≥ 20,000 random `__getitem__`/s on local 5-second clips, one process: "
        f"**{'met' if random_rate >= 20000 else 'missed'}** ({random_rate:,.0f}/s)",
        f"- peak RSS of a process that only reads < 150 MB: "
        f"**{'met' if max(iterating_peak, private) < 150 else 'missed'}** (iterating: at most {iterating_peak:.0f} MB; "
        f"random access: {private:.0f} MB private, plus up to {mapped:.0f} MB of mapped shard pages, which count "
        f"in RSS but are the page cache's; read_split {tf_peak:.0f} MB)",
        "",
    ]
    return "\n".join(lines)


def git_head() -> str:
    done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--random-reads", type=int, default=20000)
    parser.add_argument("--append", type=Path, help="append the section to this file (bench/RESULTS.md)")
    args = parser.parse_args()
    dataset = prepare(args.clips)
    section = report(dataset, measure(dataset, args.rounds, args.random_reads), args.rounds)
    print(section)
    if args.append:
        with args.append.open("a") as results:
            results.write(section)


if __name__ == "__main__":
    main()
