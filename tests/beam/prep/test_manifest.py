"""The manifest parser: header detection, RFC 4180 details, and property-based round trips."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.errors import ManifestError
from audioflow.beam.prep.manifest import LabelPolicy, detect_columns, iter_manifest_rows


def rows_of(data: bytes, **kwargs):
    return list(iter_manifest_rows(io.BytesIO(data), **kwargs))


@pytest.mark.parametrize(
    "header",
    [["Label", "Blob Name"], ["label", "blob_name"], [" LABEL ", "blob-name"], ["class", "path"], ["target", "file"]],
)
def test_header_names_are_recognised_case_and_space_insensitively(header):
    columns = detect_columns(header)
    assert (columns.label, columns.blob, columns.split) == (0, 1, None)


def test_columns_in_any_order_with_split_column():
    columns = detect_columns(["split", "File", "Label", "speaker"])
    assert (columns.label, columns.blob, columns.split) == (2, 1, 0)


def test_explicit_column_names_win():
    columns = detect_columns(["genre", "clip", "label"], label_column="genre", blob_column="clip")
    assert (columns.label, columns.blob) == (0, 1)


def test_unrecognised_header_is_a_clear_error():
    with pytest.raises(ManifestError, match="does not name a label and a blob column"):
        rows_of(b"foo,bar\n1,a.wav\n")
    with pytest.raises(ManifestError, match="no label column 'genre'"):
        rows_of(b"label,path\n1,a.wav\n", label_column="genre")


def test_empty_manifest_is_a_clear_error():
    with pytest.raises(ManifestError, match="empty"):
        rows_of(b"\n\n")


def test_bom_crlf_quotes_blank_lines_and_line_numbers():
    data = (
        "\ufeffLabel,Blob Name\r\n"
        '2,"a, with comma.wav"\r\n'
        "\r\n"
        '1,"multi\r\nline.wav"\r\n'
        '0,"quote "" inside.wav"\r\n'
        "1, spaced name é.wav \r\n"
    ).encode()
    rows = rows_of(data)
    assert [(r.line, r.label, r.blob) for r in rows] == [
        (2, "2", "a, with comma.wav"),
        (4, "1", "multi\r\nline.wav"),
        (6, "0", 'quote " inside.wav'),
        (7, "1", "spaced name é.wav"),
    ]


def test_short_rows_are_kept_and_marked_malformed():
    rows = rows_of(b"label,path\n3\n,\n")
    assert rows[0].problem and "1 field" in rows[0].problem
    assert rows[1].problem is None and rows[1].label == "" and rows[1].blob == ""


def test_not_utf8_is_a_clear_error():
    with pytest.raises(ManifestError, match="not UTF-8"):
        rows_of(b"label,path\n1,\xff\xfe.wav\n")


def test_label_policy_integers_strings_and_forced_types():
    assert LabelPolicy.from_distinct_labels(["2", "0", "-1"]).names is None
    policy = LabelPolicy.from_distinct_labels(["dog", "cat", "", "bird"])
    assert policy.names == ("bird", "cat", "dog")
    assert policy.encode("dog") == (2, "dog")
    assert policy.encode("") is None
    forced = LabelPolicy.from_distinct_labels(["1", "x"], label_type="int")
    assert forced.encode("x") is None and forced.encode("+7") == (7, None)
    assert LabelPolicy.from_distinct_labels(["1", "2"], label_type="string").encode("2") == (1, "2")
    assert LabelPolicy(names=None).encode(str(2**63)) is None  # outside int64


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(st.tuples(cell, cell), max_size=30),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
)
def test_any_csv_written_by_the_csv_module_parses_back(rows, newline, bom):
    buffer = io.StringIO()
    # RFC 4180 quoting: any field holding a comma, quote, CR or LF is quoted.
    writer = csv.writer(buffer, lineterminator=newline, quoting=csv.QUOTE_ALL)
    writer.writerow(["Label", "Blob Name"])
    writer.writerows(rows)
    data = (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode()
    parsed = rows_of(data)
    expected = [(label.strip(), blob.strip()) for label, blob in rows]
    assert [(r.label, r.blob) for r in parsed] == expected
    assert all(r.line >= 2 for r in parsed)
    assert [r.line for r in parsed] == sorted(r.line for r in parsed)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_either_parse_or_raise_manifest_error(data):
    try:
        rows = rows_of(b"label,path\n" + data)
    except ManifestError:
        return
    assert all(isinstance(r.label, str) and isinstance(r.blob, str) for r in rows)
