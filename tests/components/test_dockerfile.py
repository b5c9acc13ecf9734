"""What can be tested of the image without a Docker engine: its pins agree with the project's, and its
install steps, run from a build context holding only what the Dockerfile copies, work in a fresh venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import apache_beam

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [
        (line.split(None, 1)[0], line.split(None, 1)[1])
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def arg(name: str) -> str:
    return next(value.split("=", 1)[1] for kind, value in instructions() if kind == "ARG" and value.startswith(name))


def test_base_image_is_the_beam_sdk_of_the_pinned_versions():
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked_beam = next(p["version"] for p in lock["package"] if p["name"] == "apache-beam")
    assert arg("BEAM_VERSION") == locked_beam == apache_beam.__version__
    assert arg("PYTHON_VERSION") == "3.11"
    assert "FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}" in DOCKERFILE
    assert arg("UV_VERSION") in (REPO / "Makefile").read_text()


def test_every_package_directory_is_copied():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    copied = {value.split()[0] for kind, value in instructions() if kind == "COPY"}
    for directory in pyproject["tool"]["setuptools"]["package-dir"].values():
        assert directory in copied, f"{directory}/ is a package but the Dockerfile does not copy it"


def test_install_steps_work_in_a_fresh_venv(tmp_path):
    """Runs the Dockerfile's RUN steps (uv export, install, import check) against a fresh venv instead of
    the image's system Python, from a context that holds only the files the Dockerfile copies."""
    context = tmp_path / "context"
    context.mkdir()
    for kind, value in instructions():
        if kind == "COPY":
            *sources, _ = value.split()
            for source in sources:
                path = REPO / source
                target = context / source
                shutil.copytree(
                    path, target, ignore=shutil.ignore_patterns("__pycache__")
                ) if path.is_dir() else shutil.copy(path, target)
    uv = REPO / ".tools" / "bin" / "uv"
    venv = tmp_path / "venv"
    subprocess.run([str(uv), "venv", "--python", "python3.11", str(venv)], check=True, capture_output=True)
    python = str(venv / "bin" / "python")
    for kind, command in instructions():
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
    shown = subprocess.run(
        [python, "-c", "import apache_beam, kfp; print(apache_beam.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == apache_beam.__version__
