"""CheckGroups on its own, and the split rule as a property: a group's rows always hash to one split."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.job.classify import _ClassifyRowFn
from audioflow.beam.job.groups import CheckGroups
from audioflow.beam.prep.manifest import LabelPolicy, ManifestRow
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.prep.rows import PlannedRow


def planned(line: int, blob: str, split: str, group: str | None = None, start: str | None = "0") -> PlannedRow:
    row = ManifestRow(line, "1", blob, None, None, start, "1" if start is not None else None)
    return PlannedRow(row, split, f"/a/{blob}", 1, None, group=group)


def test_groups_per_split_and_the_groups_a_split_column_splits(pipeline, tmp_path: Path) -> None:
    options = build_ingest_options(manifest=str(tmp_path / "m.csv"), output=str(tmp_path / "o"), splits="a=0.5,b=0.5")
    rows = [
        planned(2, "x.wav", "a"),
        planned(3, "x.wav", "a"),  # two segments of x, one split
        planned(4, "y.wav", "a"),
        planned(5, "y.wav", "b"),  # y is in two splits: a split column put it there
        planned(6, "z.wav", "b"),
        planned(7, "w.wav", "b", start=None),  # not a segment manifest row: never shares a group
    ]
    summary = pipeline | beam.Create(rows) | CheckGroups(options)
    expected = {
        "groups_per_split": {"a": 2, "b": 2},
        "crossing": {"num_groups": 1, "examples": [{"group": "y.wav", "splits": ["a", "b"]}]},
    }
    assert_that(summary, equal_to([expected]))
    pipeline.run().wait_until_finish()


def test_without_shared_groups_the_summary_is_empty(pipeline, tmp_path: Path) -> None:
    options = build_ingest_options(manifest=str(tmp_path / "m.csv"), output=str(tmp_path / "o"))
    summary = pipeline | beam.Create([planned(2, "a.wav", "train", start=None)]) | CheckGroups(options)
    assert_that(summary, equal_to([{"groups_per_split": {}, "crossing": {"num_groups": 0, "examples": []}}]))
    pipeline.run().wait_until_finish()


def test_split_by_groups_use_the_group_not_the_file(pipeline, tmp_path: Path) -> None:
    options = build_ingest_options(
        manifest=str(tmp_path / "m.csv"), output=str(tmp_path / "o"), splits="a=0.5,b=0.5", split_by="speaker"
    )
    rows = [planned(2, "1.wav", "a", "s1", None), planned(3, "2.wav", "b", "s1", None), planned(4, "3.wav", "b", "s2")]
    summary = pipeline | beam.Create(rows) | CheckGroups(options)
    expected = {
        "groups_per_split": {"a": 1, "b": 2},
        "crossing": {"num_groups": 1, "examples": [{"group": "s1", "splits": ["a", "b"]}]},
    }
    assert_that(summary, equal_to([expected]))
    pipeline.run().wait_until_finish()


groups = st.text("abcdefgh", min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(groups, st.integers(0, 5), st.none() | st.sampled_from(["train", "test"])), max_size=60),
    by_column=st.booleans(),
    splits=st.sampled_from(["train=0.5,test=0.5", "train=0.8,validation=0.1,test=0.1", "train=0.34,test=0.66"]),
)
def test_no_group_is_ever_in_two_splits_unless_a_split_column_says_so(tmp_path_factory, rows, by_column, splits):
    """Random manifests with groups (a speaker column, or files with several segments), through the
    real classification of each row: rows of one group share a split whenever no split column decides."""
    options = build_ingest_options(
        manifest=str(tmp_path_factory.getbasetemp() / "m.csv"),
        output=str(tmp_path_factory.getbasetemp() / "o"),
        audio_root="/audio",
        splits=splits,
        split_by="speaker" if by_column else "",
    )
    classify = _ClassifyRowFn(options)
    policy = LabelPolicy(names=None)
    seen: dict[str, set[str]] = defaultdict(set)
    by_split_column: dict[str, set[str]] = defaultdict(set)
    for line, (group, clip, split) in enumerate(rows, start=2):
        split = split if split in options.splits.names else None
        blob = f"{group}/{clip}.wav" if by_column else f"{group}.wav"
        row = ManifestRow(line, "1", blob, split, None, str(clip), str(clip + 1), None, group if by_column else None)
        outputs = list(classify.process(row, policy))
        [result] = [output for output in outputs if getattr(output, "tag", None) != "row_splits"]
        assert isinstance(result, PlannedRow), getattr(result, "value", result)
        if split:
            assert result.split == split  # a split column wins
        key = result.group if by_column else result.row.blob
        assert key == group if by_column else key == blob
        (by_split_column if split else seen)[key].add(result.split)
    assert all(len(splits_of_group) == 1 for splits_of_group in seen.values())
