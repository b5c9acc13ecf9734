"""Manifest columns beyond label and blob: header recognition, kept columns and types, groups, labels lists."""

from __future__ import annotations

import io
import unicodedata

import pytest

from audioflow.beam.errors import ManifestError
from audioflow.beam.prep.columns import ColumnSpec, normalise_text, parse_column_types, parse_keep_columns, typed_value
from audioflow.beam.prep.manifest import LabelPolicy, detect_columns, iter_manifest_rows, read_manifest_header
from audioflow.beam.prep.options import build_ingest_options


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        (["path", "start", "end"], 1, 2),
        (["YTID", "start_seconds", "end_seconds", "positive_labels"], 1, 2),
        (["file", "Start Time", "End Time", "species"], 1, 2),
        (["onset", "offset", "file"], 0, 1),
    ],
)
def test_segment_columns_are_recognised_by_their_usual_names(header, start, end):
    columns = detect_columns(header, blob_column="YTID" if "YTID" in header else None)
    assert (columns.start, columns.end) == (start, end)


def test_labels_text_and_unlabeled_manifests():
    audioset = detect_columns(["YTID", "start_seconds", "end_seconds", "positive_labels"], blob_column="YTID")
    assert audioset.label == 3
    assert detect_columns(["fname", "tags"]).label == 1
    common_voice = detect_columns(["path", "sentence", "client_id", "age", "gender"])
    assert (common_voice.label, common_voice.text, common_voice.blob) == (None, 1, 0)
    assert common_voice.unused == ["client_id", "age", "gender"]
    assert detect_columns(["transcript", "audio"]).text == 0
    assert detect_columns(["file"]).label is None  # a list of files: unlabeled audio


def test_a_half_segment_header_and_missing_named_columns_are_refused():
    with pytest.raises(ManifestError, match="has a segment start column but no end column"):
        detect_columns(["file", "start", "label"])
    with pytest.raises(ManifestError, match="no --split-by column 'speaker'"):
        detect_columns(["file", "label"], split_by="speaker")
    with pytest.raises(ManifestError, match="no --keep-columns column 'age'"):
        detect_columns(["file", "label", "speaker"], keep=("speaker", "age"))


def test_rows_carry_segments_text_group_and_kept_cells():
    data = 'path,start,end,labels,sentence,client_id,age\n a.wav , 1.5 , 3 ,"dog, cat", Héllo ,c1, 42\n'
    [row] = iter_manifest_rows(io.BytesIO(data.encode()), split_by="client_id", keep=("client_id", "age"))
    assert (row.blob, row.start, row.end, row.label) == ("a.wav", "1.5", "3", "dog, cat")
    assert (row.text, row.group, row.kept) == ("Héllo", "c1", ("c1", "42"))
    short = "path,start,end,label\na.wav,1\n"
    [malformed] = iter_manifest_rows(io.BytesIO(short.encode()))
    assert malformed.problem == "row has 2 field(s); the header has 4"


def test_the_header_is_read_at_launch_with_whether_there_are_rows():
    columns, has_rows = read_manifest_header(io.BytesIO(b"label,path\n"))
    assert columns.blob == 1 and not has_rows
    assert read_manifest_header(io.BytesIO(b"label,path\n\n1,a.wav\n"))[1]


def test_kept_columns_are_checked_against_the_formats_names():
    assert parse_keep_columns(" speaker , age ") == ("speaker", "age")
    for text, message in [
        ("label", "is a feature of the format itself"),
        ("Text", "is a feature of the format itself"),
        ("segment_start", "is a feature of the format itself"),
        ("2nd", "cannot name a feature"),
        ("client id", "cannot name a feature"),
        ("a,a", "names 'a' twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_keep_columns(text)


def test_column_types():
    assert parse_column_types("age=int, weight = float", ("age", "weight", "speaker")) == {
        "age": "int",
        "weight": "float",
        "speaker": "str",
    }
    with pytest.raises(ValueError, match="is not in --keep-columns"):
        parse_column_types("height=int", ("age",))
    with pytest.raises(ValueError, match="bad entry 'age=double'"):
        parse_column_types("age=double", ("age",))
    assert (
        typed_value("-7", "int") == -7 and typed_value("1e3", "float") == 1000.0 and typed_value(" x ", "str") == " x "
    )
    for raw, kind in [
        ("4.5", "int"),
        ("", "int"),
        (str(2**63), "int"),
        ("abc", "float"),
        ("nan", "float"),
        ("1e39", "float"),
    ]:
        with pytest.raises(ValueError):
            typed_value(raw, kind)


def test_options_refuse_bad_column_settings_at_launch(tmp_path):
    manifest = str(tmp_path / "m.csv")
    with pytest.raises(ValueError, match="--column-types needs --keep-columns"):
        build_ingest_options(manifest=manifest, output="out", column_types="age=int")
    with pytest.raises(ValueError, match="is a feature of the format itself"):
        build_ingest_options(manifest=manifest, output="out", keep_columns="blob")
    with pytest.raises(ValueError, match="--group-pattern needs --split-by"):
        build_ingest_options(manifest=manifest, output="out", group_pattern="(.*)")
    with pytest.raises(ValueError, match="is not a regular expression"):
        build_ingest_options(manifest=manifest, output="out", split_by="path", group_pattern="(")
    with pytest.raises(ValueError, match="--hop-seconds needs --window-seconds"):
        build_ingest_options(manifest=manifest, output="out", hop_seconds=0.5)
    with pytest.raises(ValueError, match="--window-seconds 2000 is over --max-duration 1200"):
        build_ingest_options(manifest=manifest, output="out", window_seconds=2000)


def test_groups_come_from_the_split_by_value_and_the_pattern():
    speech_commands = ColumnSpec(split_by="path", group_pattern=r"([^/]+)_nohash_")
    assert speech_commands.group_of("yes/0a7c2a8d_nohash_1.wav") == "0a7c2a8d"
    assert speech_commands.group_of("_background_noise_/white.wav") is None
    assert ColumnSpec(split_by="speaker").group_of("  spk 1 ") == "spk 1"
    assert ColumnSpec(split_by="speaker").group_of(" ") is None


def test_text_is_nfc():
    decomposed = "cafe\u0301"
    assert normalise_text(decomposed) == "café" == unicodedata.normalize("NFC", decomposed)
    assert len(normalise_text(decomposed)) == 4


def test_multi_label_cells():
    policy = LabelPolicy.from_distinct_labels(["/m/09x0r", "/m/05zppz", "bird"], separator=",")
    assert policy.kind == "multi_string" and policy.names == ("/m/05zppz", "/m/09x0r", "bird")
    assert policy.encode_many("/m/09x0r,/m/05zppz") == ((0, 1), ("/m/05zppz", "/m/09x0r"))
    assert policy.encode_many(" bird , bird ") == ((2,), ("bird",))  # repeated labels count once
    assert policy.encode_many("") == "empty label list"
    assert policy.encode_many("bird,,/m/09x0r") == "label list 'bird,,/m/09x0r' has a blank entry"
    assert policy.split_cell("a, b,,") == ["a", "b"]
    numbers = LabelPolicy.from_distinct_labels(["3", "1"], separator=";")
    assert numbers.kind == "multi_int" and numbers.encode_many("3;1") == ((1, 3), None)
    assert LabelPolicy.from_distinct_labels([], labeled=False).kind == "none"
