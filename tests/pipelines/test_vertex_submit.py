"""`audioflow submit` through the real Vertex AI SDK to a loopback fake of the Vertex REST API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_vertex import start_fake_vertex
from kfp_helpers import compile_in_subprocess, write_fake_credentials


@pytest.fixture
def fake_vertex():
    state, server = start_fake_vertex()
    yield state
    server.shutdown()


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    compile_in_subprocess(out)
    return out / "pipeline.yaml"


def submit(fake, tmp_path: Path, env_file: str, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / ".env").write_text(env_file)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PROJECT_ID", "REGION", "PIPELINE_ROOT", "MANIFEST_URI", "IMAGE", "RUNNER")
    }
    env.update(
        {"GOOGLE_APPLICATION_CREDENTIALS": str(write_fake_credentials(tmp_path)), "STORAGE_EMULATOR_HOST": fake.url}
    )
    return subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", "submit", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


ENV_FILE = """
PROJECT_ID=test-project
REGION=europe-west4
PIPELINE_ROOT=gs://test-bucket/pipeline-root
SERVICE_ACCOUNT=pipelines@test-project.iam.gserviceaccount.com
NETWORK=projects/123/global/networks/private
LABELS=team=audio,cost-center=research
MANIFEST_URI=gs://test-bucket/labels.csv
AUDIO_ROOT=gs://test-bucket/audio
RUNNER=DataflowRunner
BEAM_TEMP_LOCATION=gs://test-bucket/tmp
MACHINE_TYPE=n2-standard-8
"""


def test_submit_with_a_complete_env_needs_no_arguments(fake_vertex, tmp_path, template):
    result = submit(
        fake_vertex,
        tmp_path,
        ENV_FILE + f"VERTEX_API_ENDPOINT={fake_vertex.url}\n",
        "--template",
        str(template),
        "--param",
        "epochs=3",
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "console    https://console.cloud.google.com/vertex-ai/locations/europe-west4/pipelines/runs/" in result.stdout
    )
    assert "PIPELINE_STATE_SUCCEEDED" in result.stdout
    [job] = fake_vertex.created_jobs()
    assert job["displayName"] == "audio-classification"
    assert job["pipelineSpec"]["pipelineInfo"]["name"] == "audio-classification"
    assert job["serviceAccount"] == "pipelines@test-project.iam.gserviceaccount.com"
    assert job["network"] == "projects/123/global/networks/private"
    assert job["labels"]["team"] == "audio" and job["labels"]["cost-center"] == "research"
    runtime = job["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://test-bucket/pipeline-root"
    values = runtime["parameterValues"]
    assert values["manifest_uri"] == "gs://test-bucket/labels.csv" and values["audio_root"] == "gs://test-bucket/audio"
    assert values["epochs"] == 3 and values["runner"] == "DataflowRunner"
    assert "--project=test-project" in values["beam_args"] and "--machine_type=n2-standard-8" in values["beam_args"]
    # The Dataflow workers run the image the components run in (no IMAGE set: the project's registry).
    assert (
        "--sdk_container_image=europe-west4-docker.pkg.dev/test-project/audioflow/audioflow:0.1.0"
        in values["beam_args"]
    )
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(task["cachingOptions"].get("enableCache") is True for task in tasks.values())
    paths = [r.path for r in fake_vertex.requests]
    assert "/v1/projects/test-project/locations/europe-west4/pipelineJobs" in paths


def test_flags_win_over_env_and_caching_can_be_turned_off(fake_vertex, tmp_path, template):
    result = submit(
        fake_vertex,
        tmp_path,
        ENV_FILE,
        "--template",
        str(template),
        "--api-endpoint",
        fake_vertex.url,
        "--no-caching",
        "--display-name",
        "nightly",
        "--manifest-uri",
        "gs://other/m.csv",
        "--label",
        "run=nightly",
        "--param",
        "mono=false",
    )
    assert result.returncode == 0, result.stderr
    [job] = fake_vertex.created_jobs()
    assert job["displayName"] == "nightly" and job["labels"]["run"] == "nightly" and "team" not in job["labels"]
    assert job["runtimeConfig"]["parameterValues"]["manifest_uri"] == "gs://other/m.csv"
    assert job["runtimeConfig"]["parameterValues"]["mono"] is False
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert all(not task.get("cachingOptions", {}).get("enableCache") for task in tasks.values())


def test_wait_exits_non_zero_when_the_run_fails(fake_vertex, tmp_path, template):
    fake_vertex.final_state = "PIPELINE_STATE_FAILED"
    result = submit(
        fake_vertex,
        tmp_path,
        ENV_FILE + f"VERTEX_API_ENDPOINT={fake_vertex.url}\n",
        "--template",
        str(template),
        "--wait",
    )
    assert result.returncode == 1
    assert "the pipeline run did not succeed" in result.stderr


def test_missing_settings_are_named(fake_vertex, tmp_path, template):
    result = submit(fake_vertex, tmp_path, "REGION=europe-west4\n", "--template", str(template))
    assert result.returncode == 1
    assert "missing settings for Vertex AI: PROJECT_ID, PIPELINE_ROOT" in result.stderr
    assert not fake_vertex.created_jobs()
