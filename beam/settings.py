"""Settings from the environment and an optional .env file (python-dotenv); command-line flags win.

Every variable read here is listed and explained in .env.template. Values are never logged or
written to dataset.json: Beam runner options stay out of the recorded options.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

__all__ = [
    "DATAFLOW_ARG_VARIABLES",
    "HideOptionValues",
    "dataflow_args_from_env",
    "hide_option_values",
    "load_env",
    "setting",
]

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
    "IMAGE": "--sdk_container_image",
}


def load_env(path: str | os.PathLike | None = None) -> Path | None:
    """Loads `.env` (from `path`, $AUDIOFLOW_ENV_FILE or the working folder) without overriding
    variables already set, so the real environment wins over the file and flags win over both."""
    from dotenv import load_dotenv

    candidate = Path(path or os.environ.get("AUDIOFLOW_ENV_FILE") or ".env")
    if candidate.is_file():
        load_dotenv(candidate, override=False)
        return candidate
    return None


def setting(name: str, default: str | None = None) -> str | None:
    """An environment setting; empty values count as unset."""
    value = os.environ.get(name, "").strip()
    return value or default


def _has_flag(args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)


def dataflow_args_from_env(beam_args: list[str]) -> list[str]:
    """Completes Beam args with RUNNER and the Dataflow settings from the environment.

    Local runs get only the runner: project, region and the rest would be noise there.
    """
    args = list(beam_args)
    if not _has_flag(args, "--runner") and setting("RUNNER"):
        args += ["--runner", setting("RUNNER")]
    runner = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--runner"), None) or next(
        (a.split("=", 1)[1] for a in args if a.startswith("--runner=")), None
    )
    if runner in (None, "DirectRunner", "FnApiRunner"):
        return args
    for variable, flag in DATAFLOW_ARG_VARIABLES.items():
        value = setting(variable)
        if value and not _has_flag(args, flag):
            if flag == "--job_name":
                value = f"{value}-{time.strftime('%Y%m%d-%H%M%S')}"
            args += [flag, value]
    return args


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
