"""Reading a dataset back as a `tf.data.Dataset` (the training component and users call this).

Shards are read in parallel and parsed in batches with `tf.io.parse_example` (faster than one
record at a time); audio becomes float32 in [-1, 1] with shape [frames, channels].
"""

from __future__ import annotations

from typing import Any

from apache_beam.io.filesystems import FileSystems

from audioflow.beam.dataset_format import METADATA_FILE, DatasetInfo, tf_feature_spec
from audioflow.beam.errors import DatasetError
from audioflow.beam.storage import read_text

__all__ = ["load_dataset_info", "read_split", "shard_uris"]

_INT16_SCALE = 1.0 / 32768.0


def load_dataset_info(dataset: str) -> DatasetInfo:
    """Reads dataset.json.

    Raises:
        DatasetError: the folder has no dataset.json (an interrupted run, or not a dataset), or it is unreadable.
    """
    uri = FileSystems.join(dataset.rstrip("/"), METADATA_FILE)
    if not FileSystems.exists(uri):
        raise DatasetError(
            f"{dataset} is not a complete audioflow dataset: it has no {METADATA_FILE} "
            "(the run that wrote it did not finish, or this is the wrong folder)"
        )
    try:
        return DatasetInfo.from_json(read_text(uri))
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{uri} is not valid dataset metadata: {error}") from None


def shard_uris(dataset: str, split: str, info: DatasetInfo) -> list[str]:
    """The split's shard files, in order.

    Raises:
        DatasetError: the split does not exist.
    """
    if split not in info.splits:
        raise DatasetError(f"{dataset} has no split {split!r}; it has {sorted(info.splits)}")
    return [FileSystems.join(dataset.rstrip("/"), shard.name) for shard in info.splits[split].files]


def read_split(
    dataset: str,
    split: str,
    *,
    info: DatasetInfo | None = None,
    parse_batch_size: int = 128,
    num_parallel_reads: int | None = None,
    deterministic: bool = True,
) -> Any:
    """Returns a `tf.data.Dataset` of dicts: audio (float32 [frames, channels]), label, sample_rate,
    num_channels, num_frames, blob and, for string labels, label_name.

    Args:
        dataset: the dataset folder (local path or gs:// URI).
        split: a split name from dataset.json.
        info: the dataset's metadata if already loaded.
        parse_batch_size: records parsed together by `tf.io.parse_example`.
        num_parallel_reads: shards read at once (default: tf.data.AUTOTUNE).
        deterministic: keep record order stable; False trades order for speed.

    Raises:
        DatasetError: incomplete dataset or unknown split.
    """
    import tensorflow as tf

    info = info or load_dataset_info(dataset)
    files = shard_uris(dataset, split, info)
    sample_dtype = tf.int16 if info.sample_format == "int16" else tf.float32
    spec = tf_feature_spec(with_label_name=info.label_names is not None)
    compression = "GZIP" if info.compression == "gzip" else ""
    autotune = tf.data.AUTOTUNE

    def to_float_audio(example: dict[str, Any]) -> dict[str, Any]:
        samples = tf.io.decode_raw(example["audio"], sample_dtype, little_endian=True)
        if sample_dtype == tf.int16:
            samples = tf.cast(samples, tf.float32) * _INT16_SCALE
        shape = tf.stack([example["num_frames"], example["num_channels"]])
        return {**example, "audio": tf.reshape(samples, shape)}

    options = tf.data.Options()
    options.deterministic = deterministic
    records = tf.data.TFRecordDataset(
        tf.constant(files, dtype=tf.string), compression_type=compression,
        num_parallel_reads=num_parallel_reads or autotune,
    ) if files else tf.data.Dataset.from_tensor_slices(tf.constant([], dtype=tf.string))
    return (
        records.with_options(options)
        .batch(parse_batch_size)
        .map(lambda batch: tf.io.parse_example(batch, spec), num_parallel_calls=autotune)
        .unbatch()
        .map(to_float_audio, num_parallel_calls=autotune)
    )
