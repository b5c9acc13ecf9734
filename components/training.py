"""A small audio classifier trained from an audioflow dataset (what train_audio_classifier runs).

The log-mel front end is a Keras layer inside the model, so the saved model takes raw waveforms
(float32, [batch, samples]) and nothing about feature extraction can drift between training and
serving. Data comes through the dataset reader API, like any user's training code would.
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


def _label_names(info: DatasetInfo) -> list[str]:
    if info.label_names is not None:
        return list(info.label_names)
    labels = [int(label) for label in info.labels["counts"]]
    if min(labels) < 0:
        raise DatasetError("integer labels must be >= 0 to train a classifier")
    return [str(index) for index in range(max(labels) + 1)]


def _waveforms(
    dataset: str, split: str, info: DatasetInfo, num_samples: int, batch_size: int, shuffle: bool, seed: int
):
    import tensorflow as tf

    def to_fixed_mono(example: dict[str, Any]):
        mono = tf.reduce_mean(example["audio"], axis=1)[:num_samples]
        padded = tf.pad(mono, [[0, num_samples - tf.shape(mono)[0]]])
        return tf.ensure_shape(padded, [num_samples]), example["label"]

    data = read_split(dataset, split, info=info).map(to_fixed_mono, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        data = data.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


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
        DatasetError: the dataset has no train split, no single sample rate, or unusable labels.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    info = load_dataset_info(dataset)
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
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    splits = {name: s for name, s in info.splits.items() if s.num_examples > 0}
    data = {
        name: _waveforms(dataset, name, info, num_samples, config.batch_size, name == "train", config.seed)
        for name in splits
    }
    validation = data.get("validation")
    model.fit(data["train"], epochs=config.epochs, validation_data=validation, verbose=2)

    result = TrainingResult(label_names=names, sample_rate=rate, num_samples=num_samples)
    for name, split_data in data.items():
        loss, accuracy = model.evaluate(split_data, verbose=0)
        result.metrics[name] = {"loss": float(loss), "accuracy": float(accuracy)}
    result.confusion_split = next(s for s in ("test", "validation", "train") if s in data)
    truth, predicted = [], []
    for waveforms, labels in data[result.confusion_split]:
        truth.extend(labels.numpy().tolist())
        predicted.extend(np.argmax(model(waveforms, training=False), axis=1).tolist())
    matrix = tf.math.confusion_matrix(truth, predicted, num_classes=len(names)).numpy()
    result.confusion_matrix = matrix.astype(int).tolist()

    os.makedirs(model_dir, exist_ok=True)
    result.model_file = os.path.join(model_dir, MODEL_FILE)
    model.save(result.model_file)
    with open(os.path.join(model_dir, LABELS_FILE), "w") as handle:
        json.dump({"label_names": names, "sample_rate": rate, "num_samples": num_samples}, handle, indent=2)
    _LOGGER.info("trained: %s", json.dumps(result.metrics))
    return result
