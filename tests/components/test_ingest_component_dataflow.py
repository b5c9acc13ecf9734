"""The ingest_audio component in Dataflow mode, run the way Vertex runs it: the compiled YAML's own
command and args, with an executor input, against a fake Dataflow endpoint and the GCS emulator.

Checked: the step records the job in gcp_resources (so the Vertex console links to it), follows the
job's states, fails when the job fails, and cancels the job when it receives SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fake_dataflow import FakeDataflow, fake_dataflow
from gcs_emulator import EmulatedGcs
from kfp_helpers import compile_in_subprocess

BUCKET = "audioflow-component"
IMAGE = "europe-docker.pkg.dev/p/images/audioflow:0.1.0"


@pytest.fixture(scope="module")
def component_command(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("compiled")
    compile_in_subprocess(out)
    spec = yaml.safe_load((out / "components/ingest_audio.yaml").read_text())
    container = spec["deploymentSpec"]["executors"]["exec-ingest-audio"]["container"]
    assert "exec python3 -m kfp.dsl.executor_main" in container["command"][2]  # Python becomes PID 1
    return [part.replace("python3", sys.executable) for part in container["command"]] + container["args"]


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs) -> Iterator[str]:
    uri = gcs.create_bucket(BUCKET)
    gcs.write_bytes(f"{uri}/labels.csv", b"Label,Blob Name\n1,a.wav\n0,b.wav\n")
    yield uri


def start_step(command: list[str], fake: FakeDataflow, bucket: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    """Starts the component's executor, as Vertex would, with a Dataflow runner aimed at the fake."""
    gcp_resources = folder / "gcp_resources"
    artifact = {"type": {"schemaTitle": "system.Artifact"}, "metadata": {}}
    executor_input = {
        "inputs": {
            "parameterValues": {
                "manifest_uri": f"{bucket}/labels.csv",
                "audio_root": bucket,
                "runner": "DataflowRunner",
                "beam_args": [
                    "--project=p",
                    "--region=r",
                    f"--temp_location={bucket}/tmp",
                    f"--dataflow_endpoint={fake.endpoint}",
                    f"--sdk_container_image={IMAGE}",
                ],
            }
        },
        "outputs": {
            "artifacts": {
                "dataset": {
                    "artifacts": [
                        {
                            **artifact,
                            "name": "dataset",
                            "uri": f"{bucket}/out/dataset",
                            "type": {"schemaTitle": "system.Dataset"},
                        }
                    ]
                },
                "metrics": {"artifacts": [{**artifact, "name": "metrics", "uri": str(folder / "metrics")}]},
                "report": {"artifacts": [{**artifact, "name": "report", "uri": str(folder / "report")}]},
            },
            "parameters": {"gcp_resources": {"outputFile": str(gcp_resources)}},
            "outputFile": str(folder / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if part == "{{$}}" else part for part in command]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, gcp_resources


def wait_for_job_resource(gcp_resources: Path, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if gcp_resources.exists() and "DataflowJob" in gcp_resources.read_text():
            return json.loads(gcp_resources.read_text())
        time.sleep(0.2)
    raise AssertionError(f"no Dataflow job recorded; step output:\n{process.communicate()[0][-3000:]}")


def test_sigterm_cancels_the_dataflow_job(component_command, bucket, tmp_path):
    with fake_dataflow(states=("JOB_STATE_RUNNING",)) as fake:
        process, gcp_resources = start_step(component_command, fake, bucket, tmp_path)
        resources = wait_for_job_resource(gcp_resources, process)
        [resource] = resources["resources"]
        assert resource["resourceUri"] == (
            f"https://dataflow.googleapis.com/v1b3/projects/p/locations/r/jobs/{fake.job.id}"
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert fake.job.requested_state == "JOB_STATE_CANCELLED"
    assert "cancelling Dataflow job" in output


def test_a_failed_job_fails_the_step(component_command, bucket, tmp_path):
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_FAILED")) as fake:
        process, gcp_resources = start_step(component_command, fake, bucket, tmp_path)
        output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert fake.job.gets >= 2  # it followed the job through RUNNING to FAILED
    assert fake.error_message in output
    assert fake.job.id in gcp_resources.read_text()
    assert not (tmp_path / "executor_output.json").exists()
