"""read_split's fast paths give exactly what the plain ones give.

The int16 -> float32 scale is one `dequantize` pass instead of cast then multiply, and local
uncompressed shards are read unbuffered: both must be bit-identical to the plain computation, for
clips of different lengths and channel counts spread over several shards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.reader import _int16_to_float, read_split

from audio_files import expected_int16, write_audio, write_manifest


def test_int16_to_float_is_x_over_32768_for_every_value():
    every = np.arange(-32768, 32768, dtype=np.int16)
    expected = every.astype(np.float32) / np.float32(32768.0)
    fast = _int16_to_float(tf.constant(every)).numpy()
    plain = (tf.cast(tf.constant(every), tf.float32) * (1.0 / 32768.0)).numpy()
    assert fast.dtype == np.float32
    np.testing.assert_array_equal(fast.view(np.int32), expected.view(np.int32))
    np.testing.assert_array_equal(fast.view(np.int32), plain.view(np.int32))
    assert fast.min() == -1.0 and fast.max() == np.float32(32767 / 32768)


def test_int16_to_float_large_tensor_matches_plain():
    """Large inputs take Eigen's multi-threaded path."""
    samples = tf.constant(np.random.default_rng(3).integers(-32768, 32768, 3_000_000, dtype=np.int16))
    plain = tf.cast(samples, tf.float32) * (1.0 / 32768.0)
    np.testing.assert_array_equal(_int16_to_float(samples).numpy().view(np.int32), plain.numpy().view(np.int32))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("reader")
    rows = []
    for index in range(12):
        name = f"clip{index}.wav"
        write_audio(root / "audio" / name, rate=16000, seconds=0.2 + 0.05 * index, channels=1 + index % 2, seed=index)
        rows.append((str(index % 3), name))
    return root, write_manifest(root / "labels.csv", rows)


def ingest(root: Path, manifest: Path, output: Path, compression: str) -> None:
    options = build_ingest_options(
        manifest=str(manifest),
        audio_root=str(root / "audio"),
        output=str(output),
        compression=compression,
        shard_size=64 * 1024,
    )
    run_ingest(options, [])


def by_blob(dataset: str, **kwargs) -> dict[str, dict[str, np.ndarray]]:
    return {e["blob"].decode(): e for e in read_split(dataset, "train", **kwargs).as_numpy_iterator()}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_reader_route_gives_the_same_bits(corpus, tmp_path, compression):
    root, manifest = corpus
    ingest(root, manifest, tmp_path / "ds", compression)
    tensorflow = by_blob(str(tmp_path / "ds"), source="tensorflow")
    beam = by_blob(str(tmp_path / "ds"), source="beam")
    assert sorted(tensorflow) == sorted(beam) == sorted(f"clip{i}.wav" for i in range(12))
    for blob, example in tensorflow.items():
        expected = expected_int16(root / "audio" / blob).astype(np.float32) / np.float32(32768.0)
        assert example["audio"].dtype == np.float32
        assert example["audio"].shape == expected.shape == (example["num_frames"], example["num_channels"])
        np.testing.assert_array_equal(example["audio"].view(np.int32), expected.view(np.int32))
        for key, value in example.items():
            np.testing.assert_array_equal(value, beam[blob][key])
