"""The row coders: exact round trips, determinism, compactness, and that the job graph uses them.

If a step lost its declared output type, Beam would silently fall back to pickling that step's rows
(slower, ~3× the bytes held in memory on the local runner); the graph test catches that.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.coders import coders
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.pipeline_context import PipelineContext

from audioflow.beam.job.coders import HashedRecordCoder, ManifestRowCoder, PlannedRowCoder, RejectionCoder
from audioflow.beam.job.graph import IngestDataset
from audioflow.beam.prep.equal_audio import HashedRecord
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.prep.rows import PlannedRow, Rejection

MANIFEST_ROWS = [
    ManifestRow(line=2, label="dog", blob="a.wav"),
    ManifestRow(line=2**40, label="-9223372036854775808", blob='dir with space/ünïcödé, "q".flac', split="test"),
    ManifestRow(line=7, label="", blob="", split="", problem="row has 1 field(s); the header has 2"),
]
PLANNED_ROWS = [
    PlannedRow(row=MANIFEST_ROWS[0], split="train", uri="/data/a.wav", label=0, label_name="dog"),
    PlannedRow(
        row=MANIFEST_ROWS[1],
        split="test",
        uri="gs://b/日本語.flac",
        label=-(2**63),
        label_name=None,
        size=2**40,
        generation=1764121200123456,
    ),
]
CONTENT_RECORDS = [
    HashedRecord(
        "0f" * 16,
        2**40,
        'dir with space/ünïcödé, "q".flac',
        "007",
        "7",
        "test",
        "gs://b/_t/test-00000-0000.tfrecord",
        0,
    ),
]
REJECTIONS = [
    Rejection.of(MANIFEST_ROWS[2], "train", "malformed_row", "line 7: row has 1 field(s)"),
    Rejection(line=9, blob="x.wav", label="1", split="validation", reason="missing", message="line 9: no file"),
]


@pytest.mark.parametrize(
    ("coder", "values"),
    [
        (ManifestRowCoder(), MANIFEST_ROWS),
        (PlannedRowCoder(), PLANNED_ROWS),
        (RejectionCoder(), REJECTIONS),
        (HashedRecordCoder(), CONTENT_RECORDS),
    ],
)
def test_round_trips_are_exact_and_deterministic(coder: coders.Coder, values: list) -> None:
    assert coder.is_deterministic()
    for value in values:
        encoded = coder.encode(value)
        assert coder.decode(encoded) == value
        assert coder.encode(coder.decode(encoded)) == encoded
        nested = coders.TupleCoder([coders.StrUtf8Coder(), coder])  # as a GroupByKey value
        assert nested.decode(nested.encode(("key", value))) == ("key", value)


def test_rows_encode_smaller_than_pickle() -> None:
    planned = PLANNED_ROWS[0]
    assert len(PlannedRowCoder().encode(planned)) * 2 < len(pickle.dumps(planned, pickle.HIGHEST_PROTOCOL))


def test_repeated_fields_are_shared_after_decoding() -> None:
    coder = PlannedRowCoder()
    first, second = (coder.decode(coder.encode(PLANNED_ROWS[0])) for _ in range(2))
    assert first.split is second.split and first.row.label is second.row.label
    assert first.uri is not second.uri  # distinct per row: not interned


def test_the_job_graph_encodes_rows_with_these_coders(tmp_path: Path) -> None:
    """The row PCollections of the built graph use the row coders; none falls back to pickle."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("label,blob\n1,a.wav\n")
    options = build_ingest_options(manifest=str(manifest), output=str(tmp_path / "out"))
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner", "DirectRunner"]))
    _ = pipeline | IngestDataset(options, "run", {"name": "audioflow"})
    components = pipeline.to_runner_api().components
    context = PipelineContext(components)
    coder_names = {
        (transform.unique_name.removeprefix("IngestDataset/"), tag): repr(
            context.coders.get_by_id(components.pcollections[pcollection].coder_id)
        )
        for transform in components.transforms.values()
        for tag, pcollection in transform.outputs.items()
    }
    expected = {
        ("ReadManifest/ParseCsv/ParDo(_ReadManifestFn)", "None"): "ManifestRowCoder",
        ("ClassifyRows/Classify/ParDo(_ClassifyRowFn)", "None"): "PlannedRowCoder",
        ("ClassifyRows/Classify/ParDo(_ClassifyRowFn)", "rejected"): "RejectionCoder",
        ("DropDuplicates/KeyByUri", "None"): "TupleCoder[StrUtf8Coder, PlannedRowCoder]",
        ("DropDuplicates/GroupByUri", "None"): "TupleCoder[StrUtf8Coder, IterableCoder[PlannedRowCoder]]",
        ("DropDuplicates/PickFirst/FlatMap(_pick_first_of_duplicates)", "None"): "PlannedRowCoder",
        ("StatFiles/Stat/ParDo(_StatFilesFn)", "None"): "PlannedRowCoder",
        ("WriteShards/AssignShards/KeyByShard", "None"): (
            "TupleCoder[TupleCoder[StrUtf8Coder, VarIntCoder], PlannedRowCoder]"
        ),
        ("WriteShards/GroupRowsByShard", "None"): (
            "TupleCoder[TupleCoder[StrUtf8Coder, VarIntCoder], IterableCoder[PlannedRowCoder]]"
        ),
        ("AllRejections", "None"): "RejectionCoder",
        ("WriteShards/WriteTemporaryShards/ParDo(_WriteShardFn)", "hashes"): (
            "TupleCoder[VarIntCoder, ListCoder[HashedRecordCoder]]"
        ),
        ("ResolveEqualAudio/GroupByHashBucket", "None"): (
            "TupleCoder[VarIntCoder, IterableCoder[ListCoder[HashedRecordCoder]]]"
        ),
        ("ResolveEqualAudio/ResolveGroups/ParDo(_ResolveGroupsFn)", "rejected"): "RejectionCoder",
    }
    assert {key: coder_names.get(key) for key in expected} == expected
