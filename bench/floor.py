"""Contender 1, the floor: the simplest single-process loop that does the job.

soundfile -> int16 bytes -> tf.train.Example -> tf.io.TFRecordWriter, one file, no Beam, no
threads, no checks. Anything audioflow does on top (splits, duplicates, accounting, shards,
dataset.json, a Beam runner) is measured as its cost over this loop. For the resampling variant
the loop downmixes and resamples with soxr like audioflow does, so both do the same signal work
(and the downmix avoids numpy's slow per-row mean, so the floor stays a floor).

Usage: floor.py MANIFEST AUDIO_ROOT OUTPUT_FILE [--sample-rate HZ] [--mono]
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np
import soundfile as sf
import soxr
import tensorflow as tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest")
    parser.add_argument("audio_root")
    parser.add_argument("output")
    parser.add_argument("--sample-rate", type=int)
    parser.add_argument("--mono", action="store_true")
    args = parser.parse_args()

    with open(args.manifest, newline="") as handle, tf.io.TFRecordWriter(args.output) as writer:
        rows = csv.reader(handle)
        next(rows)
        for label, blob in rows:
            path = os.path.join(args.audio_root, blob)
            if args.sample_rate or args.mono:
                samples, rate = sf.read(path, dtype="float32", always_2d=True)
                if args.mono:  # column sums: mean(axis=1) runs one tiny reduction per row
                    samples = (sum(samples[:, c] for c in range(samples.shape[1])) / samples.shape[1])[:, None]
                if args.sample_rate and args.sample_rate != rate:
                    samples = soxr.resample(samples, rate, args.sample_rate, quality="HQ")
                audio = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")
            else:
                audio, rate = sf.read(path, dtype="int16", always_2d=True)
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[audio.tobytes()])),
                        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    }
                )
            )
            writer.write(example.SerializeToString())


if __name__ == "__main__":
    main()
