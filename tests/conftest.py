"""Shared fixtures. Helpers (real audio, the GCS emulator, fake Dataflow and Vertex endpoints) live
in tests/helpers/ and are imported by their module names; fixture modules are in pytest_plugins."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins: list[str] = ["gcs_emulator", "gcs_faithful"]
