"""What each section of the benchmark runs, and the Session of results they add up to.

The sections (scaling, reader, cpu, gcs) are described in bench/run.py; the reader and gcs sections
run bench/reader_bench.py and bench/gcs_latency.py as processes of their own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contenders import BENCH, CPU_CONTENDERS, PYTHON, SCALING_CONTENDERS, contender_env
from data import VARIANTS, make_workload
from monitor import run_measured
from runs import GB, MB, Measurement, measure, repeated

__all__ = ["Session", "run_sections"]


@dataclass
class Session:
    """Everything one invocation measured, section by section (empty where a section did not run)."""

    scaling: list[Measurement] = field(default_factory=list)
    cpu: list[Measurement] = field(default_factory=list)
    reader: dict[str, Any] = field(default_factory=dict)
    reader_clips: int = 0
    gcs: dict[str, Any] = field(default_factory=dict)

    def failures(self) -> list[Measurement]:
        """Contenders that failed: being killed at the memory cap is a result, and so is the tutorial's timeout."""
        failed = [m for m in [*self.scaling, *self.cpu] if not m.ok and m.run.killed_at_bytes is None]
        return [m for m in failed if not (m.contender == "tutorial" and m.run.timed_out)]

    def to_json(self) -> dict[str, Any]:
        return {
            "scaling": [m.to_json() for m in self.scaling],
            "cpu": [m.to_json() for m in self.cpu],
            "reader": self.reader,
            "gcs": self.gcs.get("summary", {}),
        }


def run_sections(args: argparse.Namespace) -> Session:
    """Runs the sections named in --sections (after a warm-up, unless --smoke) with the command line's settings."""
    sections = set(args.sections.split(","))
    cap = int(args.memory_cap_gb * GB)
    data, runs = args.out / "data", args.out / "runs"
    session = Session()
    if not args.smoke:
        warm_up(data, runs, cap, args.timeout)
    if "scaling" in sections or "reader" in sections:
        run_scaling(args, sections, session, data, runs, cap)
    if "cpu" in sections:
        session.cpu = run_cpu(args, data, runs, cap)
    if "gcs" in sections:
        session.gcs = run_gcs_latency(args.gcs_clips, runs, args.timeout)
    return session


def warm_up(data: Path, runs: Path, cap: int, timeout: float) -> None:
    """Runs every contender once on 50 clips, unmeasured, so bytecode caches and the page cache are warm."""
    print("warm-up (not measured)", file=sys.stderr, flush=True)
    wav = make_workload(data, VARIANTS["wav"], 50)
    rows = {
        name: measure("warmup", name, contender, wav, runs, cap=cap, keep=True, timeout=timeout)
        for name, contender in SCALING_CONTENDERS.items()
    }
    run_reader(rows["audioflow"], rows["tutorial"], runs, timeout, rounds=1)
    resample = make_workload(data, VARIANTS["resample"], 50)
    two = "audioflow, 2 processes"
    measure("warmup", two, CPU_CONTENDERS[two], resample, runs, cap=cap, timeout=timeout)
    make_workload(data, VARIANTS["flac"], 50)
    for m in rows.values():
        shutil.rmtree(Path(m.extra["output"]).parent, ignore_errors=True)


def run_scaling(
    args: argparse.Namespace, sections: set[str], session: Session, data: Path, runs: Path, cap: int
) -> None:
    """The scaling sizes (or only --reader-clips for the reader alone); the reader reads that size's outputs."""
    wanted = [int(n) for n in args.clips.split(",") if n] if "scaling" in sections else [args.reader_clips]
    for clips in wanted:
        workload = make_workload(data, VARIANTS["wav"], clips)
        print(f"scaling: {clips} WAV clips ({workload.input_bytes / MB:.0f} MB)", file=sys.stderr, flush=True)
        keep = "reader" in sections and clips == args.reader_clips
        names = ["floor", "tutorial", "audioflow"] if "scaling" in sections else ["tutorial", "audioflow"]
        jobs = [
            (name, SCALING_CONTENDERS[name], keep and name != "floor")
            for name in names
            if name in args.contenders.split(",")
        ]
        # The tutorial runs once: it is by far the slowest, so noise matters least there and repeats cost most.
        rows = repeated(
            "scaling", jobs, workload, runs, rounds=args.repeat, cap=cap, timeout=args.timeout, once={"tutorial"}
        )
        if "scaling" in sections:
            session.scaling += rows
        if keep:
            by_name = {m.contender: m for m in rows}
            session.reader_clips = clips
            if "audioflow" in by_name and "tutorial" in by_name:
                session.reader = run_reader(by_name["audioflow"], by_name["tutorial"], runs, args.timeout)
            for m in rows:
                if m.contender != "floor":
                    shutil.rmtree(Path(m.extra["output"]).parent, ignore_errors=True)


def run_cpu(args: argparse.Namespace, data: Path, runs: Path, cap: int) -> list[Measurement]:
    """Each CPU-bound input at --cpu-clips, every CPU contender on it."""
    rows: list[Measurement] = []
    for name in ("flac", "resample"):
        workload = make_workload(data, VARIANTS[name], args.cpu_clips)
        print(f"cpu: {args.cpu_clips} clips of {workload.variant.description}", file=sys.stderr, flush=True)
        jobs = [(label, contender, False) for label, contender in CPU_CONTENDERS.items()]
        rows += repeated("cpu", jobs, workload, runs, rounds=args.repeat, cap=cap, timeout=args.timeout)
    return rows


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
