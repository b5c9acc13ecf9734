"""The installed audioflow version, recorded in dataset.json and used to tag the container image."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["package_version"]


def package_version() -> str:
    """The version of the installed audioflow distribution; "0.0.0" when running from an uninstalled tree."""
    try:
        return version("audioflow")
    except PackageNotFoundError:
        return "0.0.0"
