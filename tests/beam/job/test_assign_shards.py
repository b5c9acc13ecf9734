"""AssignShards on its own: ceil(split bytes / shard size) units per split, a row's unit from its URI."""

from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.write import AssignShards
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.rows import PlannedRow


def planned(line: int, split: str, size: int) -> PlannedRow:
    row = ManifestRow(line, "1", f"clip-{line}.wav")
    return PlannedRow(row=row, split=split, uri=f"gs://bucket/clip-{line}.wav", label=1, label_name=None, size=size)


def expected_unit(uri: str, units: int) -> int:
    """Written out independently of the code: the first 8 bytes of SHA-256, big-endian, modulo units.
    A change here moves rows between shards, so it must be deliberate."""
    return int(hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16], 16) % units


def test_keys_are_deterministic_and_spread_by_bytes(pipeline) -> None:
    train = [planned(line, "train", 100) for line in range(2, 12)]  # 1,000 bytes: 4 units of 250
    test = [planned(12, "test", 10)]  # 10 bytes: 1 unit
    rows = train + test
    expected = [(("train", expected_unit(row.uri, 4)), row) for row in train] + [(("test", 0), test[0])]
    assert {unit for (split, unit), _ in expected if split == "train"} == {0, 1, 2, 3}  # the example spreads

    keyed = pipeline | "Rows" >> beam.Create(rows) | "AssignShards" >> AssignShards(shard_size=250)
    assert_that(keyed, equal_to(expected), label="Keys")
    # The same rows in another order, as another worker or a retry would see them: the same keys.
    again = pipeline | "Reversed" >> beam.Create(rows[::-1]) | "AssignAgain" >> AssignShards(shard_size=250)
    assert_that(again, equal_to(expected), label="SameKeys")
    pipeline.run().wait_until_finish()
