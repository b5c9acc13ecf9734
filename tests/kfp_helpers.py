"""Shared by the KFP tests: a fake-credentials file for Google clients that must never reach Google."""

from __future__ import annotations

import json
from pathlib import Path


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
