"""Launching on Dataflow, up to the wire: Beam's real DataflowRunner submits to a loopback fake of the
Dataflow REST API and stages on the GCS emulator; the recorded request and the staged files are checked.

Nothing runs on the fake, so the CLI ends by reporting that no dataset.json was written; that
behaviour is asserted too.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.portability.api import beam_runner_api_pb2

from audioflow.beam.job.beam_args import complete_remote_args, project_file
from audioflow.beam.job.launch import make_pipeline
from audioflow.beam.prep.options import build_ingest_options

from fake_dataflow import CreatedJob, FakeDataflow, fake_dataflow
from gcs_emulator import EmulatedGcs

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))
BUCKET = "audioflow-dataflow"
MANIFEST_ROWS = 1_000_000
DATAFLOW_REQUEST_LIMIT = 10 * 1024**2  # Dataflow refuses job-creation requests over 10 MB
IMAGE = "europe-docker.pkg.dev/p/images/audioflow:0.1.0"
OUR_STEPS = (
    "ReadManifest",
    "ClassifyRows",
    "DropDuplicates",
    "StatFiles",
    "GroupRowsByShard",
    "WriteShards",
    "Finalize",
)
# The worker settings users pass through .env (settings.py turns these into Beam flags).
WORKER_ENV = {
    "MACHINE_TYPE": "n2-highmem-8",
    "NUM_WORKERS": "3",
    "DISK_SIZE": "75",
    "DATAFLOW_SERVICE_ACCOUNT": "ingest@p.iam.gserviceaccount.com",
    "NETWORK": "audio-net",
    "SUBNETWORK": "regions/r/subnetworks/audio-subnet",
    "JOB_NAME": "audioflow-test",
}


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs) -> Iterator[str]:
    """A bucket holding a manifest of a million rows (read by workers, never embedded in the job)."""
    uri = gcs.create_bucket(BUCKET)
    rows = "".join(f"{('cat', 'dog', 'bird')[i % 3]},clips/{i:07d}.wav\n" for i in range(MANIFEST_ROWS))
    gcs.write_bytes(f"{uri}/big/labels.csv", ("Label,Blob Name\n" + rows).encode())
    yield uri


def gs_from_location(location: str) -> str:
    """Dataflow's 'storage.googleapis.com/bucket/object' form -> gs://bucket/object."""
    return "gs://" + location.split("storage.googleapis.com/", 1)[1]


def sdk_options(job: CreatedJob) -> dict[str, Any]:
    return job.body["environment"]["sdkPipelineOptions"]["options"]


def staged_graph(gcs: EmulatedGcs, job: CreatedJob) -> tuple[beam_runner_api_pb2.Pipeline, int]:
    """The Runner v2 job graph Beam staged for the workers, and its size in bytes."""
    data = gcs.read_bytes(sdk_options(job)["pipelineUrl"])
    return beam_runner_api_pb2.Pipeline.FromString(data), len(data)


def step_names(pipeline: beam_runner_api_pb2.Pipeline) -> set[str]:
    return {t.unique_name.rsplit("/", 1)[-1] for t in pipeline.components.transforms.values()}


def dataflow_args(fake: FakeDataflow, bucket: str, *extra: str) -> list[str]:
    """Beam options that send the job to the fake Dataflow endpoint, staging in the emulated bucket."""
    return [
        *("--runner", "DataflowRunner", "--project", "p", "--region", "r", "--temp_location", f"{bucket}/tmp"),
        f"--dataflow_endpoint={fake.endpoint}",
        *extra,
    ]


def launch_cli(
    fake: FakeDataflow, bucket: str, *extra: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess:
    command = [
        AUDIOFLOW,
        "ingest",
        "--manifest",
        f"{bucket}/big/labels.csv",
        "--audio-root",
        f"{bucket}/big",
        "--output",
        f"{bucket}/datasets/v1",
        "--splits",
        "train=0.9,test=0.1",
        *dataflow_args(fake, bucket, *extra),
    ]
    full_env = {k: v for k, v in os.environ.items() if k != "AUDIOFLOW_ENV_FILE"} | (env or {})
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_local_runners_get_no_extra_args() -> None:
    for args in ([], ["--runner", "FnApiRunner"], ["--runner=DirectRunner", "--direct_num_workers", "2"]):
        assert complete_remote_args(args) == args


def test_dataflow_gets_our_package_unless_workers_already_have_it() -> None:
    source = project_file()
    assert source is not None and source.name == "pyproject.toml"  # tests run from the checkout
    for runner in (["--runner", "DataflowRunner"], ["--runner=dataflow"]):
        assert complete_remote_args([*runner, "--project", "p"]) == [
            *runner,
            "--project",
            "p",
            "--setup_file",
            str(source),
        ]
    for given in (["--setup_file", "/x/setup.py"], [f"--sdk_container_image={IMAGE}"]):
        args = ["--runner", "DataflowRunner", *given]
        assert complete_remote_args(args) == args


def test_launcher_can_build_the_sdist_it_stages() -> None:
    """Beam's stager runs `python -m build --no-isolation --sdist`: build and the backend must be here."""
    import importlib.util

    assert importlib.util.find_spec("build") and importlib.util.find_spec("setuptools")


def test_cli_submits_a_dataflow_job(gcs: EmulatedGcs, bucket: str, tmp_path: Path) -> None:
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_DONE")) as fake:
        run = launch_cli(fake, bucket, "--max_num_workers", "12", env=WORKER_ENV, cwd=tmp_path)
    job = fake.job
    assert (job.project, job.location) == ("p", "r")
    assert job.body["name"].startswith("audioflow-test-")
    assert job.gets >= 2  # polled through RUNNING to DONE

    # What the CLI does when the job "succeeds" without writing anything: one clear line, exit 1.
    assert run.returncode == 1, run.stderr[-3000:]
    assert f"{bucket}/datasets/v1 is not a complete audioflow dataset: it has no dataset.json" in run.stderr
    assert "Traceback" not in run.stderr

    # The graph holds our transforms but not the manifest (workers read the CSV): the request and the
    # staged graph stay tiny next to a million-row manifest and far below Dataflow's 10 MB limit.
    graph, graph_size = staged_graph(gcs, job)
    assert set(OUR_STEPS) <= step_names(graph)
    manifest_size = len(gcs.read_bytes(f"{bucket}/big/labels.csv"))
    print(f"manifest {manifest_size} B, job request {job.size} B, staged graph {graph_size} B")
    assert job.size < 100_000 and graph_size < 1_000_000 and manifest_size > 20_000_000
    assert job.size + graph_size < DATAFLOW_REQUEST_LIMIT / 10

    # Workers: Beam's own SDK image for this Beam version, plus our package built from the checkout.
    environment = job.body["environment"]
    pool = environment["workerPools"][0]
    images = {image["containerImage"] for image in pool["sdkHarnessContainerImages"]}
    assert images == {f"gcr.io/cloud-dataflow/v1beta3/beam_python3.11_sdk:{beam.__version__}"}
    assert sdk_options(job)["setup_file"] == str(project_file())
    packages = {package["name"]: gs_from_location(package["location"]) for package in pool["packages"]}
    with tarfile.open(fileobj=io.BytesIO(gcs.read_bytes(packages["workflow.tar.gz"]))) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"pyproject.toml", "beam/job/graph.py", "beam/format/example.py"} <= names

    # Worker settings from .env-style variables and flags.
    assert pool["machineType"] == "n2-highmem-8"
    assert pool["numWorkers"] == 3
    assert pool["diskSizeGb"] == 75
    assert pool["network"] == "audio-net"
    assert pool["subnetwork"] == "regions/r/subnetworks/audio-subnet"
    assert pool["autoscalingSettings"]["maxNumWorkers"] == 12
    assert environment["serviceAccountEmail"] == "ingest@p.iam.gserviceaccount.com"


def test_container_image_replaces_the_staged_package(gcs: EmulatedGcs, bucket: str) -> None:
    options = build_ingest_options(manifest=f"{bucket}/big/labels.csv", output=f"{bucket}/datasets/image")
    with fake_dataflow(states=("JOB_STATE_DONE",)) as fake:
        args = dataflow_args(fake, bucket, "--sdk_container_image", IMAGE)
        make_pipeline(options, args).run()  # returns once the job is created
    job = fake.job
    pool = job.body["environment"]["workerPools"][0]
    assert {image["containerImage"] for image in pool["sdkHarnessContainerImages"]} == {IMAGE}
    assert "workflow.tar.gz" not in {package["name"] for package in pool.get("packages", [])}
    assert "setup_file" not in sdk_options(job)
    assert set(OUR_STEPS) <= step_names(staged_graph(gcs, job)[0])


def test_failed_job_fails_the_cli(bucket: str, tmp_path: Path) -> None:
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_FAILED")) as fake:
        run = launch_cli(fake, bucket, "--sdk_container_image", IMAGE, cwd=tmp_path)
    assert fake.job.gets >= 2
    assert run.returncode != 0
    assert fake.error_message in run.stderr  # Dataflow's error message reaches the user
    assert "Traceback" not in run.stderr, run.stderr[-3000:]  # one line, not the runner's stack
    assert any("/messages" in path for _, path in fake.requests)  # read from the job's messages


def test_cancel_reaches_dataflow(bucket: str) -> None:
    """What the KFP step does on SIGTERM (result.cancel()) arrives as a cancel request for the job."""
    options = build_ingest_options(manifest=f"{bucket}/big/labels.csv", output=f"{bucket}/datasets/cancel")
    with fake_dataflow(states=("JOB_STATE_RUNNING",)) as fake:
        args = dataflow_args(fake, bucket, "--sdk_container_image", IMAGE)
        result = make_pipeline(options, args).run()
        result.cancel()
    assert fake.job.requested_state == "JOB_STATE_CANCELLED"
    assert ("PUT", f"/v1b3/projects/p/locations/r/jobs/{fake.job.id}") in {
        (method, path.split("?", 1)[0]) for method, path in fake.requests
    }
