"""The benchmark harness keeps working: `bench/run.py --smoke` runs every contender and prints its table.

No timing is asserted: the machine running tests is shared and the smoke run's numbers mean nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke_runs_every_contender(tmp_path: Path) -> None:
    results = REPO / "bench" / "RESULTS.md"
    before = results.stat().st_mtime_ns if results.exists() else None
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = [line for line in completed.stdout.splitlines() if line.startswith("| 50 |")]
    contenders = [line.split("|")[2].strip() for line in table]
    assert contenders == ["floor", "tutorial", "audioflow"], completed.stdout
    for line in table:
        wall = line.split("|")[3].strip()
        assert wall.replace(".", "", 1).isdigit(), f"contender did not finish: {line}"
    assert (results.stat().st_mtime_ns if results.exists() else None) == before, "--smoke must not write RESULTS.md"
