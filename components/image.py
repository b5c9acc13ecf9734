"""Which container image the components run in: one image for KFP steps and Dataflow workers.

Read at compile time from the IMAGE setting (environment or .env). Without it, the default names
the project's Artifact Registry repository when PROJECT_ID and REGION are known, else a local tag;
kfp.local's SubprocessRunner ignores the image, so local runs work either way.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from audioflow.beam.settings import setting

__all__ = ["component_image", "package_version"]


def package_version() -> str:
    try:
        return version("audioflow")
    except PackageNotFoundError:
        return "0.0.0"


def component_image() -> str:
    """The image the components are compiled with."""
    explicit = setting("IMAGE")
    if explicit:
        return explicit
    project, region = setting("PROJECT_ID"), setting("REGION")
    if project and region:
        return f"{region}-docker.pkg.dev/{project}/audioflow/audioflow:{package_version()}"
    return f"audioflow:{package_version()}"
