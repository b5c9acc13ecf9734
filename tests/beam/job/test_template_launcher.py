"""The Flex Template's launcher entry point, run the way the template image runs it: parameters as
`--name=value`, Beam options after them. With the DirectRunner it writes the same dataset as
`audioflow ingest` on real demo audio; on Dataflow (a loopback fake) it returns once the job exists."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from audioflow.beam.job.template_launcher import main
from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.beam.tools.verify import verify_dataset

from fake_dataflow import fake_dataflow
from gcs_emulator import EmulatedGcs

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))
LAUNCHER = [sys.executable, "-m", "audioflow.beam.job.template_launcher"]
IMAGE = "europe-docker.pkg.dev/p/images/audioflow-template:0.1.0"
OPTIONS = {
    "splits": "train=0.8,validation=0.1,test=0.1",
    "sample_rate": "16000",
    "mono": "true",
    "shard_size": "64KiB",
    "max_rejected_fraction": "0.5",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_data(tmp_path_factory.mktemp("demo"), clips_per_class=4)


def shards(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.tfrecord*"))}


def test_launcher_writes_the_dataset_the_cli_writes(demo: Path, tmp_path: Path) -> None:
    launched = subprocess.run(
        [
            *LAUNCHER,
            f"--manifest={demo}",
            f"--output={tmp_path / 'launched'}",
            *(f"--{name}={value}" for name, value in OPTIONS.items()),
            "--runner=DirectRunner",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    flags = [arg for name, value in OPTIONS.items() for arg in ("--" + name.replace("_", "-"), value)]
    flags = [arg for arg in flags if arg != "true"]  # --mono is a flag
    cli = subprocess.run(
        [AUDIOFLOW, "ingest", "--manifest", str(demo), "--output", str(tmp_path / "cli"), *flags],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]

    launched_info, cli_info = load_dataset_info(str(tmp_path / "launched")), load_dataset_info(str(tmp_path / "cli"))
    assert launched_info.num_examples == cli_info.num_examples > 0
    assert launched_info.audio == cli_info.audio and launched_info.audio["sample_rate"] == 16000
    assert json.loads(launched_info.to_json())["options"] == json.loads(cli_info.to_json())["options"] | {
        "output": str(tmp_path / "launched")
    }
    assert shards(tmp_path / "launched") == shards(tmp_path / "cli")  # byte for byte
    assert verify_dataset(str(tmp_path / "launched"), launched_info).ok


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--sample_format=float64"], "template parameter sample_format='float64' does not match ^(int16|float32)$"),
        (["--splits=train=0.5"], "template parameter splits='train=0.5': split fractions sum to 0.5"),
        (["--num_worker=2"], "unknown option --num_worker: neither an audioflow option nor a Beam pipeline option"),
        (["--beam_args=--machine_typ=n2"], "template parameter beam_args: unknown option --machine_typ"),
    ],
)
def test_launcher_refuses_a_bad_value_naming_it(argv: list[str], says: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--manifest=gs://b/labels.csv", f"--output={tmp_path / 'out'}", *argv, "--runner=DirectRunner"])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs) -> Iterator[str]:
    uri = gcs.create_bucket("audioflow-launcher")
    gcs.write_bytes(f"{uri}/labels.csv", b"Label,Blob Name\n1,a.wav\n0,b.wav\n")
    yield uri


def test_on_dataflow_the_launcher_returns_once_the_job_exists(gcs: EmulatedGcs, bucket: str) -> None:
    """A Flex Template launcher must not wait for its job: the fake keeps it RUNNING forever."""
    with fake_dataflow(states=("JOB_STATE_RUNNING",)) as fake:
        launched = subprocess.run(
            [
                *LAUNCHER,
                f"--manifest={bucket}/labels.csv",
                f"--output={bucket}/datasets/v1",
                "--sample_rate=16000",
                "--beam_args=--number_of_worker_harness_threads=4",
                # what Dataflow's launcher adds from the launch environment
                "--runner=DataflowRunner",
                "--project=p",
                "--region=r",
                f"--temp_location={bucket}/tmp",
                f"--sdk_container_image={IMAGE}",
                f"--dataflow_endpoint={fake.endpoint}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert launched.returncode == 0, launched.stderr[-3000:]
    job = fake.job
    assert f"submitted Dataflow job {job.id}; the launcher returns without waiting" in launched.stderr
    pool = job.body["environment"]["workerPools"][0]
    assert {image["containerImage"] for image in pool["sdkHarnessContainerImages"]} == {IMAGE}
    options = job.body["environment"]["sdkPipelineOptions"]["options"]
    assert options["number_of_worker_harness_threads"] == 4
