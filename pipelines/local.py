"""Running the whole pipeline on this machine with kfp.local (SubprocessRunner, no containers).

Each step runs in a subprocess of this Python environment (the project must be installed in it,
as `make setup` does); the ingest step uses Beam's local runner. Artifacts land under
`{pipeline_root}/{pipeline}-{timestamp}/{task}/{output}`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LocalRun", "run_local"]


@dataclass
class LocalRun:
    """Where each pipeline output landed, with its metadata."""

    artifacts: dict[str, Any]  # output name -> kfp artifact (uri, path, metadata)
    pipeline_root: str

    def describe(self) -> str:
        lines = [f"pipeline root  {self.pipeline_root}"]
        for name, artifact in self.artifacts.items():
            lines.append(f"{name:<16} {artifact.uri}")
        for name in ("ingest_metrics", "train_metrics"):
            metadata = self.artifacts[name].metadata
            lines.append(f"{name:<16} " + json.dumps({k: round(v, 4) for k, v in sorted(metadata.items())}))
        return "\n".join(lines)


def run_local(pipeline_root: str, **parameters: Any) -> LocalRun:
    """Runs audio_classification end to end and returns its outputs.

    Args:
        pipeline_root: folder for artifacts (created if missing).
        **parameters: pipeline parameters (manifest_uri is required).
    """
    from kfp import local

    from audioflow.pipelines.audio_classification import audio_classification

    root = Path(pipeline_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    task = audio_classification(**parameters)
    return LocalRun(artifacts=dict(task.outputs), pipeline_root=str(root))
