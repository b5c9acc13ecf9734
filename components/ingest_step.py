"""What the ingest_audio component does, as plain Python the component body calls.

It runs the Beam job at the Dataset artifact's URI (gs:// on Vertex: Beam I/O needs the URI, not
the /gcs/ FUSE path the artifact's .path gives), turns dataset.json into artifact metadata, and,
on Dataflow, records the job in `gcp_resources` (the Vertex console then links to it) and cancels
the job if the step is cancelled (SIGTERM).
"""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

from audioflow.beam.format import DatasetInfo
from audioflow.beam.job.beam_args import arg_value, is_local_runner
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options

__all__ = ["dataflow_resources", "dataset_metadata", "run_ingest_step"]

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


def dataflow_resources(job_id: str, project: str, region: str) -> str:
    """A serialized GcpResources proto (JSON) naming a Dataflow job, as Google's pipeline components write it."""
    uri = f"https://dataflow.googleapis.com/v1b3/projects/{project}/locations/{region}/jobs/{job_id}"
    return json.dumps({"resources": [{"resourceType": "DataflowJob", "resourceUri": uri}]})


def run_ingest_step(
    *, dataset_uri: str, gcp_resources_path: str, runner: str, beam_args: list[str], **ingest_values: Any
) -> DatasetInfo:
    """Runs ingestion for the component. `ingest_values` are build_ingest_options' keyword arguments."""
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

        def cancel(signum: int, _frame: Any) -> None:
            _LOGGER.warning("step cancelled (signal %d): cancelling Dataflow job %s", signum, job_id)
            result.cancel()
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, cancel)

    # The step always writes a fresh dataset at its own artifact URI, so --overwrite is implied:
    # a retried step replaces the incomplete output of the attempt before it.
    return run_ingest(options, args, on_started=on_started)
