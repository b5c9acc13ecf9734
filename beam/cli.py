"""The `audioflow` command: ingest, inspect, demo-data, plus the commands installed packages register
(compile, run-local and submit come from audioflow.pipelines).

Heavy imports (Beam, TensorFlow, KFP) happen inside the commands, so `--help` is instant.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click

from audioflow.beam.errors import AudioflowError, TooManyRejectedError
from audioflow.beam.prep.defaults import INGEST_OPTIONS

_LOGGER = logging.getLogger("audioflow")
# Installed packages add commands under this entry-point group (pyproject.toml); they are imported
# only when run, so `--help` stays instant.
COMMAND_GROUP = "audioflow.commands"


def _plugin_commands() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {entry.name: entry for entry in entry_points(group=COMMAND_GROUP)}


class _Group(click.Group):
    """Adds the commands other packages register (the pipeline commands) without importing them
    until one runs, and turns AudioflowError into one clear line (tracebacks only with --verbose)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *_plugin_commands()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        own = super().get_command(ctx, name)
        if own is not None:
            return own
        plugin = _plugin_commands().get(name)
        return plugin.load() if plugin is not None else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TooManyRejectedError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except click.ClickException:
            raise  # already one clear line, with click's exit code
        except AudioflowError as error:
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            raise click.ClickException(str(error)) from None
        except Exception as error:
            found = find_audioflow_error(error)
            if found is None or (ctx.obj and ctx.obj.get("verbose")):
                raise
            raise click.ClickException(str(found)) from None


def find_audioflow_error(error: BaseException) -> BaseException | None:
    """Beam re-raises errors from DoFns wrapped in its own; find ours in the chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, AudioflowError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("apache_beam", "absl", "urllib3", "google", "kfp", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
    if not verbose:  # the local runner logs a DoFn's traceback itself; ours prints the one line that matters
        for runner_logger in (
            "apache_beam.runners.common",
            "apache_beam.runners.worker",
            "apache_beam.runners.portability",
        ):
            logging.getLogger(runner_logger).setLevel(logging.CRITICAL)


@click.group(cls=_Group)
@click.option("--verbose", "-v", is_flag=True, help="Debug logging and full tracebacks.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="Settings file (default: ./.env if present).")
@click.pass_context
def main(ctx: click.Context, verbose: bool, env_file: str | None) -> None:
    """audioflow: CSV manifest + raw audio -> sharded, self-describing TFRecord dataset."""
    from audioflow.beam.settings import load_env

    load_env(env_file)
    _configure_logging(verbose)
    ctx.obj = {"verbose": verbose}


_BEAM_ARGS = {"ignore_unknown_options": True, "allow_extra_args": True}


def _table_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The ingest options of `audioflow.beam.prep.defaults`, as click options (the table is their one home)."""
    for entry in reversed(INGEST_OPTIONS):
        settings: dict[str, Any] = {"envvar": entry.env, "help": entry.help + (f" [{entry.env}]" if entry.env else "")}
        if entry.kind is bool:
            settings["is_flag"] = True
        else:
            settings["default"] = entry.default
            settings["show_default"] = entry.default not in ("", None)
            settings["type"] = click.Choice(list(entry.choices)) if entry.choices else entry.kind
        command = click.option(entry.flag, entry.name, **settings)(command)
    return command


# The ingest command's own flags, offered as suggestions when an unknown option reaches Beam.
_INGEST_FLAGS = ("--manifest", "--output", "--overwrite", "--json", *(entry.flag for entry in INGEST_OPTIONS))


@main.command(context_settings=_BEAM_ARGS)
@click.option(
    "--manifest", envvar="MANIFEST_URI", required=True, help="CSV manifest: local path or gs:// URI. [MANIFEST_URI]"
)
@click.option("--output", envvar="DATASET_URI", required=True, help="Dataset folder, local or gs://. [DATASET_URI]")
@_table_options
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --output.")
@click.option("--json", "as_json", is_flag=True, help="Print dataset.json instead of the summary.")
@click.pass_context
def ingest(ctx: click.Context, **values: Any) -> None:
    """Run the Beam job. Other options go to Beam: --runner DataflowRunner --project … --region …"""
    from audioflow.beam.job.beam_args import UnknownOptionError, check_beam_args, dataflow_args_from_env
    from audioflow.beam.job.launch import run_ingest
    from audioflow.beam.prep.options import build_ingest_options
    from audioflow.beam.tools.summary import format_summary

    as_json = values.pop("as_json")
    beam_args = dataflow_args_from_env(list(ctx.args))
    try:
        check_beam_args(beam_args, known_elsewhere=_INGEST_FLAGS)
    except UnknownOptionError as error:
        raise click.UsageError(str(error)) from None
    try:
        options = build_ingest_options(**values)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    info = run_ingest(options, beam_args)
    click.echo(info.to_json() if as_json else format_summary(options.output, info))


@main.command()
@click.argument("dataset")
@click.option("--verify", is_flag=True, help="Re-read every shard: checksums, parsing, counts.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write a self-contained HTML report.")
@click.option(
    "--compare",
    "previous",
    metavar="OLD",
    help="Compare with a previous dataset: label, duration, sample-rate and loudness drift (also in --html).",
)
@click.option(
    "--max-label-drift",
    type=click.FloatRange(0, 1),
    help="With --compare: exit 1 if any label's share of the examples moved by more than this (L-infinity).",
)
def inspect(
    dataset: str,
    verify: bool,
    as_json: bool,
    html_path: str | None,
    previous: str | None,
    max_label_drift: float | None,
) -> None:
    """Summarise a dataset; --verify re-reads it all and --compare OLD measures drift; both exit 1 on failure."""
    from audioflow.beam.reader import load_dataset_info
    from audioflow.beam.tools.summary import format_summary

    if max_label_drift is not None and previous is None:
        raise click.UsageError("--max-label-drift needs --compare OLD")
    info = load_dataset_info(dataset)
    comparison = None
    if previous is not None:
        from audioflow.beam.tools.compare import compare_datasets, load_previous

        comparison = compare_datasets(info, load_previous(previous), new_uri=dataset, old_uri=previous)
    report = None
    if verify:
        from audioflow.beam.tools.verify import verify_dataset

        report = verify_dataset(dataset, info)
    if html_path:
        from audioflow.beam.tools.report import write_html_report

        write_html_report(dataset, info, html_path, comparison=comparison)
    if as_json:
        out = json.loads(info.to_json())
        if report is not None:
            out["verify"] = {
                "ok": report.ok,
                "records_by_split": dict(report.records_by_split),
                "groups_by_split": dict(report.groups_by_split),
                "problems": report.problems,
                "warnings": report.warnings,
            }
        if comparison is not None:
            out["compare"] = {**comparison.to_json_dict(), "max_label_drift": max_label_drift}
            out["compare"]["passed"] = not comparison.over(max_label_drift)
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        click.echo(format_summary(dataset, info))
        if report is not None:
            click.echo("")
            click.echo(
                f"verify    {'ok' if report.ok else 'FAILED'}: "
                + ", ".join(f"{s}={n}" for s, n in sorted(report.records_by_split.items()))
                + " records read"
            )
            click.echo(
                "groups    "
                + ", ".join(f"{s}={n}" for s, n in sorted(report.groups_by_split.items()))
                + " (no group in two splits)"
                * (not any("more than one split" in p for p in report.problems + report.warnings))
            )
            for problem in report.problems:
                click.echo(f"          {problem}")
            for warning in report.warnings:
                click.echo(f"          warning: {warning}")
        if comparison is not None:
            from audioflow.beam.tools.compare import format_comparison

            click.echo("")
            click.echo(format_comparison(comparison, max_label_drift))
        if html_path:
            click.echo(f"report    {html_path}")
    if (report is not None and not report.ok) or (comparison is not None and comparison.over(max_label_drift)):
        sys.exit(1)


@main.command("index")
@click.argument("dataset")
def index_command(dataset: str) -> None:
    """Write record indexes (random access) for a dataset written before ingest wrote them."""
    from audioflow.beam.reader import load_dataset_info
    from audioflow.beam.tools.indexing import write_indexes

    info = write_indexes(dataset, load_dataset_info(dataset))
    num_shards = sum(split.num_shards for split in info.splits.values())
    click.echo(f"indexed   {num_shards} shards, {info.num_examples} examples: {dataset}")


@main.command("demo-data")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--clips-per-class", type=int, default=40, show_default=True)
@click.option("--multi-label", is_flag=True, help="Mixed clips labelled with every sound they hold (labels column).")
def demo_data(folder: str, clips_per_class: int, multi_label: bool) -> None:
    """Generate a small labelled demo dataset (audio + labels.csv) in FOLDER."""
    from audioflow.beam.tools.demo_data import make_demo_data, make_multi_label_demo_data

    if multi_label:
        click.echo(make_multi_label_demo_data(folder, clips_per_class * 3))
    else:
        click.echo(make_demo_data(folder, clips_per_class))


if __name__ == "__main__":
    main()
