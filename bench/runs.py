"""Measuring contenders: one run on a fresh output folder, and repeated runs in interleaved rounds."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contenders import Contender, contender_env
from data import Workload
from monitor import RunResult, run_measured

__all__ = ["GB", "MB", "Measurement", "measure", "repeated"]

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

    def describe(self) -> str:
        """How the median run ended, in a few words: its numbers, or how it was stopped."""
        run = self.run
        if run.killed_at_bytes is not None:
            return f"killed at {run.killed_at_bytes / GB:.1f} GB after {run.wall_seconds:.0f} s"
        if run.timed_out:
            return f"timed out after {run.wall_seconds:.0f} s"
        if run.returncode != 0:
            return f"FAILED (exit {run.returncode}) after {run.wall_seconds:.1f} s"
        return f"{run.wall_seconds:.1f} s, peak {run.peak_rss_bytes / MB:.0f} MB, {self.output_bytes / MB:.0f} MB out"

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
    print(f"  {name:<28} {measurement.describe()}", file=sys.stderr, flush=True)
    if not run.ok and run.killed_at_bytes is None and not run.timed_out:
        print(f"    failed (exit {run.returncode}); see {run.log}", file=sys.stderr, flush=True)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return measurement


def repeated(
    section: str,
    jobs: list[tuple[str, Contender, bool]],
    workload: Workload,
    out: Path,
    *,
    rounds: int,
    cap: int,
    timeout: float | None,
    once: frozenset[str] | set[str] = frozenset(),
) -> list[Measurement]:
    """Runs the contenders (name, contender, keep its output) in rounds: A B C, A B C, ...

    Load from other work on the machine then falls on all of them alike. Returns one Measurement per
    contender holding all its runs; the contenders in `once`, and any killed or failed, run one round only.
    """
    results: dict[str, Measurement] = {}
    for round_index in range(rounds):
        for name, contender, keep in jobs:
            if round_index and (name in once or not results[name].ok):
                continue
            m = measure(section, name, contender, workload, out, cap=cap, keep=keep, timeout=timeout)
            results[name] = results[name].merged(m) if name in results else m
    return [results[name] for name, _, _ in jobs]
