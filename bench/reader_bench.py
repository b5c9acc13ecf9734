"""Reader throughput: audioflow's `read_split` against the obvious reader of the tutorial's format.

Both produce batches of float32 audio [batch, frames, 1] and int64 labels with the same tf.data
practice: shards read in parallel (num_parallel_reads=AUTOTUNE) and unbuffered (local files: each
record is read straight into its string), `tf.io.parse_example` on batches of 128 records, per-record
work with num_parallel_calls=AUTOTUNE, deterministic order, batch then prefetch. The tutorial's
audio is a serialized float32 tensor, which `tf.io.parse_tensor` can only undo one record at a time;
audioflow's is raw int16 that `decode_raw` + one scaling pass turn into float32.

Noise (the machine is shared): each reader makes one untimed pass (page cache, tf.data warm-up),
then `--rounds` timed rounds of one pass each, alternating the order (AB, BA, AB, ...) so that drift
and load from other work hit both alike. Reported per reader: best, median and worst pass, the
process's own CPU seconds per pass and the cores other processes used during it (/proc/stat minus
this process). The ratio is given three ways: best/best, median/median and the median of the
per-round ratios (each pair of passes ran back to back, so it is the least sensitive to load that
comes and goes). `examples_per_s` is the best pass (the reader table in RESULTS.md shows it).

`--profile` instead times the stages of each reader (read only, + parse_example, + decode, whole
reader), alternating them the same way, to show where the time goes.

Prints one JSON object (last line).

Usage: reader_bench.py AUDIOFLOW_DATASET TUTORIAL_GLOB [--batch 64] [--rounds 7] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from audioflow.beam.format import tf_feature_spec
from audioflow.beam.prep.paths import is_remote
from audioflow.beam.reader import load_dataset_info, read_split, shard_uris

AUTOTUNE = tf.data.AUTOTUNE
SAMPLE_RATE = 16000.0
TUTORIAL_SPEC = {"audio": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}


def records(files: list[str], compression: str = "") -> Any:
    """Serialized records, read like read_split reads shards (unbuffered when local and uncompressed)."""
    unbuffered = not compression and not any(is_remote(f) for f in files)
    return tf.data.TFRecordDataset(
        files, compression_type=compression, num_parallel_reads=AUTOTUNE, buffer_size=0 if unbuffered else None
    )


def tutorial_dataset(pattern: str, batch: int, stage: str = "all") -> Any:
    """The tutorial's records read the way read_split reads audioflow's (parallel, batched parse)."""
    data = records(sorted(tf.io.gfile.glob(pattern)))
    if stage == "read":
        return data.map(lambda r: {"audio": r}).batch(batch).prefetch(AUTOTUNE)
    data = data.batch(128).map(lambda r: tf.io.parse_example(r, TUTORIAL_SPEC), num_parallel_calls=AUTOTUNE).unbatch()
    if stage == "parse":
        return data.batch(batch).prefetch(AUTOTUNE)

    def to_audio(example: dict[str, Any]) -> dict[str, Any]:
        return {"audio": tf.io.parse_tensor(example["audio"], tf.float32), "label": example["label"]}

    return data.map(to_audio, num_parallel_calls=AUTOTUNE).batch(batch).prefetch(AUTOTUNE)


def audioflow_dataset(path: str, batch: int, stage: str = "all") -> Any:
    if stage == "all":
        return read_split(path, "train").batch(batch).prefetch(AUTOTUNE)
    info = load_dataset_info(path)
    data = records(shard_uris(path, "train", info), "GZIP" if info.compression == "gzip" else "")
    if stage == "read":
        return data.map(lambda r: {"audio": r}).batch(batch).prefetch(AUTOTUNE)
    spec = tf_feature_spec(with_label_name=info.label_names is not None)
    data = data.batch(128).map(lambda r: tf.io.parse_example(r, spec), num_parallel_calls=AUTOTUNE).unbatch()
    if stage == "parse":
        return data.batch(batch).prefetch(AUTOTUNE)
    dtype = tf.int16 if info.sample_format == "int16" else tf.float32  # stage "decode": no float32 yet
    decode = lambda e: {**e, "audio": tf.io.decode_raw(e["audio"], dtype, little_endian=True)}  # noqa: E731
    return data.map(decode, num_parallel_calls=AUTOTUNE).batch(batch).prefetch(AUTOTUNE)


def _busy_seconds() -> float:
    """CPU seconds all processes have used since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_pass(dataset: Any) -> dict[str, float]:
    """One full pass: examples, seconds, examples/s, audio seconds/s, own CPU s, others' cores."""
    examples, frames = 0, 0
    busy, own, start = _busy_seconds(), _own_seconds(), time.perf_counter()
    for batch in dataset:
        shape = batch["audio"].shape
        examples += int(shape[0])
        frames += int(shape[0]) * (int(shape[1]) if len(shape) > 1 else 0)
    seconds = time.perf_counter() - start
    own_cpu = _own_seconds() - own
    others = max(0.0, (_busy_seconds() - busy - own_cpu) / seconds)
    return {
        "examples": examples,
        "seconds": seconds,
        "examples_per_s": examples / seconds,
        "audio_seconds_per_s": frames / SAMPLE_RATE / seconds,
        "cpu_seconds": own_cpu,
        "others_cores": others,
    }


def alternate(datasets: dict[str, Any], rounds: int) -> dict[str, list[dict[str, float]]]:
    """A warm-up pass each, then `rounds` rounds, the order reversed every other round."""
    names = list(datasets)
    for name in names:
        timed_pass(datasets[name])
    passes: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            passes[name].append(timed_pass(datasets[name]))
            print(
                f"round {index + 1} {name:<10} {passes[name][-1]['examples_per_s']:7.0f} examples/s, "
                f"others {passes[name][-1]['others_cores']:.2f} cores",
                file=sys.stderr,
                flush=True,
            )
    return passes


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    best = max(runs, key=lambda r: r["examples_per_s"])
    rates = [r["examples_per_s"] for r in runs]
    return {
        **best,  # examples_per_s, audio_seconds_per_s... of the best pass
        "median_examples_per_s": statistics.median(rates),
        "worst_examples_per_s": min(rates),
        "median_audio_seconds_per_s": statistics.median(r["audio_seconds_per_s"] for r in runs),
        "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "median_others_cores": statistics.median(r["others_cores"] for r in runs),
        "passes": [round(x) for x in rates],
        "passes_others_cores": [round(r["others_cores"], 2) for r in runs],
    }


def compare(args: argparse.Namespace) -> dict[str, Any]:
    passes = alternate(
        {
            "audioflow": audioflow_dataset(args.audioflow_dataset, args.batch),
            "tutorial": tutorial_dataset(args.tutorial_glob, args.batch),
        },
        args.rounds,
    )
    result: dict[str, Any] = {name: summarize(runs) for name, runs in passes.items()}
    a, t = result["audioflow"], result["tutorial"]
    paired = [
        x["examples_per_s"] / y["examples_per_s"] for x, y in zip(passes["audioflow"], passes["tutorial"], strict=True)
    ]
    result["ratio"] = {
        "best": a["examples_per_s"] / t["examples_per_s"],
        "median": a["median_examples_per_s"] / t["median_examples_per_s"],
        "median_paired": statistics.median(paired),
        "paired": [round(x, 2) for x in paired],
        "cpu_seconds": t["median_cpu_seconds"] / a["median_cpu_seconds"],
        "rounds": args.rounds,
    }
    return result


def profile(args: argparse.Namespace) -> dict[str, Any]:
    builders: dict[str, Callable[[], Any]] = {}
    for stage in ("read", "parse", "decode", "all"):
        builders[f"audioflow:{stage}"] = lambda s=stage: audioflow_dataset(args.audioflow_dataset, args.batch, s)
    for stage in ("read", "parse", "all"):
        builders[f"tutorial:{stage}"] = lambda s=stage: tutorial_dataset(args.tutorial_glob, args.batch, s)
    passes = alternate({name: build() for name, build in builders.items()}, args.rounds)
    return {
        name: {
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
            "median_others_cores": statistics.median(r["others_cores"] for r in runs),
        }
        for name, runs in passes.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audioflow_dataset")
    parser.add_argument("tutorial_glob")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="time each reader's stages instead")
    args = parser.parse_args()
    print(json.dumps(profile(args) if args.profile else compare(args)))


if __name__ == "__main__":
    main()
