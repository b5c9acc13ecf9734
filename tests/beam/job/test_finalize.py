"""Finalize on its own: the accounting, the renames, rejected.jsonl, and dataset.json as its output."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that

from audioflow.beam.errors import AccountingError
from audioflow.beam.format import DatasetInfo
from audioflow.beam.job.finalize import Finalize, FinalizeInputs
from audioflow.beam.prep.manifest import LabelPolicy, ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import Rejection, ShardStats, ShardWritten


def shard(temp_dir: Path, split: str, unit: int, labels: list[str]) -> ShardWritten:
    """A temporary shard file of 100 bytes per example (Finalize renames it; it never reads it)."""
    path = temp_dir / f"{split}-{unit:05d}-0000.tfrecord"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"r" * 100 * len(labels))
    stats = ShardStats()
    for label in labels:
        stats.add(label, sample_rate=16000, source_rate=44100, channels=1, frames=8000)
    return ShardWritten(split, unit, 0, str(path), 100 * len(labels), stats)


def rejection(line: int, split: str, reason: str) -> Rejection:
    return Rejection.of(ManifestRow(line, "dog", f"{line}.wav"), split, reason, f"line {line}: {reason}")


def finalize(pipeline, options: IngestOptions, temp_dir: Path, row_splits: list[str]) -> beam.PCollection:
    """Finalize of 3 train + 1 test examples and 2 rejections, for a manifest of 6 rows."""
    shards = [
        shard(temp_dir, "train", 1, ["dog"]),
        shard(temp_dir, "train", 0, ["cat", "dog"]),
        shard(temp_dir, "test", 0, ["cat"]),
    ]
    rejected = [rejection(7, "test", "missing"), rejection(3, "train", "bad_label")]
    info = {"uri": options.manifest, "sha256": "ab12", "num_rows": 6}
    inputs = FinalizeInputs(
        shards=pipeline | "Shards" >> beam.Create(shards),
        rejected=pipeline | "Rejected" >> beam.Create(rejected),
        row_splits=pipeline | "RowSplits" >> beam.Create(row_splits),
        policy=pipeline | "Policy" >> beam.Create([LabelPolicy(names=("cat", "dog"))]),
        manifest_info=pipeline | "Info" >> beam.Create([info]),
    )
    return inputs | "Finalize" >> Finalize(options, str(temp_dir), {"name": "audioflow", "version": "test"})


def options_for(tmp_path: Path) -> IngestOptions:
    return build_ingest_options(
        manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), splits="train=0.8,test=0.2"
    )


def _check_info(output: str):
    def check(infos: list[DatasetInfo]) -> None:
        [info] = infos
        assert (Path(output) / "dataset.json").read_text() == info.to_json()  # the output is what was written
        assert {name: split.num_examples for name, split in info.splits.items()} == {"train": 3, "test": 1}
        assert [f.name for f in info.splits["train"].files] == [
            "train-00000-of-00002.tfrecord",
            "train-00001-of-00002.tfrecord",
        ]
        assert [f.num_examples for f in info.splits["train"].files] == [2, 1]  # unit 0 first, whatever arrived first
        assert info.splits["train"].label_counts == {"cat": 1, "dog": 2}
        assert info.rejected["num_rows"] == 2 and info.rejected["by_reason"] == {"bad_label": 1, "missing": 1}
        assert info.rejected["by_split"] == {"test": 1, "train": 1} and info.rejected["fraction"] == round(2 / 6, 6)
        assert info.manifest == {"uri": str(Path(output).parent / "labels.csv"), "sha256": "ab12", "num_rows": 6}
        assert info.labels == {"names": ["cat", "dog"], "counts": {"cat": 2, "dog": 2}}
        assert info.stats["num_examples"] == 4 and info.stats["source_sample_rates"] == {"44100": 4}

    return check


def test_counts_add_up_and_the_dataset_is_completed(pipeline, tmp_path: Path) -> None:
    options = options_for(tmp_path)
    temp_dir = Path(options.output) / "_temporary-test"
    info = finalize(pipeline, options, temp_dir, ["train"] * 4 + ["test"] * 2)
    assert_that(info, _check_info(options.output))
    pipeline.run().wait_until_finish()

    output = Path(options.output)
    assert sorted(path.name for path in output.iterdir()) == [
        "dataset.json",
        "rejected.jsonl",
        "test-00000-of-00001.tfrecord",
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
    ]  # the temporary folder is gone
    lines = [json.loads(line) for line in (output / "rejected.jsonl").read_text().splitlines()]
    assert sorted((line["line"], line["reason"]) for line in lines) == [(3, "bad_label"), (7, "missing")]


def test_lost_rows_fail_the_job_before_dataset_json(pipeline, tmp_path: Path) -> None:
    options = options_for(tmp_path)
    temp_dir = Path(options.output) / "_temporary-test"
    finalize(pipeline, options, temp_dir, ["train"] * 5 + ["test"] * 2)  # a train row neither written nor rejected
    with pytest.raises(Exception) as raised:
        pipeline.run().wait_until_finish()
    error: BaseException | None = raised.value
    while error is not None and not isinstance(error, AccountingError):  # Beam wraps errors raised in DoFns
        error = error.__cause__ or error.__context__
    assert error is not None, raised.value
    assert str(error).startswith(  # Beam appends the step: [while running 'Finalize/FinalizeDataset']
        "accounting does not balance, so rows were lost: split 'train': 5 rows != 3 written + 1 rejected; "
        "7 rows classified != 6 manifest rows"
    )
    assert not (Path(options.output) / "dataset.json").exists()
