"""The `audioflow template` commands: write the Flex Template spec, launch a job from it."""

from __future__ import annotations

import click

__all__ = ["template"]

_BEAM_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def template() -> None:
    """The Dataflow Flex Template: build its spec, run a job from it."""


@template.command("build")
@click.option("--image", required=True, help="The template image (the Dockerfile's `template` target).")
@click.option(
    "--template", "path", required=True, help="Where to write the spec: gs://bucket/spec.json or a local path."
)
@click.option("--worker-image", help="The workers' SDK container image (default: --image, which is one).")
@click.option(
    "--image-beam-version",
    help="The images' org.apache.beam.sdk.version label, checked against this Beam when no local Docker can read it.",
)
def build(path: str, image: str, worker_image: str | None, image_beam_version: str | None) -> None:
    """Write the template spec: image, SDK, and parameters generated from the ingest options table."""
    from audioflow.beam.job.template import build_spec, check_image_beam_version, write_spec

    for each in dict.fromkeys([image, worker_image or image]):
        check_image_beam_version(each, image_beam_version)
    written = write_spec(build_spec(image, worker_image=worker_image), path)
    click.echo(f"template  {written}")


@template.command("run", context_settings=_BEAM_ARGS)
@click.option("--template", "path", required=True, help="The spec's gs:// path (from `audioflow template build`).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A template parameter (repeatable).")
@click.option("--job-name", help="Dataflow job name (default: audioflow-ingest-<UTC time>). [JOB_NAME]")
@click.option("--wait", is_flag=True, help="Follow the job to the end; exit non-zero unless it succeeds.")
@click.pass_context
def run(ctx: click.Context, path: str, params: tuple[str, ...], job_name: str | None, wait: bool) -> None:
    """Launch a job from the template (flexTemplates.launch).

    Other options are Beam's, as for `ingest`: --project and --region (or PROJECT_ID and REGION),
    --dataflow_endpoint, and worker settings such as --temp_location or --max_num_workers, which go
    to the launch request's environment; any other Beam option travels in the beam_args parameter.
    """
    from audioflow.beam.job.beam_args import dataflow_args_from_env
    from audioflow.beam.job.dataflow_jobs import DataflowJobs
    from audioflow.beam.job.template import options_from_parameters, split_launch_args

    parameters: dict[str, str] = {}
    for param in params:
        name, equals, value = param.partition("=")
        if not equals or not name:
            raise click.BadParameter(f"{param!r}: expected NAME=VALUE", param_hint="--param")
        parameters[name.strip()] = value
    beam_args = dataflow_args_from_env(["--runner", "DataflowRunner", *ctx.args])
    where, environment, rest = split_launch_args(beam_args)
    if rest:
        parameters["beam_args"] = " ".join(filter(None, [parameters.get("beam_args", ""), *rest]))
    options_from_parameters(parameters)  # refuses a bad value here, naming the parameter, before Dataflow does
    jobs = DataflowJobs(where.get("project", ""), where.get("region", ""), where.get("dataflow_endpoint"))
    job = jobs.launch(path, parameters, job_name=job_name or where.get("job_name"), environment=environment)
    click.echo(f"job       {job.id} ({job.name})")
    click.echo(f"console   {job.console_url}")
    if wait:
        state = jobs.wait(job.id)
        click.echo(f"state     {state}")
        if state != "JOB_STATE_DONE":
            reasons = "; ".join(jobs.error_messages(job.id)) or "no error message"
            raise click.ClickException(f"the Dataflow job ended in {state}: {reasons}")
