"""The state that lets --resume keep an interrupted run's shard units (beam/job/resume.py), on its own:
the run state and what changes it, unit markers and when they still hold, WriteShards keeping and
redoing units, and how the launcher picks (or refuses) an output folder. The whole job killed and
resumed is tests/e2e/test_resume.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import operator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.errors import OutputExistsError
from audioflow.beam.format.index import INDEX_SUFFIX
from audioflow.beam.job.coders import register_row_coders
from audioflow.beam.job.launch import prepare_output, run_ingest
from audioflow.beam.job.resume import (
    RUN_FILE,
    UNITS_FOLDER,
    MarkedFile,
    RunState,
    UnitMarker,
    find_resumable,
    manifest_sha256,
    rows_digest,
    shaping_options,
)
from audioflow.beam.job.write import WriteShards
from audioflow.beam.prep.content import ContentStats
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import PlannedRow, Rejection, ShardStats, ShardWritten

from audio_files import write_audio, write_corrupt_files, write_manifest

SHA = "ab" * 32


def options_for(tmp_path: Path, **values) -> IngestOptions:
    return build_ingest_options(manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), **values)


def test_the_run_state_changes_with_what_shapes_the_shards_only(tmp_path: Path) -> None:
    state = RunState.of(options_for(tmp_path), SHA)
    same = [
        {"overwrite": True},
        {"resume": True},
        {"fetch_concurrency": 3},
        {"max_rejected_fraction": 0.5},
    ]
    for values in same:
        assert RunState.of(options_for(tmp_path, **values), SHA) == state, values
    # The manifest is known by its hash, the output is where the state lives: neither counts by its path.
    moved = build_ingest_options(manifest=str(tmp_path / "copy" / "labels.csv"), output="/x", audio_root=str(tmp_path))
    assert RunState.of(moved, SHA) == state
    different = [
        {"sample_rate": 8000},
        {"mono": True},
        {"sample_format": "float32"},
        {"shard_size": "1MiB"},
        {"compression": "gzip"},
        {"splits": "train=0.5,test=0.5"},
        {"max_file_size": "1MiB"},
        {"max_duration": 10.0},
        {"label_type": "string"},
        {"audio_root": str(tmp_path / "other")},
    ]
    for values in different:
        other = RunState.of(options_for(tmp_path, **values), SHA)
        assert other.options_sha256 != state.options_sha256, values
        assert state.differs_from(other) == "was made with other options"
    other_manifest = state.differs_from(dataclasses.replace(state, manifest_sha256="cd" * 32))
    assert other_manifest == "was made from another manifest (sha256 cdcdcdcdcdcd…, now abababababab…)"
    assert "by audioflow 0.0.1" in state.differs_from(dataclasses.replace(state, audioflow_version="0.0.1"))
    assert state.differs_from(state) is None
    assert RunState.from_json(state.to_json()) == state
    assert "resume" not in shaping_options(options_for(tmp_path, resume=True).to_json_dict())


def test_the_manifest_hash_is_the_one_dataset_json_records(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "labels.csv", [("1", "a.wav")])
    gzipped = tmp_path / "labels.csv.gz"
    gzipped.write_bytes(gzip.compress(manifest.read_bytes()))
    expected = hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert manifest_sha256(str(manifest)) == manifest_sha256(str(gzipped)) == expected


def planned(line: int, uri: str, size: int = 100, generation: int | None = None, label: int = 1) -> PlannedRow:
    row = ManifestRow(line, str(label), uri.rsplit("/", 1)[-1])
    return PlannedRow(row, "train", uri, label, None, size, generation)


def test_the_rows_digest_follows_everything_that_reaches_the_files() -> None:
    rows = [planned(2, "/a/x.wav"), planned(3, "/a/y.wav")]
    digest = rows_digest(rows)
    assert rows_digest(list(rows)) == digest
    segment = dataclasses.replace(rows[0], row=dataclasses.replace(rows[0].row, start="1.5", end="2"))
    for changed in (
        [planned(2, "/a/x.wav", size=101), rows[1]],
        [planned(2, "/a/x.wav", generation=7), rows[1]],
        [planned(2, "/a/x.wav", label=2), rows[1]],
        [planned(4, "/a/x.wav"), rows[1]],
        [dataclasses.replace(rows[0], labels=(1, 2), label=None), rows[1]],
        [dataclasses.replace(rows[0], group="speaker-1"), rows[1]],
        [dataclasses.replace(rows[0], row=dataclasses.replace(rows[0].row, text="hello")), rows[1]],
        [segment, rows[1]],
        [dataclasses.replace(segment, row=dataclasses.replace(segment.row, end="2.5")), rows[1]],
        rows[:1],
        rows[::-1],
    ):
        assert rows_digest(changed) != digest


def stats(*rates: int) -> ShardStats:
    result = ShardStats()
    for index, rate in enumerate(rates):
        result.add(f"label-{index % 2}", rate, rate * 2, 1 + index % 2, 1234 + 7 * index)
    return result


def test_a_marker_keeps_every_bit_of_its_shards_stats(tmp_path: Path) -> None:
    temp_dir = str(tmp_path / "_temporary-1")
    content = ContentStats(extra_examples=2, clipped_segments=1)
    content.examples_per_row.update({3: 1, 1: 2})
    content.examples_per_source.update({5: 1})
    content.add_text("ça va")
    shard = ShardWritten(
        "train", 3, 0, f"{temp_dir}/train-00003-0000.tfrecord", 4567, stats(16000, 8000, 16000), content
    )
    rejection = Rejection(5, "bad.wav", "1", "train", "unreadable", "line 5: é, bad")
    marker = UnitMarker("train", 3, "digest", (MarkedFile(shard, 999, 88),), (rejection,))
    marker.write(temp_dir)
    assert (tmp_path / "_temporary-1" / UNITS_FOLDER / "train-00003.json").exists()
    again = UnitMarker.read(temp_dir, "train", 3)
    assert again == marker and again.num_rows == 2  # 3 examples, 2 of them extra windows of 1 row; 1 rejected
    assert again.files[0].shard.stats.duration_seconds == shard.stats.duration_seconds  # the very same float
    assert again.files[0].shard.content == content
    assert UnitMarker.read(temp_dir, "train", 4) is None
    (tmp_path / "_temporary-1" / UNITS_FOLDER / "train-00004.json").write_text("{not json")
    assert UnitMarker.read(temp_dir, "train", 4) is None  # unreadable: the unit is written again


def test_a_marker_holds_only_while_its_files_are_there_with_their_sizes(tmp_path: Path) -> None:
    temp_dir = tmp_path / "_temporary-1"
    temp_dir.mkdir()
    files = []
    for part in range(2):
        path = temp_dir / f"train-00000-{part:04d}.tfrecord"
        path.write_bytes(b"r" * (10 + part))
        Path(f"{path}{INDEX_SUFFIX}").write_bytes(b"i" * 3)
        files.append(MarkedFile.of(ShardWritten("train", 0, part, str(path), 10 + part, ShardStats())))
    assert [(file.stored_bytes, file.index_bytes) for file in files] == [(10, 3), (11, 3)]
    marker = UnitMarker("train", 0, "digest", tuple(files), ())
    assert marker.still_holds("digest")
    assert not marker.still_holds("other rows")
    Path(files[0].shard.temp_uri + INDEX_SUFFIX).unlink()  # its record index is gone
    assert not marker.still_holds("digest")
    Path(files[0].shard.temp_uri + INDEX_SUFFIX).write_bytes(b"i" * 3)
    assert marker.still_holds("digest")
    Path(files[1].shard.temp_uri).write_bytes(b"r" * 5)  # truncated
    assert not marker.still_holds("digest")
    Path(files[1].shard.temp_uri).unlink()  # renamed away by an interrupted Finalize
    assert not marker.still_holds("digest")


SUMMARY = operator.attrgetter("split", "unit", "part", "num_bytes", "stats.num_examples")


def write_units(tmp_path: Path, rows: list[PlannedRow], options: IngestOptions, temp_dir: Path) -> dict[str, int]:
    """Runs WriteShards with a run state on `rows`; returns its counters."""
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from apache_beam.testing.test_pipeline import TestPipeline

    register_row_coders()
    pipeline = TestPipeline(runner=FnApiRunner())
    state = RunState.of(options, SHA)
    written = pipeline | beam.Create(rows) | WriteShards(options, str(temp_dir), state)
    expected = [file.shard for marker in markers(temp_dir) for file in marker.files]
    if expected:  # what the markers of a previous run recorded, statistics and all, is what a resumed run hands on
        assert_that(written.shards, equal_to(expected), label="Shards")
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("audioflow"))["counters"]
    return {counter.key.metric.name: counter.committed for counter in counters}


def markers(temp_dir: Path) -> list[UnitMarker]:
    folder = temp_dir / UNITS_FOLDER
    names = sorted(folder.iterdir()) if folder.exists() else []
    return [UnitMarker.from_json(path.read_text(), str(temp_dir)) for path in names]


@pytest.mark.parametrize("windows", [{}, {"window_seconds": 0.005}], ids=["one example per file", "windows"])
def test_write_shards_keeps_the_units_whose_markers_hold_and_redoes_the_others(tmp_path: Path, windows) -> None:
    root = tmp_path / "audio"
    paths = [write_audio(root / f"{i:02d}.wav", rate=8000, seconds=0.02, seed=i) for i in range(12)]
    corrupt = write_corrupt_files(root / "bad")["random_bytes"]
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"),
        output=str(tmp_path / "out"),
        audio_root=str(root),
        shard_size=1024,
        **windows,
    )
    rows = [planned(line, str(path), path.stat().st_size) for line, path in enumerate([*paths, corrupt], start=2)]
    temp_dir = tmp_path / "out" / "_temporary-1"

    first = write_units(tmp_path, rows, options, temp_dir)
    done = markers(temp_dir)
    assert len(done) > 2 and first["files_decoded"] == 13
    assert first["examples_written"] == (48 if windows else 12)  # 20 ms clips: four 5 ms windows each
    assert json.loads((temp_dir / RUN_FILE).read_text()) == json.loads(RunState.of(options, SHA).to_json())
    assert sum(marker.num_rows for marker in done) == 13 and sum(len(m.rejected) for m in done) == 1
    files_before = {path.name: path.read_bytes() for path in temp_dir.glob("*.tfrecord")}

    resumed = write_units(tmp_path, rows, dataclasses.replace(options, resume=True), temp_dir)
    assert resumed.get("files_decoded", 0) == 0
    assert resumed["shard_units_kept"] == len(done) and resumed["examples_kept"] == first["examples_written"]
    assert resumed["rows_rejected"] == 1  # the kept unit's rejection is handed on again

    # One unit's file is gone, and a file of another unit was replaced (a new generation): those two
    # units are written again, and only they. (Which unit the corrupt row's hash lands in depends on the
    # temporary path; a unit holding only that rejection has no file to remove.)
    gone, changed = [marker for marker in done if marker.files][:2]
    Path(gone.files[0].shard.temp_uri).unlink()
    replaced = lines_of(changed, rows)[0]
    rows = [dataclasses.replace(r, generation=1) if r.row.line == replaced else r for r in rows]
    again = write_units(tmp_path, rows, dataclasses.replace(options, resume=True), temp_dir)
    assert again["files_decoded"] == gone.num_rows + changed.num_rows
    assert again["shard_units_kept"] == len(done) - 2
    assert {path.name: path.read_bytes() for path in temp_dir.glob("*.tfrecord")} == files_before


def lines_of(marker: UnitMarker, rows: list[PlannedRow]) -> list[int]:
    """The manifest lines of a unit's rows, found through the blobs its shards' records name."""
    from audioflow.beam.format import decode_example, iter_shard_records

    blobs = set()
    for file in marker.files:
        with open(file.shard.temp_uri, "rb") as raw:
            blobs |= {decode_example(payload).blob for payload in iter_shard_records(raw, file.shard.temp_uri)}
    blobs |= {rejection.blob for rejection in marker.rejected}
    return [row.row.line for row in rows if row.row.blob in blobs]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small corpus: 20 clips and a manifest."""
    for index in range(20):
        write_audio(tmp_path / "audio" / f"{index:02d}.wav", rate=8000, seconds=0.02, seed=index)
    write_manifest(tmp_path / "audio" / "labels.csv", [(str(i % 2), f"{i:02d}.wav") for i in range(20)])
    return tmp_path


def ingest_options(corpus: Path, **values) -> IngestOptions:
    values = {"shard_size": "1KiB", "splits": "train=0.5,test=0.5", **values}
    return build_ingest_options(manifest=str(corpus / "audio" / "labels.csv"), output=str(corpus / "out"), **values)


def leave_interrupted_run(corpus: Path, options: IngestOptions, run_id: str = "20260101000000-aaaaaaaa") -> Path:
    """The temporary folder an interrupted run of `options` would leave: run.json and one unit marker."""
    temp_dir = corpus / "out" / f"_temporary-{run_id}"
    state = RunState.of(options, manifest_sha256(options.manifest))
    (temp_dir / UNITS_FOLDER).mkdir(parents=True)
    (temp_dir / RUN_FILE).write_text(state.to_json())
    UnitMarker("train", 0, "digest", (), ()).write(str(temp_dir))
    return temp_dir


def test_resume_keeps_the_matching_temporary_folder_and_clears_other_leftovers(corpus: Path) -> None:
    options = ingest_options(corpus, resume=True)
    state = RunState.of(options, manifest_sha256(options.manifest))
    older = leave_interrupted_run(corpus, ingest_options(corpus, sample_rate=4000), "20250101000000-bbbbbbbb")
    kept = leave_interrupted_run(corpus, options)
    no_state = corpus / "out" / "_temporary-20240101000000-cccccccc"
    no_state.mkdir()
    (no_state / "train-00000-0000.tfrecord").write_bytes(b"partial")
    leftovers = [corpus / "out" / name for name in ("train-00000-of-00002.tfrecord", "rejected.jsonl.incomplete")]
    for path in leftovers:
        path.write_bytes(b"from an interrupted Finalize")
    assert prepare_output(options, state) == str(kept)  # no --overwrite needed
    assert kept.exists() and not older.exists() and not no_state.exists()
    assert not any(path.exists() for path in leftovers)
    assert sorted(p.name for p in (corpus / "out").iterdir()) == [kept.name]


def test_resume_says_why_it_starts_over(corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    options = ingest_options(corpus, resume=True)
    state = RunState.of(options, manifest_sha256(options.manifest))
    other = leave_interrupted_run(corpus, ingest_options(corpus, compression="gzip"))
    with caplog.at_level(logging.WARNING, logger="audioflow.beam.job.resume"):
        assert find_resumable([str(other)], state) is None
    [record] = caplog.records
    assert record.getMessage() == f"--resume: starting over: the interrupted run in {other} was made with other options"
    (other / RUN_FILE).write_text(dataclasses.replace(state, manifest_sha256="0" * 64).to_json())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audioflow.beam.job.resume"):
        assert find_resumable([str(other)], state) is None
    assert "was made from another manifest (sha256 000000000000…" in caplog.records[0].getMessage()
    (other / RUN_FILE).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audioflow.beam.job.resume"):
        assert find_resumable([str(other)], state) is None
    assert caplog.records[0].getMessage().endswith(f"the interrupted run in {other} completed no shard unit")


def test_resume_onto_a_complete_dataset_is_refused(corpus: Path) -> None:
    run_ingest(ingest_options(corpus), [])
    before = {path.name: path.read_bytes() for path in (corpus / "out").iterdir()}
    options = ingest_options(corpus, resume=True)
    with pytest.raises(OutputExistsError, match="already holds a complete dataset; --resume only continues an inter"):
        run_ingest(options, [])
    with pytest.raises(OutputExistsError, match="already holds a complete dataset"):
        run_ingest(ingest_options(corpus, resume=True, sample_rate=4000), [])
    assert {path.name: path.read_bytes() for path in (corpus / "out").iterdir()} == before
    # --overwrite still replaces it, --resume or not.
    info = run_ingest(ingest_options(corpus, resume=True, overwrite=True, sample_rate=4000), [])
    assert info.audio["sample_rate"] == 4000


def test_a_resumed_run_with_other_options_starts_over_and_says_so(corpus: Path, caplog) -> None:
    """A run whose every unit is marked, resumed with another sample rate: nothing of it is kept."""
    leave = ingest_options(corpus)
    temp_dir = leave_interrupted_run(corpus, leave)
    captured = []
    with caplog.at_level(logging.WARNING, logger="audioflow.beam.job.resume"):
        info = run_ingest(ingest_options(corpus, resume=True, sample_rate=4000), [], on_started=captured.append)
    assert [r.getMessage() for r in caplog.records if "starting over" in r.getMessage()] == [
        f"--resume: starting over: the interrupted run in {temp_dir} was made with other options"
    ]
    assert info.audio["sample_rate"] == 4000 and info.num_examples == 20
    assert not temp_dir.exists()
    counters = captured[0].metrics().query(MetricsFilter().with_namespace("audioflow"))["counters"]
    assert sum(c.committed for c in counters if c.key.metric.name == "files_decoded") == 20
    assert not [c for c in counters if c.key.metric.name == "shard_units_kept"]
