"""The ingest_audio KFP component: a thin adapter from pipeline parameters and artifacts to beam/."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output, OutputPath

from audioflow.components.image import component_image

__all__ = ["ingest_audio"]


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ingest_audio(
    manifest_uri: str,
    audio_root: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    report: Output[HTML],
    gcp_resources: OutputPath(str),
    # KFP ships this function's source to the step, so defaults are literals; a test keeps them
    # equal to audioflow.beam.prep.defaults.COMPONENT_DEFAULTS.
    splits: str = "train=0.8,validation=0.1,test=0.1",
    sample_rate: int = 0,
    mono: bool = False,
    sample_format: str = "int16",
    max_duration: float = 1200.0,
    max_file_size: str = "2GiB",
    shard_size: str = "128MiB",
    compression: str = "none",
    label_type: str = "auto",
    label_column: str = "",
    blob_column: str = "",
    max_rejected_fraction: float = 0.01,
    fetch_concurrency: int = 0,
    label_separator: str = "",
    window_seconds: float = 0.0,
    hop_seconds: float = 0.0,
    last_window: str = "pad",
    max_source_duration: float = 86400.0,
    keep_columns: str = "",
    column_types: str = "",
    split_by: str = "",
    group_pattern: str = "",
    allow_empty: bool = False,
    resume: bool = False,
    dedupe: str = "path",
    on_label_conflict: str = "warn",
    reject_silent: bool = False,
    max_clipped_fraction: float = 1.0,
    min_rms_dbfs: float = 0.0,
    previous_dataset: Input[Dataset] = None,
    max_label_drift: float = 1.0,
    runner: str = "DirectRunner",
    beam_args: list = [],  # noqa: B006 - KFP parameters are declared with literal defaults
    launch_mode: str = "beam",
    template_path: str = "",
):
    """Ingests a CSV manifest of audio (labelled or not) into an audioflow TFRecord dataset.

    Args:
        manifest_uri: CSV with a blob column and optional label, start/end, text and other columns (gs:// or local).
        audio_root: where blob names are resolved ("" = the manifest's folder).
        dataset: the dataset folder; its metadata mirrors dataset.json.
        metrics: rows, examples written and rejected, hours of audio.
        report: an HTML report (label balance, durations, rejects, examples to listen to).
        gcp_resources: the Dataflow job, for the Vertex console (empty for local runners).
        splits: e.g. train=0.8,validation=0.1,test=0.1.
        sample_rate: resample to this rate (0 keeps each file's rate).
        mono: downmix to one channel.
        sample_format: int16 or float32.
        max_duration: reject examples (files, segments) longer than this many seconds.
        max_file_size: reject larger files (e.g. 2GiB).
        shard_size: target shard size (e.g. 128MiB).
        compression: none or gzip.
        label_type: auto, int or string.
        label_column: header of the label column, if not a usual name.
        blob_column: header of the blob column, if not a usual name.
        max_rejected_fraction: fail the step if more rows than this are rejected.
        fetch_concurrency: reads in flight per worker (0: 16 for remote audio, 4 for local files).
        label_separator: multi-label: the separator between a cell's labels, e.g. "," ("": one label per row).
        window_seconds: cut files or segments into windows of this many seconds (0: no windows).
        hop_seconds: seconds between window starts (0: the window length).
        last_window: a last, shorter window: pad, drop or keep.
        max_source_duration: with segments or windows, reject longer source files (seconds, 0: no limit).
        keep_columns: manifest columns kept as features, e.g. "speaker,age".
        column_types: types of kept columns, e.g. "age=int" (others are str).
        split_by: the column whose value keeps rows in one split, e.g. "speaker".
        group_pattern: a regular expression taking the group out of the split_by value.
        allow_empty: write an empty dataset for a manifest with no rows (refused otherwise).
        resume: keep the shards a failed attempt at this step completed (same manifest and options)
            and write only the rest; the step still replaces any other output at its artifact URI.
        dedupe: path (rows naming the same file) or content (rows whose decoded audio is equal).
        on_label_conflict: equal audio under different labels: warn, keep-first or reject-all.
        reject_silent: reject files that are digital silence.
        max_clipped_fraction: reject files with more of their samples clipped (1: no limit).
        min_rms_dbfs: reject files quieter than this RMS level in dBFS, e.g. -60 (0: no limit).
        previous_dataset: an earlier dataset to compare with (label, duration, sample-rate and loudness
            drift, in the metrics and the report).
        max_label_drift: with previous_dataset, fail the step when a label's share of the examples moved
            by more than this (L-infinity distance; 1 never fails). The dataset and report are still written.
        runner: DirectRunner (in the step's container) or DataflowRunner.
        beam_args: extra Beam options, e.g. ["--project=p", "--region=r", "--temp_location=gs://b/tmp"].
        launch_mode: "beam" runs the Beam launcher in this step; "flex_template" starts the Flex
            Template at template_path on Dataflow (--project and --region in beam_args; runner is
            not used), waits for the job and cancels it if the step is cancelled.
        template_path: the template spec's gs:// path (`audioflow template build`), for flex_template.
    """
    from audioflow.beam.tools.report import write_html_report
    from audioflow.components.ingest_step import (
        check_drift,
        compare_with_previous,
        dataset_metadata,
        quality_metrics,
        run_ingest_step,
    )

    info = run_ingest_step(
        dataset_uri=dataset.uri,
        gcp_resources_path=gcp_resources,
        runner=runner,
        beam_args=list(beam_args),
        launch_mode=launch_mode,
        template_path=template_path,
        manifest=manifest_uri,
        audio_root=audio_root,
        splits=splits,
        sample_rate=sample_rate,
        mono=mono,
        sample_format=sample_format,
        max_duration=max_duration,
        max_file_size=max_file_size,
        shard_size=shard_size,
        compression=compression,
        label_type=label_type,
        label_column=label_column,
        blob_column=blob_column,
        max_rejected_fraction=max_rejected_fraction,
        fetch_concurrency=fetch_concurrency,
        label_separator=label_separator,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        last_window=last_window,
        max_source_duration=max_source_duration,
        keep_columns=keep_columns,
        column_types=column_types,
        split_by=split_by,
        group_pattern=group_pattern,
        allow_empty=allow_empty,
        resume=resume,
        dedupe=dedupe,
        on_label_conflict=on_label_conflict,
        reject_silent=reject_silent,
        max_clipped_fraction=max_clipped_fraction,
        min_rms_dbfs=min_rms_dbfs,
    )
    previous = previous_dataset.uri if previous_dataset is not None else ""
    comparison = compare_with_previous(info, dataset.uri, previous)
    dataset.metadata.update(dataset_metadata(info))
    metrics.log_metric("manifest_rows", info.manifest["num_rows"])
    metrics.log_metric("examples_written", info.num_examples)
    metrics.log_metric("rows_rejected", info.rejected["num_rows"])
    metrics.log_metric("hours_of_audio", info.stats["total_hours"])
    for name, split in info.splits.items():
        metrics.log_metric(f"examples_{name}", split.num_examples)
    for name, value in quality_metrics(info, comparison).items():
        metrics.log_metric(name, value)
    write_html_report(dataset.uri, info, report.path, comparison=comparison)
    check_drift(comparison, max_label_drift)  # after the outputs: a failed step still shows its report


def _exec_python(component: dsl.base_component.BaseComponent) -> None:
    """Makes the step's Python replace the shell KFP starts it from.

    KFP runs a lightweight component as `sh -ec "… python3 -m kfp.dsl.executor_main …"`, so Python is
    the shell's child. When Vertex cancels a run, the SIGTERM goes to the container's PID 1: that
    shell, which ignores it, and the Dataflow job would run on, unbilled to nobody's attention. With
    `exec`, Python is PID 1 and its SIGTERM handler cancels the job (components/ingest_step.py).
    """
    container = component.component_spec.implementation.container
    launch = "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    if not any(launch in part for part in container.command):
        raise RuntimeError("KFP's launch command changed: check that SIGTERM still reaches the ingest step")
    container.command = [part.replace(launch, launch.replace("python3", "exec python3")) for part in container.command]


_exec_python(ingest_audio)
