"""The ingest_audio component's body as plain Python: real local runs at an artifact URI, the
artifact metadata made from dataset.json, and the gcp_resources document for Dataflow jobs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from audioflow.beam.errors import AudioflowError
from audioflow.beam.format import METADATA_FILE, DatasetInfo, shard_file_name
from audioflow.beam.storage import load_dataset_info
from audioflow.components.ingest_step import dataflow_resources, dataset_metadata, run_ingest_step

from audio_files import write_audio, write_manifest


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """Four short clips in two labels at two rates, and one row whose file is missing."""
    root = tmp_path_factory.mktemp("ingest-step-audio")
    rows = []
    for index, (label, rate) in enumerate([("dog", 16000), ("cat", 22050), ("dog", 22050), ("cat", 16000)]):
        write_audio(root / f"clip-{index}.wav", rate=rate, seconds=0.25, seed=index)
        rows.append((label, f"clip-{index}.wav"))
    rows.append(("dog", "gone.wav"))
    return write_manifest(root / "labels.csv", rows)


def _step(manifest: Path, dataset_uri: Path, gcp_resources: Path, runner: str, **values) -> DatasetInfo:
    return run_ingest_step(
        dataset_uri=str(dataset_uri),
        gcp_resources_path=str(gcp_resources),
        runner=runner,
        beam_args=[],
        manifest=str(manifest),
        splits="train=0.5,test=0.5",
        sample_rate=16000,
        max_rejected_fraction=0.5,
        **values,
    )


@pytest.fixture(scope="module")
def step_run(manifest, tmp_path_factory) -> tuple[Path, Path, DatasetInfo]:
    out = tmp_path_factory.mktemp("ingest-step-out")
    info = _step(manifest, out / "dataset", out / "gcp_resources", "DirectRunner")
    return out / "dataset", out / "gcp_resources", info


def test_local_run_writes_the_dataset_at_the_artifact_uri_and_empty_gcp_resources(step_run):
    dataset, gcp_resources, info = step_run
    assert gcp_resources.read_text() == "{}"  # nothing for the Vertex console to link to
    assert (dataset / METADATA_FILE).is_file()
    assert info == load_dataset_info(str(dataset))
    assert info.num_examples == 4 and info.rejected["by_reason"] == {"missing": 1}
    assert info.audio["sample_rate"] == 16000


def test_a_retried_step_replaces_the_output_of_the_attempt_before(manifest, step_run, tmp_path):
    dataset, _, first = step_run
    dataset = Path(shutil.copytree(dataset, tmp_path / "dataset"))  # the first attempt's output, complete
    stale_shard = dataset / shard_file_name("train", 3, 9)  # an earlier attempt wrote 9 shards
    stale_shard.write_bytes(b"partial")
    stale_temporary = dataset / "_temporary-earlier-attempt"
    stale_temporary.mkdir()
    (stale_temporary / "part").write_bytes(b"partial")
    gcp_resources = tmp_path / "gcp_resources"
    again = _step(manifest, dataset, gcp_resources, runner="")  # no runner: Beam's default, local
    assert gcp_resources.read_text() == "{}"
    assert not stale_shard.exists() and not stale_temporary.exists()
    assert again.splits == first.splits and again.labels == first.labels


def test_bad_values_are_refused_before_a_job_starts(manifest, tmp_path):
    with pytest.raises(ValueError, match="bad size 'huge'"):
        _step(manifest, tmp_path / "dataset", tmp_path / "gcp_resources", "DirectRunner", shard_size="huge")
    with pytest.raises(AudioflowError, match="unknown option --sample-rat"):
        run_ingest_step(
            dataset_uri=str(tmp_path / "dataset"),
            gcp_resources_path=str(tmp_path / "gcp_resources"),
            runner="DirectRunner",
            beam_args=["--sample-rat=8000"],
            manifest=str(manifest),
        )
    assert not (tmp_path / "dataset" / METADATA_FILE).exists()


def test_dataset_metadata_mirrors_dataset_json(step_run):
    dataset, _, info = step_run
    meta = json.loads((dataset / METADATA_FILE).read_text(encoding="utf-8"))
    metadata = dataset_metadata(info)
    assert json.loads(json.dumps(metadata)) == metadata  # artifact metadata must be plain JSON
    assert metadata == {
        "format": "audioflow-tfrecord",
        "format_version": meta["format_version"],
        "split_names": list(meta["splits"]),
        "num_examples": {name: split["num_examples"] for name, split in meta["splits"].items()},
        "num_shards": {name: split["num_shards"] for name, split in meta["splits"].items()},
        "label_names": ["cat", "dog"],
        "num_labels": 2,
        "sample_format": "int16",
        "sample_rate": 16000,
        "num_channels": 1,
        "compression": "none",
        "total_hours": meta["stats"]["total_hours"],
        "total_bytes": meta["stats"]["total_bytes"],
        "num_rejected": 1,
        "rejected_by_reason": {"missing": 1},
        "manifest_uri": meta["manifest"]["uri"],
        "manifest_sha256": meta["manifest"]["sha256"],
    }
    # Integer labels have no names; their number comes from the counts.
    numbered = dataclasses.replace(info, labels={"names": None, "counts": {"0": 2, "7": 2}})
    assert (dataset_metadata(numbered)["label_names"], dataset_metadata(numbered)["num_labels"]) == (None, 2)


def test_dataflow_resources_is_a_gcp_resources_document():
    document = json.loads(dataflow_resources("2026-01-01_00_00_00-123", "my-project", "europe-west4"))
    assert document == {
        "resources": [
            {
                "resourceType": "DataflowJob",
                "resourceUri": "https://dataflow.googleapis.com/v1b3/projects/my-project/locations/europe-west4"
                "/jobs/2026-01-01_00_00_00-123",
            }
        ]
    }


def test_resume_reaches_the_job_and_a_foreign_attempt_is_not_kept(manifest, tmp_path, caplog):
    """With resume=True the step looks at what an earlier attempt left before replacing it: here the
    attempt was made with other options, so it says so and starts over."""
    from audioflow.beam.job.resume import RUN_FILE, RunState, manifest_sha256
    from audioflow.beam.prep.options import build_ingest_options

    dataset = tmp_path / "dataset"
    earlier = dataset / "_temporary-20260101000000-abcdef01"
    earlier.mkdir(parents=True)
    other = build_ingest_options(manifest=str(manifest), output=str(dataset), sample_rate=8000)
    (earlier / RUN_FILE).write_text(RunState.of(other, manifest_sha256(str(manifest))).to_json())
    with caplog.at_level("WARNING", logger="audioflow.beam.job.resume"):
        info = _step(manifest, dataset, tmp_path / "gcp_resources", "DirectRunner", resume=True)
    assert [record.getMessage() for record in caplog.records] == [
        f"--resume: starting over: the interrupted run in {earlier} was made with other options"
    ]
    assert info.num_examples == 4 and not earlier.exists()
    assert "resume" not in info.options
