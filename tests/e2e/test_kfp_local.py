"""The whole pipeline under kfp.local, and the reuse path: ingest_audio loaded from its YAML."""

# No `from __future__ import annotations`: KFP reads the component annotations at definition time.
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
from kfp import components, dsl, local
from kfp.dsl import Dataset, Input

from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.pipelines.compiler import compile_all
from audioflow.pipelines.local import run_local


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    make_demo_data(folder, clips_per_class=30)
    return folder / "labels.csv"


@pytest.fixture(scope="module")
def local_run(demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-root")
    return run_local(str(root), manifest_uri=str(demo), max_rejected_fraction=0.05, epochs=12)


def test_dataset_artifact_holds_the_dataset_and_its_metadata(local_run):
    dataset = local_run.artifacts["dataset"]
    info = load_dataset_info(dataset.uri)
    assert info.num_examples == 90 and info.rejected["num_rows"] == 3
    assert info.audio["sample_rate"] == 16000 and info.audio["num_channels"] == 1  # pipeline defaults
    metadata = dataset.metadata
    assert metadata["split_names"] == ["train", "validation", "test"]
    assert metadata["num_examples"] == {name: s.num_examples for name, s in info.splits.items()}
    assert metadata["label_names"] == ["hum", "noise", "whistle"] and metadata["num_rejected"] == 3
    assert (Path(dataset.uri) / "dataset.json").is_file() and (Path(dataset.uri) / "rejected.jsonl").is_file()
    ingest_metrics = local_run.artifacts["ingest_metrics"].metadata
    assert ingest_metrics["examples_written"] == 90 and ingest_metrics["manifest_rows"] == 93


def test_model_loads_predicts_and_learned(local_run, demo):
    model_dir = Path(local_run.artifacts["model"].path)
    model = keras.models.load_model(model_dir / "model.keras")
    labels = json.loads((model_dir / "labels.json").read_text())
    assert labels["label_names"] == ["hum", "noise", "whistle"]
    # Predict on fresh audio of each class, resampled like the pipeline does.
    fresh = make_demo_data(demo.parent / "fresh", clips_per_class=4, seed=123)
    rows = [line.split(",") for line in fresh.read_text().splitlines()[1:13]]
    import soxr

    batch = []
    for _, blob in rows:
        samples, rate = sf.read(fresh.parent / blob.strip(), dtype="float32", always_2d=True)
        mono = soxr.resample(samples.mean(axis=1), rate, 16000)[: labels["num_samples"]]
        batch.append(np.pad(mono, (0, labels["num_samples"] - len(mono))))
    predictions = np.argmax(model.predict(np.stack(batch), verbose=0), axis=1)
    truth = [labels["label_names"].index(label) for label, _ in rows]
    assert np.mean(predictions == np.array(truth)) > 0.6  # chance is 1/3
    metrics = local_run.artifacts["train_metrics"].metadata
    assert metrics["train_accuracy"] > 0.7 and metrics["test_accuracy"] > 0.5, metrics
    confusion = local_run.artifacts["confusion_matrix"].metadata["confusionMatrix"]
    assert [spec["displayName"] for spec in confusion["annotationSpecs"]] == ["hum", "noise", "whistle"]
    assert (
        sum(sum(row["row"]) for row in confusion["rows"])
        == load_dataset_info(local_run.artifacts["dataset"].uri).splits["test"].num_examples
    )


def test_ingest_component_reused_from_its_yaml_in_a_users_pipeline(demo, tmp_path):
    compiled = compile_all(tmp_path / "compiled")
    ingest_audio = components.load_component_from_file(str(compiled["ingest_audio"]))

    @dsl.component(base_image="python:3.11", install_kfp_package=False)
    def count_examples(dataset: Input[Dataset]) -> int:
        from audioflow.beam.reader import read_split

        return sum(1 for _ in read_split(dataset.uri, "all").as_numpy_iterator())

    @dsl.pipeline(name="users-own-pipeline")
    def users_pipeline(manifest_uri: str) -> int:
        ingest = ingest_audio(manifest_uri=manifest_uri, audio_root="", splits="all=1", max_rejected_fraction=0.05)
        return count_examples(dataset=ingest.outputs["dataset"]).output

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = users_pipeline(manifest_uri=str(demo))
    assert task.output == 90
