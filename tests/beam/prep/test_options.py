"""Ingest options: sizes as people write them, and every invalid value refused before a job starts."""

from __future__ import annotations

import os

import pytest

from audioflow.beam.prep.defaults import DEFAULTS
from audioflow.beam.prep.options import IngestOptions, build_ingest_options, parse_size

KIB, MIB, GIB = 1024, 1024**2, 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512", 512),
        ("0", 0),
        ("512b", 512),
        ("1k", KIB),
        ("1kb", KIB),
        ("1KiB", KIB),
        ("64M", 64 * MIB),
        ("64mb", 64 * MIB),
        ("128MiB", 128 * MIB),
        ("128MIB", 128 * MIB),
        ("1g", GIB),
        ("2GB", 2 * GIB),
        ("2GiB", 2 * GIB),
        ("1.5GiB", GIB + GIB // 2),
        ("0.5k", 512),
        (".5k", 512),
        ("1.0001k", 1024),  # a fraction of a byte is dropped
        ("64 MiB", 64 * MIB),
        (" 64 m ", 64 * MIB),
    ],
)
def test_parse_size_units_decimals_spaces_and_case(text, expected):
    assert parse_size(text) == expected


def test_parse_size_passes_integers_through():
    assert parse_size(4096) == 4096


@pytest.mark.parametrize("text", ["", "   ", "k", "MiB", "abc", "12XB", "10 TB", "1 kibibyte", "nan", "inf"])
def test_parse_size_refuses_anything_else_naming_the_value(text):
    with pytest.raises(ValueError, match="bad size") as raised:
        parse_size(text)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("text", ["-5", "-1k", "1.5.2k", "1..5M"])
def test_parse_size_refuses_negative_and_malformed_numbers(text):
    with pytest.raises(ValueError, match="bad size") as raised:
        parse_size(text)
    assert repr(text) in str(raised.value)


def test_build_ingest_options_defaults_come_from_the_table(tmp_path):
    manifest = tmp_path / "data" / "labels.csv"
    options = build_ingest_options(manifest=str(manifest), output=str(tmp_path / "out"))
    assert isinstance(options, IngestOptions)
    assert options.shard_size == parse_size(DEFAULTS["shard_size"]) == 128 * MIB
    assert options.max_file_size == parse_size(DEFAULTS["max_file_size"])
    assert options.compression == DEFAULTS["compression"]
    assert options.max_rejected_fraction == DEFAULTS["max_rejected_fraction"]
    assert options.splits.names == ("train",)
    assert options.audio.sample_rate is None and options.audio.max_duration == DEFAULTS["max_duration"]
    assert options.manifest == os.path.abspath(manifest)
    assert options.audio_root.rstrip("/") == str(manifest.parent)  # blob names resolve next to the manifest
    assert options.to_json_dict()["splits"] == {"train": 1.0}


def test_build_ingest_options_reads_sizes_and_zeros_mean_no_limit(tmp_path):
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"),
        output=str(tmp_path / "out"),
        shard_size="1KiB",  # the smallest allowed
        max_file_size="",
        max_duration=0,
        sample_rate=0,
        max_rejected_fraction=1,
    )
    assert options.shard_size == KIB
    assert options.max_file_size is None and options.audio.max_duration is None and options.audio.sample_rate is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"compression": "zip"}, "compression must be one of"),
        ({"compression": "GZIP"}, "compression must be one of"),
        ({"shard_size": "1023"}, "shard size must be at least 1 KiB"),
        ({"shard_size": "0.5k"}, "shard size must be at least 1 KiB"),
        ({"shard_size": "big"}, "bad size 'big'"),
        ({"max_file_size": "2 TiB"}, "bad size '2 TiB'"),
        ({"max_rejected_fraction": -0.01}, "max rejected fraction must be between 0 and 1"),
        ({"max_rejected_fraction": 1.5}, "max rejected fraction must be between 0 and 1"),
        ({"label_type": "float"}, "label type must be auto, int or string"),
        ({"sample_format": "int24"}, "sample format must be one of"),
        ({"splits": "train=0.8,test=0.1"}, "split fractions sum to 0.9, not 1"),
        ({"splits": "train"}, "bad split 'train'"),
        ({"splits": "my split=1"}, "bad split 'my split=1'"),
        ({"splits": "train=most"}, "bad fraction in split 'train=most'"),
        ({"splits": "train=0,test=1"}, "split 'train' has fraction 0.0"),
        ({"splits": "train=0.5,train=0.5"}, "split 'train' is given twice"),
        ({"splits": " , "}, "no splits given"),
    ],
)
def test_build_ingest_options_refuses_bad_values(tmp_path, values, message):
    with pytest.raises(ValueError, match=message):
        build_ingest_options(manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), **values)
