"""Shared by the KFP tests: compiling in a subprocess, and fake credentials for clients that must never reach Google."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def compile_in_subprocess(output: Path, **env: str) -> None:
    """Runs compile.py into `output`. Settings are read when the component modules are imported, so each
    variant compiles in its own process, without .env or the caller's IMAGE/PROJECT_ID/REGION."""
    clean = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "PROJECT_ID", "REGION")}
    subprocess.run(
        [sys.executable, str(REPO / "compile.py"), "--output-dir", str(output)],
        check=True,
        cwd=output.parent,
        env={**clean, "AUDIOFLOW_ENV_FILE": "/nonexistent", **env},
        capture_output=True,
        timeout=120,
    )


def write_fake_credentials(folder: Path) -> Path:
    """An authorized_user credentials file whose token is valid until 2099, so no client refreshes it."""
    path = folder / "fake-credentials.json"
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "fake",
                "client_secret": "fake",
                "refresh_token": "fake",
                "token": "fake-token",
                "expiry": "2099-01-01T00:00:00Z",
            }
        )
    )
    return path
