"""The benchmark's targets as data, and their verdicts computed from a Session.

Each target names what it measures, the text RESULTS.md shows, and one or more checks (a value, a
comparison, a threshold). Its reading takes the session's numbers to those values plus the details
printed after the verdict, or None when the runs it needs did not happen or did not finish.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from data import VARIANTS
from runs import GB, MB, Measurement
from sections import Session

__all__ = ["TARGETS", "Check", "Reading", "Target", "evaluate_targets"]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {"≤": operator.le, "<": operator.lt, "≥": operator.ge}


@dataclass(frozen=True)
class Check:
    """`value comparison threshold`, e.g. the reading's "ratio" ≤ 1.5."""

    value: str
    comparison: str
    threshold: float

    def holds(self, values: dict[str, float]) -> bool:
        return COMPARISONS[self.comparison](values[self.value], self.threshold)


@dataclass(frozen=True)
class Reading:
    """The values a target's checks compare, and the numbers shown after its verdict."""

    values: dict[str, float]
    details: str


@dataclass(frozen=True)
class Target:
    name: str
    text: str
    checks: tuple[Check, ...]
    read: Callable[[Session], Reading | None]

    def verdict(self, session: Session) -> str:
        """One line of RESULTS.md: the text, met / missed / not measured, and the numbers behind it."""
        reading = self.read(session)
        if reading is None:
            return f"- {self.text}: not measured"
        met = all(check.holds(reading.values) for check in self.checks)
        return f"- {self.text}: {'**met**' if met else '**missed**'} ({reading.details})"


def evaluate_targets(session: Session) -> list[str]:
    return [target.verdict(session) for target in TARGETS]


# --- readings -----------------------------------------------------------------------------------


def _find(session: Session, clips: int, contender: str) -> Measurement | None:
    return next((m for m in session.scaling if m.workload.clips == clips and m.contender == contender), None)


def _wall_over_floor(clips: int) -> Callable[[Session], Reading | None]:
    def read(session: Session) -> Reading | None:
        a, f = _find(session, clips, "audioflow"), _find(session, clips, "floor")
        if not (a and f and a.ok and f.ok):
            return None
        ratio = a.run.wall_seconds / f.run.wall_seconds
        return Reading({"ratio": ratio}, f"{ratio:.2f}×")

    return read


def _over_tutorial(session: Session) -> Reading | None:
    """A tutorial killed at the memory cap gives a lower bound: it would have taken at least as long."""
    a, t = _find(session, 8000, "audioflow"), _find(session, 8000, "tutorial")
    if not (a and t and a.ok):
        return None
    speed = t.run.wall_seconds / a.run.wall_seconds
    return Reading({"speed": speed}, f"{'≥ ' if not t.ok else ''}{speed:.1f}×{', tutorial killed' if not t.ok else ''}")


def _memory(session: Session) -> Reading | None:
    small, big = _find(session, 2000, "audioflow"), _find(session, 32000, "audioflow")
    if not (small and big and small.ok and big.ok):
        return None
    growth = big.run.peak_rss_bytes / small.run.peak_rss_bytes
    return Reading(
        {"growth": growth, "peak_bytes": big.run.peak_rss_bytes},
        f"{small.run.peak_rss_bytes / MB:.0f} MB → {big.run.peak_rss_bytes / MB:.0f} MB, {growth:.2f}×",
    )


def _output_size(session: Session) -> Reading | None:
    sizes = [m.output_bytes / m.workload.pcm_bytes for m in session.scaling if m.contender == "audioflow" and m.ok]
    return Reading({"ratio": max(sizes)}, f"at most {max(sizes):.4f}×") if sizes else None


def _reader(session: Session) -> Reading | None:
    if "ratio" not in session.reader:
        return None
    speed, best = session.reader["ratio"]["median_paired"], session.reader["ratio"]["best"]
    return Reading({"speed": speed}, f"{speed:.2f}×, median of per-round ratios; best pass {best:.2f}×")


def _cpu_speedup(variant: str) -> Callable[[Session], Reading | None]:
    """The fastest way audioflow ran this input, over one decoding thread in one process."""

    def read(session: Session) -> Reading | None:
        rows = [m for m in session.cpu if m.workload.variant.name == variant and m.ok]
        single = next((m for m in rows if m.contender == "audioflow, 1 thread"), None)
        others = [m for m in rows if m.contender.startswith("audioflow") and m is not single]
        if not (single and others):
            return None
        fastest = min(others, key=lambda m: m.run.wall_seconds)
        speed = single.run.wall_seconds / fastest.run.wall_seconds
        default = next((m for m in others if m.contender == "audioflow (default)"), None)
        default_speed = f"{single.run.wall_seconds / default.run.wall_seconds:.2f}×" if default else "—"
        return Reading({"speed": speed}, f"best: {fastest.contender}, {speed:.2f}×; default: {default_speed}")

    return read


def _gcs(session: Session) -> Reading | None:
    gcs: dict[str, Any] = session.gcs.get("summary") or {}
    if not (gcs.get("sequential_wall_s") and gcs.get("default_wall_s")):
        return None
    speed = gcs["sequential_wall_s"] / gcs["default_wall_s"]
    ceiling = gcs["ceiling_by_requests_per_file"]
    one = gcs.get("one_in_flight_wall_s")
    return Reading(
        {"speed": speed},
        f"{speed:.2f}×, {gcs['default_requests_per_file']:.2f} requests per file"
        + (f"; {one / gcs['default_wall_s']:.1f}× faster than audioflow with 1 in flight" if one else "")
        + f"; this emulator's ceiling at 2 requests per file: {ceiling['2']:.1f}×, at 1: {ceiling['1']:.1f}×",
    )


# --- the targets --------------------------------------------------------------------------------

TARGETS: tuple[Target, ...] = (
    Target(
        "wall-8000",
        "audioflow ≤ 1.5× floor wall time at 8,000 WAV clips",
        (Check("ratio", "≤", 1.5),),
        _wall_over_floor(8000),
    ),
    Target(
        "wall-32000",
        "audioflow ≤ 1.5× floor wall time at 32,000 WAV clips",
        (Check("ratio", "≤", 1.5),),
        _wall_over_floor(32000),
    ),
    Target(
        "tutorial",
        "audioflow ≥ 5× faster than the tutorial at 8,000",
        (Check("speed", "≥", 5),),
        _over_tutorial,
    ),
    Target(
        "memory",
        "peak RSS at 32,000 ≤ 1.2× peak at 2,000 and < 1 GB",
        (Check("growth", "≤", 1.2), Check("peak_bytes", "<", GB)),
        _memory,
    ),
    Target(
        "output-size",
        "output bytes ≤ 1.01× raw PCM",
        (Check("ratio", "≤", 1.01),),
        _output_size,
    ),
    Target(
        "reader",
        "reader ≥ 1.5× the tutorial format's examples/s",
        (Check("speed", "≥", 1.5),),
        _reader,
    ),
    *(
        Target(
            f"cpu-{variant}",
            f"CPU-bound {VARIANTS[variant].description} ≥ 1.4× over a single worker",
            (Check("speed", "≥", 1.4),),
            _cpu_speedup(variant),
        )
        for variant in ("flac", "resample")
    ),
    Target(
        "gcs",
        "gs:// at 30 ms per request ≥ 8× the throughput of fetching one object at a time",
        (Check("speed", "≥", 8),),
        _gcs,
    ),
)
