"""Submitting the compiled pipeline to Vertex AI Pipelines with the Vertex AI SDK.

Settings come from flags, then the environment, then .env (see .env.template). `--api-endpoint`
(VERTEX_API_ENDPOINT) points the SDK at another endpoint, e.g. a private one; an http:// endpoint
switches the SDK to its REST transport, which is how the tests talk to a loopback fake of Vertex.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audioflow.beam.errors import SettingsError
from audioflow.beam.job.beam_args import DATAFLOW_ARG_VARIABLES, is_local_runner
from audioflow.beam.settings import setting
from audioflow.components.image import component_image

__all__ = ["VertexSettings", "parse_parameter_values", "pipeline_parameters_from_env", "submit_pipeline"]

_LOGGER = logging.getLogger(__name__)


@dataclass
class VertexSettings:
    """Where and as whom the pipeline runs."""

    project: str
    region: str
    pipeline_root: str
    service_account: str | None = None
    network: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    enable_caching: bool | None = True
    api_endpoint: str | None = None
    display_name: str = "audio-classification"

    @classmethod
    def from_env(cls, **overrides: Any) -> VertexSettings:
        """Flags (non-None overrides) win over the environment and .env.

        Raises:
            SettingsError: naming every required setting that is missing.
        """
        values = {
            "project": setting("PROJECT_ID"),
            "region": setting("REGION"),
            "pipeline_root": setting("PIPELINE_ROOT"),
            "service_account": setting("SERVICE_ACCOUNT"),
            "network": setting("NETWORK"),
            "labels": parse_labels(setting("LABELS", "")),
            "enable_caching": _parse_bool(setting("ENABLE_CACHING", "true")),
            "api_endpoint": setting("VERTEX_API_ENDPOINT"),
            "display_name": setting("PIPELINE_DISPLAY_NAME", "audio-classification"),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        missing = [
            name
            for name, key in (("PROJECT_ID", "project"), ("REGION", "region"), ("PIPELINE_ROOT", "pipeline_root"))
            if not values[key]
        ]
        if missing:
            raise SettingsError(f"missing settings for Vertex AI: {', '.join(missing)} (set them in .env or as flags)")
        if not str(values["pipeline_root"]).startswith("gs://"):
            raise SettingsError(f"PIPELINE_ROOT must be a gs:// URI, not {values['pipeline_root']!r}")
        return cls(**values)


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"expected true or false, not {text!r}")


def parse_labels(text: str) -> dict[str, str]:
    """'team=audio,env=dev' -> {'team': 'audio', 'env': 'dev'}."""
    labels = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SettingsError(f"bad label {part!r}: expected key=value")
        labels[key.strip()] = value.strip()
    return labels


def _parameter_types(template_path: Path) -> dict[str, str]:
    spec = yaml.safe_load(template_path.read_text())
    return {
        name: definition["parameterType"] for name, definition in spec["root"]["inputDefinitions"]["parameters"].items()
    }


def parse_parameter_values(template_path: Path, pairs: list[str]) -> dict[str, Any]:
    """Turns ['epochs=5', 'mono=false'] into typed values, using the parameter types in the YAML.

    Raises:
        SettingsError: unknown parameter or a value that does not fit its type.
    """
    import json

    types = _parameter_types(template_path)
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in types:
            raise SettingsError(f"unknown pipeline parameter {name!r}; the pipeline takes {sorted(types)}")
        kind = types[name]
        try:
            if kind == "NUMBER_INTEGER":
                values[name] = int(text)
            elif kind == "NUMBER_DOUBLE":
                values[name] = float(text)
            elif kind == "BOOLEAN":
                values[name] = _parse_bool(text)
            elif kind == "LIST":
                values[name] = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v]
            else:
                values[name] = text
        except ValueError:
            raise SettingsError(f"pipeline parameter {name} takes {kind}, not {text!r}") from None
    return values


def pipeline_parameters_from_env() -> dict[str, Any]:
    """Pipeline parameters that settings provide: manifest, audio root, and Dataflow for the ingest step."""
    values: dict[str, Any] = {}
    if setting("MANIFEST_URI"):
        values["manifest_uri"] = setting("MANIFEST_URI")
    if setting("AUDIO_ROOT"):
        values["audio_root"] = setting("AUDIO_ROOT")
    runner = setting("RUNNER")
    if runner and not is_local_runner(runner):
        values["runner"] = runner
        flags: dict[str, str] = {}
        for variable, flag in DATAFLOW_ARG_VARIABLES.items():
            if setting(variable) and flag != "--job_name":
                flags.setdefault(flag, setting(variable))  # the first variable set wins for a flag
        # Without an image setting, workers run the image the step runs in: the step has no source to stage.
        flags.setdefault("--sdk_container_image", component_image())
        beam_args = [f"{flag}={value}" for flag, value in flags.items()]
        values["beam_args"] = beam_args
    return values


def submit_pipeline(template_path: Path, settings: VertexSettings, parameter_values: dict[str, Any]) -> Any:
    """Creates and submits an aiplatform.PipelineJob (call .wait() on it to follow the run).

    Raises:
        SettingsError: manifest_uri is not set.
    """
    from google.cloud import aiplatform

    if "manifest_uri" not in parameter_values:
        raise SettingsError("no manifest: set MANIFEST_URI or pass --manifest-uri")
    init: dict[str, Any] = {"project": settings.project, "location": settings.region}
    if settings.api_endpoint:
        init["api_endpoint"] = settings.api_endpoint
        if settings.api_endpoint.startswith("http://"):
            init["api_transport"] = "rest"
    aiplatform.init(**init)
    job = aiplatform.PipelineJob(
        display_name=settings.display_name,
        template_path=str(template_path),
        pipeline_root=settings.pipeline_root,
        parameter_values=parameter_values,
        enable_caching=settings.enable_caching,
        labels=settings.labels or None,
        project=settings.project,
        location=settings.region,
    )
    job.submit(service_account=settings.service_account, network=settings.network)
    _LOGGER.info("submitted %s", job.resource_name)
    return job
