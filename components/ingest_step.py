"""What the ingest_audio component does, as plain Python the component body calls.

It runs the Beam job at the Dataset artifact's URI (gs:// on Vertex: Beam I/O needs the URI, not
the /gcs/ FUSE path the artifact's .path gives), turns dataset.json into artifact metadata, and,
on Dataflow, records the job in `gcp_resources` (the Vertex console then links to it) and cancels
the job if the step is cancelled (SIGTERM).

Two launch modes. "beam": the step runs the Beam launcher itself (any runner; this container's
Beam submits to Dataflow). "flex_template": the step starts the Flex Template at `template_path`
(`audioflow template build`) through the Dataflow REST API, so the job is launched by the template
image; the step validates the parameters first with the template's own checks, records the job,
polls it to the end and cancels it on SIGTERM, then reads dataset.json as in "beam" mode.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from audioflow.beam.errors import AudioflowError, DriftError, SettingsError, TooManyRejectedError
from audioflow.beam.format import REJECTED_FILE, DatasetInfo
from audioflow.beam.job.beam_args import arg_value, is_dataflow_runner, is_local_runner
from audioflow.beam.job.dataflow_jobs import cancel_on_sigterm
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options

__all__ = [
    "LAUNCH_MODES",
    "check_drift",
    "compare_with_previous",
    "dataflow_resources",
    "dataset_metadata",
    "quality_metrics",
    "run_ingest_step",
    "run_template_step",
]

LAUNCH_MODES = ("beam", "flex_template")

_LOGGER = logging.getLogger(__name__)


def dataset_metadata(info: DatasetInfo) -> dict[str, Any]:
    """The Dataset artifact's metadata: what a downstream step or a person needs without opening it."""
    return {
        "format": "audioflow-tfrecord",
        "format_version": info.format_version,
        "split_names": list(info.splits),
        "num_examples": {name: split.num_examples for name, split in info.splits.items()},
        "num_shards": {name: split.num_shards for name, split in info.splits.items()},
        "label_names": info.label_names,
        "num_labels": len(info.label_names) if info.label_names is not None else len(info.labels["counts"]),
        "sample_format": info.sample_format,
        "sample_rate": info.audio.get("sample_rate"),
        "num_channels": info.audio.get("num_channels"),
        "compression": info.compression,
        "total_hours": info.stats["total_hours"],
        "total_bytes": info.stats["total_bytes"],
        "num_rejected": info.rejected["num_rows"],
        "rejected_by_reason": info.rejected["by_reason"],
        "manifest_uri": info.manifest["uri"],
        "manifest_sha256": info.manifest["sha256"],
    }


def compare_with_previous(info: DatasetInfo, dataset_uri: str, previous_uri: str):
    """The drift from the previous dataset (beam/tools/compare.py), or None without one.

    Raises:
        DatasetError: the previous dataset cannot be read or is of another format_version (one line).
    """
    if not previous_uri:
        return None
    from audioflow.beam.tools.compare import compare_datasets, format_comparison, load_previous

    comparison = compare_datasets(info, load_previous(previous_uri), new_uri=dataset_uri, old_uri=previous_uri)
    _LOGGER.info("%s", format_comparison(comparison))
    return comparison


def check_drift(comparison: Any, max_label_drift: float) -> None:
    """Fails the step when the labels drifted further than `max_label_drift` (L-infinity).

    Raises:
        DriftError: naming both datasets, the distance, the limit and the labels that moved most.
    """
    if comparison is None or not comparison.over(max_label_drift):
        return
    moved = sorted(comparison.shares(), key=lambda share: -abs(share[2] - share[1]))[:3]
    detail = ", ".join(f"{label} {old:.1%} -> {new:.1%}" for label, old, new in moved)
    vanished = f"; vanished: {', '.join(comparison.vanished_labels)}" if comparison.vanished_labels else ""
    raise DriftError(
        f"label drift {comparison.label_linf:.4f} (L-infinity) from {comparison.old_uri} is over "
        f"max_label_drift {max_label_drift:g}: {detail}{vanished}"
    )


def quality_metrics(info: DatasetInfo, comparison: Any = None) -> dict[str, float]:
    """The step's quality metrics: equal audio, conflicts, leakage, flagged examples, and drift if compared."""
    metrics: dict[str, float] = {}
    quality = info.quality
    if quality is not None:
        metrics["duplicate_groups"] = quality["duplicates"]["num_groups"]
        metrics["label_conflict_groups"] = quality["label_conflicts"]["num_groups"]
        metrics["split_leakage_examples"] = quality["split_leakage"]["num_examples"]
        metrics.update({f"flagged_{flag}": entry["count"] for flag, entry in quality["flags"].items()})
    if comparison is not None:
        metrics["label_drift_linf"] = comparison.label_linf
        metrics["label_drift_js"] = comparison.label_js
    return metrics


def dataflow_resources(job_id: str, project: str, region: str) -> str:
    """A serialized GcpResources proto (JSON) naming a Dataflow job, as Google's pipeline components write it."""
    uri = f"https://dataflow.googleapis.com/v1b3/projects/{project}/locations/{region}/jobs/{job_id}"
    return json.dumps({"resources": [{"resourceType": "DataflowJob", "resourceUri": uri}]})


def run_ingest_step(
    *,
    dataset_uri: str,
    gcp_resources_path: str,
    runner: str,
    beam_args: list[str],
    launch_mode: str = "beam",
    template_path: str = "",
    **ingest_values: Any,
) -> DatasetInfo:
    """Runs ingestion for the component. `ingest_values` are build_ingest_options' keyword arguments.

    Raises:
        SettingsError: an unknown launch mode, or flex_template without a template.
    """
    if launch_mode not in LAUNCH_MODES:
        raise SettingsError(f"launch_mode {launch_mode!r} is not one of {', '.join(LAUNCH_MODES)}")
    if launch_mode == "flex_template":
        return run_template_step(
            dataset_uri=dataset_uri,
            gcp_resources_path=gcp_resources_path,
            runner=runner,
            beam_args=beam_args,
            template_path=template_path,
            **ingest_values,
        )
    options = build_ingest_options(output=dataset_uri, overwrite=True, **ingest_values)
    args = ["--runner", runner, *beam_args] if runner else list(beam_args)
    with open(gcp_resources_path, "w") as handle:
        handle.write("{}")  # replaced below when a Dataflow job starts

    def on_started(result: Any) -> None:
        if is_local_runner(arg_value(args, "--runner")) or not hasattr(result, "job_id"):
            return
        job_id = result.job_id()
        project, region = arg_value(args, "--project"), arg_value(args, "--region")
        with open(gcp_resources_path, "w") as handle:
            handle.write(dataflow_resources(job_id, project or "", region or ""))
        _LOGGER.info("Dataflow job %s started; it is cancelled if this step is cancelled", job_id)
        cancelling.enter_context(cancel_on_sigterm(result.cancel, f"Dataflow job {job_id}"))

    # The step always writes a fresh dataset at its own artifact URI, so --overwrite is implied:
    # a retried step replaces the incomplete output of the attempt before it.
    with contextlib.ExitStack() as cancelling:  # SIGTERM cancels the job from its start to the run's end
        return run_ingest(options, args, on_started=on_started)


def run_template_step(
    *,
    dataset_uri: str,
    gcp_resources_path: str,
    runner: str,
    beam_args: list[str],
    template_path: str,
    **ingest_values: Any,
) -> DatasetInfo:
    """Launches the Flex Template for the component and follows the job to its end.

    `beam_args` are split as `audioflow template run` splits them: --project, --region and
    --dataflow_endpoint say where to launch, worker settings (--temp_location, --max_num_workers, ...)
    go to the launch environment, and the rest travels in the template's beam_args parameter.

    Raises:
        SettingsError: no template, or a parameter the template would refuse (named).
        AudioflowError: Dataflow refused the launch, or the job did not end in JOB_STATE_DONE.
        TooManyRejectedError: as in "beam" mode.
    """
    from audioflow.beam.job.dataflow_jobs import DataflowJobs
    from audioflow.beam.job.template import (
        options_from_parameters,
        parameters_from_values,
        split_launch_args,
    )
    from audioflow.beam.storage import load_dataset_info

    if not template_path:
        raise SettingsError("launch_mode flex_template needs template_path: the spec from `audioflow template build`")
    if runner and not is_dataflow_runner(runner):  # e.g. the pipeline's default, DirectRunner
        _LOGGER.warning("launch_mode flex_template runs the job on Dataflow; runner %s is not used", runner)
    where, environment, rest = split_launch_args(list(beam_args))
    values = {"output": dataset_uri, "overwrite": True, **ingest_values, "beam_args": rest}
    parameters = parameters_from_values({name: value for name, value in values.items() if value not in ("", [])})
    options, _ = options_from_parameters(parameters)  # what the launcher would refuse, refused here
    with open(gcp_resources_path, "w") as handle:
        handle.write("{}")
    jobs = DataflowJobs(where.get("project", ""), where.get("region", ""), where.get("dataflow_endpoint"))
    job = jobs.launch(template_path, parameters, job_name=where.get("job_name"), environment=environment)
    with open(gcp_resources_path, "w") as handle:
        handle.write(dataflow_resources(job.id, job.project, job.region))
    _LOGGER.info("Dataflow job %s started from %s; it is cancelled if this step is cancelled", job.id, template_path)
    with cancel_on_sigterm(lambda: jobs.cancel(job.id), f"Dataflow job {job.id}"):
        state = jobs.wait(job.id)
    if state != "JOB_STATE_DONE":
        reasons = "; ".join(jobs.error_messages(job.id)) or "Dataflow gave no error message"
        raise AudioflowError(f"the Dataflow job {job.id} ended in {state}: {reasons}")
    info = load_dataset_info(options.output)
    if not info.rejected["passed"]:
        raise TooManyRejectedError(
            f"{info.rejected['num_rows']} of {info.manifest['num_rows']} rows were rejected "
            f"({info.rejected['fraction']:.2%}, over max_rejected_fraction {options.max_rejected_fraction:g}); "
            f"see {options.output.rstrip('/')}/{REJECTED_FILE}"
        )
    return info
