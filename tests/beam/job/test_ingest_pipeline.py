"""The real Beam pipeline, end to end, on real audio and real broken inputs.

Records are read back independently with TensorFlow (not with our decoder) and compared sample by
sample with soundfile's own decode; every manifest row must be written or rejected, never both.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from audioflow.beam.format import parse_shard_name
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.reader import read_split

from audio_files import FORMATS, expected_int16, write_audio, write_corrupt_files, write_manifest

SPLITS = "train=0.6,validation=0.2,test=0.2"
RATES = (8000, 16000, 22050, 44100, 48000)


def build_corpus(root: Path) -> tuple[Path, dict[str, str]]:
    """Writes audio and a CRLF + BOM manifest; returns it and the expected reason per bad blob."""
    audio = root / "audio"
    rows: list[tuple[str, str]] = []
    index = 0
    for extension, subtype in FORMATS:
        for channels in (1, 2):
            name = f"{extension}-{subtype.lower()}-{channels}ch.{extension}"
            write_audio(
                audio / name,
                rate=RATES[index % len(RATES)],
                seconds=0.3 + 0.05 * index,
                channels=channels,
                subtype=subtype,
                seed=index,
            )
            rows.append((str(index % 3), name))
            index += 1
    odd_names = ["dir with space/ünïcödé, name.wav", 'quote"d.wav', "日本語/音.flac"]
    for name in odd_names:
        write_audio(audio / name, subtype="PCM_16", seed=index)
        rows.append(("1", name))
        index += 1
    rows.append(("2", str(write_audio(audio / "absolute.wav", seed=99))))  # an absolute path inside the root
    expected = {}
    for path in write_corrupt_files(audio / "corrupt").values():
        rows.append(("0", f"corrupt/{path.name}"))
        expected[f"corrupt/{path.name}"] = "unreadable"
    (root / "outside.wav").write_bytes((audio / "wav-pcm_16-1ch.wav").read_bytes())
    bad_rows = {
        "missing.wav": ("1", "missing"),
        "../outside.wav": ("1", "outside_root"),
        "/etc/passwd": ("1", "outside_root"),
        "gs://other-bucket/a.wav": ("1", "outside_root"),
        "%2e%2e/outside.wav": ("1", "outside_root"),
        "empty-label.wav": ("", "bad_label"),
        "": ("1", "bad_blob"),
    }
    for blob, (label, reason) in bad_rows.items():
        rows.append((label, blob))
        expected[blob] = reason
    write_audio(audio / "empty-label.wav")
    rows.append(("0", "wav-pcm_16-1ch.wav"))  # a duplicate of an earlier row
    manifest = write_manifest(root / "labels.csv", rows, newline="\r\n", bom=True)
    return manifest, expected


def ingest_corpus(root: Path, manifest: Path, output: Path):
    """64 KiB shards, so the train split needs several; every rejection is allowed (they are the point)."""
    options = build_ingest_options(
        manifest=str(manifest),
        audio_root=str(root / "audio"),
        output=str(output),
        splits=SPLITS,
        max_rejected_fraction=1.0,
        shard_size=64 * 1024,
    )
    return run_ingest(options, [])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    manifest, expected = build_corpus(root)
    return root, manifest, expected


@pytest.fixture(scope="module")
def dataset(corpus, tmp_path_factory):
    root, manifest, _ = corpus
    output = tmp_path_factory.mktemp("out") / "dataset"
    return output, ingest_corpus(root, manifest, output)


def read_with_tensorflow(folder: Path) -> dict[str, list[tf.train.Example]]:
    by_split: dict[str, list] = {}
    for path in sorted(folder.iterdir()):
        parsed = parse_shard_name(path.name)
        if parsed:
            records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
            assert records, f"{path.name} is an empty shard"
            by_split.setdefault(parsed[0], []).extend(records)
    return by_split


def feature(example, name):
    value = example.features.feature[name]
    return value.bytes_list.value[0] if value.bytes_list.value else value.int64_list.value[0]


def manifest_rows(manifest: Path) -> list[tuple[int, str, str]]:
    import csv

    text = manifest.read_text(encoding="utf-8-sig")
    reader = csv.reader(text.splitlines(keepends=True))
    next(reader)
    return [(line, label, blob) for line, (label, blob) in enumerate(reader, start=2)]


def test_every_written_sample_is_bit_exact_and_labelled(corpus, dataset):
    root, manifest, _ = corpus
    output, info = dataset
    labels = {blob: label for _, label, blob in reversed(manifest_rows(manifest))}  # first row wins
    written = read_with_tensorflow(output)
    assert sum(len(records) for records in written.values()) == info.num_examples == 22
    for records in written.values():
        for example in records:
            blob = feature(example, "blob").decode()
            path = Path(blob) if blob.startswith("/") else root / "audio" / blob
            expected, rate = expected_int16(path), sf.info(path).samplerate
            assert feature(example, "audio") == expected.tobytes(), blob
            assert feature(example, "sample_rate") == rate
            assert (feature(example, "num_frames"), feature(example, "num_channels")) == expected.shape
            assert feature(example, "label") == int(labels[blob])


def test_every_row_is_written_or_rejected_exactly_once(corpus, dataset):
    _, manifest, expected_reasons = corpus
    output, info = dataset
    rows = manifest_rows(manifest)
    rejected = [json.loads(line) for line in (output / "rejected.jsonl").read_text().splitlines()]
    written_blobs = Counter(feature(e, "blob").decode() for rs in read_with_tensorflow(output).values() for e in rs)
    assert max(written_blobs.values()) == 1
    first_line = {}
    for line, _, blob in rows:
        first_line.setdefault(blob, line)
    written_lines = {first_line[blob] for blob in written_blobs}
    rejected_lines = [r["line"] for r in rejected]
    assert sorted([*written_lines, *rejected_lines]) == [line for line, _, _ in rows]
    reasons = {r["blob"]: r["reason"] for r in rejected if r["reason"] != "duplicate"}
    assert reasons == expected_reasons
    assert [r["blob"] for r in rejected if r["reason"] == "duplicate"] == ["wav-pcm_16-1ch.wav"]
    assert all(r["message"] and str(r["line"]) in r["message"] for r in rejected)
    # dataset.json tells the same story, per split and in total
    assert info.manifest["num_rows"] == len(rows)
    assert info.rejected["num_rows"] == len(rejected)
    assert info.rejected["by_reason"] == dict(sorted(Counter(r["reason"] for r in rejected).items()))
    for split in info.splits:
        assert info.rejected["by_split"].get(split, 0) == sum(1 for r in rejected if r["split"] == split)
    assert sum(s.num_examples for s in info.splits.values()) + info.rejected["num_rows"] == len(rows)


def test_metadata_describes_the_files(dataset):
    output, info = dataset
    on_disk = sorted(p.name for p in output.iterdir() if parse_shard_name(p.name))
    listed = sorted(f.name for s in info.splits.values() for f in s.files)
    assert on_disk == listed
    for split, split_info in info.splits.items():
        assert split_info.num_shards == len(split_info.files)
        for index, shard in enumerate(split_info.files):
            assert parse_shard_name(shard.name) == (split, index, split_info.num_shards)
            assert (output / shard.name).stat().st_size == shard.num_bytes
    assert info.splits["train"].num_shards > 1, "64 KiB shards must split the train set"
    assert not [p for p in output.iterdir() if p.name.startswith("_temporary")]
    assert set(info.stats["sample_rates"]) == {str(r) for r in RATES}
    assert info.stats["channels"] == {"1": 13, "2": 9}
    assert info.options["splits"] == {"train": 0.6, "validation": 0.2, "test": 0.2}
    assert info.tool["beam_version"] == "2.77.0"


def test_splits_and_records_are_identical_across_runs(corpus, dataset, tmp_path):
    root, manifest, _ = corpus
    output, _ = dataset
    again = tmp_path / "again"
    ingest_corpus(root, manifest, again)

    def record_sets(folder):
        return {
            split: sorted(e.SerializeToString() for e in records)
            for split, records in read_with_tensorflow(folder).items()
        }

    assert record_sets(again) == record_sets(output)
    assert (again / "rejected.jsonl").read_text().count("\n") == (output / "rejected.jsonl").read_text().count("\n")


def test_reader_api_returns_float_audio_for_each_split(corpus, dataset):
    root, _, _ = corpus
    output, info = dataset
    for split, split_info in info.splits.items():
        examples = list(read_split(str(output), split).as_numpy_iterator())
        assert len(examples) == split_info.num_examples
        for example in examples:
            blob = example["blob"].decode()
            path = Path(blob) if blob.startswith("/") else root / "audio" / blob
            expected = expected_int16(path)
            assert example["audio"].dtype == np.float32
            np.testing.assert_array_equal(example["audio"], expected / 32768.0)


def test_string_labels_float32_resampled_mono_gzip(tmp_path):
    audio = tmp_path / "audio"
    rows = []
    for index, (rate, channels) in enumerate([(44100, 2), (16000, 1), (22050, 2)] * 3):
        write_audio(audio / f"{index}.flac", rate=rate, channels=channels, subtype="PCM_24", seed=index)
        rows.append((["dog", "cat", "bird"][index % 3], f"{index}.flac"))
    manifest = write_manifest(tmp_path / "m.csv", rows, header=("class", "path"))
    options = build_ingest_options(
        manifest=str(manifest),
        audio_root=str(audio),
        output=str(tmp_path / "ds"),
        sample_rate=16000,
        mono=True,
        sample_format="float32",
        compression="gzip",
    )
    info = run_ingest(options, [])
    assert info.label_names == ["bird", "cat", "dog"]
    assert info.audio == {
        "sample_format": "float32",
        "encoding": "pcm_le_interleaved",
        "sample_rate": 16000,
        "num_channels": 1,
    }
    assert all(f.name.endswith(".tfrecord.gz") for f in info.splits["train"].files)
    examples = list(read_split(str(tmp_path / "ds"), "train").as_numpy_iterator())
    assert len(examples) == 9
    for example in examples:
        name = example["blob"].decode()
        source, rate = sf.read(audio / name, always_2d=True)
        assert example["label_name"].decode() == rows[int(name.split(".")[0])][0]
        assert info.label_names[example["label"]] == example["label_name"].decode()
        assert example["audio"].shape == (round(source.shape[0] * 16000 / rate), 1)
        assert example["sample_rate"] == 16000
