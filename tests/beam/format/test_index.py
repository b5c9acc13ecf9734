"""Record indexes: the sidecar round-trips, and no index that disagrees with its shard is trusted."""

from __future__ import annotations

import io
import struct
from array import array

import google_crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import DatasetInfo
from audioflow.beam.format.index import (
    INDEX_SUFFIX,
    RecordIndex,
    decode_index,
    index_file_name,
    index_section,
)
from audioflow.beam.format.tfrecord import check_record, frame_record, iter_records


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(16, 10**7), max_size=50))
def test_index_round_trips_at_8_bytes_a_record(sizes):
    index = RecordIndex.from_record_sizes(sizes)
    data = index.encode()
    assert len(data) == 28 + 8 * len(sizes)
    decoded = decode_index(data, "x.index", num_records=len(sizes), shard_size=sum(sizes))
    assert list(decoded.offsets) == list(index.offsets) and decoded.shard_size == sum(sizes)
    assert [decoded.span(i)[1] for i in range(len(sizes))] == sizes
    assert decoded.mismatch(index) is None


def test_offsets_point_at_the_records_of_a_real_shard():
    payloads = [b"a" * 10, b"", b"xyz" * 1000]
    shard = b"".join(frame_record(p) for p in payloads)
    index = RecordIndex.from_record_sizes(len(p) + 16 for p in payloads)
    for number, payload in enumerate(payloads):
        start, length = index.span(number)
        framed = shard[start : start + length]
        assert check_record(framed[:12], framed[12:-4], framed[-4:], "s", expected_length=len(payload)) == payload
    assert list(iter_records(io.BytesIO(shard), "s")) == payloads


def test_names_and_dataset_json_section():
    assert index_file_name("train-00000-of-00004.tfrecord") == "train-00000-of-00004.tfrecord" + INDEX_SUFFIX
    assert index_section(["b.tfrecord", "a.tfrecord"]) == {
        "version": 1,
        "files": {"a.tfrecord": "a.tfrecord.index", "b.tfrecord": "b.tfrecord.index"},
    }


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", google_crc32c.value(body))


def _raw_index(offsets: list[int], shard_size: int) -> bytes:
    """An index with a valid checksum around any offsets, valid or not."""
    return _with_crc(struct.pack("<8sQQ", b"AFINDEX\x01", len(offsets), shard_size) + array("Q", offsets).tobytes())


GOOD = RecordIndex.from_record_sizes([100, 50, 20]).encode()


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"", {}, "not an audioflow record index"),
        (b"PK\x03\x04" + GOOD[4:], {}, "not an audioflow record index"),
        (GOOD[:7] + b"\x02" + GOOD[8:], {}, "version 2 is not supported"),
        (GOOD[:-5] + GOOD[-4:], {}, "bytes, expected"),
        (GOOD[:30] + bytes([GOOD[30] ^ 1]) + GOOD[31:], {}, "checksum mismatch"),
        (GOOD, {"num_records": 4}, "indexes 3 records, the shard has 4"),
        (GOOD, {"shard_size": 171}, "indexes a shard of 170 bytes, the shard has 171"),
        (_raw_index([8, 100], 200), {}, "record 0 at byte 8 is out of order"),
        (_raw_index([0, 100, 90], 200), {}, "record 2 at byte 90 is out of order"),
        (_raw_index([0, 10], 200), {}, "record 1 at byte 10 is out of order"),
        (_raw_index([0, 190], 200), {}, "record 1 at byte 190 runs past the shard's 200 bytes"),
        (_raw_index([], 200), {}, "indexes no records in a shard of 200 bytes"),
    ],
)
def test_a_bad_index_is_refused_with_its_name(data, kwargs, message):
    with pytest.raises(DatasetError, match=message) as raised:
        decode_index(data, "train-00000-of-00001.tfrecord.index", **kwargs)
    assert str(raised.value).startswith("train-00000-of-00001.tfrecord.index: ")


def test_mismatch_names_the_first_difference():
    index = RecordIndex.from_record_sizes([100, 50, 20])
    assert "3 records indexed, 2 in the shard" in index.mismatch(RecordIndex.from_record_sizes([100, 70]))
    assert "record 1 indexed at byte 100, it starts at byte 90" in index.mismatch(
        RecordIndex.from_record_sizes([90, 60, 20])
    )


def test_check_record_names_what_is_wrong():
    framed = frame_record(b"payload")
    header, payload, footer = framed[:12], framed[12:-4], framed[-4:]
    with pytest.raises(DatasetError, match=r"^s: record 3 at byte 99: truncated record \(4 of 7 bytes\)"):
        check_record(header, payload[:4], b"", "s: record 3 at byte 99")
    with pytest.raises(DatasetError, match="truncated record header"):
        check_record(header[:5], b"", b"", "s")
    with pytest.raises(DatasetError, match="data checksum mismatch"):
        check_record(header, b"paylaod", footer, "s")
    with pytest.raises(DatasetError, match="length checksum mismatch"):
        check_record(b"\x00" * 12, payload, footer, "s")
    with pytest.raises(DatasetError, match="a record of 7 bytes, its index says 9"):
        check_record(header, payload, footer, "s", expected_length=9)


def test_dataset_json_without_index_still_loads_and_with_one_round_trips():
    from audioflow.beam.format.dataset_info import FORMAT_VERSION

    old = {
        "format_version": FORMAT_VERSION,
        "created": "2026-01-01T00:00:00+00:00",
        "audio": {"sample_format": "int16"},
        "compression": "none",
        "splits": {},
        "labels": {"names": None},
        "rejected": {},
        "manifest": {},
        "audio_root": "",
        "stats": {},
        "options": {},
        "tool": {},
    }
    import json

    info = DatasetInfo.from_json(json.dumps(old))
    assert info.index is None
    section = index_section(["train-00000-of-00001.tfrecord"])
    indexed = DatasetInfo.from_json(json.dumps({**old, "index": section}))
    assert indexed.index == section
    assert DatasetInfo.from_json(indexed.to_json()) == indexed
