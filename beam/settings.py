"""Settings from the environment and an optional .env file (python-dotenv); command-line flags win.

Every variable read anywhere is listed and explained in .env.template. Values are never logged or
written to dataset.json: Beam runner options stay out of the recorded options.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from audioflow.beam.errors import SettingsError

__all__ = ["KNOWN_SETTINGS", "load_env", "setting"]

# Every setting audioflow reads; .env.template documents exactly these (a test keeps them equal).
KNOWN_SETTINGS = frozenset(
    {
        # where the data is
        "MANIFEST_URI", "AUDIO_ROOT", "DATASET_URI",
        # ingest options (audioflow.beam.prep.defaults)
        "SPLITS", "SAMPLE_RATE", "MONO", "SAMPLE_FORMAT", "MAX_DURATION", "MAX_FILE_SIZE", "SHARD_SIZE",
        "COMPRESSION", "LABEL_TYPE", "LABEL_COLUMN", "BLOB_COLUMN", "FETCH_CONCURRENCY", "MAX_REJECTED_FRACTION",
        "LABEL_SEPARATOR", "WINDOW_SECONDS", "HOP_SECONDS", "LAST_WINDOW", "MAX_SOURCE_DURATION", "KEEP_COLUMNS",
        "COLUMN_TYPES", "SPLIT_BY", "GROUP_PATTERN", "ALLOW_EMPTY",
        "DEDUPE", "ON_LABEL_CONFLICT", "REJECT_SILENT", "MAX_CLIPPED_FRACTION", "MIN_RMS_DBFS",
        # Beam and Dataflow (audioflow.beam.job.beam_args)
        "RUNNER", "PROJECT_ID", "REGION", "BEAM_TEMP_LOCATION", "BEAM_STAGING_LOCATION", "JOB_NAME", "NUM_WORKERS",
        "MAX_NUM_WORKERS", "MACHINE_TYPE", "DISK_SIZE", "DATAFLOW_SERVICE_ACCOUNT", "NETWORK", "SUBNETWORK", "IMAGE",
        "WORKER_IMAGE",
        # Vertex AI and the pipeline (audioflow.pipelines)
        "PIPELINE_ROOT", "SERVICE_ACCOUNT", "LABELS", "ENABLE_CACHING", "PIPELINE_DISPLAY_NAME",
        "VERTEX_API_ENDPOINT", "INGEST_CPU", "INGEST_MEMORY", "TRAIN_CPU", "TRAIN_MEMORY",
        "TRAIN_ACCELERATOR_TYPE", "TRAIN_ACCELERATOR_COUNT", "LOCAL_PIPELINE_ROOT",
    }
)  # fmt: skip


def load_env(path: str | os.PathLike | None = None) -> Path | None:
    """Loads `.env` (from `path`, $AUDIOFLOW_ENV_FILE or the working folder) without overriding
    variables already set, so the real environment wins over the file and flags win over both."""
    from dotenv import load_dotenv

    candidate = Path(path or os.environ.get("AUDIOFLOW_ENV_FILE") or ".env")
    if candidate.is_file():
        check_env_file(candidate)
        load_dotenv(candidate, override=False)
        return candidate
    return None


def check_env_file(path: Path) -> None:
    """Refuses a key that looks like a mistyped setting (SAMPLE_RAT for SAMPLE_RATE).

    Keys far from every setting are left alone: a .env file may also hold other tools' variables
    (GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST, ...).

    Raises:
        SettingsError: naming the file, the key and the setting it probably meant.
    """
    from dotenv import dotenv_values

    for key in dotenv_values(path):
        if key in KNOWN_SETTINGS:
            continue
        close = difflib.get_close_matches(key, KNOWN_SETTINGS, n=1, cutoff=0.8)
        if close:
            raise SettingsError(f"{path}: {key} is not an audioflow setting; did you mean {close[0]}?")


def setting(name: str, default: str | None = None) -> str | None:
    """An environment setting; empty values count as unset."""
    value = os.environ.get(name, "").strip()
    return value or default
