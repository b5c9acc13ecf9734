"""The trainer body of train_audio_classifier, run for real on tiny ingested datasets: the model it
builds, the label names it trains on, what it saves, and the datasets it refuses."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import DatasetInfo
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.components.training import (
    LABELS_FILE,
    MODEL_FILE,
    TrainingConfig,
    _label_names,
    build_model,
    train_classifier,
)

CONFIG = TrainingConfig(epochs=1, batch_size=4, clip_seconds=0.25)


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("training-demo"), clips_per_class=4)


def _ingest(manifest: Path, output: Path, **values) -> DatasetInfo:
    options = build_ingest_options(manifest=str(manifest), output=str(output), max_rejected_fraction=1, **values)
    return run_ingest(options, [])


@pytest.fixture(scope="module")
def dataset_16k(demo_manifest, tmp_path_factory) -> tuple[Path, DatasetInfo]:
    """The demo's 12 good clips at 16 kHz mono, with a test split to evaluate on."""
    folder = tmp_path_factory.mktemp("training-16k") / "dataset"
    info = _ingest(demo_manifest, folder, sample_rate=16000, mono=True, splits="train=0.6,test=0.4")
    assert info.splits["train"].num_examples and info.splits["test"].num_examples
    return folder, info


def test_model_takes_waveforms_and_returns_one_logit_per_class():
    model = build_model(num_samples=4000, sample_rate=16000, num_classes=3)
    assert model.input_shape == (None, 4000)
    assert model.output_shape == (None, 3)
    assert model.get_layer("log_mel") is not None
    logits = model(np.zeros((2, 4000), dtype=np.float32), training=False)
    assert tuple(logits.shape) == (2, 3)


def test_label_names_follow_the_dataset(dataset_16k):
    _, info = dataset_16k
    assert _label_names(info) == info.label_names == ["hum", "noise", "whistle"]
    # Integer labels become class indexes 0..max, so a label with no examples still gets its logit.
    numbered = dataclasses.replace(info, labels={"names": None, "counts": {"3": 2, "0": 5}})
    assert _label_names(numbered) == ["0", "1", "2", "3"]
    negative = dataclasses.replace(info, labels={"names": None, "counts": {"-1": 2, "0": 5}})
    with pytest.raises(DatasetError, match="integer labels must be >= 0"):
        _label_names(negative)


def test_one_epoch_saves_a_model_that_takes_raw_waveforms(dataset_16k, tmp_path):
    import keras

    folder, info = dataset_16k
    model_dir = tmp_path / "model" / "nested"  # created if missing
    result = train_classifier(str(folder), str(model_dir), CONFIG)

    assert result.label_names == ["hum", "noise", "whistle"]
    assert (result.sample_rate, result.num_samples) == (16000, 4000)
    assert set(result.metrics) == {"train", "test"}
    assert all(set(values) == {"loss", "accuracy"} for values in result.metrics.values())
    assert all(0.0 <= values["accuracy"] <= 1.0 for values in result.metrics.values())
    assert result.confusion_split == "test"
    matrix = np.array(result.confusion_matrix)
    assert matrix.shape == (3, 3) and matrix.sum() == info.splits["test"].num_examples
    assert np.array_equal(matrix.sum(axis=1), [info.splits["test"].label_counts.get(n, 0) for n in result.label_names])

    assert result.model_file == str(model_dir / MODEL_FILE)
    assert sorted(path.name for path in model_dir.iterdir()) == sorted([MODEL_FILE, LABELS_FILE])
    labels = json.loads((model_dir / LABELS_FILE).read_text())
    assert labels == {"label_names": ["hum", "noise", "whistle"], "sample_rate": 16000, "num_samples": 4000}
    model = keras.saving.load_model(model_dir / MODEL_FILE)
    assert tuple(model(np.zeros((1, 4000), dtype=np.float32), training=False).shape) == (1, 3)


def test_refuses_a_dataset_with_mixed_sample_rates(demo_manifest, tmp_path):
    info = _ingest(demo_manifest, tmp_path / "mixed")  # no --sample-rate: 16, 22.05 and 44.1 kHz
    assert info.audio["sample_rate"] is None
    with pytest.raises(DatasetError, match="mixes sample rates") as raised:
        train_classifier(str(tmp_path / "mixed"), str(tmp_path / "model"), CONFIG)
    message = str(raised.value)
    assert message.startswith(str(tmp_path / "mixed")) and "ingest with --sample-rate" in message
    assert all(rate in message for rate in ("16000", "22050", "44100"))
    assert not (tmp_path / "model").exists()


def test_refuses_a_dataset_without_a_train_split(demo_manifest, tmp_path):
    _ingest(demo_manifest, tmp_path / "eval-only", sample_rate=16000, splits="validation=0.5,test=0.5")
    with pytest.raises(DatasetError, match="has no training examples"):
        train_classifier(str(tmp_path / "eval-only"), str(tmp_path / "model"), CONFIG)
    assert not (tmp_path / "model").exists()


@pytest.fixture(scope="module")
def multi_label_dataset(tmp_path_factory) -> tuple[Path, DatasetInfo]:
    from audioflow.beam.tools.demo_data import make_multi_label_demo_data

    folder = tmp_path_factory.mktemp("multi-label")
    manifest = make_multi_label_demo_data(folder / "source", clips=24)
    info = _ingest(manifest, folder / "dataset", sample_rate=16000, mono=True, splits="train=0.6,test=0.4",
                   label_separator=",")  # fmt: skip
    assert info.multi_label and info.labels["names"] == ["hum", "noise", "whistle"]
    return folder / "dataset", info


def test_multi_label_trains_sigmoid_outputs_with_per_label_metrics(multi_label_dataset, tmp_path):
    import keras

    folder, info = multi_label_dataset
    result = train_classifier(str(folder), str(tmp_path / "model"), CONFIG)
    assert result.multi_label and result.label_names == ["hum", "noise", "whistle"]
    assert all(set(values) == {"loss", "binary_accuracy", "auc"} for values in result.metrics.values())
    assert result.confusion_split == "test" and result.confusion_matrix == []
    assert set(result.per_label_metrics) == {"hum", "noise", "whistle"}
    for name, values in result.per_label_metrics.items():
        assert set(values) == {"precision", "recall", "f1", "support"}
        assert values["support"] == info.splits["test"].label_counts.get(name, 0)  # each example once per label
        assert all(0.0 <= values[key] <= 1.0 for key in ("precision", "recall", "f1"))
    labels = json.loads((tmp_path / "model" / LABELS_FILE).read_text())
    assert labels["multi_label"] is True and labels["label_names"] == result.label_names
    model = keras.saving.load_model(tmp_path / "model" / MODEL_FILE)
    assert tuple(model(np.zeros((2, 4000), dtype=np.float32), training=False).shape) == (2, 3)


def test_refuses_unlabeled_and_text_only_datasets_saying_what_they_hold(demo_manifest, tmp_path):
    audio = demo_manifest.parent
    rows = [line.split(",")[1] for line in demo_manifest.read_text().splitlines()[1:6]]
    (tmp_path / "list.csv").write_text("path\n" + "\n".join(rows) + "\n")
    _ingest(tmp_path / "list.csv", tmp_path / "unlabeled", audio_root=str(audio), sample_rate=16000)
    with pytest.raises(DatasetError, match=r"holds unlabeled audio \(\d+ examples\): this step trains a classifier"):
        train_classifier(str(tmp_path / "unlabeled"), str(tmp_path / "model"), CONFIG)
    (tmp_path / "text.csv").write_text("path,sentence,speaker\n" + "".join(f"{r},hello,s1\n" for r in rows))
    _ingest(tmp_path / "text.csv", tmp_path / "text", audio_root=str(audio), sample_rate=16000, keep_columns="speaker")
    with pytest.raises(DatasetError, match=r"holds text targets \(transcripts\) and no labels, with the kept columns"):
        train_classifier(str(tmp_path / "text"), str(tmp_path / "model"), CONFIG)
    assert not (tmp_path / "model").exists()
