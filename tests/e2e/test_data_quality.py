"""Data quality end to end: real duplicates and defective files ingested; each case lands where the README says.

The duplicate corpus (tests/helpers/quality_corpus.py) holds one recording as a 16-bit WAV and as a
FLAC, byte copies of it under other names and folders, one listed under another label, one routed to
the test split by the manifest's `split` column, and a second recording copied into the other split.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from audioflow.beam.cli import main
from audioflow.beam.errors import ManifestError, TooManyRejectedError
from audioflow.beam.format import METADATA_FILE, decode_example, parse_shard_name
from audioflow.beam.format.quality import QUALITY_FILE
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.storage import load_dataset_info, read_shard_records
from audioflow.beam.tools.verify import verify_dataset

from audio_files import write_manifest
from quality_corpus import DUPLICATE_ROWS, write_duplicate_corpus, write_signal_corpus

BARK, MEOW = "audio/dogs/bark.wav", "audio/cats/meow.wav"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_duplicate_corpus(tmp_path_factory.mktemp("duplicates"))


def ingest(manifest: Path, output: Path, beam_args: list[str] | None = None, **options):
    settings = {"splits": "train=0.8,test=0.2", "max_rejected_fraction": 1.0, **options}
    return run_ingest(build_ingest_options(manifest=str(manifest), output=str(output), **settings), beam_args or [])


def rejections(output: Path) -> dict[int, tuple[str, str]]:
    lines = (output / "rejected.jsonl").read_text(encoding="utf-8").split("\n")
    return {row["line"]: (row["reason"], row["message"]) for row in map(json.loads, filter(None, lines))}


def written(output: Path) -> dict[str, list[str]]:
    """The blobs in each split's records, read back from the shards."""
    blobs: dict[str, list[str]] = {}
    for path in sorted(output.iterdir()):
        parsed = parse_shard_name(path.name)
        if parsed:
            blobs.setdefault(parsed[0], []).extend(
                decode_example(payload).blob for payload in read_shard_records(str(path))
            )
    return blobs


def content(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / QUALITY_FILE).read_text(encoding="utf-8").splitlines()]


def test_by_default_equal_audio_is_kept_and_reported(corpus, tmp_path):
    info = ingest(corpus, tmp_path / "out")
    assert info.num_examples == 10 and info.rejected["num_rows"] == 0  # --dedupe path, --on-label-conflict warn
    quality = info.quality
    assert (quality["duplicates"]["num_groups"], quality["duplicates"]["num_rows"]) == (2, 6)
    conflicts = quality["label_conflicts"]
    assert (conflicts["num_groups"], conflicts["num_rows"]) == (1, 4)
    [conflict] = conflicts["examples"]
    assert conflict["labels"] == ["cat", "dog"] and [row["line"] for row in conflict["rows"]] == [2, 3, 4, 5]
    leakage = quality["split_leakage"]
    assert (leakage["num_groups"], leakage["num_examples"], leakage["by_splits"]) == (2, 6, {"test+train": 2})
    # Every listed row that was kept says where its record is; that record is the row's.
    for row in conflict["rows"]:
        [payload] = [
            p for i, p in enumerate(read_shard_records(str(tmp_path / "out" / row["shard"]))) if i == row["index"]
        ]
        assert decode_example(payload).blob == row["blob"]

    entries = content(tmp_path / "out")
    assert sorted(entry["line"] for entry in entries) == [line for line, *_ in DUPLICATE_ROWS]
    by_line = {entry["line"]: entry for entry in entries}
    assert len({by_line[line]["hash"] for line in (2, 3, 4, 5)}) == 1  # WAV, FLAC and byte copies alike
    assert by_line[6]["hash"] == by_line[7]["hash"] != by_line[2]["hash"]
    assert len({by_line[line]["hash"] for line in (8, 9, 10, 11)}) == 4

    report = verify_dataset(str(tmp_path / "out"), info)
    assert report.ok, report.problems
    assert [warning.split(":")[0] for warning in report.warnings] == ["split leakage", "label conflicts"]
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "out"), "--verify"])
    assert result.exit_code == 0, result.output
    assert "          warning: split leakage: 6 examples in 2 groups of equal audio" in result.output
    assert "quality   equal audio: 2 groups of 6 rows (--dedupe path: 0 rejected)" in result.output


def test_content_dedupe_keeps_the_first_row_by_manifest_line(corpus, tmp_path):
    info = ingest(corpus, tmp_path / "out", dedupe="content")
    rejected = rejections(tmp_path / "out")
    assert {line: reason for line, (reason, _) in rejected.items()} == dict.fromkeys((3, 4, 5, 7), "duplicate_content")
    for line in (3, 4, 5):
        assert f"has the same audio as line 2 ('{BARK}'), which was kept" in rejected[line][1]
    assert f"has the same audio as line 6 ('{MEOW}'), which was kept" in rejected[7][1]
    blobs = written(tmp_path / "out")
    assert BARK in blobs["train"] and MEOW in blobs["train"] and sum(map(len, blobs.values())) == 6
    quality = info.quality
    assert quality["duplicates"]["num_rejected"] == 4 and quality["split_leakage"]["num_groups"] == 0
    assert quality["label_conflicts"]["num_groups"] == 1  # reported: the rejected copy had another label
    assert info.rejected["by_reason"] == {"duplicate_content": 4}
    report = verify_dataset(str(tmp_path / "out"), info)
    assert report.ok and report.warnings == [], (report.problems, report.warnings)


def test_keep_first_rejects_only_the_other_labels(corpus, tmp_path):
    info = ingest(corpus, tmp_path / "out", on_label_conflict="keep-first")
    rejected = rejections(tmp_path / "out")
    assert list(rejected) == [4] and rejected[4][0] == "label_conflict"
    assert f"line 2 ('{BARK}'), which was kept with label 'dog', not 'cat'" in rejected[4][1]
    assert info.quality["split_leakage"]["num_groups"] == 2  # path dedupe keeps the copies in test


def test_reject_all_rejects_every_row_of_a_conflicting_group(corpus, tmp_path):
    info = ingest(corpus, tmp_path / "out", on_label_conflict="reject-all", dedupe="content")
    reasons = {line: reason for line, (reason, _) in rejections(tmp_path / "out").items()}
    assert reasons == {
        2: "label_conflict",
        3: "label_conflict",
        4: "label_conflict",
        5: "label_conflict",
        7: "duplicate_content",
    }
    assert sorted(blob for blobs in written(tmp_path / "out").values() for blob in blobs) == sorted(
        [MEOW, "audio/fill/f0.wav", "audio/fill/f1.wav", "audio/fill/f2.wav", "audio/fill/f3.wav"]
    )
    assert info.num_examples == 5 and verify_dataset(str(tmp_path / "out"), info).ok


def test_content_dedupe_is_reproducible_across_worker_processes(corpus, tmp_path):
    one = ingest(corpus, tmp_path / "one", dedupe="content", on_label_conflict="keep-first")
    beam_args = ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    two = ingest(corpus, tmp_path / "two", beam_args, dedupe="content", on_label_conflict="keep-first")

    def comparable(info) -> dict:
        metadata = json.loads(info.to_json())
        metadata["options"].pop("output")
        return {**metadata, "created": ""}

    assert comparable(one) == comparable(two)
    assert (tmp_path / "one" / QUALITY_FILE).read_bytes() == (tmp_path / "two" / QUALITY_FILE).read_bytes()
    for shard in (tmp_path / "one").glob("*.tfrecord"):
        assert shard.read_bytes() == (tmp_path / "two" / shard.name).read_bytes(), shard.name


@pytest.fixture(scope="module")
def signals(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("signals")
    paths = write_signal_corpus(root)
    manifest = write_manifest(root / "labels.csv", [(name, path.name) for name, path in paths.items()])
    return manifest, paths


def test_defective_signals_are_flagged_and_counted(signals, tmp_path):
    manifest, _ = signals
    info = ingest(manifest, tmp_path / "out", splits="train=1")
    flags = {flag: entry["count"] for flag, entry in info.quality["flags"].items()}
    # silent and dithered silence; the clipped tone (its harmonics reach Nyquist); the DC shift; the upsampled file
    assert flags == {"silent": 2, "clipped": 1, "dc_offset": 1, "band_limited": 1}
    flagged = {flag: [row["blob"] for row in entry["examples"]] for flag, entry in info.quality["flags"].items()}
    assert flagged["silent"] == ["silent.wav", "dithered_silence.wav"] and flagged["dc_offset"] == ["dc_shifted.wav"]
    assert flagged["band_limited"] == ["upsampled.wav"] and flagged["clipped"] == ["clipped.wav"]
    rms = info.quality["signal"]["rms_dbfs"]
    assert rms["percentiles"]["p0"] == -150.0 and sum(rms["histogram"].values()) == 7


def test_gates_reject_with_their_reasons(signals, tmp_path):
    manifest, _ = signals
    info = ingest(
        manifest, tmp_path / "out", splits="train=1", reject_silent=True, max_clipped_fraction=0.01, min_rms_dbfs=-60
    )
    reasons = {row["blob"]: row["reason"] for row in map(json.loads, (tmp_path / "out" / "rejected.jsonl").open())}
    assert reasons == {
        "silent.wav": "silent",
        "dithered_silence.wav": "silent",
        "clipped.wav": "clipped",
        "quiet.wav": "too_quiet",
    }
    assert sorted(written(tmp_path / "out")["train"]) == ["clean.wav", "dc_shifted.wav", "upsampled.wav"]
    assert info.quality["flags"]["silent"]["count"] == 0 and info.quality["flags"]["dc_offset"]["count"] == 1


def test_a_gate_that_rejects_everything_still_writes_a_complete_dataset(signals, tmp_path):
    _, paths = signals
    manifest = write_manifest(
        tmp_path / "silence.csv", [("a", str(paths["silent"])), ("b", str(paths["dithered_silence"]))]
    )
    output = tmp_path / "out"
    with pytest.raises(TooManyRejectedError, match="2 of 2 rows were rejected"):
        run_ingest(
            build_ingest_options(
                manifest=str(manifest), output=str(output), audio_root=str(paths["silent"].parent), reject_silent=True
            ),
            [],
        )
    info = load_dataset_info(str(output))
    assert info.rejected["passed"] is False and info.num_examples == 0
    assert info.rejected["by_reason"] == {"silent": 2} and (output / QUALITY_FILE).read_bytes() == b""
    assert Counter(flag for flag, entry in info.quality["flags"].items() if entry["count"]) == Counter()
    assert verify_dataset(str(output), info).ok
    assert (output / METADATA_FILE).is_file()


def test_segments_are_measured_and_only_reported(corpus, tmp_path):
    """Segment rows are hashed and measured as decoded (the span, before resampling). Dropping them after
    they are written is refused at launch, since a shard's segment counts are not rebuilt."""
    rows = [("dog", "audio/dogs/bark.wav", "0", "0.25"), ("dog", "audio/dogs/bark.flac", "0", "0.25")]
    rows.append(("cat", "audio/dogs/bark.wav", "0.25", "0.5"))
    manifest = write_manifest(corpus.parent / "segments.csv", rows, header=("label", "blob", "start", "end"))
    info = ingest(manifest, tmp_path / "out", splits="train=1")
    by_line = {entry["line"]: entry for entry in content(tmp_path / "out")}
    assert by_line[2]["hash"] == by_line[3]["hash"] != by_line[4]["hash"]  # the same span of WAV and FLAC
    assert info.quality["duplicates"]["num_groups"] == 1 and info.quality["label_conflicts"]["num_groups"] == 0
    with pytest.raises(ManifestError, match="has segment or text columns: --dedupe content"):
        ingest(manifest, tmp_path / "again", splits="train=1", dedupe="content")


def test_windows_are_not_measured(corpus, tmp_path):
    info = ingest(corpus, tmp_path / "out", window_seconds=0.25)
    assert info.num_examples > 10 and info.quality is None and not (tmp_path / "out" / QUALITY_FILE).exists()
    with pytest.raises(ValueError, match="cannot be used with --window-seconds"):
        build_ingest_options(manifest=str(corpus), output=str(tmp_path / "x"), window_seconds=0.25, reject_silent=True)
