"""ResolveEqualAudio on its own: real duplicates written by WriteShards, grouped by content, shards compacted."""

from __future__ import annotations

import json
import operator
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.format import decode_example, iter_shard_records
from audioflow.beam.job.equal_audio import ResolveEqualAudio, sidecar_of
from audioflow.beam.job.write import WriteShards
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import IngestOptions, build_ingest_options
from audioflow.beam.prep.rows import PlannedRow

from quality_corpus import DUPLICATE_ROWS, write_duplicate_corpus


def planned_rows(options: IngestOptions, root: Path) -> list[PlannedRow]:
    """The duplicate corpus's rows as StatFiles hands them on."""
    rows = []
    for line, label, blob, split in DUPLICATE_ROWS:
        path = root / blob
        rows.append(
            PlannedRow(
                row=ManifestRow(line, label, blob, split),
                split=split,
                uri=str(path),
                label=["cat", "dog"].index(label),
                label_name=label,
                size=path.stat().st_size,
            )
        )
    return rows


def run(pipeline, tmp_path: Path, **options):
    root = tmp_path / "data"
    manifest = write_duplicate_corpus(root)
    ingest = build_ingest_options(
        manifest=str(manifest), output=str(tmp_path / "out"), splits="train=0.8,test=0.2", **options
    )
    temp_dir = tmp_path / "out" / "_temporary-test"
    written = pipeline | beam.Create(planned_rows(ingest, root)) | WriteShards(ingest, str(temp_dir))
    checked = (written.shards, written.hashes) | ResolveEqualAudio(ingest)
    return written, checked


def blobs(uri: str) -> list[str]:
    with open(uri, "rb") as raw:
        return [decode_example(payload).blob for payload in iter_shard_records(raw, uri)]


def same(line: int, blob: str, first_line: int, first_blob: str) -> str:
    """The documented message of a duplicate_content rejection: it names the kept row's line and blob."""
    return f"line {line}: {blob!r} has the same audio as line {first_line} ({first_blob!r}), which was kept"


def test_content_dedupe_drops_later_copies_and_compacts_their_shards(pipeline, run_counting, tmp_path):
    _, checked = run(pipeline, tmp_path, dedupe="content")
    assert_that(
        checked.rejected | beam.Map(operator.attrgetter("line", "reason")),
        equal_to(
            [(3, "duplicate_content"), (4, "duplicate_content"), (5, "duplicate_content"), (7, "duplicate_content")]
        ),
        label="Rejected",
    )
    assert_that(
        checked.rejected | "Messages" >> beam.Map(operator.attrgetter("line", "message")),
        equal_to(
            [
                (3, same(3, "audio/dogs/bark.flac", 2, "audio/dogs/bark.wav")),
                (4, same(4, "audio/copies/bark-copy.wav", 2, "audio/dogs/bark.wav")),
                (5, same(5, "audio/other/renamed.wav", 2, "audio/dogs/bark.wav")),
                (7, same(7, "audio/cats/meow-again.wav", 6, "audio/cats/meow.wav")),
            ]
        ),
        label="Messages",
    )
    assert_that(
        checked.groups | beam.Map(lambda group: (group.first_line, group.num_rows, group.labels, group.num_rejected)),
        equal_to([(2, 4, ("cat", "dog"), 3), (6, 2, ("cat",), 1)]),
        label="Groups",
    )
    counts = run_counting(pipeline)

    temp = tmp_path / "out" / "_temporary-test"
    compacted = sorted(path.name for path in temp.iterdir() if path.name.endswith("-compacted.tfrecord"))
    assert compacted == ["test-00000-0000-compacted.tfrecord", "train-00000-0000-compacted.tfrecord"]
    assert all((temp / f"{name}.index").is_file() for name in compacted)  # Finalize renames it with the shard
    assert blobs(str(temp / compacted[1])) == [
        "audio/dogs/bark.wav",
        "audio/cats/meow.wav",
        "audio/fill/f0.wav",
        "audio/fill/f1.wav",
    ]
    assert blobs(str(temp / compacted[0])) == ["audio/fill/f2.wav", "audio/fill/f3.wav"]
    # Each compacted shard's sidecar lists its records, in order.
    for name in compacted:
        entries = [json.loads(line) for line in Path(sidecar_of(str(temp / name))).read_text().splitlines()]
        assert [entry["blob"] for entry in entries] == blobs(str(temp / name))
    assert counts["examples_written"] == 6 and counts["rejected_duplicate_content"] == 4
    assert counts["bytes_written"] == sum((temp / name).stat().st_size for name in compacted)
    assert not any(path.name.startswith("rejected") for path in temp.iterdir())


def test_by_default_equal_audio_is_only_reported_and_no_shard_is_touched(pipeline, run_counting, tmp_path):
    _, checked = run(pipeline, tmp_path)
    assert_that(checked.rejected, equal_to([]), label="NoneRejected")
    assert_that(
        checked.groups | beam.Map(lambda group: (group.first_line, group.kept_splits, group.conflicting)),
        equal_to([(2, (("test", 1), ("train", 3)), True), (6, (("test", 1), ("train", 1)), False)]),
        label="Groups",
    )
    assert_that(
        checked.shards | beam.Map(lambda shard: (Path(shard.temp_uri).name, shard.stats.num_examples)),
        equal_to([("train-00000-0000.tfrecord", 6), ("test-00000-0000.tfrecord", 4)]),
        label="Shards",
    )
    counts = run_counting(pipeline)
    assert counts["examples_written"] == 10 and not any("compacted" in p.name for p in (tmp_path / "out").rglob("*"))


def _nonempty_and_summing_to(total: int):
    def check(lists: list[list[int]]) -> None:
        [per_shard] = lists
        assert sum(per_shard) == total and all(size > 0 for size in per_shard), per_shard

    return check


def test_reject_all_drops_a_whole_conflicting_group_and_a_shard_left_empty_disappears(pipeline, tmp_path):
    # 1 KiB shards: every file gets a unit of its own, so the units of group A's rows are emptied.
    written, checked = run(pipeline, tmp_path, on_label_conflict="reject-all", shard_size=1024)
    assert_that(
        checked.rejected | beam.Map(operator.attrgetter("line", "reason")),
        equal_to([(line, "label_conflict") for line in (2, 3, 4, 5)]),
        label="Rejected",
    )
    sizes = checked.shards | "Sizes" >> beam.Map(lambda shard: shard.stats.num_examples)
    assert_that(sizes | "AllSizes" >> beam.combiners.ToList(), _nonempty_and_summing_to(6), label="NonEmpty")
    counted = {
        "before": written.shards | "One" >> beam.Map(lambda _: ("shards", 1)),
        "after": checked.shards | "OneMore" >> beam.Map(lambda _: ("shards", 1)),
    } | beam.CoGroupByKey()
    assert_that(counted | beam.Map(lambda kv: len(kv[1]["before"]) > len(kv[1]["after"])), equal_to([True]))
    pipeline.run().wait_until_finish()
