"""Reader throughput: audioflow's `read_split` against the obvious reader of the tutorial's format.

Both produce batches of float32 audio [batch, frames, 1] and int64 labels, reading shards in
parallel and parsing with `tf.io.parse_example` on batches (the fast path for both). The
tutorial's audio is a serialized float32 tensor, which `tf.io.parse_tensor` can only undo one
record at a time; audioflow's is raw int16 that `decode_raw` turns into float32.

Each reader makes one untimed pass (page cache, tf.data warm-up), then `--rounds` timed passes,
alternating the two so that load from other work on the machine hits both alike; the best pass
counts. Prints one JSON object.

Usage: reader_bench.py AUDIOFLOW_DATASET TUTORIAL_GLOB [--batch 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import tensorflow as tf

from audioflow.beam.reader import read_split


def tutorial_dataset(pattern: str, batch: int) -> Any:
    """The tutorial's records read the same way read_split reads audioflow's (parallel, batched parse)."""
    spec = {"audio": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    autotune = tf.data.AUTOTUNE
    files = tf.io.gfile.glob(pattern)

    def to_audio(example: dict[str, Any]) -> dict[str, Any]:
        return {"audio": tf.io.parse_tensor(example["audio"], tf.float32), "label": example["label"]}

    return (
        tf.data.TFRecordDataset(files, num_parallel_reads=autotune)
        .batch(128)
        .map(lambda records: tf.io.parse_example(records, spec), num_parallel_calls=autotune)
        .unbatch()
        .map(to_audio, num_parallel_calls=autotune)
        .batch(batch)
        .prefetch(autotune)
    )


def audioflow_dataset(path: str, batch: int) -> Any:
    return read_split(path, "train").batch(batch).prefetch(tf.data.AUTOTUNE)


def timed_pass(dataset: Any) -> tuple[int, float, float]:
    """(examples, seconds, audio seconds) for one full pass."""
    examples, audio_seconds = 0, 0.0
    start = time.perf_counter()
    for batch in dataset:
        audio = batch["audio"]
        examples += int(audio.shape[0])
        audio_seconds += float(audio.shape[0] * audio.shape[1]) / 16000.0
    return examples, time.perf_counter() - start, audio_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("audioflow_dataset")
    parser.add_argument("tutorial_glob")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    readers = {
        "audioflow": audioflow_dataset(args.audioflow_dataset, args.batch),
        "tutorial": tutorial_dataset(args.tutorial_glob, args.batch),
    }
    best: dict[str, dict[str, float]] = {}
    for dataset in readers.values():
        timed_pass(dataset)  # warm-up
    for _ in range(args.rounds):
        for name, dataset in readers.items():
            examples, seconds, audio_seconds = timed_pass(dataset)
            result = {
                "examples": examples,
                "seconds": seconds,
                "examples_per_s": examples / seconds,
                "audio_seconds_per_s": audio_seconds / seconds,
            }
            if name not in best or result["examples_per_s"] > best[name]["examples_per_s"]:
                best[name] = result
    print(json.dumps(best))


if __name__ == "__main__":
    main()
