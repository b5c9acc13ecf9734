"""The audio_classification pipeline: ingest_audio -> train_audio_classifier.

Resource requests and the training accelerator are set at compile time from settings (see
.env.template: INGEST_CPU, INGEST_MEMORY, TRAIN_CPU, TRAIN_MEMORY, TRAIN_ACCELERATOR_TYPE,
TRAIN_ACCELERATOR_COUNT); everything else is a pipeline parameter.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Metrics, Model

from audioflow.beam.prep.defaults import PIPELINE_DEFAULTS
from audioflow.beam.settings import setting
from audioflow.components.ingest import ingest_audio
from audioflow.components.train import train_audio_classifier

__all__ = ["PIPELINE_NAME", "audio_classification"]

PIPELINE_NAME = "audio-classification"


class Outputs(NamedTuple):
    dataset: Dataset
    report: HTML
    model: Model
    ingest_metrics: Metrics
    train_metrics: Metrics
    confusion_matrix: ClassificationMetrics


@dsl.pipeline(
    name=PIPELINE_NAME, description="Ingest labelled audio into TFRecords with Beam, then train a classifier."
)
def audio_classification(
    manifest_uri: str,
    audio_root: str = PIPELINE_DEFAULTS["audio_root"],
    splits: str = PIPELINE_DEFAULTS["splits"],
    sample_rate: int = PIPELINE_DEFAULTS["sample_rate"],
    mono: bool = PIPELINE_DEFAULTS["mono"],
    sample_format: str = PIPELINE_DEFAULTS["sample_format"],
    max_duration: float = PIPELINE_DEFAULTS["max_duration"],
    shard_size: str = PIPELINE_DEFAULTS["shard_size"],
    max_rejected_fraction: float = PIPELINE_DEFAULTS["max_rejected_fraction"],
    label_column: str = PIPELINE_DEFAULTS["label_column"],
    blob_column: str = PIPELINE_DEFAULTS["blob_column"],
    label_separator: str = PIPELINE_DEFAULTS["label_separator"],
    window_seconds: float = PIPELINE_DEFAULTS["window_seconds"],
    hop_seconds: float = PIPELINE_DEFAULTS["hop_seconds"],
    last_window: str = PIPELINE_DEFAULTS["last_window"],
    max_source_duration: float = PIPELINE_DEFAULTS["max_source_duration"],
    keep_columns: str = PIPELINE_DEFAULTS["keep_columns"],
    column_types: str = PIPELINE_DEFAULTS["column_types"],
    split_by: str = PIPELINE_DEFAULTS["split_by"],
    group_pattern: str = PIPELINE_DEFAULTS["group_pattern"],
    runner: str = "DirectRunner",
    beam_args: list = [],  # noqa: B006 - KFP parameters are declared with literal defaults
    launch_mode: str = "beam",
    template_path: str = "",
    epochs: int = 15,
    batch_size: int = 32,
    learning_rate: float = 0.001,
    clip_seconds: float = 1.0,
) -> Outputs:
    """Args:
    manifest_uri: CSV manifest (label or labels, blob name, optional start/end), gs:// or local.
    audio_root: where blob names are resolved ("" = the manifest's folder).
    splits: split fractions, e.g. train=0.8,validation=0.1,test=0.1.
    sample_rate: resample to this rate (the classifier needs one rate).
    mono: downmix to one channel.
    sample_format: int16 or float32 samples in the records.
    max_duration: reject longer examples (seconds): files, segments.
    shard_size: target TFRecord shard size.
    max_rejected_fraction: fail if more rows than this are rejected.
    label_column: header of the label column, if not a usual name.
    blob_column: header of the blob column, if not a usual name.
    label_separator: multi-label: the separator between a cell's labels, e.g. "," (trains with sigmoid outputs).
    window_seconds: cut files or segments into windows of this many seconds (0: no windows).
    hop_seconds: seconds between window starts (0: the window length).
    last_window: a last, shorter window: pad, drop or keep.
    max_source_duration: with segments or windows, reject longer source files (seconds).
    keep_columns: manifest columns kept as features.
    column_types: types of kept columns, e.g. age=int.
    split_by: the column whose value keeps rows in one split, e.g. speaker.
    group_pattern: a regular expression taking the group out of the split_by value.
    runner: DirectRunner (inside the step) or DataflowRunner.
    beam_args: extra Beam options for Dataflow (project, region, temp_location, ...).
    launch_mode: "beam" (the ingest step runs Beam) or "flex_template" (it starts the Flex Template
        at template_path on Dataflow and waits for the job).
    template_path: gs:// path of the template spec (`audioflow template build`), for flex_template.
    epochs: training epochs.
    batch_size: training batch size.
    learning_rate: Adam learning rate.
    clip_seconds: clip length the classifier sees.
    """
    ingest = ingest_audio(
        manifest_uri=manifest_uri,
        audio_root=audio_root,
        splits=splits,
        sample_rate=sample_rate,
        mono=mono,
        sample_format=sample_format,
        max_duration=max_duration,
        shard_size=shard_size,
        max_rejected_fraction=max_rejected_fraction,
        label_column=label_column,
        blob_column=blob_column,
        label_separator=label_separator,
        window_seconds=window_seconds,
        hop_seconds=hop_seconds,
        last_window=last_window,
        max_source_duration=max_source_duration,
        keep_columns=keep_columns,
        column_types=column_types,
        split_by=split_by,
        group_pattern=group_pattern,
        runner=runner,
        beam_args=beam_args,
        launch_mode=launch_mode,
        template_path=template_path,
    ).set_display_name("Ingest audio (Beam)")
    ingest.set_cpu_limit(setting("INGEST_CPU", "4")).set_memory_limit(setting("INGEST_MEMORY", "16G"))

    train = train_audio_classifier(
        dataset=ingest.outputs["dataset"],
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        clip_seconds=clip_seconds,
    ).set_display_name("Train classifier")
    train.set_cpu_limit(setting("TRAIN_CPU", "8")).set_memory_limit(setting("TRAIN_MEMORY", "32G"))
    accelerator = setting("TRAIN_ACCELERATOR_TYPE")
    if accelerator:
        train.set_accelerator_type(accelerator).set_accelerator_limit(int(setting("TRAIN_ACCELERATOR_COUNT", "1")))
    return Outputs(
        dataset=ingest.outputs["dataset"],
        report=ingest.outputs["report"],
        model=train.outputs["model"],
        ingest_metrics=ingest.outputs["metrics"],
        train_metrics=train.outputs["metrics"],
        confusion_matrix=train.outputs["classification_metrics"],
    )
