"""The pipeline commands of the `audioflow` CLI: compile, run-local, submit."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["compile_command", "run_local", "submit"]


@click.command("compile")
@click.option("--output-dir", default="build", show_default=True, type=click.Path(file_okay=False))
def compile_command(output_dir: str) -> None:
    """Compile the pipeline and components to YAML (no credentials needed)."""
    from audioflow.pipelines.compiler import compile_all

    for name, path in compile_all(output_dir).items():
        click.echo(f"{name:<24} {path}")


@click.command("run-local")
@click.option("--manifest-uri", envvar="MANIFEST_URI", required=True, help="[MANIFEST_URI]")
@click.option("--audio-root", envvar="AUDIO_ROOT", default="", help="[AUDIO_ROOT]")
@click.option("--pipeline-root", envvar="LOCAL_PIPELINE_ROOT", default="build/local-runs", show_default=True)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Any other pipeline parameter.")
def run_local(manifest_uri: str, audio_root: str, pipeline_root: str, params: tuple[str, ...]) -> None:
    """Run the whole pipeline here with kfp.local (ingest on Beam's local runner, then training)."""
    from audioflow.pipelines.compiler import compile_all
    from audioflow.pipelines.local import run_local as run
    from audioflow.pipelines.vertex import parse_parameter_values

    template = compile_all(Path(pipeline_root) / "compiled")["pipeline"]
    values = {"manifest_uri": manifest_uri, "audio_root": audio_root, **parse_parameter_values(template, list(params))}
    click.echo(run(pipeline_root, **values).describe())


@click.command()
@click.option("--template", type=click.Path(dir_okay=False, exists=True), help="Compiled YAML (default: compile now).")
@click.option("--manifest-uri", help="[MANIFEST_URI]")
@click.option("--audio-root", help="[AUDIO_ROOT]")
@click.option("--project", help="[PROJECT_ID]")
@click.option("--region", help="[REGION]")
@click.option("--pipeline-root", help="gs:// folder for artifacts. [PIPELINE_ROOT]")
@click.option("--service-account", help="[SERVICE_ACCOUNT]")
@click.option("--network", help="VPC network for the run. [NETWORK]")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Run labels. [LABELS]")
@click.option("--caching/--no-caching", default=None, help="[ENABLE_CACHING]")
@click.option("--api-endpoint", help="Vertex API endpoint. [VERTEX_API_ENDPOINT]")
@click.option("--display-name", help="[PIPELINE_DISPLAY_NAME]")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Any other pipeline parameter.")
@click.option("--wait", is_flag=True, help="Follow the run to the end; exit non-zero if it fails.")
def submit(
    template: str | None,
    manifest_uri: str | None,
    audio_root: str | None,
    labels: tuple[str, ...],
    caching: bool | None,
    params: tuple[str, ...],
    wait: bool,
    **overrides: str | None,
) -> None:
    """Submit the pipeline to Vertex AI Pipelines (with a complete .env, no arguments are needed)."""
    from audioflow.pipelines.compiler import compile_all
    from audioflow.pipelines.vertex import (
        VertexSettings,
        parse_labels,
        parse_parameter_values,
        pipeline_parameters_from_env,
        submit_pipeline,
    )

    settings = VertexSettings.from_env(
        **overrides, enable_caching=caching, labels=parse_labels(",".join(labels)) if labels else None
    )
    template_path = Path(template) if template else compile_all("build")["pipeline"]
    values = pipeline_parameters_from_env()
    values.update({k: v for k, v in (("manifest_uri", manifest_uri), ("audio_root", audio_root)) if v})
    values.update(parse_parameter_values(template_path, list(params)))
    job = submit_pipeline(template_path, settings, values)
    click.echo(f"submitted  {job.resource_name}")
    click.echo(f"console    {job._dashboard_uri()}")
    if wait:
        try:
            job.wait()
        except RuntimeError as error:
            raise click.ClickException(f"the pipeline run did not succeed: {error}") from None
        click.echo(f"state      {job.state.name}")
