"""The Dataflow Flex Template: its spec and the validation of its parameters (launching and following
the job is `dataflow_jobs.py`).

The template's parameters are generated from the ingest options table (audioflow.beam.prep.defaults),
like the CLI's `ingest` options and the component's parameters, plus `manifest` and `output` (required),
`overwrite`, and `beam_args` (more Beam options, passed through to the job). Each parameter carries the
regexes Dataflow applies at launch; `options_from_parameters` applies the same regexes and then our own
validation (the IngestOptions checks and `check_beam_args`), so a bad value is refused, with the
parameter named, by `audioflow template run`, the KFP component and the launcher in the image alike.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from audioflow.beam.errors import SettingsError
from audioflow.beam.job.beam_args import arg_value, check_beam_args
from audioflow.beam.prep.defaults import INGEST_OPTIONS
from audioflow.beam.prep.options import IngestOptions, build_ingest_options

__all__ = [
    "IMAGE_BEAM_LABEL",
    "TEMPLATE_PARAMETERS",
    "TemplateParameter",
    "beam_version",
    "build_spec",
    "check_image_beam_version",
    "image_beam_version",
    "options_from_parameters",
    "parameters_from_values",
    "split_launch_args",
    "write_spec",
]

_LOGGER = logging.getLogger(__name__)
# The label the Dockerfile sets on every image: the Beam version installed in it.
IMAGE_BEAM_LABEL = "org.apache.beam.sdk.version"
_BOOL = r"^(true|false)$"
_INTEGER = r"^[0-9]+$"
_NUMBER = r"^[0-9]+(\.[0-9]+)?$"
# Beam options in --name=value form, separated by spaces (a value of its own would be ambiguous).
_BEAM_ARGS = r"^(--[A-Za-z_][A-Za-z0-9_]*(=\S*)?(\s+--[A-Za-z_][A-Za-z0-9_]*(=\S*)?)*)?$"


@dataclass(frozen=True)
class TemplateParameter:
    """One Flex Template parameter, as the spec's metadata shows it and the launcher parses it."""

    name: str
    kind: type
    help: str
    optional: bool = True
    default: Any = None
    regexes: tuple[str, ...] = ()
    param_type: str | None = None  # Dataflow's ParameterType, where the console can offer a picker

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    def metadata(self) -> dict[str, Any]:
        """The parameter's entry in the spec's `metadata.parameters`."""
        entry: dict[str, Any] = {"name": self.name, "label": self.label, "helpText": self.help}
        entry["isOptional"] = self.optional
        if self.regexes:
            entry["regexes"] = list(self.regexes)
        if self.param_type:
            entry["paramType"] = self.param_type
        if self.optional and self.default not in (None, ""):
            entry["defaultValue"] = _text(self.default)
        return entry

    def typed(self, text: str) -> Any:
        """The value the ingest options take (the text has passed the regexes)."""
        if self.kind is bool:
            return text.strip().lower() == "true"
        return self.kind(text) if self.kind in (int, float) else text


def _table_parameter(name: str) -> TemplateParameter:
    entry = next(e for e in INGEST_OPTIONS if e.name == name)
    if entry.choices:
        regexes: tuple[str, ...] = ("^(" + "|".join(re.escape(choice) for choice in entry.choices) + ")$",)
    elif entry.pattern:
        regexes = (entry.pattern,)
    else:
        regexes = {bool: (_BOOL,), int: (_INTEGER,), float: (_NUMBER,)}.get(entry.kind, ())
    help_text = entry.help + (f" One of: {', '.join(entry.choices)}." if entry.choices else "")
    param_type = "GCS_READ_FOLDER" if name == "audio_root" else None
    return TemplateParameter(name, entry.kind, help_text, True, entry.default, regexes, param_type)


TEMPLATE_PARAMETERS: tuple[TemplateParameter, ...] = (
    TemplateParameter(
        "manifest",
        str,
        "CSV manifest with a label and a blob column, e.g. gs://bucket/labels.csv.",
        optional=False,
        param_type="GCS_READ_FILE",
    ),
    TemplateParameter(
        "output",
        str,
        "Dataset folder to write, e.g. gs://bucket/datasets/v1.",
        optional=False,
        param_type="GCS_WRITE_FOLDER",
    ),
    *(_table_parameter(entry.name) for entry in INGEST_OPTIONS),
    TemplateParameter("overwrite", bool, "Replace a dataset already in output.", default=False, regexes=(_BOOL,)),
    TemplateParameter(
        "beam_args",
        str,
        "More Beam pipeline options, each as --name=value, separated by spaces "
        "(e.g. --number_of_worker_harness_threads=8 --experiments=use_runner_v2).",
        regexes=(_BEAM_ARGS,),
    ),
)
_BY_NAME = {parameter.name: parameter for parameter in TEMPLATE_PARAMETERS}


def beam_version() -> str:
    """The Beam version installed here (the launcher's), without importing Beam."""
    return version("apache-beam")


def _text(value: Any) -> str:
    """A parameter value as the launch request carries it: every value is a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        return f"{value:.17f}".rstrip("0").rstrip(".") if "e" in text else text
    if isinstance(value, list | tuple):
        return " ".join(_joined_flags([str(item) for item in value]))
    return str(value)


def _joined_flags(args: list[str]) -> list[str]:
    """['--a', 'x', '--b=y', '--c'] -> ['--a=x', '--b=y', '--c']: one token per option."""
    joined: list[str] = []
    for arg in args:
        if joined and not arg.startswith("--") and "=" not in joined[-1]:
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def parameters_from_values(values: Mapping[str, Any]) -> dict[str, str]:
    """Launch-request parameters from typed values (the CLI's or the component's); None is left out.

    Raises:
        SettingsError: a name that is no template parameter.
    """
    parameters = {}
    for name, value in values.items():
        if name not in _BY_NAME:
            raise SettingsError(f"{name} is not a parameter of the audioflow template{_closest(name)}")
        if value is not None:
            parameters[name] = _text(value)
    return parameters


def _closest(name: str) -> str:
    close = difflib.get_close_matches(name, list(_BY_NAME), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _check_regexes(parameters: Mapping[str, str]) -> None:
    for name, text in parameters.items():
        parameter = _BY_NAME.get(name)
        if parameter is None:
            raise SettingsError(f"template parameter {name} is unknown{_closest(name)}")
        for regex in parameter.regexes:
            if not re.fullmatch(regex, text):
                raise SettingsError(f"template parameter {name}={text!r} does not match {regex}")
    missing = [p.name for p in TEMPLATE_PARAMETERS if not p.optional and not parameters.get(p.name)]
    if missing:
        raise SettingsError(f"template parameter {missing[0]} is required")


def options_from_parameters(parameters: Mapping[str, str]) -> tuple[IngestOptions, list[str]]:
    """Validates template parameters and turns them into the job's options and extra Beam args.

    The checks, in order: known names, the regexes of the spec, required ones present, then our
    own validation (IngestOptions, and `check_beam_args` on beam_args).

    Raises:
        SettingsError: one line naming the parameter, its value and what is wrong.
    """
    _check_regexes(parameters)
    typed = {name: _BY_NAME[name].typed(text) for name, text in parameters.items() if name != "beam_args"}
    try:
        options = build_ingest_options(**typed)
    except ValueError as error:
        name = _culprit(typed)
        shown = f"{name}={parameters[name]!r}" if name else "values"
        raise SettingsError(f"template parameter {shown}: {error}") from None
    beam_args = shlex.split(parameters.get("beam_args", ""))
    try:
        check_beam_args(beam_args)
    except SettingsError as error:
        raise SettingsError(f"template parameter beam_args: {error}") from None
    return options, beam_args


def _culprit(typed: Mapping[str, Any]) -> str | None:
    """The parameter whose value alone makes build_ingest_options fail (it is pure, so this is cheap)."""
    required = {"manifest": typed.get("manifest", "m.csv"), "output": typed.get("output", "out")}
    for name, value in typed.items():
        if name in required:
            continue
        try:
            build_ingest_options(**required, **{name: value})
        except ValueError:
            return name
    return None


def build_spec(
    image: str,
    *,
    worker_image: str | None = None,
    name: str = "audioflow ingest",
    description: str = "A CSV manifest of labelled audio files -> a sharded, self-describing TFRecord dataset.",
) -> dict[str, Any]:
    """The Flex Template spec: the launcher image, the SDK, the parameters and the workers' image.

    Args:
        image: the template image (the Dockerfile's `template` target), which runs the launcher.
        worker_image: the workers' SDK container (default: the template image, which is also a worker image).
        name: the template's display name.
        description: shown in the console.
    """
    return {
        "image": image,
        "sdkInfo": {"language": "PYTHON", "version": beam_version()},
        "metadata": {
            "name": name,
            "description": description,
            "parameters": [parameter.metadata() for parameter in TEMPLATE_PARAMETERS],
        },
        # The launcher is not a source checkout, so it cannot stage audioflow with --setup_file:
        # workers run an image that has it.
        "defaultEnvironment": {"sdkContainerImage": worker_image or image},
    }


def write_spec(spec: dict[str, Any], path: str) -> str:
    """Writes the spec as JSON to a local path or any Beam filesystem (gs://); returns the path."""
    from apache_beam.io.filesystems import FileSystems

    data = (json.dumps(spec, indent=2) + "\n").encode()
    if "://" not in path:
        import os

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with FileSystems.create(path, mime_type="application/json") as handle:
        handle.write(data)
    return path


def image_beam_version(image: str) -> str | None:
    """The image's `org.apache.beam.sdk.version` label, when a local Docker engine has the image; else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        shown = subprocess.run(
            [docker, "image", "inspect", "--format", "{{json .Config.Labels}}", image],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if shown.returncode != 0:  # not pulled or built here
        return None
    labels = json.loads(shown.stdout.strip() or "null") or {}
    return labels.get(IMAGE_BEAM_LABEL)


def check_image_beam_version(image: str, declared: str | None = None) -> str | None:
    """Refuses an image whose Beam differs from this launcher's, when its version is known.

    Known means: `declared` (e.g. `--image-beam-version`, read from the image's labels by the user or
    CI), else the label as a local Docker engine reports it. Unknown is allowed (logged): nothing
    here can read a remote registry's labels.

    Returns:
        the image's Beam version, or None when it is unknown.

    Raises:
        SettingsError: the versions differ.
    """
    found = declared or image_beam_version(image)
    mine = beam_version()
    if found is None:
        _LOGGER.info("the Beam version of %s is unknown here (no local image with label %s)", image, IMAGE_BEAM_LABEL)
        return None
    if found != mine:
        raise SettingsError(
            f"the image {image} has Beam {found} (label {IMAGE_BEAM_LABEL}) but this launcher has Beam {mine}: "
            f"workers and launcher must run the same Beam; rebuild the image with BEAM_VERSION={mine}"
        )
    return found


# Beam options that are fields of the launch request's environment (FlexTemplateRuntimeEnvironment).
_ENVIRONMENT_FLAGS: dict[str, str] = {
    "--temp_location": "temp_location",
    "--staging_location": "staging_location",
    "--service_account_email": "service_account_email",
    "--num_workers": "num_workers",
    "--max_num_workers": "max_workers",
    "--machine_type": "machine_type",
    "--worker_machine_type": "machine_type",
    "--disk_size_gb": "disk_size_gb",
    "--network": "network",
    "--subnetwork": "subnetwork",
    "--sdk_container_image": "sdk_container_image",
    "--worker_region": "worker_region",
    "--worker_zone": "worker_zone",
    "--dataflow_kms_key": "kms_key_name",
}
_INTEGER_FIELDS = ("num_workers", "max_workers", "disk_size_gb")
# Beam options that say where and how to launch; they are not the job's options.
_LAUNCH_FLAGS = ("--runner", "--project", "--region", "--dataflow_endpoint", "--job_name")


def split_launch_args(beam_args: list[str]) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """Splits Beam args for a template launch: (where: project/region/endpoint/job name,
    the launch request's environment, the rest, which travel in the beam_args parameter)."""
    where = {flag.lstrip("-"): value for flag in _LAUNCH_FLAGS if (value := arg_value(beam_args, flag))}
    environment: dict[str, Any] = {}
    rest: list[str] = []
    for arg in _joined_flags(list(beam_args)):
        flag, _, value = arg.partition("=")
        if flag in _LAUNCH_FLAGS:
            continue
        if flag in _ENVIRONMENT_FLAGS and value:
            field = _ENVIRONMENT_FLAGS[flag]
            environment[field] = int(value) if field in _INTEGER_FIELDS else value
        else:
            rest.append(arg)
    return where, environment, rest
