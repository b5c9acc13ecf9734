"""The Markdown tables of RESULTS.md: scaling, CPU-bound inputs and the reader.

The scaling and CPU tables are one row per Measurement over a list of columns; the columns they share
(wall time, rates, memory, CPU) are defined once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runs import MB, Measurement

__all__ = ["cpu_table", "reader_table", "scaling_table"]


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


@dataclass(frozen=True)
class Column:
    """A table column: its heading, its alignment, and its cell for a row given all the table's rows."""

    title: str
    cell: Callable[[Measurement, list[Measurement]], str]
    numeric: bool = True  # right-aligned


def measurement_table(columns: list[Column], rows: list[Measurement]) -> str:
    lines = [
        "| " + " | ".join(c.title for c in columns) + " |",
        "|" + "|".join("---:" if c.numeric else "---" for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(c.cell(m, rows) for c in columns) + " |" for m in rows]
    return "\n".join(lines)


def wall_text(m: Measurement) -> str:
    """Median wall time, with the range over the repeated runs; how it ended if it did not finish."""
    if not m.ok:
        return m.describe()
    return fmt(m.run.wall_seconds) + (f" ({m.wall_range})" if m.wall_range else "")


CLIPS = Column("clips", lambda m, _: f"{m.workload.clips:,}")
CONTENDER = Column("contender", lambda m, _: m.contender, numeric=False)
WALL = Column("wall s", lambda m, _: wall_text(m))
FILES = Column("files/s", lambda m, _: fmt(m.rate(m.workload.clips), 0))
AUDIO = Column("audio s/s", lambda m, _: fmt(m.rate(m.workload.audio_seconds), 0))
INPUT = Column("input MB/s", lambda m, _: fmt(m.rate(m.workload.input_bytes / MB)))
PEAK = Column("peak RSS MB", lambda m, _: f"{m.run.peak_rss_bytes / MB:,.0f}")
PROCS = Column("procs", lambda m, _: str(m.run.max_processes))
CPU = Column("CPU s", lambda m, _: f"{m.run.cpu_seconds:.1f}")
OTHERS = Column("others' cores", lambda m, _: f"{m.run.others_cores:.2f}")


def _same_size(m: Measurement, rows: list[Measurement], contender: str) -> Measurement | None:
    return next(
        (
            o
            for o in rows
            if o.workload.clips == m.workload.clips
            and o.workload.variant == m.workload.variant
            and o.contender == contender
        ),
        None,
    )


def _vs_floor(m: Measurement, rows: list[Measurement]) -> str:
    base = _same_size(m, rows, "floor")
    return ratio(m.run.wall_seconds / base.run.wall_seconds if base and base.ok and m.ok else None)


def _vs_tutorial(m: Measurement, rows: list[Measurement]) -> str:
    tut = _same_size(m, rows, "tutorial")
    if tut is None or not m.ok:
        return "—"
    if tut.ok:
        return ratio(tut.run.wall_seconds / m.run.wall_seconds)
    return f"> {tut.run.wall_seconds / m.run.wall_seconds:.2f}× (killed)"  # it would have taken at least this long


SCALING_COLUMNS = [
    CLIPS,
    CONTENDER,
    WALL,
    FILES,
    AUDIO,
    INPUT,
    PEAK,
    PROCS,
    Column("output MB", lambda m, _: f"{m.output_bytes / MB:,.1f}"),
    Column("output / PCM", lambda m, _: ratio(m.output_bytes / m.workload.pcm_bytes if m.ok else None)),
    Column("wall / floor", _vs_floor),
    Column("tutorial wall / this", _vs_tutorial),
    CPU,
    OTHERS,
]


def _speedup(m: Measurement, rows: list[Measurement]) -> str:
    single = next(
        (o for o in rows if o.workload.variant == m.workload.variant and o.contender == "audioflow, 1 thread" and o.ok),
        None,
    )
    return ratio(single.run.wall_seconds / m.run.wall_seconds if single and m.ok else None)


CPU_COLUMNS = [
    Column("input", lambda m, _: m.workload.variant.description, numeric=False),
    CLIPS,
    CONTENDER,
    WALL,
    FILES,
    AUDIO,
    INPUT,
    PEAK,
    PROCS,
    Column("speed-up over audioflow, 1 thread", _speedup),
    CPU,
    OTHERS,
]


def scaling_table(rows: list[Measurement]) -> str:
    """One row per (clips, contender), with ratios against the floor and the tutorial of the same size."""
    return measurement_table(SCALING_COLUMNS, rows)


def cpu_table(rows: list[Measurement]) -> str:
    """CPU-bound inputs: speed-up of each way of running over one decoding thread in one process."""
    return measurement_table(CPU_COLUMNS, rows)


def reader_table(result: dict[str, Any], clips: int) -> str:
    """Best and median pass of each reader, CPU per pass, and the ratios reader_bench.py computed."""
    lines = [
        "| reader | clips | examples/s, best | examples/s, median | audio s/s, median | CPU s per pass "
        "| others' cores, median |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "audioflow": "audioflow `read_split` (int16 → float32)",
        "tutorial": "tutorial format (`parse_tensor` float32)",
    }
    for name, label in labels.items():
        if name not in result:
            continue
        r = result[name]
        lines.append(
            f"| {label} | {clips:,} | {r['examples_per_s']:,.0f} | {r['median_examples_per_s']:,.0f} "
            f"| {r['median_audio_seconds_per_s']:,.0f} | {r['median_cpu_seconds']:.2f} "
            f"| {r['median_others_cores']:.2f} |"
        )
    ratios = result.get("ratio")
    if ratios:
        lines += [
            "",
            f"audioflow / tutorial examples/s: **{ratios['median_paired']:.2f}×** (median of the {ratios['rounds']} "
            f"per-round ratios {ratios['paired']}); best pass / best pass {ratios['best']:.2f}×, median / median "
            f"{ratios['median']:.2f}×; tutorial CPU / audioflow CPU per pass {ratios['cpu_seconds']:.2f}×.",
        ]
    return "\n".join(lines)
