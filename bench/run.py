"""The audioflow benchmark (issue 5): floor vs. tutorial vs. `audioflow ingest`, on the same files.

Every contender runs as a separate whole process (interpreter start and imports included), one
after another, in the same invocation, so the ratios between them are measured under the same
conditions; absolute numbers on a shared 2-core machine are noisy, ratios much less so.

Sections:
  scaling  16 kHz mono WAV at each --clips size: floor, tutorial (under a memory cap), audioflow.
  reader   audioflow's read_split vs. a batched, parallel reader of the tutorial's format.
  cpu      CPU-bound inputs (FLAC; 44.1 kHz stereo -> 16 kHz mono): one decoding thread vs.
           audioflow's default thread pool vs. two Beam worker processes.

`make bench` writes bench/RESULTS.md (keeping its hand-written notes below the NOTES marker);
`--smoke` runs the three contenders on 50 clips and prints the table only (CI keeps it working).
Generated inputs and outputs live under bench/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from data import VARIANTS, Workload, make_workload
from monitor import RunResult, run_measured

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
AUDIOFLOW = str(Path(sys.executable).parent / "audioflow")
PYCACHE = BENCH / "out" / "pycache"
NOTES_MARKER = "<!-- NOTES: everything below this line is kept when RESULTS.md is regenerated -->"
GB = 1024**3
MB = 1e6


@dataclass
class Measurement:
    """One contender on one workload: every repeated run, summarised by the run of median wall time.

    Peak RSS is the largest of all runs (memory is a limit, not an average).
    """

    section: str
    contender: str
    workload: Workload
    runs: list[RunResult]
    output_bytes: int
    command: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def run(self) -> RunResult:
        ordered = sorted(self.runs, key=lambda r: (not r.ok, r.wall_seconds))
        ok = [r for r in ordered if r.ok]
        median = ok[(len(ok) - 1) // 2] if ok else ordered[0]
        return dataclasses.replace(median, peak_rss_bytes=max(r.peak_rss_bytes for r in self.runs))

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    @property
    def wall_range(self) -> str:
        walls = [r.wall_seconds for r in self.runs]
        return f"{min(walls):.1f}–{max(walls):.1f}" if len(walls) > 1 else ""

    def rate(self, amount: float) -> float | None:
        return amount / self.run.wall_seconds if self.ok else None

    def merged(self, other: Measurement) -> Measurement:
        """This measurement with the runs of another repetition of it added."""
        return dataclasses.replace(self, runs=[*self.runs, *other.runs], output_bytes=other.output_bytes)

    def to_json(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "contender": self.contender,
            "variant": self.workload.variant.name,
            "clips": self.workload.clips,
            "wall_seconds": self.run.wall_seconds,
            "peak_rss_bytes": self.run.peak_rss_bytes,
            "output_bytes": self.output_bytes,
            "input_bytes": self.workload.input_bytes,
            "pcm_bytes": self.workload.pcm_bytes,
            "audio_seconds": self.workload.audio_seconds,
            "command": self.command,
            "runs": [
                {
                    "returncode": r.returncode,
                    "wall_seconds": r.wall_seconds,
                    "peak_rss_bytes": r.peak_rss_bytes,
                    "max_processes": r.max_processes,
                    "killed_at_bytes": r.killed_at_bytes,
                    "timed_out": r.timed_out,
                    "cpu_seconds": r.cpu_seconds,
                    "others_cores": r.others_cores,
                }
                for r in self.runs
            ],
            **self.extra,
        }


# --- contenders: each returns the command that runs it and the path its output lands in ---------

Contender = Callable[[Workload, Path], tuple[list[str], Path]]


def floor(workload: Workload, out: Path) -> tuple[list[str], Path]:
    target = out / "floor.tfrecord"
    return [
        PYTHON,
        str(BENCH / "floor.py"),
        str(workload.manifest),
        str(workload.audio_root),
        str(target),
        *workload.variant.ingest_flags,
    ], target


def tutorial(workload: Workload, out: Path) -> tuple[list[str], Path]:
    folder = out / "tutorial"
    return [
        PYTHON,
        str(BENCH / "tutorial.py"),
        str(workload.manifest),
        str(workload.audio_root),
        str(folder / "data"),
    ], folder


def audioflow(*beam_args: str, fetch_concurrency: int | None = None) -> Contender:
    """`audioflow ingest` with its defaults, plus the given flags (the local runner unless told)."""

    def contender(workload: Workload, out: Path) -> tuple[list[str], Path]:
        folder = out / "audioflow"
        command = [
            AUDIOFLOW,
            "ingest",
            "--manifest",
            str(workload.manifest),
            "--output",
            str(folder),
            *workload.variant.ingest_flags,
        ]
        if fetch_concurrency is not None:
            command += ["--fetch-concurrency", str(fetch_concurrency)]
        return [*command, *beam_args], folder

    return contender


def contender_env() -> dict[str, str]:
    """The environment every contender runs in: the same for all, with bytecode caching on.

    Some sandboxes set PYTHONDONTWRITEBYTECODE, which makes every process compile TensorFlow and Beam
    from source (about 10 s more per process on the reference machine); real installs have .pyc
    files. So the contenders cache bytecode under bench/out/pycache (outside the venv, which stays
    untouched), and a warm-up run fills that cache before anything is measured.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # the same log noise for every contender
    return env


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def measure(
    section: str,
    name: str,
    contender: Contender,
    workload: Workload,
    out: Path,
    *,
    cap: int | None,
    keep: bool = False,
    timeout: float | None = None,
) -> Measurement:
    """Runs one contender on a fresh output folder; records its numbers; removes its output unless keep."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")  # "audioflow, 1 thread" -> "audioflow-1-thread"
    folder = out / f"{section}-{workload.variant.name}-{workload.clips}-{slug}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    command, target = contender(workload, folder)
    run = run_measured(
        command, out / "logs" / f"{folder.name}.log", memory_cap_bytes=cap, env=contender_env(), timeout=timeout
    )
    measurement = Measurement(section, name, workload, [run], folder_bytes(target), command, {"output": str(target)})
    print(f"  {name:<28} {describe(measurement)}", file=sys.stderr, flush=True)
    if not run.ok and run.killed_at_bytes is None and not run.timed_out:
        print(f"    failed (exit {run.returncode}); see {run.log}", file=sys.stderr, flush=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return measurement


def describe(m: Measurement) -> str:
    if m.run.killed_at_bytes is not None:
        return f"killed at {m.run.killed_at_bytes / GB:.1f} GB after {m.run.wall_seconds:.0f} s"
    if m.run.timed_out:
        return f"timed out after {m.run.wall_seconds:.0f} s"
    if m.run.returncode != 0:
        return f"FAILED (exit {m.run.returncode}) after {m.run.wall_seconds:.1f} s"
    return f"{m.run.wall_seconds:.1f} s, peak {m.run.peak_rss_bytes / MB:.0f} MB, {m.output_bytes / MB:.0f} MB out"


# --- tables -------------------------------------------------------------------------------------


def wall_text(m: Measurement) -> str:
    """Median wall time, with the range over the repeated runs."""
    if not m.ok:
        return describe(m)
    return _fmt(m.run.wall_seconds) + (f" ({m.wall_range})" if m.wall_range else "")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def scaling_table(rows: list[Measurement]) -> str:
    """One row per (clips, contender), with ratios against the floor and the tutorial of the same size."""
    lines = [
        "| clips | contender | wall s | files/s | audio s/s | input MB/s | peak RSS MB | procs | output MB "
        "| output / PCM | wall / floor | tutorial wall / this | CPU s | others' cores |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        same = [o for o in rows if o.workload.clips == m.workload.clips and o.workload.variant == m.workload.variant]
        base = next((o for o in same if o.contender == "floor" and o.ok), None)
        tut = next((o for o in same if o.contender == "tutorial"), None)
        wall = wall_text(m)
        vs_floor = m.run.wall_seconds / base.run.wall_seconds if base and m.ok else None
        if tut is None or not m.ok:
            vs_tut = "—"
        elif tut.ok:
            vs_tut = _ratio(tut.run.wall_seconds / m.run.wall_seconds)
        else:  # killed: it would have taken at least this long
            vs_tut = f"> {tut.run.wall_seconds / m.run.wall_seconds:.2f}× (killed)"
        w = m.workload
        lines.append(
            f"| {w.clips:,} | {m.contender} | {wall} | {_fmt(m.rate(w.clips), 0)} | {_fmt(m.rate(w.audio_seconds), 0)} "
            f"| {_fmt(m.rate(w.input_bytes / MB))} | {m.run.peak_rss_bytes / MB:,.0f} | {m.run.max_processes} "
            f"| {m.output_bytes / MB:,.1f} | {_ratio(m.output_bytes / w.pcm_bytes if m.ok else None)} "
            f"| {_ratio(vs_floor)} | {vs_tut} | {m.run.cpu_seconds:.1f} | {m.run.others_cores:.2f} |"
        )
    return "\n".join(lines)


def cpu_table(rows: list[Measurement]) -> str:
    """CPU-bound inputs: speed-up of each way of running over one decoding thread in one process."""
    lines = [
        "| input | clips | contender | wall s | files/s | audio s/s | input MB/s | peak RSS MB | procs "
        "| speed-up over audioflow, 1 thread | CPU s | others' cores |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in rows:
        single = next(
            (
                o
                for o in rows
                if o.workload.variant == m.workload.variant and o.contender == "audioflow, 1 thread" and o.ok
            ),
            None,
        )
        speedup = single.run.wall_seconds / m.run.wall_seconds if single and m.ok else None
        w = m.workload
        wall = wall_text(m)
        lines.append(
            f"| {w.variant.description} | {w.clips:,} | {m.contender} | {wall} | {_fmt(m.rate(w.clips), 0)} "
            f"| {_fmt(m.rate(w.audio_seconds), 0)} | {_fmt(m.rate(w.input_bytes / MB))} "
            f"| {m.run.peak_rss_bytes / MB:,.0f} | {m.run.max_processes} | {_ratio(speedup)} "
            f"| {m.run.cpu_seconds:.1f} | {m.run.others_cores:.2f} |"
        )
    return "\n".join(lines)


def reader_table(result: dict[str, Any], clips: int) -> str:
    """Best and median pass of each reader, CPU per pass, and the ratios reader_bench.py computed."""
    lines = [
        "| reader | clips | examples/s, best | examples/s, median | audio s/s, median | CPU s per pass "
        "| others' cores, median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("audioflow", "tutorial"):
        if name not in result:
            continue
        r = result[name]
        label = (
            "audioflow `read_split` (int16 → float32)"
            if name == "audioflow"
            else "tutorial format (`parse_tensor` float32)"
        )
        lines.append(
            f"| {label} | {clips:,} | {r['examples_per_s']:,.0f} | {r['median_examples_per_s']:,.0f} "
            f"| {r['median_audio_seconds_per_s']:,.0f} | {r['median_cpu_seconds']:.2f} "
            f"| {r['median_others_cores']:.2f} |"
        )
    ratio = result.get("ratio")
    if ratio:
        lines += [
            "",
            f"audioflow / tutorial examples/s: **{ratio['median_paired']:.2f}×** (median of the {ratio['rounds']} "
            f"per-round ratios {ratio['paired']}); best pass / best pass {ratio['best']:.2f}×, median / median "
            f"{ratio['median']:.2f}×; tutorial CPU / audioflow CPU per pass {ratio['cpu_seconds']:.2f}×.",
        ]
    return "\n".join(lines)


# --- targets ------------------------------------------------------------------------------------


def evaluate_targets(
    scaling: list[Measurement], cpu: list[Measurement], reader: dict[str, Any], gcs: dict[str, Any] | None = None
) -> list[str]:
    """The issue's targets, each as 'met'/'missed'/'not measured' with the numbers behind it."""

    def find(clips: int, contender: str) -> Measurement | None:
        return next((m for m in scaling if m.workload.clips == clips and m.contender == contender), None)

    out = []

    def verdict(ok: bool | None) -> str:
        return "not measured" if ok is None else ("**met**" if ok else "**missed**")

    for clips in (8000, 32000):
        a, f = find(clips, "audioflow"), find(clips, "floor")
        ratio = a.run.wall_seconds / f.run.wall_seconds if a and f and a.ok and f.ok else None
        met = None if ratio is None else ratio <= 1.5
        out.append(
            f"- audioflow ≤ 1.5× floor wall time at {clips:,} WAV clips: {verdict(met)}"
            + (f" ({ratio:.2f}×)" if ratio else "")
        )
    a, t = find(8000, "audioflow"), find(8000, "tutorial")
    if a and t and a.ok:
        speed = t.run.wall_seconds / a.run.wall_seconds
        out.append(
            f"- audioflow ≥ 5× faster than the tutorial at 8,000: {verdict(speed >= 5)} "
            f"({'≥ ' if not t.ok else ''}{speed:.1f}×{', tutorial killed' if not t.ok else ''})"
        )
    else:
        out.append(f"- audioflow ≥ 5× faster than the tutorial at 8,000: {verdict(None)}")
    small, big = find(2000, "audioflow"), find(32000, "audioflow")
    if small and big and small.ok and big.ok:
        growth = big.run.peak_rss_bytes / small.run.peak_rss_bytes
        out.append(
            f"- peak RSS at 32,000 ≤ 1.2× peak at 2,000 and < 1 GB: "
            f"{verdict(growth <= 1.2 and big.run.peak_rss_bytes < GB)} "
            f"({small.run.peak_rss_bytes / MB:.0f} MB → {big.run.peak_rss_bytes / MB:.0f} MB, {growth:.2f}×)"
        )
    else:
        out.append(f"- peak RSS at 32,000 ≤ 1.2× peak at 2,000 and < 1 GB: {verdict(None)}")
    sizes = [m.output_bytes / m.workload.pcm_bytes for m in scaling if m.contender == "audioflow" and m.ok]
    out.append(
        f"- output bytes ≤ 1.01× raw PCM: {verdict(max(sizes) <= 1.01 if sizes else None)}"
        + (f" (at most {max(sizes):.4f}×)" if sizes else "")
    )
    if "ratio" in reader:
        speed, best = reader["ratio"]["median_paired"], reader["ratio"]["best"]
        out.append(
            f"- reader ≥ 1.5× the tutorial format's examples/s: {verdict(speed >= 1.5)} "
            f"({speed:.2f}×, median of per-round ratios; best pass {best:.2f}×)"
        )
    else:
        out.append(f"- reader ≥ 1.5× the tutorial format's examples/s: {verdict(None)}")
    for variant in ("flac", "resample"):
        rows = [m for m in cpu if m.workload.variant.name == variant and m.ok]
        single = next((m for m in rows if m.contender == "audioflow, 1 thread"), None)
        best = [m for m in rows if m.contender.startswith("audioflow") and m is not single]
        if single and best:
            fastest = min(best, key=lambda m: m.run.wall_seconds)
            speed = single.run.wall_seconds / fastest.run.wall_seconds
            default = next((m for m in best if m.contender == "audioflow (default)"), None)
            default_speed = single.run.wall_seconds / default.run.wall_seconds if default else None
            out.append(
                f"- CPU-bound {VARIANTS[variant].description} ≥ 1.4× over a single worker: "
                f"{verdict(speed >= 1.4)} (best: {fastest.contender}, {speed:.2f}×; default: "
                f"{_ratio(default_speed)})"
            )
        else:
            out.append(f"- CPU-bound {VARIANTS[variant].description} ≥ 1.4× over a single worker: {verdict(None)}")
    target = "- gs:// at 30 ms per request ≥ 8× the throughput of fetching one object at a time"
    if gcs and gcs.get("sequential_wall_s") and gcs.get("default_wall_s"):
        speed = gcs["sequential_wall_s"] / gcs["default_wall_s"]
        ceiling = gcs["ceiling_by_requests_per_file"]
        one = gcs.get("one_in_flight_wall_s")
        out.append(
            f"{target}: {verdict(speed >= 8)} ({speed:.2f}×, {gcs['default_requests_per_file']:.2f} requests per file"
            + (f"; {one / gcs['default_wall_s']:.1f}× faster than audioflow with 1 in flight" if one else "")
            + f"; this emulator's ceiling at 2 requests per file: {ceiling['2']:.1f}×, at 1: {ceiling['1']:.1f}×)"
        )
    else:
        out.append(f"{target}: {verdict(None)}")
    return out


# --- environment --------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB
    versions = []
    for package in ("apache-beam", "tensorflow-cpu", "numpy", "soundfile", "soxr", "protobuf", "audioflow"):
        try:
            versions.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    try:
        revision = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "beam"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        revision, dirty = "unknown", ""
    return [
        f"- CPU: {os.cpu_count()} × {cpu}; memory {memory:.1f} GB; {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {', '.join(versions)}",
        f"- audioflow source: git {revision}{' + uncommitted changes in beam/' if dirty else ''}",
        f"- load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(the machine is shared with other work; compare ratios, not absolute numbers)",
    ]


def commands_section(args: argparse.Namespace, scaling: list[Measurement], cpu: list[Measurement]) -> list[str]:
    """The harness invocation and one example command line per contender, paths shortened to the repo."""

    def short(command: list[str]) -> str:
        text = shlex.join(command)
        return text.replace(str(REPO) + "/", "").replace(PYTHON, ".venv/bin/python")

    seen: dict[str, str] = {}
    for m in [*scaling, *cpu]:
        key = f"{m.section}: {m.contender}" + (f" ({m.workload.variant.name})" if m.section == "cpu" else "")
        seen.setdefault(key, short(m.command))
    lines = [
        "```",
        f"$ .venv/bin/python bench/run.py {' '.join(args.argv)}".rstrip(),
        "```",
        "",
        "One command line per contender (shown for the first size; the others differ only in the manifest):",
        "",
        "```",
    ]
    lines += [f"# {key}\n{command}" for key, command in seen.items()]
    lines += ["```"]
    return lines


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="50 clips, scaling section only, table to stdout")
    parser.add_argument("--clips", default="2000,8000,32000", help="sizes of the scaling section")
    parser.add_argument("--cpu-clips", type=int, default=8000, help="size of the CPU-bound section")
    parser.add_argument("--reader-clips", type=int, default=8000, help="scaling size whose outputs the reader reads")
    parser.add_argument("--sections", default="scaling,reader,cpu,gcs", help="any of scaling,reader,cpu,gcs")
    parser.add_argument("--gcs-clips", type=int, default=2000, help="clips uploaded for the gs:// latency section")
    parser.add_argument("--contenders", default="floor,tutorial,audioflow", help="scaling contenders to run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per contender (median reported)")
    parser.add_argument("--memory-cap-gb", type=float, default=13.0, help="kill a contender's tree above this RSS")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="kill a contender after this many seconds")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="generated data and outputs")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--no-results", action="store_true", help="print the tables instead of writing RESULTS.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.smoke:
        args.clips, args.sections, args.no_results, args.repeat = "50", "scaling", True, 1
    return args


CPU_CONTENDERS: list[tuple[str, Contender]] = [
    ("floor (1 thread)", floor),
    ("audioflow, 1 thread", audioflow(fetch_concurrency=1)),
    ("audioflow (default)", audioflow()),
    ("audioflow, 2 processes", audioflow("--direct_num_workers", "2", "--direct_running_mode", "multi_processing")),
]


def warm_up(data: Path, runs: Path, cap: int, timeout: float) -> None:
    """Runs every contender once on 50 clips, unmeasured, so bytecode caches and the page cache are warm."""
    print("warm-up (not measured)", file=sys.stderr, flush=True)
    wav = make_workload(data, VARIANTS["wav"], 50)
    rows = [
        measure("warmup", name, contender, wav, runs, cap=cap, keep=True, timeout=timeout)
        for name, contender in (("floor", floor), ("tutorial", tutorial), ("audioflow", audioflow()))
    ]
    run_reader(rows[2], rows[1], runs, timeout, rounds=1)
    resample = make_workload(data, VARIANTS["resample"], 50)
    measure("warmup", "audioflow, 2 processes", CPU_CONTENDERS[3][1], resample, runs, cap=cap, timeout=timeout)
    make_workload(data, VARIANTS["flac"], 50)
    for m in rows:
        shutil.rmtree(Path(m.extra["output"]).parent, ignore_errors=True)


def repeated(
    section: str,
    jobs: list[tuple[str, Contender, bool]],
    workload: Workload,
    runs: Path,
    args: argparse.Namespace,
    cap: int,
    once: frozenset[str] | set[str] = frozenset(),
) -> list[Measurement]:
    """Runs the contenders in rounds (A B C, A B C, ...), so that load from other work on the machine
    falls on all of them alike, and returns one Measurement per contender holding all its runs."""
    results: dict[str, Measurement] = {}
    for round_index in range(args.repeat):
        for name, contender, keep in jobs:
            if round_index and (name in once or not results[name].ok):
                continue  # a contender killed or failed once is not run again
            m = measure(section, name, contender, workload, runs, cap=cap, keep=keep, timeout=args.timeout)
            results[name] = results[name].merged(m) if name in results else m
    return [results[name] for name, _, _ in jobs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sections = set(args.sections.split(","))
    sizes = [int(n) for n in args.clips.split(",") if n]
    cap = int(args.memory_cap_gb * GB)
    data, runs = args.out / "data", args.out / "runs"
    started = datetime.datetime.now().astimezone()
    header = machine()
    scaling: list[Measurement] = []
    cpu: list[Measurement] = []
    reader: dict[str, Any] = {}
    reader_clips = 0
    if not args.smoke:
        warm_up(data, runs, cap, args.timeout)

    if "scaling" in sections or "reader" in sections:
        wanted = sizes if "scaling" in sections else [args.reader_clips]
        for clips in wanted:
            workload = make_workload(data, VARIANTS["wav"], clips)
            print(f"scaling: {clips} WAV clips ({workload.input_bytes / MB:.0f} MB)", file=sys.stderr, flush=True)
            keep = "reader" in sections and clips == args.reader_clips
            jobs = [("floor", floor, False)] if "scaling" in sections else []
            jobs += [("tutorial", tutorial, keep), ("audioflow", audioflow(), keep)]
            jobs = [job for job in jobs if job[0] in args.contenders.split(",")]
            # The tutorial runs once: it is 10x slower, so noise matters less, and it takes the longest.
            rows = repeated("scaling", jobs, workload, runs, args, cap, once={"tutorial"})
            if "scaling" in sections:
                scaling += rows
            if keep:
                reader_clips = clips
                reader = run_reader(rows[-1], rows[-2], runs, args.timeout)
                for m in rows[-2:]:
                    shutil.rmtree(Path(m.extra["output"]).parent, ignore_errors=True)

    if "cpu" in sections:
        for name in ("flac", "resample"):
            workload = make_workload(data, VARIANTS[name], args.cpu_clips)
            print(f"cpu: {args.cpu_clips} clips of {workload.variant.description}", file=sys.stderr, flush=True)
            jobs = [(label, contender, False) for label, contender in CPU_CONTENDERS]
            cpu += repeated("cpu", jobs, workload, runs, args, cap)

    gcs: dict[str, Any] = {}
    if "gcs" in sections:
        gcs = run_gcs_latency(args.gcs_clips, runs, args.timeout)

    finished = datetime.datetime.now().astimezone()
    report = render(args, header, started, finished, scaling, cpu, reader, reader_clips, gcs)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "scaling": [m.to_json() for m in scaling],
                "cpu": [m.to_json() for m in cpu],
                "reader": reader,
                "gcs": gcs.get("summary", {}),
            },
            indent=2,
        )
    )
    if args.no_results:
        print(report)
    else:
        notes = ""
        if args.results.exists() and NOTES_MARKER in args.results.read_text():
            notes = args.results.read_text().split(NOTES_MARKER, 1)[1]
        args.results.write_text(report + "\n" + NOTES_MARKER + (notes or "\n"))
        print(report)
        print(f"\nwritten to {args.results}", file=sys.stderr)
    failed = [m for m in [*scaling, *cpu] if not m.ok and m.run.killed_at_bytes is None]
    failed = [m for m in failed if not (m.contender == "tutorial" and m.run.timed_out)]
    return 1 if failed else 0


def run_reader(
    audioflow_run: Measurement, tutorial_run: Measurement, runs: Path, timeout: float, rounds: int = 7
) -> dict[str, Any]:
    """Times both readers in one process (reader_bench.py), on the outputs this size just wrote."""
    if not (audioflow_run.ok and tutorial_run.ok):
        print("reader: skipped (a contender did not finish)", file=sys.stderr)
        return {}
    print("reader: read_split vs. tutorial format", file=sys.stderr, flush=True)
    pattern = str(Path(tutorial_run.extra["output"]) / "data-*.tfrecord")
    command = [PYTHON, str(BENCH / "reader_bench.py"), audioflow_run.extra["output"], pattern, "--rounds", str(rounds)]
    log = runs / "logs" / f"reader-{audioflow_run.workload.clips}.log"
    result = run_measured(command, log, env=contender_env(), timeout=timeout)
    if not result.ok:
        print(f"reader: failed; see {log}", file=sys.stderr)
        return {}
    last = log.read_text().strip().splitlines()[-1]
    parsed = json.loads(last)
    parsed["command"] = command
    for name in ("audioflow", "tutorial"):
        print(f"  {name:<28} {parsed[name]['examples_per_s']:.0f} examples/s", file=sys.stderr, flush=True)
    return parsed


def run_gcs_latency(clips: int, runs: Path, timeout: float) -> dict[str, Any]:
    """Runs bench/gcs_latency.py (the GCS emulator behind a 30 ms proxy); returns its Markdown and numbers."""
    print(f"gcs: {clips} clips on the GCS emulator, 30 ms per request", file=sys.stderr, flush=True)
    markdown, summary = runs / "gcs_latency.md", runs / "gcs_latency.json"
    command = [
        PYTHON,
        str(BENCH / "gcs_latency.py"),
        "--clips",
        str(clips),
        "--markdown",
        str(markdown),
        "--json",
        str(summary),
    ]
    log = runs / "logs" / "gcs_latency.log"
    result = run_measured(command, log, env=contender_env(), timeout=timeout)
    if not result.ok:
        print(f"gcs: failed; see {log}", file=sys.stderr)
        return {}
    return {"markdown": markdown.read_text(), "summary": json.loads(summary.read_text()), "command": command}


def render(
    args: argparse.Namespace,
    header: list[str],
    started: datetime.datetime,
    finished: datetime.datetime,
    scaling: list[Measurement],
    cpu: list[Measurement],
    reader: dict[str, Any],
    reader_clips: int,
    gcs: dict[str, Any] | None = None,
) -> str:
    lines = [
        "# audioflow benchmark results" if not args.smoke else "# audioflow benchmark (smoke run; timings meaningless)",
        "",
        f"Generated by `bench/run.py` from {started:%Y-%m-%d %H:%M} to {finished:%H:%M %Z} "
        f"({(finished - started).total_seconds() / 60:.0f} min). Inputs: 5-second clips, a pool of "
        "64 generated files hard-linked under distinct names (so every contender reads from the page cache).",
        "",
        "## Machine",
        *header,
        "",
        "## Commands",
        *commands_section(args, scaling, cpu),
        "",
        "Every contender runs with the same environment: `PYTHONDONTWRITEBYTECODE` unset and "
        "`PYTHONPYCACHEPREFIX=bench/out/pycache` (this sandbox sets the former, which makes every process compile "
        "TensorFlow and Beam from source, ~10 s each; real installs have bytecode), `TF_CPP_MIN_LOG_LEVEL=2`; "
        "an unmeasured warm-up run of each contender on 50 clips fills the bytecode and page caches first.",
        "",
    ]
    if scaling:
        lines += [
            "## Scaling: 16 kHz mono 16-bit WAV",
            "",
            "Wall time is the whole process (interpreter start and imports included): the median of "
            f"{args.repeat} runs interleaved with the other contenders' (range in parentheses); the tutorial runs "
            f"once, under a {args.memory_cap_gb:g} GB cap. Peak RSS sums every process of the contender's tree, "
            "sampled every 50 ms (largest of the runs). Output / PCM compares output bytes with the raw int16 "
            "samples. CPU s: user + system time of the process tree; others' cores: CPU that other work on the "
            "machine used meanwhile, averaged over the run (out of 2).",
            "",
            scaling_table(scaling),
            "",
        ]
    if reader:
        lines += [
            "## Reader",
            "",
            f"Both datasets written by the {reader_clips:,}-clip scaling run; batches of 64, parallel reads and "
            "batched `parse_example`; one warm-up pass each, then timed passes alternating the two readers "
            "(`bench/reader_bench.py`, 7 rounds; 1 in the smoke run).",
            "",
            reader_table(reader, reader_clips),
            "",
        ]
    if cpu:
        lines += [
            "## CPU-bound inputs",
            "",
            "`audioflow, 1 thread` is `--fetch-concurrency 1` (one decoding thread, one process); the default decodes "
            "with a pool of 4 threads (libsndfile and soxr release the GIL); `2 processes` adds "
            "`--direct_num_workers 2 --direct_running_mode multi_processing`.",
            "",
            cpu_table(cpu),
            "",
        ]
    if gcs:
        command = " ".join(gcs["command"]).replace(str(REPO) + "/", "").replace(PYTHON, ".venv/bin/python")
        lines += [
            "## Object-store latency",
            "",
            f"`{command}`",
            "",
            gcs["markdown"].replace("### gs://", "gs://", 1),
        ]
    if not args.smoke:
        lines += ["## Targets (issue 5)", "", *evaluate_targets(scaling, cpu, reader, (gcs or {}).get("summary")), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
