"""decode_example of the working tree against the same function at an earlier git revision, on the
same records, alternating in one process (the ratio holds on a busy machine; the microseconds don't).

    python bench/decode_speed.py DATASET --baseline-rev 2d9e44f
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from audioflow.beam.format import example as current
from audioflow.beam.storage import read_shard_records

REPO = Path(__file__).resolve().parents[1]


def module_at(revision: str):
    source = subprocess.run(
        ["git", "show", f"{revision}:beam/format/example.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_example.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_example"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def per_record(module, payloads: list[bytes], repeats: int) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        for payload in payloads:
            module.decode_example(payload)
    return (time.perf_counter() - start) / (repeats * len(payloads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--baseline-rev", required=True)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    shard = sorted(glob.glob(f"{args.dataset}/*.tfrecord"))[0]
    payloads = [record for _, record in zip(range(args.records), read_shard_records(shard), strict=False)]
    baseline = module_at(args.baseline_rev)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    for _ in range(args.rounds):
        times["baseline"].append(per_record(baseline, payloads, 4))
        times["current"].append(per_record(current, payloads, 4))
    old, new = statistics.median(times["baseline"]), statistics.median(times["current"])
    print(f"baseline {args.baseline_rev}: {old * 1e6:.1f} µs per record (median of {args.rounds} rounds)")
    print(f"current: {new * 1e6:.1f} µs per record; {old / new:.2f}× faster")


if __name__ == "__main__":
    sys.exit(main())
