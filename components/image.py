"""Which container image the components run in: one image for KFP steps and Dataflow workers.

Read at compile time from the IMAGE setting (environment or .env). Without it, the default names
the project's Artifact Registry repository when PROJECT_ID and REGION are known, else a local tag;
kfp.local's SubprocessRunner ignores the image, so local runs work either way.
"""

from __future__ import annotations

from audioflow.beam.settings import setting
from audioflow.beam.version import package_version

__all__ = ["component_image"]


def component_image() -> str:
    """The image the components are compiled with."""
    explicit = setting("IMAGE")
    if explicit:
        return explicit
    project, region = setting("PROJECT_ID"), setting("REGION")
    if project and region:
        return f"{region}-docker.pkg.dev/{project}/audioflow/audioflow:{package_version()}"
    return f"audioflow:{package_version()}"
