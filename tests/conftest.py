"""Shared fixtures. Fixture modules of their own are listed in pytest_plugins."""

from __future__ import annotations

import os

# Beam's default local runner would first try to download Prism; tests never reach the network.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins: list[str] = ["gcs_emulator"]
