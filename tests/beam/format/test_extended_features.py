"""Format version 2: multi-label lists, text, span provenance, groups and kept columns round-trip through
our encoder and TensorFlow's own parser, and version-1 records and dataset.json stay as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.format import (
    FEATURE_TYPES,
    AudioExample,
    DatasetInfo,
    decode_example,
    encode_example,
    record_features,
    tf_feature_spec,
)

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
column_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(lambda name: name not in FEATURE_TYPES)
float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@st.composite
def extended_examples(draw: st.DrawFn) -> AudioExample:
    multi = draw(st.booleans())
    named = draw(st.booleans())
    labels = tuple(sorted(set(draw(st.lists(st.integers(0, 500), min_size=1, max_size=6))))) if multi else None
    spans = draw(st.booleans())
    kinds = draw(st.dictionaries(column_names, st.sampled_from(["str", "int", "float"]), max_size=3))
    strategy = {"str": texts, "int": int64s, "float": float32s}
    columns = tuple(sorted((name, draw(strategy[kind])) for name, kind in kinds.items()))
    return AudioExample(
        audio=draw(st.binary(max_size=200)),
        label=None if multi else draw(st.none() | int64s),
        sample_rate=draw(st.integers(1, 10**6)),
        num_channels=draw(st.integers(1, 8)),
        num_frames=draw(st.integers(0, 10**9)),
        blob=draw(texts),
        labels=labels,
        label_names=tuple(draw(texts) for _ in labels) if multi and named else None,
        text=draw(st.none() | texts),
        source_sample_rate=draw(st.integers(1, 10**6)) if spans else None,
        segment_start=draw(st.integers(0, 2**40)) if spans else None,
        segment_end=draw(st.integers(0, 2**40)) if spans else None,
        window_offset=draw(st.none() | st.integers(0, 2**40)) if spans else None,
        group=draw(st.none() | texts),
        columns=columns,
    )


@settings(max_examples=200, deadline=None)
@given(extended_examples())
def test_extended_records_round_trip_and_match_tensorflows_protos(example):
    data = encode_example(example)
    assert decode_example(data) == example
    proto = tf.train.Example.FromString(data).features.feature
    if example.labels is not None:
        assert list(proto["labels"].int64_list.value) == list(example.labels)
        assert "label" not in proto
    if example.label_names is not None:
        assert [v.decode() for v in proto["label_names"].bytes_list.value] == list(example.label_names)
    if example.text is not None:
        assert proto["text"].bytes_list.value == [example.text.encode()]
    for name, value in example.columns:
        feature = proto[name]
        if isinstance(value, str):
            assert feature.bytes_list.value == [value.encode()]
        elif isinstance(value, int):
            assert feature.int64_list.value == [value]
        else:
            assert feature.float_list.value == [value]  # float32 exactly (the strategy draws float32 values)
    assert decode_example(tf.train.Example.FromString(data).SerializeToString()) == example  # and we read TF's


def test_parse_example_with_the_extended_spec_gives_lists_text_and_columns():
    features = record_features(
        label_kind="multi_string", text=True, segments=True, windows=True, group=True,
        columns={"speaker": "str", "age": "int", "weight": "float"},
    )  # fmt: skip
    examples = [
        AudioExample(
            audio=np.arange(4, dtype="<i2").tobytes(),
            label=None,
            sample_rate=16000,
            num_channels=1,
            num_frames=4,
            blob=f"{i}.flac",
            labels=tuple(range(i + 1)),
            label_names=tuple("abc"[: i + 1]),
            text="café" * i,
            source_sample_rate=44100,
            segment_start=44100 * i,
            segment_end=44100 * i + 4,
            window_offset=i,
            group=f"speaker-{i}",
            columns=(("age", 20 + i), ("speaker", f"s{i}"), ("weight", 0.5 * i)),
        )
        for i in range(3)
    ]
    parsed = tf.io.parse_example(tf.constant([encode_example(e) for e in examples]), tf_feature_spec(features=features))
    assert parsed["labels"].to_list() == [[0], [0, 1], [0, 1, 2]]
    assert parsed["label_names"].to_list() == [[b"a"], [b"a", b"b"], [b"a", b"b", b"c"]]
    assert [t.decode() for t in parsed["text"].numpy()] == ["", "café", "cafécafé"]
    assert parsed["segment_start"].numpy().tolist() == [0, 44100, 88200]
    assert parsed["age"].numpy().tolist() == [20, 21, 22] and parsed["age"].dtype == tf.int64
    assert parsed["weight"].numpy().tolist() == [0.0, 0.5, 1.0] and parsed["weight"].dtype == tf.float32
    assert parsed["speaker"].numpy().tolist() == [b"s0", b"s1", b"s2"]


def test_a_version_1_record_is_encoded_exactly_as_version_1_did():
    """The bytes version 1 wrote for one record (hand-checked against TensorFlow's serializer)."""
    example = AudioExample(audio=b"\x01\x00", label=7, sample_rate=16000, num_channels=1, num_frames=1, blob="a.wav")
    expected = tf.train.Example(
        features=tf.train.Features(
            feature={
                "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\x01\x00"])),
                "blob": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a.wav"])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[7])),
                "num_channels": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                "num_frames": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
                "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[16000])),
            }
        )
    ).SerializeToString(deterministic=True)
    assert encode_example(example) == expected
    assert record_features(label_kind="int") == {
        name: "int64" if name not in ("audio", "blob") else "bytes"
        for name in ("audio", "blob", "label", "num_channels", "num_frames", "sample_rate")
    }


def test_kept_columns_may_not_take_a_formats_feature_name():
    example = AudioExample(b"", 1, 8000, 1, 0, "a.wav", columns=(("label", "x"),))
    with pytest.raises(ValueError, match="kept column 'label' has the name of a feature"):
        encode_example(example)


def test_version_1_and_2_metadata_are_read_and_a_later_version_is_refused(tmp_path):
    version_1 = {
        "format_version": 1,
        "created": "2025-01-01T00:00:00+00:00",
        "audio": {"sample_format": "int16"},
        "compression": "none",
        "splits": {},
        "labels": {"names": ["cat"], "counts": {}},
        "rejected": {"num_rows": 0},
        "manifest": {},
        "audio_root": "/a",
        "stats": {},
        "options": {},
        "tool": {},
    }
    old = DatasetInfo.from_json(json.dumps(version_1))
    assert old.content is None and old.features is None
    assert (old.label_kind, old.multi_label, old.labeled) == ("string", False, True)
    content = {"label_kind": "multi_int", "features": record_features(label_kind="multi_int")}
    new = DatasetInfo.from_json(json.dumps({**version_1, "format_version": 2, "content": content}))
    assert new.multi_label and new.features["labels"] == "int64_list"
    with pytest.raises(ValueError, match="format_version 3 is not supported"):
        DatasetInfo.from_json(json.dumps({**version_1, "format_version": 3}))
