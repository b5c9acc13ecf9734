"""Settings: .env.template documents every variable the code reads; Beam args are completed from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audioflow.beam.errors import SettingsError
from audioflow.beam.job.beam_args import DATAFLOW_ARG_VARIABLES, dataflow_args_from_env
from audioflow.beam.prep.defaults import INGEST_OPTIONS
from audioflow.beam.settings import KNOWN_SETTINGS, load_env

REPO = Path(__file__).resolve().parents[2]


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set(DATAFLOW_ARG_VARIABLES) | {entry.env for entry in INGEST_OPTIONS if entry.env}
    for path in [*REPO.glob("beam/**/*.py"), *REPO.glob("components/*.py"), *REPO.glob("pipelines/*.py")]:
        text = path.read_text()
        names |= set(re.findall(r'setting\("([A-Z_]+)"', text))
        names |= set(re.findall(r'envvar="([A-Z_]+)"', text))
    return names


def test_env_template_documents_every_setting():
    template = (REPO / ".env.template").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", template, flags=re.MULTILINE))
    missing = variables_read_by_the_code() - documented
    assert not missing, f".env.template lacks {sorted(missing)}"
    assert documented == KNOWN_SETTINGS, "settings.KNOWN_SETTINGS and .env.template list different settings"
    tutorial_names = {"PROJECT_ID", "REGION", "PIPELINE_ROOT", "SERVICE_ACCOUNT", "IMAGE", "MANIFEST_URI", "AUDIO_ROOT"}
    assert tutorial_names <= documented


def test_env_is_git_ignored():
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_dataflow_settings_complete_beam_args_only_for_remote_runners(monkeypatch):
    monkeypatch.setenv("PROJECT_ID", "proj")
    monkeypatch.setenv("REGION", "europe-west1")
    monkeypatch.setenv("MACHINE_TYPE", "n2-standard-4")
    monkeypatch.delenv("RUNNER", raising=False)
    assert dataflow_args_from_env([]) == []
    args = dataflow_args_from_env(["--runner", "DataflowRunner", "--region=us-east1"])
    assert args[:3] == ["--runner", "DataflowRunner", "--region=us-east1"]
    assert "--project" in args and args[args.index("--project") + 1] == "proj"
    assert "--region" not in args  # the flag given wins
    assert args[args.index("--machine_type") + 1] == "n2-standard-4"
    monkeypatch.setenv("RUNNER", "DataflowRunner")
    assert dataflow_args_from_env([])[:2] == ["--runner", "DataflowRunner"]


def test_a_mistyped_setting_in_env_is_refused(tmp_path, monkeypatch):
    for name in ("SAMPLE_RATE", "GOOGLE_APPLICATION_CREDENTIALS"):  # recorded, so load_env's values are undone
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    env = tmp_path / ".env"
    env.write_text("SAMPLE_RAT=8000\nGOOGLE_APPLICATION_CREDENTIALS=/k.json\n")
    with pytest.raises(SettingsError, match=r"SAMPLE_RAT is not an audioflow setting; did you mean SAMPLE_RATE\?"):
        load_env(env)
    env.write_text("SAMPLE_RATE=8000\nGOOGLE_APPLICATION_CREDENTIALS=/k.json\n")  # other tools' keys are fine
    assert load_env(env) == env


def test_workers_run_the_worker_image_when_one_is_set(monkeypatch):
    monkeypatch.setenv("IMAGE", "registry/audioflow:1")
    monkeypatch.delenv("WORKER_IMAGE", raising=False)
    args = dataflow_args_from_env(["--runner", "DataflowRunner"])
    assert args[args.index("--sdk_container_image") + 1] == "registry/audioflow:1"
    monkeypatch.setenv("WORKER_IMAGE", "registry/audioflow-worker:1")
    args = dataflow_args_from_env(["--runner", "DataflowRunner"])
    assert args.count("--sdk_container_image") == 1
    assert args[args.index("--sdk_container_image") + 1] == "registry/audioflow-worker:1"
