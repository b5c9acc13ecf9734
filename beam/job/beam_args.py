"""Beam arguments, parsed in one place: the runner, the settings remote runners need, and refusal
of options nobody knows.

Every entry point (the CLI, the KFP component, the Flex Template launcher, `.env`) hands its Beam
arguments to `check_beam_args` before anything runs, so a mistyped option on an hours-long Dataflow
job is an error at launch rather than a warning in a log. This module imports Beam only inside the
functions that need it: the pipeline commands and Vertex submission parse runners without it.

Dataflow workers must import audioflow. Two ways, checked before anything is submitted:
  --sdk_container_image   an image built FROM apache/beam_python3.11_sdk:<the launcher's Beam>
                          with audioflow installed (recommended at scale: workers start at once);
  --setup_file            an sdist of this project, built at launch by Beam's stager
                          (`python -m build --no-isolation --sdist`) and pip-installed on every worker.
                          Workers install it without extras (`pip install workflow.tar.gz`), so they
                          get the core package only: the worker set. KFP, TensorFlow and matplotlib
                          are extras (pyproject.toml) and never reach a worker.
When neither is given and this code runs from a source checkout, `--setup_file <checkout>/pyproject.toml`
is added; otherwise the launch stops with a SettingsError that says what to pass.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path

from audioflow.beam.errors import SettingsError
from audioflow.beam.settings import setting

__all__ = [
    "DATAFLOW_ARG_VARIABLES",
    "HideOptionValues",
    "UnknownOptionError",
    "arg_value",
    "check_beam_args",
    "complete_remote_args",
    "dataflow_args_from_env",
    "hide_option_values",
    "is_dataflow_runner",
    "is_local_runner",
    "project_file",
    "runner_name",
]

_LOGGER = logging.getLogger(__name__)
# Runner names as Beam resolves them: case-insensitive, with or without the "Runner" suffix.
# The local ones run on this machine (Beam's DirectRunner delegates batch pipelines to the FnApiRunner).
_LOCAL_RUNNERS = ("direct", "fnapi")
_DATAFLOW_RUNNERS = ("dataflow", "testdataflow")
# Options that already put audioflow on the workers; with any of them we add nothing.
_DEPENDENCY_FLAGS = ("--setup_file", "--sdk_container_image", "--worker_harness_container_image")
_BUILD_MODULES = ("build", "setuptools")

# Environment variable -> Beam option, added for non-local runners when the flag is not given.
DATAFLOW_ARG_VARIABLES: dict[str, str] = {
    "PROJECT_ID": "--project",
    "REGION": "--region",
    "BEAM_TEMP_LOCATION": "--temp_location",
    "BEAM_STAGING_LOCATION": "--staging_location",
    "JOB_NAME": "--job_name",
    "NUM_WORKERS": "--num_workers",
    "MAX_NUM_WORKERS": "--max_num_workers",
    "MACHINE_TYPE": "--machine_type",
    "DISK_SIZE": "--disk_size_gb",
    "DATAFLOW_SERVICE_ACCOUNT": "--service_account_email",
    "NETWORK": "--network",
    "SUBNETWORK": "--subnetwork",
    # Workers run the lean worker image when one is named, else the components' image (the first
    # variable set wins for a flag).
    "WORKER_IMAGE": "--sdk_container_image",
    "IMAGE": "--sdk_container_image",
}


class UnknownOptionError(SettingsError):
    """An option that is neither audioflow's nor a Beam pipeline option: most likely a typo."""


def arg_value(args: list[str], flag: str) -> str | None:
    """The last value given for `flag` (`--flag value` or `--flag=value`), as argparse and Beam read it."""
    found = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(flag + "="):
            found = arg.split("=", 1)[1]
    return found


def _has_flag(args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)


def runner_name(beam_args: list[str]) -> str | None:
    """The runner the args name, as given (None: Beam's default, the DirectRunner)."""
    return arg_value(beam_args, "--runner")


def _runner_key(runner: str | None) -> str:
    key = (runner or "DirectRunner").lower()
    return key.removesuffix("runner") if key != "runner" else key


def is_local_runner(runner: str | None) -> bool:
    """True for runners that run on this machine (None means Beam's default, the DirectRunner)."""
    return _runner_key(runner) in _LOCAL_RUNNERS


def is_dataflow_runner(runner: str | None) -> bool:
    return _runner_key(runner) in _DATAFLOW_RUNNERS


def dataflow_args_from_env(beam_args: list[str]) -> list[str]:
    """Completes Beam args with RUNNER and the Dataflow settings from the environment.

    Local runs get only the runner: project, region and the rest would be noise there.
    """
    args = list(beam_args)
    if not _has_flag(args, "--runner") and setting("RUNNER"):
        args += ["--runner", setting("RUNNER")]
    if is_local_runner(runner_name(args)):
        return args
    for variable, flag in DATAFLOW_ARG_VARIABLES.items():
        value = setting(variable)
        if value and not _has_flag(args, flag):
            if flag == "--job_name":
                value = f"{value}-{time.strftime('%Y%m%d-%H%M%S')}"
            args += [flag, value]
    return args


def _beam_option_parser():
    """The argparse parser Beam builds from every registered PipelineOptions class."""
    from apache_beam.options.pipeline_options import PipelineOptions

    captured = []
    PipelineOptions([]).get_all_options(add_extra_args_fn=captured.append)
    return captured[0]


def check_beam_args(beam_args: list[str], known_elsewhere: Iterable[str] = ()) -> None:
    """Refuses any option that no Beam PipelineOptions class defines, naming the closest known one.

    Args:
        beam_args: what will be handed to Beam.
        known_elsewhere: the caller's own flags (e.g. the CLI's `--sample-rate`), offered as
            suggestions: a mistyped audioflow option lands among the Beam args.

    Raises:
        UnknownOptionError: one line, with the unknown option and the closest known one.
    """
    parser = _beam_option_parser()
    _, unknown = parser.parse_known_args(list(beam_args))
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-") and arg not in ("-", "--")]
    if not flags:
        return
    known = sorted({*parser._option_string_actions, *known_elsewhere})
    flag = flags[0]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    others = f" (also unknown: {', '.join(flags[1:])})" if len(flags) > 1 else ""
    raise UnknownOptionError(
        f"unknown option {flag}: neither an audioflow option nor a Beam pipeline option{hint}{others}"
    )


def project_file() -> Path | None:
    """This project's pyproject.toml when running from a source checkout (an editable install), else None."""
    candidate = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if candidate.is_file() and 'name = "audioflow"' in candidate.read_text(encoding="utf-8"):
        return candidate
    return None


def complete_remote_args(beam_args: list[str]) -> list[str]:
    """Returns the Beam args a remote runner needs beyond what the user gave (local runners: unchanged).

    Raises:
        SettingsError: Dataflow would start workers that cannot import audioflow, or the launcher
            cannot build the package it would stage, or the workers' image has another Beam than
            this launcher (known when a local Docker engine has the image: its Beam version label).
    """
    args = list(beam_args)
    if not is_dataflow_runner(runner_name(args)):
        return args
    image = arg_value(args, "--sdk_container_image") or arg_value(args, "--worker_harness_container_image")
    if image:
        from audioflow.beam.job.template import check_image_beam_version

        check_image_beam_version(image)
    if any(arg_value(args, flag) for flag in _DEPENDENCY_FLAGS):
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


def _name_only(arg: str) -> str:
    """'--token=abc' -> '--token=…', '--flag' -> '--flag', a bare value -> '…'."""
    if not arg.startswith("-"):
        return "…"
    name, equals, _ = arg.partition("=")
    return name + ("=…" if equals else "")


class HideOptionValues(logging.Filter):
    """Keeps pipeline option values out of the log: only option names are shown.

    Beam warns about options it does not know with their values ("Unparseable argument:
    --api_token=…", "Discarding unparseable args: [...]"). Any such value may be a credential a user
    passed on the command line, and logs travel (CI, Cloud Logging), so the values are replaced by
    '…' before any handler sees the record. `hide_option_values()` installs it.
    """

    _UNPARSEABLE = re.compile(r"^Unparseable argument: (?P<arg>.*?)(?P<hint>\. Did you mean '[^']*'\?'?)?$", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        if message == "Discarding unparseable args: %s" and record.args:
            record.args = ([_name_only(str(arg)) for arg in record.args[0]],)  # type: ignore[index]
        elif message == "Discarding invalid overrides: %s" and isinstance(record.args, dict):
            record.args = (sorted(record.args),)  # logging unwraps a lone dict argument; keep its keys
        elif message.startswith("Discarding flag %s") and record.args:
            record.args = (_name_only(str(record.args[0])), *record.args[1:])  # type: ignore[index]
        elif match := self._UNPARSEABLE.match(message):
            record.msg = f"Unparseable argument: {_name_only(match['arg'])}{match['hint'] or ''}"
        return True


def hide_option_values() -> None:
    """Installs HideOptionValues on the logger Beam reports unknown options through (once per process).

    On the logger itself, not on handlers: every entry point (CLI, KFP component, library call) is
    covered, whoever configured logging.
    """
    beam_options_logger = logging.getLogger("apache_beam.options.pipeline_options")
    if not any(isinstance(existing, HideOptionValues) for existing in beam_options_logger.filters):
        beam_options_logger.addFilter(HideOptionValues())
