"""DropDuplicates on its own: one row per file, the lowest manifest line wins whatever the arrival order."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.dedupe import DropDuplicates
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.rows import PlannedRow, Rejection


def planned(line: int, blob: str, uri: str, split: str = "train") -> PlannedRow:
    return PlannedRow(row=ManifestRow(line, "dog", blob), split=split, uri=uri, label=0, label_name="dog")


def test_the_lowest_line_wins_and_later_ones_are_rejected(pipeline, run_counting) -> None:
    rows = [
        planned(9, "a.wav", "/r/a.wav"),
        planned(3, "a.wav", "/r/a.wav"),
        planned(4, "b.wav", "/r/b.wav"),
        planned(5, "./a.wav", "/r/a.wav", split="test"),  # another spelling of the same file
        planned(6, "c.wav", "/r/c.wav"),
    ]
    deduplicated = pipeline | beam.Create(rows) | "DropDuplicates" >> DropDuplicates()
    assert_that(deduplicated.unique, equal_to([rows[1], rows[2], rows[4]]), label="Unique")
    assert_that(
        deduplicated.rejected,
        equal_to(
            [
                Rejection.of(rows[3].row, "test", "duplicate", "line 5: './a.wav' is already listed on line 3"),
                Rejection.of(rows[0].row, "train", "duplicate", "line 9: 'a.wav' is already listed on line 3"),
            ]
        ),
        label="Rejected",
    )
    assert run_counting(pipeline) == {"rows_rejected": 2, "rejected_duplicate": 2}
