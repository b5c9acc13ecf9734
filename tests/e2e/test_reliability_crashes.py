"""Crashes and re-runs: a killed `audioflow ingest` never leaves a folder that looks complete, and a
re-run gives exactly the dataset an uninterrupted run gives.

The job is killed with SIGKILL (no handler, no cleanup: what the OOM killer or a preempted VM does)
at three points: while shards are still temporary, after Finalize has renamed every shard but before
dataset.json exists, and in the middle of an --overwrite of a complete dataset. The second point
lasts microseconds in a normal run, so the test holds it open: it puts a FIFO where Finalize writes
dataset.json.incomplete, and opening a FIFO for writing blocks until a reader comes (none does).
The whole process group is killed, so the runner's worker processes die with it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from audioflow.beam.errors import DatasetError, OutputExistsError
from audioflow.beam.format import METADATA_FILE, decode_example, parse_shard_name
from audioflow.beam.format.tfrecord import iter_records
from audioflow.beam.job.equal_audio import SIDECAR_SUFFIX
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.job.resume import RUN_FILE, UNITS_FOLDER
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.reader import load_dataset_info, read_split

from audio_files import write_linked_corpus

AUDIOFLOW = [sys.executable, "-m", "audioflow.beam.cli"]
CLIPS = 3000
SPLITS = "train=0.8,test=0.2"
SHARD_SIZE = "16KiB"  # many shards: more temporary files and more renames to be killed among
KILL_POINT_TIMEOUT = 300.0  # generous: the machine may be busy; only a run that never gets there fails


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """3,000 tiny clips (hard links of five 10-50 ms files under distinct names) and 30 bad rows."""
    return write_linked_corpus(tmp_path_factory.mktemp("crash-corpus"), CLIPS, corrupt=10, missing=20)


def options_for(corpus: Path, output: Path, overwrite: bool = False) -> IngestOptions:
    return build_ingest_options(
        manifest=str(corpus / "labels.csv"),
        audio_root=str(corpus / "audio"),
        output=str(output),
        splits=SPLITS,
        shard_size=SHARD_SIZE,
        max_rejected_fraction=0.05,
        overwrite=overwrite,
    )


@pytest.fixture(scope="module")
def baseline(corpus, tmp_path_factory) -> Path:
    """The dataset an uninterrupted run writes."""
    output = tmp_path_factory.mktemp("baseline") / "dataset"
    run_ingest(options_for(corpus, output), [])
    return output


def log_of(output: Path) -> Path:
    return output.parent / f"{output.name}.log"


def start_ingest(corpus: Path, output: Path, *extra: str) -> subprocess.Popen:
    """`audioflow ingest` in its own process group (so the kill reaches the runner's workers too)."""
    args = ["ingest", "--manifest", str(corpus / "labels.csv"), "--audio-root", str(corpus / "audio")]
    args += ["--output", str(output), "--splits", SPLITS, "--shard-size", SHARD_SIZE, *extra]
    with open(log_of(output), "w") as log:  # the child has its own copy of the descriptor
        return subprocess.Popen([*AUDIOFLOW, *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(process: subprocess.Popen, output: Path, condition: Callable[[], bool], what: str) -> None:
    """Polls every 10 ms; fails if the run ends (or stalls) before the kill point is reached."""
    deadline = time.monotonic() + KILL_POINT_TIMEOUT
    while not condition():
        if process.poll() is not None:
            log = log_of(output).read_text()[-3000:]
            raise AssertionError(f"the run ended (exit {process.returncode}) before {what}:\n{log}")
        if time.monotonic() > deadline:
            kill(process)
            raise AssertionError(f"the run did not reach {what} in {KILL_POINT_TIMEOUT:.0f} s")
        time.sleep(0.01)


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def temporary_files(output: Path) -> list[Path]:
    """The temporary shards and indexes. The resume state (run.json, units/) and the shards' quality
    sidecars stay in the folder until Finalize deletes it, after dataset.json."""
    return [
        path
        for folder in output.glob("_temporary-*")
        for path in folder.rglob("*")
        if path.is_file()
        and path.name != RUN_FILE
        and path.parent.name != UNITS_FOLDER
        and not path.name.endswith(SIDECAR_SUFFIX)
    ]


def final_shards(output: Path) -> list[Path]:
    return [path for path in output.iterdir() if parse_shard_name(path.name)] if output.exists() else []


def records_by_split(output: Path) -> dict[str, list[bytes]]:
    """Every record's payload, per split, sorted: the dataset's content independent of file layout."""
    result: dict[str, list[bytes]] = {}
    for path in final_shards(output):
        with path.open("rb") as stream:
            result.setdefault(parse_shard_name(path.name)[0], []).extend(iter_records(stream, path.name))
    return {split: sorted(records) for split, records in result.items()}


def assert_looks_incomplete(corpus: Path, output: Path) -> None:
    """No dataset.json; readers refuse the folder; a re-run without --overwrite is refused."""
    assert not (output / METADATA_FILE).exists(), "a killed run must never leave a folder that looks complete"
    with pytest.raises(DatasetError, match="not a complete audioflow dataset"):
        load_dataset_info(str(output))
    with pytest.raises(DatasetError, match="not a complete audioflow dataset"):
        read_split(str(output), "train")
    with pytest.raises(OutputExistsError, match="files of an incomplete run; pass --overwrite"):
        run_ingest(options_for(corpus, output), [])


def assert_same_dataset(output: Path, baseline: Path) -> None:
    """Same records per split, same shard names, same rejections, same metadata; nothing left over."""
    assert records_by_split(output) == records_by_split(baseline)
    assert sorted(p.name for p in final_shards(output)) == sorted(p.name for p in final_shards(baseline))
    assert sorted((output / "rejected.jsonl").read_text().split("\n")) == sorted(
        (baseline / "rejected.jsonl").read_text().split("\n")
    )
    info, expected = (json.loads((folder / METADATA_FILE).read_text()) for folder in (output, baseline))
    for metadata in (info, expected):
        del metadata["created"], metadata["options"]["output"], metadata["options"]["overwrite"]
    assert info == expected
    leftovers = [p.name for p in output.iterdir() if p.name.startswith("_temporary") or p.suffix == ".incomplete"]
    assert not leftovers, f"state of the killed run survived the re-run: {leftovers}"


def test_killed_while_shards_are_temporary(corpus, baseline, tmp_path):
    output = tmp_path / "dataset"
    process = start_ingest(corpus, output)
    wait_until(process, output, lambda: bool(temporary_files(output)), "the first temporary shard")
    kill(process)
    assert temporary_files(output) and not final_shards(output)
    assert_looks_incomplete(corpus, output)
    inspected = subprocess.run([*AUDIOFLOW, "inspect", str(output)], capture_output=True, text=True, timeout=300)
    assert inspected.returncode == 1 and "not a complete audioflow dataset" in inspected.stderr
    assert "Traceback" not in inspected.stderr
    run_ingest(options_for(corpus, output, overwrite=True), [])
    assert_same_dataset(output, baseline)


def test_killed_after_shards_are_named_before_dataset_json(corpus, baseline, tmp_path):
    output = tmp_path / "dataset"
    process = start_ingest(corpus, output)
    wait_until(process, output, lambda: bool(temporary_files(output)), "the first temporary shard")
    os.mkfifo(output / f"{METADATA_FILE}.incomplete")  # Finalize will block opening it
    wait_until(
        process,
        output,
        lambda: (output / "rejected.jsonl").exists() and bool(final_shards(output)) and not temporary_files(output),
        "every shard renamed",
    )
    kill(process)
    assert len(final_shards(output)) == len(final_shards(baseline)), "the shards all look final"
    assert_looks_incomplete(corpus, output)
    run_ingest(options_for(corpus, output, overwrite=True), [])
    assert_same_dataset(output, baseline)


def test_killed_while_overwriting_a_complete_dataset(corpus, baseline, tmp_path):
    output = tmp_path / "dataset"
    shutil.copytree(baseline, output)
    process = start_ingest(corpus, output, "--overwrite")
    wait_until(process, output, lambda: bool(temporary_files(output)), "the first temporary shard of the overwrite")
    kill(process)
    # The old dataset.json went first, so old shards can never be read as the new dataset, or the reverse.
    assert_looks_incomplete(corpus, output)
    run_ingest(options_for(corpus, output, overwrite=True), [])
    assert_same_dataset(output, baseline)


def test_two_worker_processes_write_byte_identical_shards(corpus, baseline, tmp_path):
    """Split assignment, shard layout and record order do not depend on the runner's parallelism."""
    output = tmp_path / "dataset"
    beam_args = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    run_ingest(options_for(corpus, output), beam_args)
    assert_same_dataset(output, baseline)
    for shard in final_shards(baseline):
        assert (output / shard.name).read_bytes() == shard.read_bytes(), shard.name
    blobs = {decode_example(r).blob for records in records_by_split(output).values() for r in records}
    assert len(blobs) == CLIPS
