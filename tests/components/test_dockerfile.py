"""What can be tested of the images without a Docker engine: their pins agree with the project's, every
install compiles bytecode, each target installs its dependency set, and the install steps of the
worker and components targets, run from a build context holding only what the Dockerfile copies,
work in a fresh venv. The template target's launcher file is written and run as the image would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import apache_beam
import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
HEAVY = ("kfp", "tensorflow", "matplotlib", "keras")


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        (line.split(None, 1)[0], line.split(None, 1)[1])
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def stages() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Stage name -> (what it is FROM, its instructions)."""
    found: dict[str, tuple[str, list[tuple[str, str]]]] = {}
    current: list[tuple[str, str]] = []
    for kind, value in instructions():
        if kind == "FROM":
            base, _, name = value.partition(" AS ")
            current = []
            found[name.strip()] = (base.strip(), current)
        else:
            current.append((kind, value))
    return found


def chain(target: str) -> list[tuple[str, str]]:
    """The instructions that build `target`, its parent stages' first."""
    all_stages = stages()
    base, own = all_stages[target]
    return (chain(base) if base in all_stages else []) + own


def arg(name: str) -> str:
    return next(value.split("=", 1)[1] for kind, value in instructions() if kind == "ARG" and value.startswith(name))


def test_images_start_from_the_beam_sdk_of_the_pinned_versions():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked_beam = next(p["version"] for p in lock["package"] if p["name"] == "apache-beam")
    assert arg("BEAM_VERSION") == locked_beam == apache_beam.__version__
    assert arg("PYTHON_VERSION") == "3.11"
    assert arg("UV_VERSION") in (REPO / "Makefile").read_text()
    all_stages = stages()
    assert all_stages["base"][0] == "apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}"
    assert all_stages["worker"][0] == all_stages["components"][0] == "base"
    assert all_stages["template"][0] == "worker"
    assert list(all_stages)[-1] == "components"  # a plain `docker build .` builds the components' image
    # The label `audioflow template build` and `--sdk_container_image` checks read (docs/dataflow.md).
    assert ("LABEL", 'org.apache.beam.sdk.version="${BEAM_VERSION}"') in all_stages["base"][1]


def test_every_install_compiles_bytecode():
    """PYTHONDONTWRITEBYTECODE is set in the images, so a .pyc not written at install time never is."""
    runs = [value for kind, value in instructions() if kind == "RUN"]
    installs = [part for value in runs for part in value.split("&&") if "pip install" in part]
    assert len(installs) == 5
    for install in installs:
        if install.strip().startswith("pip install"):  # pip compiles by default
            assert "--no-compile" not in install
        else:
            assert "--compile-bytecode" in install, install
    environment = " ".join(value for kind, value in stages()["base"][1] if kind == "ENV").split()
    assert {"PYTHONDONTWRITEBYTECODE=1", "UV_COMPILE_BYTECODE=1"} <= set(environment)


def test_each_target_installs_its_dependency_set():
    exports = {
        target: [value for kind, value in stages()[target][1] if kind == "RUN" and "uv export" in value]
        for target in ("worker", "components")
    }
    assert "--all-extras" not in exports["worker"][0]  # the core package: the worker set
    assert "--all-extras" in exports["components"][0]


@pytest.mark.parametrize("target", ["worker", "components"])
def test_every_package_directory_is_copied(target):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = {value.split()[0] for kind, value in chain(target) if kind == "COPY" and not value.startswith("--from")}
    for directory in pyproject["tool"]["setuptools"]["package-dir"].values():
        assert directory in copied, f"{directory}/ is a package but the {target} target does not copy it"


def test_template_target_runs_the_launcher(tmp_path):
    """The template stage copies Google's launcher binary, writes the file FLEX_TEMPLATE_PYTHON_PY_FILE
    names, and that file runs audioflow's launcher: run here the way the stage's own smoke check does."""
    own = stages()["template"][1]
    assert (
        "COPY",
        "--from=template_launcher /opt/google/dataflow/python_template_launcher "
        "/opt/google/dataflow/python_template_launcher",
    ) in own
    assert ("ENV", "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/main.py") in own
    assert ("WORKDIR", "/template") in own
    [write] = [value.split("&&")[0] for kind, value in own if kind == "RUN"]
    subprocess.run(write, shell=True, cwd=tmp_path, check=True)
    assert (tmp_path / "main.py").read_text() == "from audioflow.beam.job.template_launcher import main\n\nmain()\n"
    run = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "template parameter manifest is required" in run.stderr


def _build_context(target: str, folder: Path) -> Path:
    context = folder / "context"
    context.mkdir()
    for kind, value in chain(target):
        if kind == "COPY" and not value.startswith("--from"):
            *sources, _ = value.split()
            for source in sources:
                path = REPO / source
                target_path = context / source
                if path.is_dir():
                    shutil.copytree(path, target_path, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(path, target_path)
    return context


# Two fresh venvs with every .pyc compiled: about 2 minutes each on 2 shared cores, so `make test-slow`
# (CI runs it). tests/components/test_dependency_sets.py checks the import graph in seconds.
@pytest.mark.slow
@pytest.mark.parametrize("target", ["worker", "components"])
def test_install_steps_work_in_a_fresh_venv(target, tmp_path):
    """Runs the target's RUN steps (uv export, install, import check) against a fresh venv instead of
    the image's system Python, from a context that holds only the files the Dockerfile copies. The
    worker venv must lack every heavy package and still run the worker-side code."""
    context = _build_context(target, tmp_path)
    uv = REPO / ".tools" / "bin" / "uv"
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "--python", "python3.11", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    for kind, command in chain(target):
        if kind != "RUN" or command.startswith("pip install"):
            continue
        # the venv instead of the image's Python; uv's cache instead of --no-cache (which keeps image layers small)
        command = command.replace("uv ", f"{uv} ").replace("--system", f"--python {python}").replace(" --no-cache", "")
        command = command.replace("/tmp/requirements.txt", str(tmp_path / "requirements.txt"))
        command = re.sub(r"(^|&& )python ", rf"\1{python} ", command)
        result = subprocess.run(
            command,
            shell=True,
            cwd=context,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(venv)},
        )
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    assert list(venv.rglob("apache_beam/__pycache__/*.pyc")), "no bytecode was compiled"
    probe = (
        "import importlib.util, apache_beam\n"
        f"print(apache_beam.__version__, *(importlib.util.find_spec(m) is not None for m in {HEAVY!r}))"
    )
    shown = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    version, *present = shown.stdout.split()
    assert version == apache_beam.__version__
    assert present == (["False"] * len(HEAVY) if target == "worker" else ["True"] * len(HEAVY))
    if target == "worker":  # the job runs on the worker set alone
        audioflow = str(venv / "bin" / "audioflow")
        subprocess.run([audioflow, "demo-data", str(tmp_path / "demo"), "--clips-per-class", "2"], check=True)
        ingest = [audioflow, "ingest", "--manifest", str(tmp_path / "demo" / "labels.csv"), "--output"]
        ingest += [str(tmp_path / "dataset"), "--max-rejected-fraction", "1", "--runner", "DirectRunner"]
        ran = subprocess.run(ingest, capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert (tmp_path / "dataset" / "dataset.json").is_file()
