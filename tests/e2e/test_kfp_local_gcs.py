"""The whole pipeline under kfp.local reading its manifest and audio from gs:// (the GCS emulator).

kfp.local keeps artifacts under a local pipeline root (kfp 2.17 makes the root an absolute local
path), so the Dataset artifact lands on disk here; on Vertex the same component writes it to the
gs:// pipeline root. Ingesting to a gs:// folder is covered by tests/e2e/test_gcs.py.
"""

from __future__ import annotations

from pathlib import Path

from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.pipelines.local import run_local

from gcs_emulator import EmulatedGcs


def test_pipeline_reads_manifest_and_audio_from_a_bucket(gcs: EmulatedGcs, tmp_path: Path) -> None:
    manifest = make_demo_data(tmp_path / "demo", clips_per_class=6)
    bucket = gcs.create_bucket("audioflow-kfp-local")
    gcs.upload_folder(tmp_path / "demo", f"{bucket}/corpus")
    run = run_local(
        str(tmp_path / "root"),
        manifest_uri=f"{bucket}/corpus/{manifest.name}",
        audio_root=f"{bucket}/corpus",
        max_rejected_fraction=0.2,
        epochs=2,
        batch_size=8,
    )
    info = load_dataset_info(run.artifacts["dataset"].uri)
    assert info.manifest["uri"] == f"{bucket}/corpus/labels.csv"
    assert info.audio_root == f"{bucket}/corpus"
    assert info.num_examples == 18 and info.rejected["by_reason"] == {"duplicate": 1, "missing": 1, "unreadable": 1}
    assert run.artifacts["dataset"].metadata["num_rejected"] == 3
    assert "test_accuracy" in run.artifacts["train_metrics"].metadata
    assert (Path(run.artifacts["model"].path) / "model.keras").is_file()
