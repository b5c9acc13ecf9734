"""Drift fails the pipeline step: the same manifest ingested twice under kfp.local, one label's rows removed the
second time, with the first dataset as the second step's previous_dataset and a max_label_drift it exceeds."""

# No `from __future__ import annotations`: KFP reads the component annotations at definition time.
import csv
import json
from pathlib import Path

import pytest
from kfp import dsl, local

from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.components.ingest import ingest_audio


def without_label(manifest: Path, label: str) -> Path:
    """The same manifest (same folder, same audio) without the rows of one label."""
    rows = list(csv.reader(manifest.open(newline="")))
    reduced = manifest.with_name(f"without-{label}.csv")
    with reduced.open("w", newline="") as handle:
        csv.writer(handle).writerows([rows[0]] + [row for row in rows[1:] if row[0] != label])
    return reduced


def test_label_drift_over_the_limit_fails_the_step(tmp_path, capfd):
    manifest = make_demo_data(tmp_path / "demo", clips_per_class=5)
    reduced = without_label(manifest, "whistle")

    @dsl.pipeline(name="drift-check")
    def drift_check(full: str, reduced: str, max_label_drift: float):
        first = ingest_audio(manifest_uri=full, audio_root="", splits="all=1", max_rejected_fraction=0.5)
        ingest_audio(
            manifest_uri=reduced,
            audio_root="",
            splits="all=1",
            max_rejected_fraction=0.5,
            previous_dataset=first.outputs["dataset"],
            max_label_drift=max_label_drift,
        )

    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with pytest.raises(RuntimeError):
        drift_check(full=str(manifest), reduced=str(reduced), max_label_drift=0.1)
    logs = "".join(capfd.readouterr())
    assert "DriftError: label drift 0.3" in logs and "over max_label_drift 0.1" in logs and "vanished: whistle" in logs

    # The failed step still wrote its dataset and its report, which shows the comparison side by side.
    [second] = [path for path in root.rglob("ingest-audio-2/dataset/dataset.json")]
    info = json.loads(second.read_text())
    assert info["labels"]["names"] == ["hum", "noise"]
    [report] = root.rglob("ingest-audio-2/report")
    page = report.read_text(encoding="utf-8")
    assert 'id="drift-summary"' in page and "Vanished labels: whistle" in page
