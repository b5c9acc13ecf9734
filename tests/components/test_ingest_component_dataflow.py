"""The ingest_audio component in Dataflow mode, run the way Vertex runs it: the compiled YAML's own
command and args, with an executor input, against a fake Dataflow endpoint and the GCS emulator.

Checked: the step records the job in gcp_resources (so the Vertex console links to it), follows the
job's states, fails when the job fails, and cancels the job when it receives SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_dataflow import FakeDataflow, fake_dataflow
from gcs_emulator import EmulatedGcs
from kfp_helpers import compiled_ingest_command, start_ingest_step, wait_for_job_resource

BUCKET = "audioflow-component"
IMAGE = "europe-docker.pkg.dev/p/images/audioflow:0.1.0"


@pytest.fixture(scope="module")
def component_command(tmp_path_factory) -> list[str]:
    return compiled_ingest_command(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs) -> Iterator[str]:
    uri = gcs.create_bucket(BUCKET)
    gcs.write_bytes(f"{uri}/labels.csv", b"Label,Blob Name\n1,a.wav\n0,b.wav\n")
    yield uri


def start_step(command: list[str], fake: FakeDataflow, bucket: str, folder: Path) -> tuple[subprocess.Popen, Path]:
    """Starts the component's executor, as Vertex would, with a Dataflow runner aimed at the fake."""
    parameters = {
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
    return start_ingest_step(command, parameters, f"{bucket}/out/dataset", folder)


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
