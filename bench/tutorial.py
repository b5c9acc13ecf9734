"""Contender 2: the pipeline of the well-known Beam + Dataflow audio tutorial, reimplemented.

As the tutorial describes it: `ReadFromText(csv, skip_header_lines=1)` -> split "label,blob" ->
read the file -> `tf.audio.decode_wav` -> `tf.io.serialize_tensor` of the float32 audio plus an
int64 label in a `tf.train.Example` -> `WriteToTFRecord(prefix, ".tfrecord", num_shards=8)`, on
the default runner (DirectRunner). Nothing is tuned: this is the baseline users start from.
Its `num_shards=8` groups every serialized example in memory on the local runner, which is why
run.py runs it under a memory cap.

Usage: tutorial.py MANIFEST AUDIO_ROOT OUTPUT_PREFIX [beam args]
"""

from __future__ import annotations

import argparse

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

NUM_SHARDS = 8


def split_line(line: str) -> tuple[int, str]:
    label, blob = line.split(",")
    return int(label), blob


def make_example(element: tuple[int, str], audio_root: str) -> bytes:
    label, blob = element
    contents = tf.io.read_file(f"{audio_root}/{blob}")
    audio, _ = tf.audio.decode_wav(contents)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[tf.io.serialize_tensor(audio).numpy()])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
        )
    )
    return example.SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("manifest")
    parser.add_argument("audio_root")
    parser.add_argument("output_prefix")
    args, beam_args = parser.parse_known_args()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        _ = (
            pipeline
            | "ReadCsv" >> beam.io.ReadFromText(args.manifest, skip_header_lines=1)
            | "Split" >> beam.Map(split_line)
            | "ToExample" >> beam.Map(make_example, args.audio_root)
            | "Write"
            >> beam.io.WriteToTFRecord(args.output_prefix, file_name_suffix=".tfrecord", num_shards=NUM_SHARDS)
        )


if __name__ == "__main__":
    main()
