"""The whole pipeline under kfp.local on a multi-label dataset: ingest with --label-separator, then the
trainer's sigmoid outputs, with per-label metrics in the metrics artifact."""

# No `from __future__ import annotations`: KFP reads the component annotations at definition time.
import json
from pathlib import Path

import pytest

from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.demo_data import CLASSES, make_multi_label_demo_data
from audioflow.pipelines.local import run_local


@pytest.fixture(scope="module")
def multi_label_run(tmp_path_factory):
    source = tmp_path_factory.mktemp("multi-label-demo")
    manifest = make_multi_label_demo_data(source, clips=90)
    root = tmp_path_factory.mktemp("pipeline-root")
    return run_local(str(root), manifest_uri=str(manifest), label_separator=",", epochs=12)


def test_the_pipeline_ingests_multi_label_data(multi_label_run):
    dataset = multi_label_run.artifacts["dataset"]
    info = load_dataset_info(dataset.uri)
    assert info.multi_label and info.num_examples == 90 and info.labels["names"] == sorted(CLASSES)
    assert sum(info.labels["counts"].values()) > info.num_examples  # clips hold several sounds
    assert dataset.metadata["label_names"] == sorted(CLASSES)


def test_the_trainer_reports_per_label_metrics_and_learned(multi_label_run):
    metrics = multi_label_run.artifacts["train_metrics"].metadata
    evaluated = multi_label_run.artifacts["model"].metadata["evaluated_on"]
    assert multi_label_run.artifacts["model"].metadata["multi_label"] is True
    for label in CLASSES:
        for name in ("precision", "recall", "f1", "support"):
            assert f"{evaluated}_{name}_{label}" in metrics, sorted(metrics)
    assert metrics["train_auc"] > 0.7, metrics  # chance is 0.5
    assert metrics["train_binary_accuracy"] > 0.6, metrics
    labels = json.loads((Path(multi_label_run.artifacts["model"].path) / "labels.json").read_text())
    assert labels["multi_label"] is True and labels["label_names"] == sorted(CLASSES)
