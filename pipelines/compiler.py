"""Compiling the pipeline and each component to YAML, deterministically and without credentials."""

from __future__ import annotations

from pathlib import Path

__all__ = ["COMPONENT_FILES", "PIPELINE_FILE", "compile_all"]

PIPELINE_FILE = "pipeline.yaml"
COMPONENT_FILES = {
    "ingest_audio": "components/ingest_audio.yaml",
    "train_audio_classifier": "components/train_audio_classifier.yaml",
}


def compile_all(output_dir: str | Path = "build") -> dict[str, Path]:
    """Writes build/pipeline.yaml and build/components/*.yaml; returns name -> path.

    Settings (IMAGE, resources, accelerator) are read when the modules are imported, so load .env
    before calling this.
    """
    from kfp import compiler

    from audioflow.components.ingest import ingest_audio
    from audioflow.components.train import train_audio_classifier
    from audioflow.pipelines.audio_classification import audio_classification

    output = Path(output_dir)
    (output / "components").mkdir(parents=True, exist_ok=True)
    written = {"pipeline": output / PIPELINE_FILE}
    compiler.Compiler().compile(audio_classification, str(written["pipeline"]))
    for name, component in (("ingest_audio", ingest_audio), ("train_audio_classifier", train_audio_classifier)):
        written[name] = output / COMPONENT_FILES[name]
        compiler.Compiler().compile(component, str(written[name]))
    return written
