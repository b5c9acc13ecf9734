"""The ingest_audio component in flex_template mode, run the way Vertex runs it (the compiled YAML's
command, an executor input) against a fake Dataflow endpoint and the GCS emulator; and the pipeline
compiled in both launch modes.

In the end-to-end test the fake stands in for Dataflow's launcher VM and workers: on launch it runs
audioflow's template launcher with the launch request's parameters on the local runner, against the
emulated bucket, and reports the job DONE when that run ends. So the test shows that what the
component sends is a complete, valid set of parameters that writes the dataset it then reports.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kfp import compiler

from audioflow.beam.job.template import parameters_from_values
from audioflow.beam.prep.defaults import COMPONENT_DEFAULTS
from audioflow.beam.tools.demo_data import make_demo_data

from fake_dataflow import CreatedJob, FakeDataflow, fake_dataflow
from gcs_emulator import EmulatedGcs
from kfp_helpers import compiled_ingest_command, start_ingest_step, wait_for_job_resource

BUCKET = "audioflow-component-template"
# What the component sets away from its defaults in these tests.
OVERRIDES = {"sample_rate": 16000, "mono": True, "shard_size": "64KiB", "max_rejected_fraction": 0.5}


@pytest.fixture(scope="module")
def component_command(tmp_path_factory) -> list[str]:
    return compiled_ingest_command(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs, tmp_path_factory) -> Iterator[str]:
    """Demo audio (good and bad rows) and a template spec, in an emulated bucket."""
    uri = gcs.create_bucket(BUCKET)
    demo = make_demo_data(tmp_path_factory.mktemp("demo"), clips_per_class=3)
    gcs.upload_folder(demo.parent, f"{uri}/demo")
    spec = tmp_path_factory.mktemp("spec") / "spec.json"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("audioflow")),
            "template",
            "build",
            "--image",
            "img:1",
            "--template",
            str(spec),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    gcs.write_bytes(f"{uri}/templates/audioflow-ingest.json", spec.read_bytes())
    yield uri


def start_step(
    command: list[str], fake: FakeDataflow, bucket: str, folder: Path, **values
) -> tuple[subprocess.Popen, Path]:
    """Starts the component's executor in flex_template mode, as Vertex would."""
    parameters = {
        "manifest_uri": f"{bucket}/demo/labels.csv",
        "audio_root": "",
        "runner": "DirectRunner",  # the pipeline's default: flex_template runs on Dataflow whatever it says
        "launch_mode": "flex_template",
        "template_path": f"{bucket}/templates/audioflow-ingest.json",
        "beam_args": [
            "--project=p",
            "--region=r",
            f"--dataflow_endpoint={fake.endpoint}",
            f"--temp_location={bucket}/tmp",
            "--max_num_workers",
            "3",
            "--number_of_worker_harness_threads=2",
        ],
        **OVERRIDES,
        **values,
    }
    return start_ingest_step(command, parameters, f"{bucket}/out/{folder.name}/dataset", folder)


def run_with_local_runner(job: CreatedJob) -> None:
    """What Dataflow would do with the launch: the launcher, with the request's parameters, runs the job."""

    def work() -> None:
        argv = [f"--{name}={value}" for name, value in job.body["parameters"].items()]
        ran = subprocess.run(
            [sys.executable, "-m", "audioflow.beam.job.template_launcher", *argv, "--runner=DirectRunner"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        job.body["launcher_output"] = ran.stderr[-3000:]
        job.state = "JOB_STATE_DONE" if ran.returncode == 0 else "JOB_STATE_FAILED"

    threading.Thread(target=work, daemon=True).start()


def test_the_step_launches_the_template_and_reports_the_dataset(component_command, bucket, gcs, tmp_path):
    with fake_dataflow(
        states=("JOB_STATE_RUNNING",), read_template=gcs.read_bytes, on_launch=run_with_local_runner
    ) as fake:
        process, gcp_resources = start_step(component_command, fake, bucket, tmp_path)
        output, _ = process.communicate(timeout=600)
    job = fake.job
    assert process.returncode == 0, output[-3000:] + job.body.get("launcher_output", "")
    launch = job.body
    assert launch["containerSpecGcsPath"] == f"{bucket}/templates/audioflow-ingest.json"
    assert launch["environment"] == {"tempLocation": f"{bucket}/tmp", "maxWorkers": 3}
    # The launch request's parameters are the component's options.
    values = {
        "manifest": f"{bucket}/demo/labels.csv",
        "output": f"{bucket}/out/{tmp_path.name}/dataset",
        "overwrite": True,
        **{name: value for name, value in (COMPONENT_DEFAULTS | OVERRIDES).items() if value != ""},
        "beam_args": ["--number_of_worker_harness_threads=2"],
    }
    assert launch["parameters"] == parameters_from_values(values)
    [resource] = json.loads(gcp_resources.read_text())["resources"]
    assert resource["resourceUri"] == f"https://dataflow.googleapis.com/v1b3/projects/p/locations/r/jobs/{job.id}"
    executor_output = json.loads((tmp_path / "executor_output.json").read_text())
    [dataset] = executor_output["artifacts"]["dataset"]["artifacts"]
    metadata = dataset["metadata"]
    assert metadata["sample_rate"] == 16000 and metadata["num_channels"] == 1
    assert sum(metadata["num_examples"].values()) == 9 and metadata["num_rejected"] > 0
    assert (tmp_path / "report").read_text().startswith("<!DOCTYPE html>")


def test_sigterm_cancels_the_template_job(component_command, bucket, tmp_path):
    with fake_dataflow(states=("JOB_STATE_RUNNING",)) as fake:
        process, gcp_resources = start_step(component_command, fake, bucket, tmp_path)
        wait_for_job_resource(gcp_resources, process)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert fake.job.requested_state == "JOB_STATE_CANCELLED"
    assert f"cancelling Dataflow job {fake.job.id}" in output


def test_a_failed_template_job_fails_the_step(component_command, bucket, tmp_path):
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_FAILED")) as fake:
        process, gcp_resources = start_step(component_command, fake, bucket, tmp_path)
        output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert f"the Dataflow job {fake.job.id} ended in JOB_STATE_FAILED: {fake.error_message}" in output
    assert fake.job.id in gcp_resources.read_text()
    assert not (tmp_path / "executor_output.json").exists()


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"splits": "train=0.5"}, "template parameter splits='train=0.5': split fractions sum to 0.5"),
        ({"beam_args": ["--project=p", "--region=r", "--num_worker=3"]}, "did you mean --num_workers"),
        ({"template_path": ""}, "launch_mode flex_template needs template_path"),
    ],
)
def test_a_bad_value_is_refused_before_any_launch(component_command, bucket, tmp_path, values, says):
    with fake_dataflow() as fake:
        process, _ = start_step(component_command, fake, bucket, tmp_path, **values)
        output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    assert says in output
    assert fake.jobs == []


def test_the_pipeline_compiles_in_both_launch_modes(tmp_path):
    from audioflow.pipelines.audio_classification import audio_classification

    specs = {}
    for mode, overrides in {
        "beam": {},
        "flex_template": {"launch_mode": "flex_template", "template_path": "gs://b/templates/audioflow-ingest.json"},
    }.items():
        path = tmp_path / f"{mode}.yaml"
        compiler.Compiler().compile(audio_classification, str(path), pipeline_parameters=overrides)
        specs[mode] = yaml.safe_load(path.read_text())
    for mode, spec in specs.items():
        parameters = spec["root"]["inputDefinitions"]["parameters"]
        assert parameters["launch_mode"]["defaultValue"] == mode
        ingest_inputs = spec["root"]["dag"]["tasks"]["ingest-audio"]["inputs"]["parameters"]
        assert ingest_inputs["launch_mode"] == {"componentInputParameter": "launch_mode"}
        assert ingest_inputs["template_path"] == {"componentInputParameter": "template_path"}
    assert specs["flex_template"]["root"]["inputDefinitions"]["parameters"]["template_path"]["defaultValue"] == (
        "gs://b/templates/audioflow-ingest.json"
    )
    component_inputs = specs["beam"]["components"]["comp-ingest-audio"]["inputDefinitions"]["parameters"]
    assert component_inputs["launch_mode"]["defaultValue"] == "beam"
    assert component_inputs["template_path"]["defaultValue"] == ""
