"""Secrets stay secret: credentials, tokens and .env values never reach logs, dataset.json,
rejected.jsonl, the shards, the HTML report, the KFP artifact metadata or error messages.

A random marker is planted everywhere a secret can come from: a .env file (a Dataflow service
account, tokens, GOOGLE_APPLICATION_CREDENTIALS), the credentials file itself, the real environment,
and Beam options on the command line, known ones (--service_account_email, --s3_secret_access_key)
and unknown ones, which are refused before anything runs, by name only. Then every byte the product
writes or prints in a run, a verbose run, a refused re-run, a run refused for unknown options, a
mistaken --manifest .env and an inspect is searched for the marker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from audioflow.beam.job.beam_args import UnknownOptionError
from audioflow.beam.reader import load_dataset_info
from audioflow.components.ingest_step import dataset_metadata, run_ingest_step

from audio_files import write_audio, write_manifest

REPO = Path(__file__).resolve().parents[2]
MARKER = f"SECRET{uuid.uuid4().hex[:16]}"  # new every run: it cannot be in any output by chance
BEAM_ARGS = [
    f"--service_account_email=sa-{MARKER}@project.iam.gserviceaccount.com",
    "--s3_secret_access_key",
    f"s3-{MARKER}",
]
UNKNOWN_ARGS = [
    f"--api_token={MARKER}",  # unknown to Beam, `--flag=value` form
    "--hf_token",  # unknown to Beam, `--flag value` form
    f"hf_{MARKER}",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A project folder with audio, a manifest (one missing file: rejected.jsonl has content), a .env
    full of secrets and a service-account key file."""
    folder = tmp_path_factory.mktemp("secrets")
    for index in range(4):
        write_audio(folder / "audio" / f"{index}.wav", seconds=0.1, seed=index)
    write_manifest(folder / "labels.csv", [(str(i % 2), f"audio/{i}.wav") for i in range(4)] + [("1", "gone.wav")])
    key = folder / "service-account.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "private_key_id": f"id-{MARKER}",
                "private_key": f"-----BEGIN PRIVATE KEY-----\n{MARKER}\n-----END PRIVATE KEY-----\n",
                "client_email": f"sa-{MARKER}@project.iam.gserviceaccount.com",
            }
        )
    )
    (folder / ".env").write_text(
        f"DATAFLOW_SERVICE_ACCOUNT=sa-{MARKER}@project.iam.gserviceaccount.com\n"
        f"API_TOKEN=tok-{MARKER}\n"
        f"AWS_SECRET_ACCESS_KEY=aws-{MARKER}\n"
        f"GOOGLE_APPLICATION_CREDENTIALS={key}\n"
        "SPLITS=a=0.5,b=0.5\n"  # a setting the run uses: proves the .env was read
        "MAX_REJECTED_FRACTION=0.5\n"
    )
    return folder


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "GITHUB_TOKEN": f"gh-{MARKER}"}
    return subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_no_marker(where: str, text: str | bytes) -> None:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    assert MARKER.encode() not in data, f"a secret leaked into {where}"


def assert_no_marker_in_files(folder: Path) -> int:
    """Searches every file under `folder`; returns how many were searched."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    for path in files:
        assert_no_marker(str(path), path.read_bytes())
    return len(files)


def test_no_secret_in_any_output(workdir):
    ingest = ["ingest", "--manifest", "labels.csv", "--output", "out", *BEAM_ARGS]
    unknown = run(["--verbose", *ingest, *UNKNOWN_ARGS], cwd=workdir)  # refused before anything runs
    assert unknown.returncode == 2 and "unknown option --api_token" in unknown.stderr, unknown.stderr
    assert "--hf_token" in unknown.stderr and not (workdir / "out").exists()
    verbose = run(["--verbose", *ingest], cwd=workdir)  # DEBUG: the most Beam ever logs
    assert verbose.returncode == 0, verbose.stderr
    refused = run(ingest, cwd=workdir)  # the output exists: an error path
    assert refused.returncode == 1 and "pass --overwrite" in refused.stderr
    mistaken = run(["ingest", "--manifest", ".env", "--output", "out2"], cwd=workdir)  # a classic slip
    assert mistaken.returncode == 1 and "DATAFLOW_SERVICE_ACCOUNT=…" in mistaken.stderr
    inspected = run(["inspect", "out", "--verify", "--json", "--html", "report.html"], cwd=workdir)
    assert inspected.returncode == 0, inspected.stderr
    outcomes = [("unknown", unknown), ("verbose", verbose), ("refused", refused), ("mistaken", mistaken)]
    for name, result in [*outcomes, ("inspect", inspected)]:
        assert_no_marker(f"stdout of {name}", result.stdout)
        assert_no_marker(f"stderr of {name}", result.stderr)
    assert list(json.loads((workdir / "out" / "dataset.json").read_text())["splits"]) == ["a", "b"]
    assert assert_no_marker_in_files(workdir / "out") >= 3  # dataset.json, rejected.jsonl, shards
    assert_no_marker("report.html", (workdir / "report.html").read_bytes())


def test_no_secret_in_the_components_artifact_metadata_or_logs(workdir, tmp_path, caplog):
    """The KFP component's own code path: the same Beam args, the metadata it puts on the Dataset artifact."""
    caplog.set_level("DEBUG")
    with pytest.raises(UnknownOptionError) as refused:
        run_ingest_step(
            dataset_uri=str(tmp_path / "refused"),
            gcp_resources_path=str(tmp_path / "gcp_resources"),
            runner="DirectRunner",
            beam_args=[*BEAM_ARGS, *UNKNOWN_ARGS],
            manifest=str(workdir / "labels.csv"),
            audio_root=str(workdir),
        )
    assert "--api_token" in str(refused.value)
    assert_no_marker("the refusal", str(refused.value))
    info = run_ingest_step(
        dataset_uri=str(tmp_path / "artifact"),
        gcp_resources_path=str(tmp_path / "gcp_resources"),
        runner="DirectRunner",
        beam_args=list(BEAM_ARGS),
        manifest=str(workdir / "labels.csv"),
        audio_root=str(workdir),
        splits="train=1",
        max_rejected_fraction=0.5,
    )
    assert_no_marker("the Dataset artifact's metadata", json.dumps(dataset_metadata(info)))
    assert_no_marker("dataset.json", load_dataset_info(str(tmp_path / "artifact")).to_json())
    assert_no_marker_in_files(tmp_path)
    assert_no_marker("the component's log", "\n".join(record.getMessage() for record in caplog.records))


def test_dotenv_files_are_git_ignored():
    for name in (".env", "sub/folder/.env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO, timeout=60)
        assert ignored.returncode == 0, f"{name} is not git-ignored"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert not [name for name in tracked.splitlines() if Path(name).name == ".env"], "a .env file is committed"
