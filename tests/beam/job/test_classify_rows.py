"""ClassifyRows on its own: the label policy, each row's split, and every reject reason it gives."""

from __future__ import annotations

import operator
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.classify import ClassifyRows
from audioflow.beam.prep.manifest import LabelPolicy, ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import PlannedRow

_LINE_AND_REASON = operator.attrgetter("line", "reason")


def options_for(tmp_path: Path, **overrides) -> IngestOptions:
    return build_ingest_options(
        manifest=str(tmp_path / "labels.csv"),
        output=str(tmp_path / "out"),
        audio_root=str(tmp_path / "audio"),
        splits="train=0.5,test=0.5",
        **overrides,
    )


def test_rows_are_planned_or_rejected_with_a_reason(pipeline, run_counting, tmp_path: Path) -> None:
    options = options_for(tmp_path)
    root = options.audio_root
    rows = [
        ManifestRow(line=2, label="dog", blob="a.wav", split="train"),
        ManifestRow(line=3, label="cat", blob="sub/b.wav"),  # no split column value: assigned by hash
        ManifestRow(line=4, label="", blob="", problem="row has 1 field(s); the header has 2"),
        ManifestRow(line=5, label="dog", blob="c.wav", split="holdout"),
        ManifestRow(line=6, label="dog", blob="", split="train"),
        ManifestRow(line=7, label="", blob="d.wav", split="test"),
        ManifestRow(line=8, label="cat", blob="../outside.wav", split="test"),
    ]
    classified = pipeline | beam.Create(rows) | "ClassifyRows" >> ClassifyRows(options)

    b_split = options.splits.assign("sub/b.wav")
    assert_that(
        classified.planned,
        equal_to(
            [
                PlannedRow(row=rows[0], split="train", uri=f"{root}/a.wav", label=1, label_name="dog"),
                PlannedRow(row=rows[1], split=b_split, uri=f"{root}/sub/b.wav", label=0, label_name="cat"),
            ]
        ),
        label="Planned",
    )
    assert_that(
        classified.rejected | beam.Map(_LINE_AND_REASON),
        equal_to([(4, "malformed_row"), (5, "bad_split"), (6, "bad_blob"), (7, "bad_label"), (8, "outside_root")]),
        label="Rejected",
    )
    assert_that(
        classified.rejected | "Messages" >> beam.Map(operator.attrgetter("message")),
        equal_to(
            [
                "line 4: row has 1 field(s); the header has 2",
                "line 5: split 'holdout' is not one of ['train', 'test']",
                "line 6: empty blob name",
                "line 7: empty label",
                "line 8: blob name '../outside.wav' has a '..' segment",
            ]
        ),
        label="RejectedMessages",
    )
    # Every row reports its split, rejected or not: Finalize checks rows = written + rejected per split.
    splits = ["train", b_split, options.splits.assign(""), "holdout", "train", "test", "test"]
    assert_that(classified.row_splits, equal_to(splits), label="RowSplits")
    assert_that(classified.policy, equal_to([LabelPolicy(names=("cat", "dog"))]), label="Policy")

    counts = run_counting(pipeline)
    assert counts == {
        "rows_rejected": 5,
        "rejected_malformed_row": 1,
        "rejected_bad_split": 1,
        "rejected_bad_blob": 1,
        "rejected_bad_label": 1,
        "rejected_outside_root": 1,
    }


def test_int_labels_reject_the_others(pipeline, tmp_path: Path) -> None:
    options = options_for(tmp_path, label_type="int")
    rows = [
        ManifestRow(line=2, label="-3", blob="a.wav", split="train"),
        ManifestRow(line=3, label="dog", blob="b.wav", split="train"),
        ManifestRow(line=4, label="9223372036854775808", blob="c.wav", split="test"),  # over int64
    ]
    classified = pipeline | beam.Create(rows) | "ClassifyRows" >> ClassifyRows(options)
    assert_that(
        classified.planned | beam.Map(operator.attrgetter("label", "label_name")),
        equal_to([(-3, None)]),
        label="Planned",
    )
    assert_that(
        classified.rejected | beam.Map(operator.attrgetter("line", "reason", "message")),
        equal_to(
            [
                (3, "bad_label", "line 3: label 'dog' is not an int64 integer"),
                (4, "bad_label", "line 4: label '9223372036854775808' is not an int64 integer"),
            ]
        ),
        label="Rejected",
    )
    assert_that(classified.policy, equal_to([LabelPolicy(names=None)]), label="Policy")
    pipeline.run().wait_until_finish()
