"""Resume: `audioflow ingest` killed with SIGKILL at several points, then run again with --resume, gives
exactly the dataset an uninterrupted run gives, and decodes only the files of the units it had not
completed (the `files_decoded` counter).

The kill points: after the first shard unit is marked complete, after half of them, after all of
them with Finalize held before it writes anything (a FIFO where it writes rejected.jsonl.incomplete:
opening a FIFO for writing blocks until a reader comes, and none does), and with Finalize held after
it renamed every shard (a FIFO at dataset.json.incomplete): then no unit's files are where its marker
says, and every unit is written again. Every run writes to the same path, so that dataset.json can be
compared byte for byte (its `created` time aside). The whole process group is killed, so the
runner's worker processes die with it.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from apache_beam.metrics.metric import MetricsFilter

from audioflow.beam.format import METADATA_FILE
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.job.resume import UNITS_FOLDER, UnitMarker
from audioflow.beam.job.write import shard_key
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import PlannedRow

from audio_files import write_linked_corpus

AUDIOFLOW = [sys.executable, "-m", "audioflow.beam.cli"]
CLIPS = 1500
SPLITS = "train=0.8,test=0.2"
SHARD_SIZE = "16KiB"  # about 50 shard units: room to kill between them
KILL_POINT_TIMEOUT = 300.0  # generous: the machine may be busy; only a run that never gets there fails


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """1,500 tiny clips (hard links of five 10-50 ms files under distinct names), 10 corrupt and 10 missing."""
    return write_linked_corpus(tmp_path_factory.mktemp("resume-corpus"), CLIPS, corrupt=10, missing=10)


def options_for(corpus: Path, output: Path, resume: bool = False) -> IngestOptions:
    return build_ingest_options(
        manifest=str(corpus / "labels.csv"),
        audio_root=str(corpus / "audio"),
        output=str(output),
        splits=SPLITS,
        shard_size=SHARD_SIZE,
        max_rejected_fraction=0.05,
        resume=resume,
    )


def ingest_counting(options: IngestOptions) -> dict[str, int]:
    """Runs the job in this process; returns its `audioflow` counters."""
    results = []
    run_ingest(options, [], on_started=results.append)
    counters = results[0].metrics().query(MetricsFilter().with_namespace("audioflow"))["counters"]
    totals: dict[str, int] = {}
    for counter in counters:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter.committed
    return totals


@pytest.fixture(scope="module")
def work(corpus, tmp_path_factory) -> Path:
    """The folder every run writes `dataset` in (one path, so that dataset.json records the same output)."""
    return tmp_path_factory.mktemp("resume-work")


@pytest.fixture(scope="module")
def baseline(corpus, work) -> tuple[Path, dict[str, int]]:
    """The dataset an uninterrupted run writes (moved aside), and that run's counters."""
    output = work / "dataset"
    counters = ingest_counting(options_for(corpus, output))
    kept = work / "baseline"
    output.rename(kept)
    return kept, counters


def start_ingest(corpus: Path, output: Path, log: Path) -> subprocess.Popen:
    """`audioflow ingest` in its own process group (so the kill reaches the runner's workers too)."""
    args = ["ingest", "--manifest", str(corpus / "labels.csv"), "--audio-root", str(corpus / "audio")]
    args += ["--output", str(output), "--splits", SPLITS, "--shard-size", SHARD_SIZE, "--max-rejected-fraction", "0.05"]
    with open(log, "w") as handle:  # the child has its own copy of the descriptor
        return subprocess.Popen([*AUDIOFLOW, *args], stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def unit_markers(output: Path) -> list[Path]:
    return [path for folder in output.glob("_temporary-*") for path in (folder / UNITS_FOLDER).glob("*.json")]


def wait_for(process: subprocess.Popen, log: Path, condition: Callable[[], bool], what: str) -> None:
    """Polls every 10 ms; fails if the run ends (or stalls) before `condition` holds."""
    deadline = time.monotonic() + KILL_POINT_TIMEOUT
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            kill(process)
            raise AssertionError(f"the run did not reach {what} in {KILL_POINT_TIMEOUT:.0f} s")
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def expected_units(corpus: Path) -> int:
    """How many shard units the job forms: its own split and unit assignment over the files that exist."""
    options = options_for(corpus, corpus / "unused")
    rows, split_bytes = [], Counter()
    for line, (label, blob) in enumerate(csv.reader((corpus / "labels.csv").read_text().splitlines()[1:]), start=2):
        path = corpus / "audio" / blob
        if path.exists():
            split = options.splits.assign(blob)
            rows.append(PlannedRow(ManifestRow(line, label, blob), split, str(path), 0, None, path.stat().st_size))
            split_bytes[split] += path.stat().st_size
    return len({shard_key(row, split_bytes, options.shard_size)[0] for row in rows})


def temp_shards(output: Path) -> list[Path]:
    return [path for folder in output.glob("_temporary-*") for path in folder.glob("*.tfrecord")]


def rows_in_completed_units(output: Path) -> tuple[int, int]:
    """(units, rows) that the markers a killed run left describe."""
    [temp_dir] = output.glob("_temporary-*")
    markers = [UnitMarker.from_json(path.read_text(), str(temp_dir)) for path in unit_markers(output)]
    return len(markers), sum(marker.num_rows for marker in markers)


def assert_identical(output: Path, baseline: Path) -> None:
    """Every file byte for byte; dataset.json too, but for its `created` time."""
    names = sorted(path.name for path in output.iterdir())
    assert names == sorted(path.name for path in baseline.iterdir())
    for name in names:
        ours, theirs = (output / name).read_bytes(), (baseline / name).read_bytes()
        if name == METADATA_FILE:
            created = re.compile(rb'"created": "[^"]*"')
            ours, theirs = created.sub(b"", ours), created.sub(b"", theirs)
        assert ours == theirs, f"{name} differs from the uninterrupted run's"


@pytest.mark.parametrize(
    "kill_point", ["first unit", "half the units", "every unit, Finalize held", "shards renamed, Finalize held"]
)
def test_killed_then_resumed_gives_the_uninterrupted_dataset(corpus, work, baseline, kill_point) -> None:
    clean, clean_counters = baseline
    output, log = work / "dataset", work / "dataset.log"
    shutil.rmtree(output, ignore_errors=True)
    units = expected_units(corpus)
    process = start_ingest(corpus, output, log)
    if kill_point == "first unit":
        wait_for(process, log, lambda: len(unit_markers(output)) >= 1, "the first completed unit")
    elif kill_point == "half the units":
        wait_for(process, log, lambda: len(unit_markers(output)) >= units // 2, "half the units completed")
    elif kill_point == "every unit, Finalize held":
        wait_for(process, log, lambda: bool(unit_markers(output)), "the first completed unit")
        os.mkfifo(output / "rejected.jsonl.incomplete")  # Finalize will block opening it
        wait_for(process, log, lambda: len(unit_markers(output)) == units, "every unit completed")
    else:
        wait_for(process, log, lambda: bool(unit_markers(output)), "the first completed unit")
        os.mkfifo(output / f"{METADATA_FILE}.incomplete")
        wait_for(process, log, lambda: (output / "rejected.jsonl").exists() and not temp_shards(output), "renames")
    kill(process)
    assert not (output / METADATA_FILE).exists()
    kept_units, kept_rows = rows_in_completed_units(output)
    assert 1 <= kept_units <= units

    counters = ingest_counting(options_for(corpus, output, resume=True))

    assert_identical(output, clean)
    if kill_point == "shards renamed, Finalize held":  # the markers are there, their files are not
        kept_units, kept_rows = 0, 0
    assert counters.get("shard_units_kept", 0) == kept_units
    decoded = counters.get("files_decoded", 0)
    assert decoded == clean_counters["files_decoded"] - kept_rows  # only the units not completed were redone
    assert decoded == 0 if kill_point == "every unit, Finalize held" else decoded > 0
    assert counters.get("examples_kept", 0) + counters.get("examples_written", 0) == clean_counters["examples_written"]
    assert not list(output.glob("_temporary-*"))
