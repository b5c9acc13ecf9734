"""Shared by the KFP tests: compiling in a subprocess, running the compiled ingest step as Vertex would, and fake
credentials for clients that must never reach Google."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def compile_in_subprocess(output: Path, **env: str) -> None:
    """Runs compile.py into `output`. Settings are read when the component modules are imported, so each
    variant compiles in its own process, without .env or the caller's IMAGE/PROJECT_ID/REGION."""
    clean = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "PROJECT_ID", "REGION")}
    subprocess.run(
        [sys.executable, str(REPO / "compile.py"), "--output-dir", str(output)],
        check=True,
        cwd=output.parent,
        env={**clean, "AUDIOFLOW_ENV_FILE": "/nonexistent", **env},
        capture_output=True,
        timeout=120,
    )


def write_fake_credentials(folder: Path) -> Path:
    """An authorized_user credentials file whose token is valid until 2099, so no client refreshes it."""
    path = folder / "fake-credentials.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "fake",
                "client_secret": "fake",
                "refresh_token": "fake",
                "token": "fake-token",
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    return path


def compiled_ingest_command(output: Path) -> list[str]:
    """The ingest_audio component's command and args as compiled into YAML, with this interpreter."""
    compile_in_subprocess(output)
    spec = yaml.safe_load((output / "components/ingest_audio.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["exec-ingest-audio"]["container"]
    assert "exec python3 -m kfp.dsl.executor_main" in container["command"][2]  # Python becomes PID 1
    return [part.replace("python3", sys.executable) for part in container["command"]] + container["args"]


def start_ingest_step(
    command: list[str], parameters: dict, dataset_uri: str, folder: Path
) -> tuple[subprocess.Popen, Path]:
    """Starts the component's executor as Vertex would: an executor input with these parameters, the
    dataset at `dataset_uri`, the metrics, report, gcp_resources and executor output in `folder`."""
    gcp_resources = folder / "gcp_resources"

    def artifact(kind: str, name: str, uri: str) -> dict:
        return {"artifacts": [{"type": {"schemaTitle": f"system.{kind}"}, "metadata": {}, "name": name, "uri": uri}]}

    executor_input = {
        "inputs": {"parameterValues": parameters},
        "outputs": {
            "artifacts": {
                "dataset": artifact("Dataset", "dataset", dataset_uri),
                "metrics": artifact("Metrics", "metrics", str(folder / "metrics")),
                "report": artifact("HTML", "report", str(folder / "report")),
            },
            "parameters": {"gcp_resources": {"outputFile": str(gcp_resources)}},
            "outputFile": str(folder / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if part == "{{$}}" else part for part in command]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), gcp_resources


def wait_for_job_resource(gcp_resources: Path, process: subprocess.Popen) -> dict:
    """The gcp_resources the step writes once its Dataflow job exists (or the step's output, failing)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if gcp_resources.exists() and "DataflowJob" in gcp_resources.read_text():
            return json.loads(gcp_resources.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no Dataflow job recorded; step output:\n{process.communicate()[0][-3000:]}")
