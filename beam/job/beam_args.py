"""Beam arguments for remote runners (Dataflow): worker dependencies and defaults users get wrong.

Dataflow workers must import audioflow. Two ways, checked before anything is submitted:
  --sdk_container_image   an image built FROM apache/beam_python3.11_sdk:<the launcher's Beam>
                          with audioflow installed (recommended at scale: workers start at once);
  --setup_file            an sdist of this project, built at launch by Beam's stager
                          (`python -m build --no-isolation --sdist`) and pip-installed on every worker.
When neither is given and this code runs from a source checkout, `--setup_file <checkout>/pyproject.toml`
is added; otherwise the launch stops with a SettingsError that says what to pass.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from audioflow.beam.errors import SettingsError

__all__ = ["DATAFLOW_RUNNERS", "complete_remote_args", "project_file", "runner_name"]

_LOGGER = logging.getLogger(__name__)
# How Beam names the Dataflow runner on the command line (it matches runner names case-insensitively).
DATAFLOW_RUNNERS = ("dataflowrunner", "dataflow", "testdataflowrunner")
# Options that already put audioflow on the workers; with any of them we add nothing.
_DEPENDENCY_FLAGS = ("--setup_file", "--sdk_container_image", "--worker_harness_container_image")
_BUILD_MODULES = ("build", "setuptools")


def _value(args: list[str], flag: str) -> str | None:
    """The last value given for `flag` (`--flag value` or `--flag=value`), like argparse."""
    found = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found


def runner_name(beam_args: list[str]) -> str | None:
    return _value(beam_args, "--runner")


def project_file() -> Path | None:
    """This project's pyproject.toml when running from a source checkout (an editable install), else None."""
    candidate = Path(__file__).resolve().parent.parent / "pyproject.toml"
    if candidate.is_file() and 'name = "audioflow"' in candidate.read_text(encoding="utf-8"):
        return candidate
    return None


def complete_remote_args(beam_args: list[str]) -> list[str]:
    """Returns the Beam args a remote runner needs beyond what the user gave (local runners: unchanged).

    Raises:
        SettingsError: Dataflow would start workers that cannot import audioflow, or the launcher
            cannot build the package it would stage.
    """
    args = list(beam_args)
    runner = runner_name(args)
    if runner is None or runner.lower() not in DATAFLOW_RUNNERS:
        return args
    if any(_value(args, flag) for flag in _DEPENDENCY_FLAGS):
        return args
    source = project_file()
    if source is None:
        raise SettingsError(
            "Dataflow workers need audioflow installed: pass --sdk_container_image (an image FROM "
            "apache/beam_python3.11_sdk with audioflow installed) or --setup_file pointing at "
            "audioflow's pyproject.toml (this installation has no source checkout to stage)"
        )
    missing = [name for name in _BUILD_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SettingsError(
            f"staging audioflow for Dataflow workers builds an sdist of {source.parent} with "
            f"`python -m build --no-isolation`, which needs {' and '.join(missing)} in this environment "
            "(`make setup` installs them), or pass --sdk_container_image"
        )
    _LOGGER.info("Dataflow workers will install audioflow from %s (--setup_file)", source)
    return [*args, "--setup_file", str(source)]
