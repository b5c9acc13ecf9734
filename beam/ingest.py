"""Launching the ingestion job: check the output folder, pick the runner, run, check the result."""

from __future__ import annotations

import datetime
import logging
import platform
import uuid
from collections.abc import Callable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from audioflow.beam.dataflow import complete_remote_args
from audioflow.beam.dataset_format import METADATA_FILE, REJECTED_FILE, DatasetInfo, parse_shard_name
from audioflow.beam.errors import ManifestError, OutputExistsError, TooManyRejectedError
from audioflow.beam.manifest import iter_manifest_rows
from audioflow.beam.options import IngestOptions
from audioflow.beam.pipeline import IngestDataset
from audioflow.beam.storage import delete_if_exists, delete_tree, list_names, read_text

__all__ = ["LOCAL_RUNNERS", "check_manifest", "make_pipeline", "prepare_output", "run_ingest", "tool_info"]

_LOGGER = logging.getLogger(__name__)
# Names that run on this machine. Beam's DirectRunner delegates batch pipelines to the FnApiRunner,
# but first tries to download the Prism runner; naming the FnApiRunner skips that attempt.
LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner")


def tool_info() -> dict[str, Any]:
    """Versions recorded in dataset.json, so a dataset says what made it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own = version("audioflow")
    except PackageNotFoundError:
        own = "unknown"
    return {"name": "audioflow", "version": own, "beam_version": beam.__version__, "python": platform.python_version()}


def prepare_output(options: IngestOptions) -> None:
    """Refuses a folder that holds a dataset (complete or not) unless --overwrite; then clears our files.

    dataset.json is deleted first, so an interrupted overwrite never leaves a folder that looks complete.

    Raises:
        OutputExistsError: the folder holds a dataset and overwrite is off.
    """
    names = list_names(options.output) if FileSystems.exists(options.output) or "://" in options.output else []
    ours = [n for n in names if n in (METADATA_FILE, REJECTED_FILE) or parse_shard_name(n) or n.endswith(".incomplete")]
    temporaries = _temporary_folders(options.output)
    if not ours and not temporaries:
        return
    if not options.overwrite:
        state = "a dataset" if METADATA_FILE in ours else "files of an incomplete run"
        raise OutputExistsError(f"{options.output} already holds {state}; pass --overwrite to replace it")
    _LOGGER.info("--overwrite: removing the dataset in %s", options.output)
    delete_if_exists([FileSystems.join(options.output, METADATA_FILE)])
    delete_if_exists([FileSystems.join(options.output, n) for n in ours if n != METADATA_FILE])
    for folder in temporaries:
        delete_tree(folder)


def _temporary_folders(output: str) -> list[str]:
    matched = FileSystems.match([output.rstrip("/") + "/_temporary-*/**"])[0].metadata_list
    prefix = output.rstrip("/") + "/"
    return sorted({prefix + m.path[len(prefix) :].split("/", 1)[0] for m in matched})


def check_manifest(options: IngestOptions) -> None:
    """Fails fast, before any runner starts, on a missing manifest or an unrecognised header.

    Raises:
        ManifestError: naming the manifest and what is wrong with it.
    """
    if not FileSystems.exists(options.manifest):
        raise ManifestError(f"manifest {options.manifest} does not exist")
    with FileSystems.open(options.manifest, compression_type=CompressionTypes.AUTO) as stream:
        rows = iter_manifest_rows(stream, options.label_column, options.blob_column, name=options.manifest)
        next(rows, None)  # parses the header and the first row


def make_pipeline(options: IngestOptions, beam_args: list[str], run_id: str | None = None) -> beam.Pipeline:
    """Builds (does not run) the Beam pipeline for these options on the runner the Beam args name."""
    pipeline_options = PipelineOptions(complete_remote_args(beam_args))
    runner_name = pipeline_options.view_as(StandardOptions).runner
    runner: Any = runner_name
    if runner_name in LOCAL_RUNNERS:
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
        direct = pipeline_options.view_as(DirectOptions)
        if direct.direct_running_mode is None:
            direct.direct_running_mode = "in_memory"
    run_id = run_id or datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]
    pipeline = beam.Pipeline(runner=runner, options=pipeline_options)
    _ = pipeline | "IngestDataset" >> IngestDataset(options, run_id, tool_info())
    return pipeline


def load_info(output: str) -> DatasetInfo:
    return DatasetInfo.from_json(read_text(FileSystems.join(output, METADATA_FILE)))


def run_ingest(
    options: IngestOptions,
    beam_args: list[str] | None = None,
    on_started: Callable[[beam.runners.runner.PipelineResult], None] | None = None,
) -> DatasetInfo:
    """Runs the ingestion job to completion and returns the dataset's metadata.

    Args:
        options: the job's own settings.
        beam_args: Beam pipeline options (runner, project, region, ...), passed through untouched.
        on_started: called with the PipelineResult as soon as the runner has accepted the job
            (the KFP component uses it to record and cancel Dataflow jobs).

    Raises:
        OutputExistsError: see prepare_output.
        TooManyRejectedError: more rows were rejected than allowed (the dataset is still written).
        AccountingError: rows were lost (the job fails before dataset.json is written).
    """
    check_manifest(options)
    prepare_output(options)
    pipeline = make_pipeline(options, list(beam_args or []))
    result = pipeline.run()
    if on_started is not None:
        on_started(result)
    state = result.wait_until_finish()
    if state not in ("DONE", None) and str(state) != "PipelineState.DONE":
        raise RuntimeError(f"the Beam job ended in state {state}")
    info = load_info(options.output)
    if not info.rejected["passed"]:
        raise TooManyRejectedError(
            f"{info.rejected['num_rows']} of {info.manifest['num_rows']} rows were rejected "
            f"({info.rejected['fraction']:.2%}, over --max-rejected-fraction {options.max_rejected_fraction:g}); "
            f"see {FileSystems.join(options.output, REJECTED_FILE)}"
        )
    return info
