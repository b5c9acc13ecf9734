"""How each contender is launched: the command line that runs it, the path its output lands in, its environment.

A contender is a function of a workload and a fresh output folder, returning (command, output path);
every one runs as a separate whole process, so interpreter start and imports are part of its time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from data import Workload

__all__ = [
    "AUDIOFLOW",
    "BENCH",
    "CPU_CONTENDERS",
    "PYTHON",
    "REPO",
    "SCALING_CONTENDERS",
    "Contender",
    "audioflow",
    "contender_env",
    "floor",
    "tutorial",
]

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PYTHON = sys.executable
AUDIOFLOW = str(Path(sys.executable).parent / "audioflow")
PYCACHE = BENCH / "out" / "pycache"

Contender = Callable[[Workload, Path], tuple[list[str], Path]]


def floor(workload: Workload, out: Path) -> tuple[list[str], Path]:
    """bench/floor.py: the simplest single-process loop that does the job, into one file."""
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
    """bench/tutorial.py: the Beam audio tutorial's pipeline, writing 8 shards into a folder."""
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


# The scaling section's contenders, by the names its table and the targets use.
SCALING_CONTENDERS: dict[str, Contender] = {"floor": floor, "tutorial": tutorial, "audioflow": audioflow()}

# The CPU-bound section: one decoding thread, audioflow's default thread pool, two Beam worker processes.
CPU_CONTENDERS: dict[str, Contender] = {
    "floor (1 thread)": floor,
    "audioflow, 1 thread": audioflow(fetch_concurrency=1),
    "audioflow (default)": audioflow(),
    "audioflow, 2 processes": audioflow("--direct_num_workers", "2", "--direct_running_mode", "multi_processing"),
}


def contender_env() -> dict[str, str]:
    """The environment every contender runs in: the same for all, with bytecode caching on.

    Some sandboxes set PYTHONDONTWRITEBYTECODE, which would make every process compile TensorFlow and
    Beam from source; so bytecode is cached under bench/out/pycache (the venv stays untouched).
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # the same log noise for every contender
    return env
