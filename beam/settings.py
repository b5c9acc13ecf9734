"""Settings from the environment and an optional .env file (python-dotenv); command-line flags win.

Every variable read here is listed and explained in .env.template. Values are never logged or
written to dataset.json: Beam runner options stay out of the recorded options.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["DATAFLOW_ARG_VARIABLES", "dataflow_args_from_env", "load_env", "setting"]

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
