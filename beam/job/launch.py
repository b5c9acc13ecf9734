"""Launching the ingestion job: check the output folder, pick the runner, run, check the result."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineState

from audioflow.beam.errors import (
    AudioflowError,
    ManifestError,
    OutputExistsError,
    SettingsError,
    TooManyRejectedError,
)
from audioflow.beam.format import METADATA_FILE, REJECTED_FILE, DatasetInfo, parse_shard_name
from audioflow.beam.format.index import INDEX_SUFFIX
from audioflow.beam.format.quality import QUALITY_FILE
from audioflow.beam.job.beam_args import (
    check_beam_args,
    complete_remote_args,
    hide_option_values,
    is_local_runner,
    runner_name,
)
from audioflow.beam.job.graph import IngestDataset
from audioflow.beam.job.resume import RunState, find_resumable, manifest_sha256
from audioflow.beam.prep.manifest import HashingReader, read_manifest_header
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import is_remote
from audioflow.beam.storage import INCOMPLETE_SUFFIX, delete_if_exists, delete_tree, list_names, load_dataset_info
from audioflow.beam.version import package_version

__all__ = [
    "PreparedRun",
    "check_manifest",
    "make_pipeline",
    "new_run_id",
    "prepare_output",
    "prepare_run",
    "run_ingest",
    "tool_info",
]

_LOGGER = logging.getLogger(__name__)


def tool_info() -> dict[str, Any]:
    """Versions recorded in dataset.json, so a dataset says what made it."""
    return {
        "name": "audioflow",
        "version": package_version(),
        "beam_version": beam.__version__,
        "python": platform.python_version(),
    }


def prepare_output(options: IngestOptions, state: RunState | None = None) -> str | None:
    """Refuses a folder that holds a dataset (complete or not) unless --overwrite; then clears our files.

    With --resume and `state`, the temporary folder of an interrupted run with that state is kept,
    and everything else an incomplete run left is cleared without --overwrite; a complete dataset is
    still refused. dataset.json is deleted first, so an interrupted overwrite never leaves a folder
    that looks complete.

    Returns:
        The kept temporary folder, or None.

    Raises:
        OutputExistsError: the folder holds a dataset and overwrite is off.
        SettingsError: the folder cannot be listed (no such bucket, no permission).
    """
    try:
        # Object stores are listed without exists(): Beam's GCS refuses `gs://bucket` (a bucket root).
        names = list_names(options.output) if "://" in options.output or FileSystems.exists(options.output) else []
        temporaries = _temporary_folders(options.output)
    except BeamIOError as error:  # e.g. the bucket does not exist, or we may not list it
        raise SettingsError(f"cannot list the output folder {options.output}: {error}") from None
    ours = [
        n
        for n in names
        if n in (METADATA_FILE, REJECTED_FILE, QUALITY_FILE)
        or parse_shard_name(n.removesuffix(INDEX_SUFFIX))  # shards and their record indexes
        or n.endswith(INCOMPLETE_SUFFIX)
    ]
    if not ours and not temporaries:
        return None
    complete = METADATA_FILE in ours
    if options.resume and complete and not options.overwrite:
        raise OutputExistsError(
            f"{options.output} already holds a complete dataset; --resume only continues an interrupted run "
            "(pass --overwrite to replace the dataset)"
        )
    if not options.overwrite and not options.resume:
        state_of = "a dataset" if complete else "files of an incomplete run"
        raise OutputExistsError(f"{options.output} already holds {state_of}; pass --overwrite to replace it")
    kept = find_resumable(temporaries, state) if options.resume and state is not None else None
    if options.overwrite:
        _LOGGER.info("--overwrite: removing the dataset in %s", options.output)
    delete_if_exists([FileSystems.join(options.output, METADATA_FILE)])
    delete_if_exists([FileSystems.join(options.output, n) for n in ours if n != METADATA_FILE])
    for folder in temporaries:
        if folder != kept:
            delete_tree(folder)
    return kept


def _temporary_folders(output: str) -> list[str]:
    """The `_temporary-*` folders earlier runs left. An object store shows them through their files; a
    local folder is also listed directly, since a run killed after Finalize renamed every shard leaves
    an empty one, which matching files never finds (it would stay in the dataset forever)."""
    matched = FileSystems.match([output.rstrip("/") + "/_temporary-*/**"])[0].metadata_list
    prefix = output.rstrip("/") + "/"
    folders = {prefix + m.path[len(prefix) :].split("/", 1)[0] for m in matched}
    if not is_remote(output) and os.path.isdir(output):
        folders.update(prefix + name for name in os.listdir(output) if name.startswith("_temporary-"))
    return sorted(folders)


def check_manifest(options: IngestOptions) -> None:
    """Fails fast, before any runner starts, on a missing manifest, an unrecognised header, a
    --split-by or --keep-columns column the header lacks, or no data rows (unless --allow-empty).

    Raises:
        ManifestError: naming the manifest and what is wrong with it.
    """
    if not FileSystems.exists(options.manifest):
        raise ManifestError(f"manifest {options.manifest} does not exist")
    with FileSystems.open(options.manifest, compression_type=CompressionTypes.AUTO) as stream:
        # HashingReader makes Beam's CompressedFile (.gz manifests) a full io stream, as in ReadManifest.
        columns, has_rows = read_manifest_header(
            HashingReader(stream),
            options.label_column,
            options.blob_column,
            name=options.manifest,
            split_by=options.columns.split_by,
            keep=options.columns.keep,
        )
    if not has_rows and not options.allow_empty:
        raise ManifestError(
            f"manifest {options.manifest} has a header and no data rows; pass --allow-empty to write an empty dataset"
        )
    if columns.label is None and columns.unused:
        # Unlabeled audio is a list of files; a column nobody reads is more likely a misnamed label.
        raise ManifestError(
            f"manifest {options.manifest} has no label column, and these columns are not used: "
            f"{', '.join(columns.unused)}. Name the label column with --label-column, keep the others "
            "with --keep-columns, or leave only the audio column to ingest unlabeled audio"
        )
    if (options.dedupe != "path" or options.on_label_conflict != "warn") and (
        columns.start is not None or columns.text is not None
    ):
        # Dropping a row after it is written rewrites its shard; the counts of segments and texts a
        # shard carries (dataset.json's content.stats) are not rebuilt, so only whole files may be dropped.
        raise ManifestError(
            f"manifest {options.manifest} has segment or text columns: --dedupe content and "
            "--on-label-conflict keep-first/reject-all drop rows of whole files only; equal audio is still "
            "reported with --dedupe path and --on-label-conflict warn"
        )
    if columns.label is None:
        _LOGGER.info("the manifest has no label column: the audio is ingested unlabeled")
    if columns.unused:
        _LOGGER.info("manifest columns not used: %s (--keep-columns keeps them as features)", columns.unused)


class PreparedRun(NamedTuple):
    """Where a run writes (`_temporary-<run_id>` in the output) and what its shards depend on."""

    run_id: str
    state: RunState


def prepare_run(options: IngestOptions) -> PreparedRun:
    """Checks the manifest and prepares the output folder (prepare_output) for a new or resumed run.

    Raises:
        ManifestError, OutputExistsError, SettingsError: see check_manifest and prepare_output.
    """
    check_manifest(options)
    state = RunState.of(options, manifest_sha256(options.manifest))
    kept = prepare_output(options, state)
    if kept is None:
        return PreparedRun(new_run_id(), state)
    _LOGGER.info("--resume: continuing the interrupted run in %s", kept)
    return PreparedRun(kept.rstrip("/").rsplit("/_temporary-", 1)[1], state)


def new_run_id() -> str:
    """A new run's id: its temporary folder is `_temporary-<run id>` in the output."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:8]


def make_pipeline(
    options: IngestOptions, beam_args: list[str], run_id: str | None = None, run_state: RunState | None = None
) -> beam.Pipeline:
    """Builds (does not run) the Beam pipeline for these options on the runner the Beam args name.

    With `run_state`, completed shard units are recorded in the run's temporary folder (see resume.py).
    """
    hide_option_values()  # before Beam parses the args: it logs unknown ones with their values
    pipeline_options = PipelineOptions(complete_remote_args(beam_args))
    local = is_local_runner(pipeline_options.view_as(StandardOptions).runner)
    runner: Any = pipeline_options.view_as(StandardOptions).runner
    if local:
        # Beam's DirectRunner delegates batch pipelines to the FnApiRunner, but first tries to
        # download the Prism runner; naming the FnApiRunner skips that attempt.
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        runner = FnApiRunner()
        direct = pipeline_options.view_as(DirectOptions)
        if direct.direct_running_mode is None:
            direct.direct_running_mode = "in_memory"
    run_id = run_id or new_run_id()
    pipeline = beam.Pipeline(runner=runner, options=pipeline_options)
    ingest = IngestDataset(options, run_id, tool_info(), spread_rows=not local, run_state=run_state)
    _ = pipeline | "IngestDataset" >> ingest
    return pipeline


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

    With --resume, the shard units an interrupted run of the same manifest and options completed are
    kept, and only the rest are written (resume.py).

    Raises:
        OutputExistsError: see prepare_output.
        TooManyRejectedError: more rows were rejected than allowed (the dataset is still written).
        AccountingError: rows were lost (the job fails before dataset.json is written).
    """
    args = list(beam_args or [])
    check_beam_args(args)
    run = prepare_run(options)
    runner = runner_name(args)
    try:
        pipeline = make_pipeline(options, args, run.run_id, run.state)  # remote runners validate their options here
        result = pipeline.run()
        if on_started is not None:
            on_started(result)
        state = result.wait_until_finish()
    except Exception as error:
        if is_local_runner(runner):  # local: our errors are found in the chain; anything else is a bug to show
            raise
        # A remote runner's failure (job failed, creation refused): its message is what the user needs;
        # the traceback is kept as the cause for --verbose.
        raise AudioflowError(f"the {runner} job did not complete: {type(error).__name__}: {error}") from error
    if state != PipelineState.DONE:
        raise AudioflowError(f"the Beam job ended in state {state}, not DONE; the dataset is incomplete")
    info = load_dataset_info(options.output)  # remote runners hand back no PCollection contents
    crossing = ((info.content or {}).get("grouping") or {}).get("crossing") or {}
    if crossing.get("num_groups"):
        _LOGGER.warning(
            "the manifest's split column puts %d group(s) in more than one split, e.g. %s: their examples leak "
            "between splits (dataset.json: content.grouping.crossing)",
            crossing["num_groups"],
            ", ".join(f"{item['group']!r} in {'/'.join(item['splits'])}" for item in crossing["examples"][:5]),
        )
    if not info.rejected["passed"]:
        raise TooManyRejectedError(
            f"{info.rejected['num_rows']} of {info.manifest['num_rows']} rows were rejected "
            f"({info.rejected['fraction']:.2%}, over --max-rejected-fraction {options.max_rejected_fraction:g}); "
            f"see {FileSystems.join(options.output, REJECTED_FILE)}"
        )
    return info
