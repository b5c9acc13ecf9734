"""A small audio classifier trained from an audioflow dataset (what train_audio_classifier runs).

The log-mel front end is a Keras layer inside the model, so the saved model takes raw waveforms
(float32, [batch, samples]) and nothing about feature extraction can drift between training and
serving. Data comes through the dataset reader API, like any user's training code would.

Single-label datasets train a softmax classifier (one logit per class, a confusion matrix);
multi-label datasets train independent sigmoid outputs, with precision, recall and F1 per label.
Datasets without labels (unlabeled audio, text targets) are refused before anything is loaded.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import DatasetInfo
from audioflow.beam.reader import load_dataset_info, read_split

__all__ = ["TrainingConfig", "TrainingResult", "train_classifier"]

_LOGGER = logging.getLogger(__name__)
MODEL_FILE = "model.keras"
LABELS_FILE = "labels.json"


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    clip_seconds: float = 1.0
    seed: int = 0


@dataclass
class TrainingResult:
    """Per-split metrics, and a confusion matrix on the evaluation split (test, else validation, else train)."""

    label_names: list[str]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_split: str = ""
    confusion_matrix: list[list[int]] = field(default_factory=list)
    model_file: str = ""
    sample_rate: int = 0
    num_samples: int = 0
    multi_label: bool = False
    # Multi-label: {label: {precision, recall, f1, support}} on the evaluation split, at threshold 0.5.
    per_label_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def _check_trainable(dataset: str, info: DatasetInfo) -> None:
    """Refuses a dataset without labels, saying what it holds instead."""
    if info.labeled:
        return
    content = info.content or {}
    holds = "text targets (transcripts) and no labels" if content.get("text") else "unlabeled audio"
    extra = [name for name in (content.get("columns") or {})]
    kept = f", with the kept columns {extra}" if extra else ""
    raise DatasetError(
        f"{dataset} holds {holds}{kept} ({info.num_examples} examples): this step trains a classifier and "
        "needs a label column (ingest a manifest with label or labels, or pass --label-column)"
    )


def _label_names(info: DatasetInfo) -> list[str]:
    if info.label_names is not None:
        return list(info.label_names)
    labels = [int(label) for label in info.labels["counts"]]
    if min(labels) < 0:
        raise DatasetError("integer labels must be >= 0 to train a classifier")
    return [str(index) for index in range(max(labels) + 1)]


def _waveforms(
    dataset: str,
    split: str,
    info: DatasetInfo,
    num_samples: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_classes: int = 0,
):
    import tensorflow as tf

    multi_label = info.multi_label

    def to_fixed_mono(example: dict[str, Any]):
        mono = tf.reduce_mean(example["audio"], axis=1)[:num_samples]
        padded = tf.pad(mono, [[0, num_samples - tf.shape(mono)[0]]])
        if multi_label:  # the label indices as a multi-hot vector
            target = tf.reduce_max(tf.one_hot(example["labels"], num_classes, dtype=tf.float32), axis=0)
            return tf.ensure_shape(padded, [num_samples]), tf.ensure_shape(target, [num_classes])
        return tf.ensure_shape(padded, [num_samples]), example["label"]

    data = read_split(dataset, split, info=info).map(to_fixed_mono, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        data = data.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _per_label_metrics(names: list[str], truth: Any, predicted: Any) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each label, from [examples, labels] booleans."""
    per_label = {}
    for index, name in enumerate(names):
        true, pred = truth[:, index], predicted[:, index]
        hits = float((true & pred).sum())
        precision = hits / pred.sum() if pred.sum() else 0.0
        recall = hits / true.sum() if true.sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": float(true.sum()),
        }
    return per_label


def build_model(num_samples: int, sample_rate: int, num_classes: int) -> Any:
    """Waveform -> log-mel spectrogram -> small convnet -> class logits."""
    import keras

    inputs = keras.Input(shape=(num_samples,), name="waveform")
    spectrogram = keras.layers.MelSpectrogram(
        fft_length=512,
        sequence_stride=max(1, sample_rate // 100),
        num_mel_bins=64,
        sampling_rate=sample_rate,
        min_freq=20.0,
        max_freq=sample_rate / 2,
        power_to_db=True,
        name="log_mel",
    )(inputs)  # [batch, mel bins, frames]
    x = keras.layers.Reshape((*spectrogram.shape[1:], 1))(spectrogram)
    # Per-example normalisation: no running statistics to converge, so a few epochs on a small
    # dataset behave the same in training and evaluation (BatchNorm did not, here).
    x = keras.layers.LayerNormalization(axis=[1, 2, 3])(x)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="audio_classifier")


def train_classifier(dataset: str, model_dir: str, config: TrainingConfig = TrainingConfig()) -> TrainingResult:
    """Trains on `train`, evaluates every split, and saves the model and its label names in model_dir.

    Raises:
        DatasetError: the dataset has no labels (unlabeled or text-only), no train split, no single
            sample rate, or unusable labels.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    info = load_dataset_info(dataset)
    _check_trainable(dataset, info)
    rate = info.audio.get("sample_rate")
    if not rate:
        raise DatasetError(
            f"{dataset} mixes sample rates {sorted(int(rate) for rate in info.stats['sample_rates'])}; "
            "ingest with --sample-rate (pipeline parameter sample_rate) to train on it"
        )
    if info.splits.get("train") is None or info.splits["train"].num_examples == 0:
        raise DatasetError(f"{dataset} has no training examples")
    keras.utils.set_random_seed(config.seed)
    names = _label_names(info)
    num_samples = round(config.clip_seconds * rate)
    model = build_model(num_samples, rate, len(names))
    if info.multi_label:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metrics: list[Any] = [
            keras.metrics.BinaryAccuracy(name="binary_accuracy", threshold=0.0),  # logits: 0 is p = 0.5
            keras.metrics.AUC(name="auc", multi_label=True, num_labels=len(names), from_logits=True),
        ]
    else:
        loss, metrics = keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics)
    splits = {name: s for name, s in info.splits.items() if s.num_examples > 0}
    data = {
        name: _waveforms(
            dataset, name, info, num_samples, config.batch_size, name == "train", config.seed, num_classes=len(names)
        )
        for name in splits
    }
    validation = data.get("validation")
    model.fit(data["train"], epochs=config.epochs, validation_data=validation, verbose=2)

    result = TrainingResult(label_names=names, sample_rate=rate, num_samples=num_samples, multi_label=info.multi_label)
    for name, split_data in data.items():
        values = model.evaluate(split_data, verbose=0, return_dict=True)
        result.metrics[name] = {key: float(value) for key, value in values.items()}
    result.confusion_split = next(s for s in ("test", "validation", "train") if s in data)
    truth, predicted = [], []
    for waveforms, labels in data[result.confusion_split]:
        logits = model(waveforms, training=False)
        if info.multi_label:
            truth.append(labels.numpy() > 0.5)
            predicted.append(np.asarray(logits) > 0.0)
        else:
            truth.extend(labels.numpy().tolist())
            predicted.extend(np.argmax(logits, axis=1).tolist())
    if info.multi_label:
        result.per_label_metrics = _per_label_metrics(names, np.concatenate(truth), np.concatenate(predicted))
    else:
        matrix = tf.math.confusion_matrix(truth, predicted, num_classes=len(names)).numpy()
        result.confusion_matrix = matrix.astype(int).tolist()

    os.makedirs(model_dir, exist_ok=True)
    result.model_file = os.path.join(model_dir, MODEL_FILE)
    model.save(result.model_file)
    described: dict[str, Any] = {"label_names": names, "sample_rate": rate, "num_samples": num_samples}
    if info.multi_label:
        described.update(multi_label=True, output="logits: apply a sigmoid per label; p > 0.5 means present")
    with open(os.path.join(model_dir, LABELS_FILE), "w") as handle:
        json.dump(described, handle, indent=2)
    _LOGGER.info("trained: %s", json.dumps(result.metrics))
    return result
