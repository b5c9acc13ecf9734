"""The Flex Template: a spec generated from the ingest options table, validation that names the
parameter, and `audioflow template run` through the Dataflow REST API against a loopback fake."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from google.cloud import dataflow_v1beta3

from audioflow.beam.cli import main as cli_main
from audioflow.beam.errors import AudioflowError, SettingsError
from audioflow.beam.job import template
from audioflow.beam.job.beam_args import complete_remote_args
from audioflow.beam.job.dataflow_jobs import DataflowJobs
from audioflow.beam.job.template import (
    IMAGE_BEAM_LABEL,
    TEMPLATE_PARAMETERS,
    beam_version,
    build_spec,
    check_image_beam_version,
    options_from_parameters,
    parameters_from_values,
)
from audioflow.beam.job.template_launcher import parse_template_args
from audioflow.beam.prep.defaults import INGEST_OPTIONS
from audioflow.beam.prep.options import build_ingest_options

from fake_dataflow import FakeDataflow, fake_dataflow
from gcs_emulator import EmulatedGcs

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))
BUCKET = "audioflow-template"
IMAGE = "europe-docker.pkg.dev/p/images/audioflow-template:0.1.0"
# Every ingest option set away from its default, as `audioflow ingest` flags would set it.
VALUES = {
    "audio_root": "gs://audio-bucket/clips",
    "splits": "train=0.7,validation=0.2,test=0.1",
    "sample_rate": 16000,
    "mono": True,
    "sample_format": "float32",
    "max_duration": 30.5,
    "max_file_size": "64MiB",
    "shard_size": "1MiB",
    "compression": "gzip",
    "label_column": "Category",
    "blob_column": "Path",
    "label_type": "string",
    "max_rejected_fraction": 0.05,
    "fetch_concurrency": 8,
}


@pytest.fixture(scope="module")
def spec_uri(gcs: EmulatedGcs) -> Iterator[str]:
    """A template spec written by `audioflow template build` into an emulated bucket."""
    uri = gcs.create_bucket(BUCKET)
    gcs.write_bytes(f"{uri}/labels.csv", b"Label,Blob Name\n1,a.wav\n")
    spec = f"{uri}/templates/audioflow-ingest.json"
    run = subprocess.run(
        [AUDIOFLOW, "template", "build", "--image", IMAGE, "--template", spec],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert spec in run.stdout
    yield spec


def _env() -> dict[str, str]:
    skip = ("AUDIOFLOW_ENV_FILE", "PROJECT_ID", "REGION", "RUNNER", "IMAGE", "JOB_NAME")
    return {k: v for k, v in os.environ.items() if k not in skip} | {"AUDIOFLOW_ENV_FILE": "/nonexistent"}


def template_run(fake: FakeDataflow, spec: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [
        AUDIOFLOW,
        "template",
        "run",
        "--template",
        spec,
        *args,
        "--project",
        "p",
        "--region",
        "r",
        f"--dataflow_endpoint={fake.endpoint}",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=_env(), cwd=cwd)


def cli_flags(values: dict) -> list[str]:
    flags = []
    for name, value in values.items():
        flag = "--" + name.replace("_", "-")
        flags += [flag] if value is True else [flag, str(value)]
    return flags


def test_spec_is_a_container_spec_whose_parameters_come_from_the_table(gcs: EmulatedGcs, spec_uri: str) -> None:
    spec = json.loads(gcs.read_bytes(spec_uri))
    # Field names and types as the Dataflow API defines them (unknown fields are refused).
    dataflow_v1beta3.ContainerSpec.from_json(json.dumps(spec), ignore_unknown_fields=False)
    assert spec["image"] == IMAGE
    assert spec["sdkInfo"] == {"language": "PYTHON", "version": beam_version()}
    assert spec["defaultEnvironment"] == {"sdkContainerImage": IMAGE}
    parameters = {p["name"]: p for p in spec["metadata"]["parameters"]}
    table = {entry.name: entry for entry in INGEST_OPTIONS}
    assert list(parameters) == ["manifest", "output", *table, "overwrite", "beam_args"]
    assert [name for name, p in parameters.items() if not p["isOptional"]] == ["manifest", "output"]
    for name, entry in table.items():
        parameter = parameters[name]
        assert parameter["helpText"].startswith(entry.help), name
        assert parameter["label"] and parameter["isOptional"]
        if entry.pattern:
            assert parameter["regexes"] == [entry.pattern]
        if entry.choices:
            [regex] = parameter["regexes"]
            assert all(re.fullmatch(regex, choice) for choice in entry.choices)
            assert not re.fullmatch(regex, "other")


def test_every_default_and_example_value_passes_the_regexes() -> None:
    defaults = {p.name: p.default for p in TEMPLATE_PARAMETERS if p.default not in (None, "")}
    for values in (defaults, VALUES):
        for name, text in parameters_from_values(values).items():
            regexes = next(p.regexes for p in TEMPLATE_PARAMETERS if p.name == name)
            assert all(re.fullmatch(regex, text) for regex in regexes), (name, text)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("sample_format", "float64", "does not match"),
        ("mono", "yes", "does not match"),
        ("shard_size", "lots", "does not match"),
        ("shard_size", "12", "at least 1 KiB"),  # passes the regex, refused by our own validation
        ("splits", "train=0.5,test=0.1", "sum to"),
        ("max_rejected_fraction", "2", "between 0 and 1"),
        ("beam_args", "--num_worker=3", "did you mean --num_workers"),
        ("beam_args", "--num_workers 3", "does not match"),
        ("sample_rat", "16000", "did you mean sample_rate"),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        options_from_parameters({"manifest": "gs://b/labels.csv", "output": "gs://b/out", name: value})
    message = str(refused.value)
    assert f"template parameter {name}" in message and says in message, message


def test_required_parameters_are_required() -> None:
    with pytest.raises(SettingsError, match="template parameter output is required"):
        options_from_parameters({"manifest": "gs://b/labels.csv"})


def test_launch_parameters_equal_the_cli_options(spec_uri: str, tmp_path: Path) -> None:
    manifest, output = f"{spec_uri.rsplit('/', 2)[0]}/labels.csv", "gs://out-bucket/datasets/v1"
    params = [f"--param={name}={value}" for name, value in parameters_from_values(VALUES).items()]
    with fake_dataflow(states=("JOB_STATE_RUNNING",)) as fake:
        run = template_run(
            fake,
            spec_uri,
            f"--param=manifest={manifest}",
            f"--param=output={output}",
            *params,
            "--job-name",
            "ingest-v1",
            "--temp_location",
            f"{spec_uri.rsplit('/', 2)[0]}/tmp",
            "--max_num_workers",
            "7",
            "--number_of_worker_harness_threads",
            "4",
            cwd=tmp_path,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    job = fake.job
    assert f"job       {job.id} (ingest-v1)" in run.stdout
    assert ("POST", "/v1b3/projects/p/locations/r/flexTemplates:launch") in [
        (method, path.split("?", 1)[0]) for method, path in fake.requests
    ]
    launch = job.body
    assert launch["jobName"] == "ingest-v1" and launch["containerSpecGcsPath"] == spec_uri
    assert launch["environment"] == {"tempLocation": f"{spec_uri.rsplit('/', 2)[0]}/tmp", "maxWorkers": 7}
    sent = dict(launch["parameters"])
    assert sent.pop("beam_args") == "--number_of_worker_harness_threads=4"
    assert sent == {"manifest": manifest, "output": output, **parameters_from_values(VALUES)}

    # What the launcher in the image makes of these parameters is what `audioflow ingest` makes of the flags.
    ingest = cli_main.get_command(click.Context(cli_main), "ingest")
    context = ingest.make_context("ingest", ["--manifest", manifest, "--output", output, *cli_flags(VALUES)])
    cli_values = {k: v for k, v in context.params.items() if k != "as_json"}
    parameters, dataflow_args = parse_template_args(
        [f"--{name}={value}" for name, value in launch["parameters"].items()]
    )
    launched_options, extra_args = options_from_parameters(parameters)
    assert launched_options == build_ingest_options(**cli_values)
    assert extra_args == ["--number_of_worker_harness_threads=4"] and dataflow_args == []


def test_a_bad_value_never_reaches_dataflow(spec_uri: str, tmp_path: Path) -> None:
    with fake_dataflow() as fake:
        run = template_run(
            fake,
            spec_uri,
            "--param=manifest=gs://b/m.csv",
            "--param=output=gs://b/o",
            "--param=compression=zip",
            cwd=tmp_path,
        )
    assert run.returncode == 1
    assert "template parameter compression='zip' does not match ^(none|gzip)$" in run.stderr
    assert "Traceback" not in run.stderr and fake.jobs == []


def test_dataflow_applies_the_spec_regexes_too(gcs: EmulatedGcs, spec_uri: str) -> None:
    """Launching without our validation (as gcloud or the console would): the spec's regexes refuse it."""
    with fake_dataflow(read_template=gcs.read_bytes) as fake:
        jobs = DataflowJobs("p", "r", fake.endpoint)
        for bad, says in (
            ({"sample_rate": "16k"}, "Parameter sample_rate: value '16k' does not match"),
            ({"splits": "80/20"}, "Parameter splits"),
        ):
            with pytest.raises(AudioflowError, match=re.escape(says)):
                jobs.launch(spec_uri, {"manifest": "gs://b/m.csv", "output": "gs://b/o", **bad})
        with pytest.raises(AudioflowError, match="Missing required parameter: output"):
            jobs.launch(spec_uri, {"manifest": "gs://b/m.csv"})
        assert fake.jobs == []
        launched = jobs.launch(spec_uri, {"manifest": "gs://b/m.csv", "output": "gs://b/o", "sample_rate": "16000"})
    assert fake.job.id == launched.id and fake.job.template["image"] == IMAGE


def test_wait_follows_the_job_and_cancel_reaches_dataflow(gcs: EmulatedGcs, spec_uri: str) -> None:
    parameters = {"manifest": "gs://b/m.csv", "output": "gs://b/o"}
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_DONE"), read_template=gcs.read_bytes) as fake:
        jobs = DataflowJobs("p", "r", fake.endpoint)
        job = jobs.launch(spec_uri, parameters, job_name="followed")
        seen: list[str] = []
        assert jobs.wait(job.id, poll_seconds=0.01, on_state=seen.append) == "JOB_STATE_DONE"
        assert seen == ["JOB_STATE_RUNNING", "JOB_STATE_DONE"]
    assert job.resource_uri == f"https://dataflow.googleapis.com/v1b3/projects/p/locations/r/jobs/{job.id}"
    with fake_dataflow(states=("JOB_STATE_RUNNING",), read_template=gcs.read_bytes) as fake:
        jobs = DataflowJobs("p", "r", fake.endpoint)
        job = jobs.launch(spec_uri, parameters)
        jobs.cancel(job.id)
        assert jobs.state(job.id) == "JOB_STATE_CANCELLED"
    assert fake.job.requested_state == "JOB_STATE_CANCELLED"


def test_run_wait_fails_with_dataflow_s_message(spec_uri: str, tmp_path: Path) -> None:
    with fake_dataflow(states=("JOB_STATE_RUNNING", "JOB_STATE_FAILED")) as fake:
        run = template_run(
            fake, spec_uri, "--param=manifest=gs://b/m.csv", "--param=output=gs://b/o", "--wait", cwd=tmp_path
        )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "state     JOB_STATE_FAILED" in run.stdout
    assert fake.error_message in run.stderr and "Traceback" not in run.stderr


@pytest.fixture
def docker_with_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A `docker` on PATH that reports one label for `image inspect` (there is no Docker engine here)."""

    def install(labels: dict[str, str] | None) -> None:
        script = tmp_path / "bin" / "docker"
        script.parent.mkdir(exist_ok=True)
        answer = f"echo '{json.dumps(labels)}'" if labels is not None else "echo 'No such image' >&2; exit 1"
        script.write_text(f"#!/bin/sh\n{answer}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")

    return install


def test_an_image_of_another_beam_is_refused(docker_with_label) -> None:
    docker_with_label({IMAGE_BEAM_LABEL: "2.60.0"})
    with pytest.raises(SettingsError, match=r"has Beam 2\.60\.0 .* this launcher has Beam"):
        check_image_beam_version(IMAGE)
    docker_with_label({IMAGE_BEAM_LABEL: beam_version()})
    assert check_image_beam_version(IMAGE) == beam_version()
    docker_with_label(None)  # not a local image: unknown, allowed
    assert check_image_beam_version(IMAGE) is None
    with pytest.raises(SettingsError, match=r"has Beam 2\.1\.0"):
        check_image_beam_version(IMAGE, declared="2.1.0")


def test_ingest_on_dataflow_refuses_a_worker_image_of_another_beam(docker_with_label) -> None:
    docker_with_label({IMAGE_BEAM_LABEL: "2.60.0"})
    with pytest.raises(SettingsError, match=r"has Beam 2\.60\.0"):
        complete_remote_args(["--runner", "DataflowRunner", f"--sdk_container_image={IMAGE}"])
    assert complete_remote_args(["--runner", "DirectRunner", f"--sdk_container_image={IMAGE}"])  # local: unchecked


def test_no_docker_means_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template.shutil, "which", lambda _: None)
    assert template.image_beam_version(IMAGE) is None


def test_build_refuses_an_image_of_another_beam(docker_with_label, tmp_path: Path) -> None:
    docker_with_label({IMAGE_BEAM_LABEL: "2.60.0"})
    run = subprocess.run(
        [AUDIOFLOW, "template", "build", "--image", IMAGE, "--template", str(tmp_path / "spec.json")],
        capture_output=True,
        text=True,
        env=_env() | {"PATH": os.environ["PATH"]},
        timeout=120,
    )
    assert run.returncode == 1 and "has Beam 2.60.0" in run.stderr
    assert not (tmp_path / "spec.json").exists()


def test_spec_names_a_separate_worker_image() -> None:
    spec = build_spec(IMAGE, worker_image="europe-docker.pkg.dev/p/images/audioflow-worker:0.1.0")
    assert spec["defaultEnvironment"]["sdkContainerImage"].endswith("audioflow-worker:0.1.0")
