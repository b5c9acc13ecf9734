"""The one home of the format: our hand-written encoder/decoder agree with TensorFlow's protos."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import (
    AudioExample,
    decode_example,
    decode_fields,
    encode_example,
    parse_shard_name,
    shard_file_name,
    tf_feature_spec,
)
from audioflow.beam.format.tfrecord import frame_record, iter_records

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
examples = st.builds(
    AudioExample,
    audio=st.binary(max_size=2000),
    label=int64s,
    sample_rate=st.integers(1, 10**6),
    num_channels=st.integers(1, 64),
    num_frames=st.integers(0, 10**9),
    blob=st.text(max_size=40),
    label_name=st.none() | st.text(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(examples)
def test_encoding_round_trips_and_matches_tensorflow(example):
    data = encode_example(example)
    assert decode_example(data) == example
    proto = tf.train.Example.FromString(data).features.feature
    assert proto["audio"].bytes_list.value == [example.audio]
    assert proto["label"].int64_list.value == [example.label]
    assert proto["blob"].bytes_list.value == [example.blob.encode()]
    assert proto["num_frames"].int64_list.value == [example.num_frames]
    assert ("label_name" in proto) == (example.label_name is not None)


def _length_delimited(tag: int, payload: bytes) -> bytes:
    length, size = b"", len(payload)
    while size >= 0x80:
        length, size = length + bytes([size & 0x7F | 0x80]), size >> 7
    return bytes([tag]) + length + bytes([size]) + payload


@settings(max_examples=100, deadline=None)
@given(examples)
def test_non_canonical_encodings_decode_as_tensorflow_decodes_them(example):
    """The decoder's fast path reads only the canonical layout; anything else goes the generic way."""
    data = encode_example(example)
    unpacked_label = _length_delimited(
        0x0A, _length_delimited(0x0A, _length_delimited(0x0A, b"label") + _length_delimited(0x12, b"\x1a\x02\x08\x05"))
    )
    variants = {
        data + data: example,  # a message twice merges: the same features again
        data + b"\x10\x07": example,  # an unknown field after the features
        b"\x10\x07" + data: example,
        data + unpacked_label: dataclasses.replace(example, label=5),  # a second Features, an unpacked list
    }
    for variant, expected in variants.items():
        assert decode_example(variant) == expected
        assert tf.train.Example.FromString(variant).features.feature["label"].int64_list.value == [expected.label]


def test_decode_fields_holds_only_what_the_record_holds_and_can_view_the_audio():
    data = encode_example(AudioExample(b"\x01\x00" * 3, None, 16000, 1, 3, "a.wav", text="hi"))
    fields = decode_fields(data, audio_view=True)
    assert sorted(fields) == ["audio", "blob", "num_channels", "num_frames", "sample_rate", "text"]
    assert isinstance(fields["audio"], memoryview) and fields["audio"] == b"\x01\x00" * 3
    assert fields["audio"].obj is data  # a view of the record, not a copy
    assert decode_fields(data)["audio"] == b"\x01\x00" * 3


def test_decoder_reads_what_tensorflow_writes():
    proto = tf.train.Example()
    feature = proto.features.feature
    feature["audio"].bytes_list.value.append(b"\x01\x00\x02\x00")
    feature["blob"].bytes_list.value.append("ß.wav".encode())
    for key, value in {"label": -5, "sample_rate": 8000, "num_channels": 1, "num_frames": 2}.items():
        feature[key].int64_list.value.append(value)
    assert decode_example(proto.SerializeToString()) == AudioExample(
        audio=b"\x01\x00\x02\x00", label=-5, sample_rate=8000, num_channels=1, num_frames=2, blob="ß.wav"
    )


def test_parse_example_with_the_feature_spec():
    records = [encode_example(AudioExample(b"ab", i, 16000, 1, 1, f"{i}.wav")) for i in range(3)]
    parsed = tf.io.parse_example(tf.constant(records), tf_feature_spec(with_label_name=False))
    assert parsed["label"].numpy().tolist() == [0, 1, 2]


def test_decoder_rejects_records_of_another_format():
    with pytest.raises(ValueError, match="no feature"):
        decode_example(b"")
    with pytest.raises(ValueError):
        decode_example(b"\x0a\xff")


def test_tfrecord_framing_is_what_tensorflow_reads(tmp_path):
    payloads = [b"", b"x", np.arange(1000, dtype="<i2").tobytes()]
    path = tmp_path / "a.tfrecord"
    path.write_bytes(b"".join(frame_record(p) for p in payloads))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == payloads
    with tf.io.TFRecordWriter(str(tmp_path / "b.tfrecord")) as writer:
        for payload in payloads:
            writer.write(payload)
    assert list(iter_records(io.BytesIO((tmp_path / "b.tfrecord").read_bytes()), "b")) == payloads


def test_corrupt_framing_names_the_record():
    data = bytearray(frame_record(b"first") + frame_record(b"second record"))
    data[len(frame_record(b"first")) + 20] ^= 0xFF
    with pytest.raises(DatasetError, match=r"shard: record 1 at byte 21: data checksum"):
        list(iter_records(io.BytesIO(bytes(data)), "shard"))
    with pytest.raises(DatasetError, match="truncated"):
        list(iter_records(io.BytesIO(frame_record(b"abcdef")[:-3]), "shard"))


def test_shard_names():
    assert shard_file_name("train", 3, 12) == "train-00003-of-00012.tfrecord"
    assert shard_file_name("test", 0, 1, "gzip") == "test-00000-of-00001.tfrecord.gz"
    assert parse_shard_name("validation-00001-of-00002.tfrecord.gz") == ("validation", 1, 2)
    assert parse_shard_name("dataset.json") is None
