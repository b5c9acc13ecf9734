"""The train_audio_classifier KFP component: reads the Dataset artifact through the reader API."""

# No `from __future__ import annotations`: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from audioflow.components.image import component_image

__all__ = ["train_audio_classifier"]


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_audio_classifier(
    dataset: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    epochs: int = 15,
    batch_size: int = 32,
    learning_rate: float = 0.001,
    clip_seconds: float = 1.0,
    seed: int = 0,
):
    """Trains a small log-mel convnet on the train split and evaluates every split (softmax for one label
    per example, sigmoid per label for multi-label datasets; datasets without labels are refused).

    Args:
        dataset: an audioflow dataset (from ingest_audio) with one sample rate.
        model: a folder holding model.keras (takes float32 waveforms [batch, samples]) and labels.json.
        metrics: loss and accuracy per split (multi-label: loss, binary accuracy and AUC per split, and
            precision, recall, F1 and support per label on the evaluation split).
        classification_metrics: the confusion matrix on test (else validation, else train); single-label only.
        epochs: passes over the train split.
        batch_size: examples per step.
        learning_rate: Adam's learning rate.
        clip_seconds: each clip is cut or zero-padded to this length.
        seed: makes shuffling and initialisation repeatable.
    """
    from audioflow.components.training import TrainingConfig, train_classifier

    result = train_classifier(
        dataset.uri,
        model.path,
        TrainingConfig(
            epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, clip_seconds=clip_seconds, seed=seed
        ),
    )
    for split, values in result.metrics.items():
        for name, value in values.items():
            metrics.log_metric(f"{split}_{name}", value)
    if result.multi_label:  # per-label metrics on the evaluation split; a confusion matrix is for one label
        for label, values in result.per_label_metrics.items():
            for name, value in values.items():
                metrics.log_metric(f"{result.confusion_split}_{name}_{label}", value)
    else:
        classification_metrics.log_confusion_matrix(result.label_names, result.confusion_matrix)
    model.metadata.update(
        {
            "framework": "keras",
            "file": "model.keras",
            "label_names": result.label_names,
            "sample_rate": result.sample_rate,
            "num_samples": result.num_samples,
            "evaluated_on": result.confusion_split,
            "multi_label": result.multi_label,
        }
    )
