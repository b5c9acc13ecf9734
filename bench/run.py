"""The audioflow benchmark: floor vs. tutorial vs. `audioflow ingest`, on the same files.

Every contender runs as a separate whole process (interpreter start and imports included), one
after another, in the same invocation, so the ratios between them are measured under the same
conditions; absolute numbers on a shared 2-core machine are noisy, ratios much less so.

Sections:
  scaling  16 kHz mono WAV at each --clips size: floor, tutorial (under a memory cap), audioflow.
  reader   audioflow's read_split vs. a batched, parallel reader of the tutorial's format.
  cpu      CPU-bound inputs (FLAC; 44.1 kHz stereo -> 16 kHz mono): one decoding thread vs.
           audioflow's default thread pool vs. two Beam worker processes.
  gcs      gs:// on the GCS emulator behind a proxy adding 30 ms per request.

`make bench` writes bench/RESULTS.md (keeping its hand-written notes below the NOTES marker);
`--smoke` runs the three contenders on 50 clips and prints the table only (CI keeps it working).
Generated inputs and outputs live under bench/out/ (git-ignored).

The parts: contenders.py (how each contender is launched), runs.py (measuring one), sections.py
(what each section runs), tables.py, targets.py and results.py (the report).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from contenders import BENCH
from results import machine, render, write_json, write_results
from sections import run_sections


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()
    header = machine()  # before anything runs: the load average at the start
    session = run_sections(args)
    finished = datetime.datetime.now().astimezone()
    report = render(args, header, started, finished, session)
    write_json(args.out / "results.json", session)
    print(report)
    if not args.no_results:
        write_results(args.results, report)
    return 1 if session.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
