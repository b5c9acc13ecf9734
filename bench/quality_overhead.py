"""What data quality costs: ingest with and without content hashing and signal checks, in the same run.

Every contender is the same job, run as a whole process (`--ingest` below: `run_ingest`, as the CLI
calls it), one after another in interleaved rounds so that load from other work falls on all alike:

    without checks     QualityChecks(enabled=False): no hashes, statistics, sidecars or content grouping,
                       the job as it was before data quality (an internal switch only this bench uses)
    with checks        the defaults: hashes and statistics on every file, quality.jsonl, --dedupe path
    --dedupe content   the same, rejecting equal audio (no duplicates here, so no shard is rewritten)

on 8,000 distinct 5-second 16 kHz mono 16-bit WAV clips (a pool of 64 generated clips, each copy with
the low bits of its first two samples changed, so that every content hash differs): the cheapest
input there is to decode, so the checks weigh most. A second workload adds 10% more rows naming
copies of earlier clips under other names (hard links), and compares `--dedupe path` with
`--dedupe content`, which rejects them and rewrites every shard that held one. A third is the first
as FLAC, a codec to decode.

    .venv/bin/python bench/quality_overhead.py [--clips 8000] [--repeat 3] [--no-results]

appends a section to bench/RESULTS.md (never rewriting what is there). Inputs and outputs live under
bench/out/quality/ (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from contenders import BENCH, PYTHON
from data import VARIANTS, Workload
from results import machine, shown
from runs import GB, MB, Measurement, repeated

POOL = 64
SECONDS = 5.0
RATE = 16000
DUPLICATE_SHARE = 10  # one extra row per this many clips names a copy of an earlier clip


def _pool(folder: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(int(RATE * SECONDS)) / RATE
    clips = []
    for _ in range(POOL):
        freqs = rng.uniform(100, 4000, size=3)
        base = sum(0.25 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs)
        clips.append(np.clip(np.round((base + 0.05 * rng.standard_normal(t.size)) * 32767), -32768, 32767))
    return [clip.astype(np.int16) for clip in clips]


def make_workloads(root: Path, clips: int, extension: str = "wav") -> tuple[Workload, Workload]:
    """(distinct clips, the same plus copies under other names); files are generated once and reused."""
    folder = root / f"{extension}-{clips}"
    audio = folder / "clips"
    audio.mkdir(parents=True, exist_ok=True)
    pool = None
    rows = []
    for index in range(clips):
        path = audio / f"c{index:06d}.{extension}"
        if not path.exists():
            pool = pool or _pool(folder)
            samples = pool[index % POOL].copy()
            samples[:2] ^= np.array([index & 0xFF, (index >> 8) & 0xFF], dtype=np.int16)  # distinct content, inaudibly
            partial = path.with_suffix(".part")
            sf.write(partial, samples, RATE, subtype="PCM_16", format=extension.upper())
            partial.rename(path)
        rows.append((str(index % 10), f"clips/{path.name}"))
    copies = folder / "copies"
    copies.mkdir(exist_ok=True)
    extra = []
    for index in range(0, clips, DUPLICATE_SHARE):
        link = copies / f"copy-of-{index:06d}.{extension}"
        if not link.exists():
            os.link(audio / f"c{index:06d}.{extension}", link)
        extra.append((str(index % 10), f"copies/{link.name}"))
    size = (audio / f"c000000.{extension}").stat().st_size
    workloads = []
    for name, manifest_rows in ((f"distinct-{extension}", rows), (f"with-copies-{extension}", rows + extra)):
        manifest = folder / f"{name}.csv"
        with open(manifest, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("Label", "Blob Name"))
            writer.writerows(manifest_rows)
        count = len(manifest_rows)
        variant = dataclasses.replace(VARIANTS["wav"], name=name)
        pcm = count * int(RATE * SECONDS) * 2
        workloads.append(Workload(variant, count, SECONDS, manifest, folder, count * size, pcm))
    return workloads[0], workloads[1]


def ingest_contender(*flags: str):
    """This script's --ingest mode on a workload, with the given flags."""

    def contender(workload: Workload, out: Path) -> tuple[list[str], Path]:
        folder = out / "dataset"
        command = [PYTHON, str(Path(__file__).resolve()), "--ingest", str(workload.manifest), str(folder), *flags]
        return command, folder

    return contender


def ingest(argv: list[str]) -> int:
    """The measured process: one ingest, as `audioflow ingest` runs it, optionally without the checks."""
    parser = argparse.ArgumentParser()
    parser.add_argument("manifest")
    parser.add_argument("output")
    parser.add_argument("--no-checks", action="store_true")
    parser.add_argument("--dedupe", default="path")
    args = parser.parse_args(argv)
    from audioflow.beam.job.launch import run_ingest
    from audioflow.beam.prep.options import build_ingest_options
    from audioflow.beam.prep.quality import QualityChecks

    options = build_ingest_options(
        manifest=args.manifest, output=args.output, dedupe=args.dedupe, max_rejected_fraction=0.2
    )
    if args.no_checks:
        audio = dataclasses.replace(options.audio, checks=QualityChecks(enabled=False))
        options = dataclasses.replace(options, audio=audio)
    info = run_ingest(options, [])
    print(f"{info.num_examples} examples, {info.rejected['num_rows']} rejected", file=sys.stderr)
    return 0


def _row(measurement: Measurement, baseline: Measurement) -> str:
    run, base = measurement.run, baseline.run
    walls = [r.wall_seconds for r in measurement.runs]
    cpu = statistics.median(r.cpu_seconds for r in measurement.runs)
    others = statistics.median(r.others_cores for r in measurement.runs)
    return (
        f"| {measurement.workload.variant.name} | {measurement.workload.clips:,} | {measurement.contender} "
        f"| {run.wall_seconds:.1f} ({min(walls):.1f}–{max(walls):.1f}) | {run.wall_seconds / base.wall_seconds:.2f}× "
        f"| {run.peak_rss_bytes / MB:.0f} | {run.peak_rss_bytes / base.peak_rss_bytes:.2f}× "
        f"| {cpu:.1f} | {others:.2f} |"
    )


def render(args: argparse.Namespace, started: datetime.datetime, header: list[str], results: list) -> str:
    lines = [
        "",
        f"## Data quality overhead ({started:%Y-%m-%d %H:%M %Z}, bench/quality_overhead.py)",
        "",
        *header,
        "",
        "```",
        f"$ .venv/bin/python bench/quality_overhead.py {' '.join(args.argv)}".rstrip(),
        *(f"# {m.contender} ({m.workload.variant.name}): {shown(m.command)}" for group in results for m in group),
        "```",
        "",
        f"Median wall time of {args.repeat} interleaved rounds (range in parentheses), whole process; ratios against "
        "the first row of the same workload. Peak RSS is the largest of the runs. CPU s: user + system of the "
        "process (median); others' cores: CPU other work used meanwhile (median, out of 2).",
        "",
        "| workload | rows | contender | wall s | wall / first | peak RSS MB | RSS / first | CPU s | others' cores |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for group in results:
        lines += [_row(measurement, group[0]) for measurement in group]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--ingest"]:
        return ingest(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "quality")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-results", action="store_true", help="print the section instead of appending it")
    args = parser.parse_args(argv)
    args.argv = argv
    started = datetime.datetime.now().astimezone()
    header = machine()
    distinct, copies = make_workloads(args.out / "data", args.clips)
    runs = args.out / "runs"
    # An unmeasured run of each kind on a few clips fills the bytecode and page caches first.
    warm, _ = make_workloads(args.out / "data", 50)
    for flags in (("--no-checks",), ()):
        repeated(
            "warm-up", [("warm-up", ingest_contender(*flags), False)], warm, runs, rounds=1, cap=13 * GB, timeout=600
        )
    print(f"quality overhead: {distinct.clips} distinct clips", file=sys.stderr)
    first = repeated(
        "quality",
        [
            ("without checks", ingest_contender("--no-checks"), False),
            ("with checks", ingest_contender(), False),
            ("--dedupe content", ingest_contender("--dedupe", "content"), False),
        ],
        distinct,
        runs,
        rounds=args.repeat,
        cap=13 * GB,
        timeout=3600,
    )
    print(f"quality overhead: {copies.clips} rows, {copies.clips - distinct.clips} of them copies", file=sys.stderr)
    second = repeated(
        "quality",
        [
            ("with checks, --dedupe path", ingest_contender(), False),
            ("with checks, --dedupe content", ingest_contender("--dedupe", "content"), False),
        ],
        copies,
        runs,
        rounds=args.repeat,
        cap=13 * GB,
        timeout=3600,
    )
    flac, _ = make_workloads(args.out / "data", args.clips, "flac")
    print(f"quality overhead: {flac.clips} distinct FLAC clips (a codec to decode)", file=sys.stderr)
    third = repeated(
        "quality",
        [("without checks", ingest_contender("--no-checks"), False), ("with checks", ingest_contender(), False)],
        flac,
        runs,
        rounds=args.repeat,
        cap=13 * GB,
        timeout=3600,
    )
    section = render(args, started, header, [first, second, third])
    print(section)
    if not args.no_results:
        with open(args.results, "a", encoding="utf-8") as handle:
            handle.write(section)
    return 0 if all(m.ok for m in [*first, *second, *third]) else 1


if __name__ == "__main__":
    sys.exit(main())
