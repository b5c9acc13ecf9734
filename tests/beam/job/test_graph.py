"""The composed job: its step labels are pinned, and it outputs the DatasetInfo it wrote as dataset.json.

Step labels are what Dataflow's monitoring pages and dashboards filter on. A change to this list
must be deliberate and recorded in docs/migrations.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that

from audioflow.beam.format import DatasetInfo
from audioflow.beam.job.graph import IngestDataset
from audioflow.beam.prep.options import build_ingest_options

from audio_files import write_audio, write_manifest

# Every leaf step under IngestDataset/ on Dataflow (spread_rows=True). Beam's own Create labels a
# lambda by its line in Beam's core.py; that number is masked, so only our labels are pinned.
LEAF_STEPS = [
    "AllRejections",
    "CheckGroups/DistinctPairs/Distinct/Keys",
    "CheckGroups/DistinctPairs/Group/Combine/ParDo(CombineValuesDoFn)",
    "CheckGroups/DistinctPairs/Group/GroupByKey",
    "CheckGroups/DistinctPairs/ToPairs",
    "CheckGroups/GroupAndSplit",
    "CheckGroups/SplitsPerGroup",
    "CheckGroups/Summarise/CombinePerKey/Combine/ParDo(CombineValuesDoFn)",
    "CheckGroups/Summarise/CombinePerKey/GroupByKey",
    "CheckGroups/Summarise/DoOnce/FlatMap(<lambda at core.py:N>)",
    "CheckGroups/Summarise/DoOnce/Impulse",
    "CheckGroups/Summarise/DoOnce/Map(decode)",
    "CheckGroups/Summarise/DoOnce/MaybeReshuffle",
    "CheckGroups/Summarise/InjectDefault",
    "CheckGroups/Summarise/KeyWithVoid",
    "CheckGroups/Summarise/UnKey",
    "ClassifyRows/AllLabels/AllLabels/CombinePerKey/Combine/ParDo(CombineValuesDoFn)",
    "ClassifyRows/AllLabels/AllLabels/CombinePerKey/GroupByKey",
    "ClassifyRows/AllLabels/AllLabels/DoOnce/FlatMap(<lambda at core.py:N>)",
    "ClassifyRows/AllLabels/AllLabels/DoOnce/Impulse",
    "ClassifyRows/AllLabels/AllLabels/DoOnce/Map(decode)",
    "ClassifyRows/AllLabels/AllLabels/DoOnce/MaybeReshuffle",
    "ClassifyRows/AllLabels/AllLabels/InjectDefault",
    "ClassifyRows/AllLabels/AllLabels/KeyWithVoid",
    "ClassifyRows/AllLabels/AllLabels/UnKey",
    "ClassifyRows/Classify/ParDo(_ClassifyRowFn)",
    "ClassifyRows/DistinctLabels/Distinct/Keys",
    "ClassifyRows/DistinctLabels/Group/Combine/ParDo(CombineValuesDoFn)",
    "ClassifyRows/DistinctLabels/Group/GroupByKey",
    "ClassifyRows/DistinctLabels/ToPairs",
    "ClassifyRows/LabelPolicy",
    "ClassifyRows/Labels",
    "DropDuplicates/GroupByUri",
    "DropDuplicates/KeyByUri",
    "DropDuplicates/PickFirst/FlatMap(_pick_first_of_duplicates)",
    "Finalize/FinalizeDataset",
    "Finalize/FinalizeTrigger/FlatMap(<lambda at core.py:N>)",
    "Finalize/FinalizeTrigger/Impulse",
    "Finalize/FinalizeTrigger/Map(decode)",
    "Finalize/FinalizeTrigger/MaybeReshuffle",
    "Finalize/RowsPerSplit/CombinePerKey(CountCombineFn)/Combine/ParDo(CombineValuesDoFn)",
    "Finalize/RowsPerSplit/CombinePerKey(CountCombineFn)/GroupByKey",
    "Finalize/RowsPerSplit/RowsPerSplit:PairWithVoid",
    "ReadManifest/ManifestUri/FlatMap(<lambda at core.py:N>)",
    "ReadManifest/ManifestUri/Impulse",
    "ReadManifest/ManifestUri/Map(decode)",
    "ReadManifest/ManifestUri/MaybeReshuffle",
    "ReadManifest/ParseCsv/ParDo(_ReadManifestFn)",
    "ResolveEqualAudio/CompactShards",
    "ResolveEqualAudio/GroupByHashBucket",
    "ResolveEqualAudio/JoinDropsToShards/CoGroupByKeyImpl/Flatten",
    "ResolveEqualAudio/JoinDropsToShards/CoGroupByKeyImpl/GroupByKey",
    "ResolveEqualAudio/JoinDropsToShards/CoGroupByKeyImpl/MapTuple(collect_values)",
    "ResolveEqualAudio/JoinDropsToShards/CoGroupByKeyImpl/Tag[drops]",
    "ResolveEqualAudio/JoinDropsToShards/CoGroupByKeyImpl/Tag[shard]",
    "ResolveEqualAudio/KeyShardsByUri",
    "ResolveEqualAudio/ResolveGroups/ParDo(_ResolveGroupsFn)",
    "SpreadRows/AddRandomKeys",
    "SpreadRows/RemoveRandomKeys",
    "SpreadRows/ReshufflePerKey/FlatMap(restore_metadata_default_window)",
    "SpreadRows/ReshufflePerKey/GroupByKey",
    "SpreadRows/ReshufflePerKey/Map(reify_metadata_default_window)",
    "StatFiles/BatchForStat/ParDo(_GlobalWindowsBatchingDoFn)",
    "StatFiles/Stat/ParDo(_StatFilesFn)",
    "WriteShards/AssignShards/KeyByShard",
    "WriteShards/AssignShards/SizeBySplit",
    "WriteShards/AssignShards/SumSizes/Combine/ParDo(CombineValuesDoFn)",
    "WriteShards/AssignShards/SumSizes/GroupByKey",
    "WriteShards/GroupRowsByShard",
    "WriteShards/WriteTemporaryShards/ParDo(_WriteShardFn)",
]


# With a gs:// audio root, StatFiles sizes files from bucket listings first (docs/gcs.md): these steps
# are added, and no other label changes.
GCS_LISTING_STEPS = [
    "StatFiles/JoinListing/CoGroupByKeyImpl/Flatten",
    "StatFiles/JoinListing/CoGroupByKeyImpl/GroupByKey",
    "StatFiles/JoinListing/CoGroupByKeyImpl/MapTuple(collect_values)",
    "StatFiles/JoinListing/CoGroupByKeyImpl/Tag[listed]",
    "StatFiles/JoinListing/CoGroupByKeyImpl/Tag[rows]",
    "StatFiles/KeyRowsByUri",
    "StatFiles/ListObjects/ParDo(_ListObjectsFn)",
    "StatFiles/ListingKeys",
    "StatFiles/ListingRanges/Combine/ParDo(CombineValuesDoFn)",
    "StatFiles/ListingRanges/GroupByKey",
    "StatFiles/MatchListing/ParDo(_MatchListingFn)",
    "StatFiles/NotSized",
    "StatFiles/SizedRows",
]


def leaf_steps(tmp_path: Path, *, spread_rows: bool, audio_root: str = "") -> list[str]:
    manifest = write_manifest(tmp_path / "labels.csv", [("1", "a.wav")])
    options = build_ingest_options(manifest=str(manifest), output=str(tmp_path / "out"), audio_root=audio_root)
    pipeline = beam.Pipeline(options=PipelineOptions(["--runner", "DirectRunner"]))
    _ = pipeline | "IngestDataset" >> IngestDataset(options, "run", {"name": "audioflow"}, spread_rows=spread_rows)
    transforms = pipeline.to_runner_api().components.transforms.values()
    return sorted(
        re.sub(r"(<lambda at \w+\.py):\d+>", r"\1:N>", transform.unique_name.removeprefix("IngestDataset/"))
        for transform in transforms
        if not transform.subtransforms and transform.unique_name.startswith("IngestDataset/")
    )


def test_leaf_step_labels_are_pinned(tmp_path: Path) -> None:
    assert leaf_steps(tmp_path, spread_rows=True) == LEAF_STEPS


def test_a_gs_audio_root_only_adds_the_listing_steps(tmp_path: Path) -> None:
    steps = leaf_steps(tmp_path, spread_rows=True, audio_root="gs://bucket/audio")
    assert steps == sorted(LEAF_STEPS + GCS_LISTING_STEPS)


def test_local_runs_only_drop_the_reshuffle(tmp_path: Path) -> None:
    assert leaf_steps(tmp_path, spread_rows=False) == [s for s in LEAF_STEPS if not s.startswith("SpreadRows/")]


def test_the_job_outputs_the_dataset_info_it_wrote(pipeline, run_counting, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    for name in ("a.wav", "b.wav", "c.wav"):
        write_audio(audio / name, seconds=0.1)
    rows = [("dog", "a.wav"), ("cat", "b.wav"), ("cat", "c.wav"), ("dog", "missing.wav"), ("cat", "a.wav")]
    manifest = write_manifest(tmp_path / "labels.csv", rows)
    output = tmp_path / "out"
    options = build_ingest_options(
        manifest=str(manifest), output=str(output), audio_root=str(audio), max_rejected_fraction=1.0
    )

    def check(infos: list[DatasetInfo]) -> None:
        [info] = infos
        assert (output / "dataset.json").read_text() == info.to_json()
        assert info.num_examples == 3 and info.manifest["num_rows"] == 5
        assert info.rejected["by_reason"] == {"duplicate": 1, "missing": 1}
        assert info.labels["names"] == ["cat", "dog"]

    info = pipeline | "IngestDataset" >> IngestDataset(options, "run", {"name": "audioflow"}, spread_rows=False)
    assert_that(info, check)
    counts = run_counting(pipeline)
    shard_bytes = sum(path.stat().st_size for path in output.glob("*.tfrecord"))
    # The counter names are an interface (metrics namespace "audioflow"): dashboards read them.
    assert counts == {
        "manifest_rows": 5,
        "examples_written": 3,
        "files_decoded": 3,
        "bytes_written": shard_bytes,
        "rows_rejected": 2,  # every step's rejections: as many as rejected.jsonl holds
        "rejected_duplicate": 1,
        "rejected_missing": 1,
    }
    assert len((output / "rejected.jsonl").read_text().splitlines()) == counts["rows_rejected"]
