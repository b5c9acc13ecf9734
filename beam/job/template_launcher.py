"""The Flex Template's launcher program: what the template image runs when Dataflow launches a job.

Dataflow's launcher (`/opt/google/dataflow/python_template_launcher`, from Google's template-launcher
base image) runs the file named by FLEX_TEMPLATE_PYTHON_PY_FILE with the template parameters as
`--name=value` and the launch environment as Beam options (`--runner`, `--project`, `--region`,
`--temp_location`, `--sdk_container_image`, ...). `main` validates the parameters with the same code
as `audioflow template run` (the spec's regexes, then our own checks, naming the parameter), refuses
unknown Beam options, and submits the job. On Dataflow it returns as soon as the job is created: a
Flex Template launcher must not wait for its job. On a local runner it runs the job to the end, as
`audioflow ingest` does; the tests use that to run this entry point on real audio.
"""

from __future__ import annotations

import argparse
import logging
import sys

from audioflow.beam.errors import AudioflowError
from audioflow.beam.job.template import TEMPLATE_PARAMETERS, options_from_parameters

__all__ = ["launch_from_template", "main", "parse_template_args"]

_LOGGER = logging.getLogger(__name__)


def parse_template_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Splits the launcher's argv into template parameters (as text) and the Beam args Dataflow added."""
    parser = argparse.ArgumentParser(prog="audioflow-template-launcher", add_help=False, allow_abbrev=False)
    for parameter in TEMPLATE_PARAMETERS:
        parser.add_argument(f"--{parameter.name}", dest=parameter.name, default=None)
    known, beam_args = parser.parse_known_args(argv)
    parameters = {name: value for name, value in vars(known).items() if value is not None}
    return parameters, beam_args


def launch_from_template(argv: list[str]) -> str | None:
    """Validates and submits the job; returns the Dataflow job id (None for a local run, which has finished).

    Raises:
        SettingsError: a parameter or Beam option is invalid (named in the message).
        AudioflowError: the job could not be submitted, or a local run failed.
    """
    from audioflow.beam.job.beam_args import check_beam_args, is_dataflow_runner, runner_name

    parameters, dataflow_args = parse_template_args(argv)
    options, extra_args = options_from_parameters(parameters)
    beam_args = [*dataflow_args, *extra_args]
    check_beam_args(beam_args, known_elsewhere=[f"--{parameter.name}" for parameter in TEMPLATE_PARAMETERS])
    if not is_dataflow_runner(runner_name(beam_args)):
        from audioflow.beam.job.launch import run_ingest

        info = run_ingest(options, beam_args)
        _LOGGER.info("wrote %d examples to %s", info.num_examples, options.output)
        return None
    from audioflow.beam.job.launch import make_pipeline, prepare_run

    run = prepare_run(options)  # also finds what an interrupted run left, with resume=true
    result = make_pipeline(options, beam_args, run.run_id, run.state).run()  # returns once Dataflow created the job
    # With --template_location (how some launchers collect the job), Beam writes the job instead of
    # creating it, and there is no id yet.
    try:
        job_id = result.job_id()
    except AttributeError:
        job_id = None
    _LOGGER.info("submitted Dataflow job %s; the launcher returns without waiting for it", job_id or "(written)")
    return job_id


def main(argv: list[str] | None = None) -> None:
    """Entry point: one line on stderr and exit status 2 for anything a user can fix."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        launch_from_template(list(sys.argv[1:] if argv is None else argv))
    except AudioflowError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
