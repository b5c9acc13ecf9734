"""docs/train_numpy.py, the example of training without TensorFlow, runs as documented and learns."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.demo_data import make_demo_data

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "train_numpy.py"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("train-numpy")
    manifest = make_demo_data(root, clips_per_class=8)
    output = root / "ds"
    options = build_ingest_options(
        manifest=str(manifest), output=str(output), splits="train=0.75,test=0.25", max_rejected_fraction=0.2
    )
    run_ingest(options, [])
    return str(output)


@pytest.mark.parametrize("extra", [[], ["--grain"]])
def test_the_example_runs_one_step(dataset, extra):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), dataset, "--steps", "1", *extra],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("steps 1: loss ")
    assert "test accuracy" in done.stdout


def test_the_example_learns(dataset):
    spec = importlib.util.spec_from_file_location("train_numpy", SCRIPT)
    example = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = example  # dataclasses look their module up
    spec.loader.exec_module(example)
    result = example.train(dataset, steps=60, batch_size=8)
    assert result["losses"][-1] < result["losses"][0] / 2
    assert result["test_accuracy"] > 1 / result["num_classes"]
