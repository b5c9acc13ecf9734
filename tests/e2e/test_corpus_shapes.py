"""Whole ingestion runs for each corpus shape the README shows: segments of long recordings, multi-label
clips, transcripts with speakers, unlabeled lists, speaker-grouped splits and windows.

Records are read back with TensorFlow's own parser (not our decoder) and compared with soundfile's
decode of the source; every manifest row is written or rejected, with windows counted as rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from audioflow.beam.errors import ManifestError
from audioflow.beam.format import parse_shard_name, tf_feature_spec
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.reader import load_dataset_info, read_split
from audioflow.beam.tools.verify import verify_dataset

from audio_files import LONG_FORMATS, dominant_hz, write_audio, write_bursts

RATE = 16000
BURSTS = [(1.0, 2.0, 440.0), (7.25, 8.5, 1000.0), (15.0, 17.0, 2000.0), (28.0, 29.5, 3000.0)]


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def ingest(manifest: Path, output: Path, **values):
    values.setdefault("max_rejected_fraction", 1.0)
    return run_ingest(build_ingest_options(manifest=str(manifest), output=str(output), **values), [])


def parsed_records(output: Path) -> list[dict]:
    """Every record of every shard, parsed by tf.io.parse_example with the spec dataset.json implies."""
    info = load_dataset_info(str(output))
    spec = tf_feature_spec(features=info.features)
    records = []
    for shard in sorted(output.glob("*.tfrecord")):
        split = parse_shard_name(shard.name)[0]
        for raw in tf.data.TFRecordDataset(str(shard)):
            parsed = tf.io.parse_example(tf.reshape(raw, [1]), spec)
            record = {key: value[0] for key, value in parsed.items()}
            records.append({"split": split, **{key: _numpy(value) for key, value in record.items()}})
    return records


def _numpy(value):
    """Scalars as NumPy scalars (bytes for strings), lists (ragged features) as Python lists."""
    array = value.numpy()
    return array.tolist() if isinstance(array, np.ndarray) and array.ndim else array


def samples_of(record: dict) -> np.ndarray:
    return np.frombuffer(record["audio"], dtype="<i2").reshape(int(record["num_frames"]), int(record["num_channels"]))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Four 30-s recordings, one per container, with tone bursts at known offsets."""
    folder = tmp_path_factory.mktemp("recordings")
    for extension, subtype in LONG_FORMATS:
        write_bursts(folder / f"site.{extension}", RATE, 30.0, BURSTS, subtype)
    return folder


def test_bioacoustic_annotations_become_exact_segments(recordings, tmp_path):
    """file, start, end, species: each annotation is a segment; only its span is decoded."""
    rows = [["file", "start", "end", "species"]]
    for extension, _ in LONG_FORMATS:
        rows += [[f"site.{extension}", str(start), str(end), f"hz{int(hz)}"] for start, end, hz in BURSTS]
    rows += [
        ["site.wav", "7.250", "8.50", "hz1000"],  # the same span written differently: a duplicate
        ["site.wav", "abc", "2", "hz440"],
        ["site.wav", "5", "4", "hz440"],
        ["site.wav", "-1", "2", "hz440"],
        ["site.wav", "31", "32", "hz440"],  # starts past the end of the file
        ["site.flac", "29", "35", "hz3000"],  # ends past it: cut at the file's end
    ]
    manifest = write_csv(tmp_path / "annotations.csv", rows)
    output = tmp_path / "dataset"
    info = ingest(manifest, output, audio_root=str(recordings), label_column="species", splits="train=0.5,test=0.5")

    assert info.format_version == 2 and info.content["segments"]
    reasons = info.rejected["by_reason"]
    assert reasons == {"bad_segment": 4, "duplicate": 1}
    assert info.num_examples + info.rejected["num_rows"] == info.manifest["num_rows"] == len(rows) - 1
    records = parsed_records(output)
    assert len(records) == 17
    by_file: dict[str, set[str]] = {}
    for record in records:
        blob = record["blob"].decode()
        by_file.setdefault(blob, set()).add(record["split"])
        start, end, rate = (int(record[k]) for k in ("segment_start", "segment_end", "source_sample_rate"))
        assert rate == RATE and end - start == int(record["num_frames"])
        path = recordings / blob
        if path.suffix == ".mp3":  # measured tolerance: one int16 step against a decode from the start
            expected = sf.read(path, dtype="int16", always_2d=True)[0][start:end]
            assert np.abs(samples_of(record).astype(int) - expected.astype(int)).max() <= 1
        else:
            expected = sf.read(path, start=start, stop=end, dtype="int16", always_2d=True)[0]
            assert np.array_equal(samples_of(record), expected)
        label = info.labels["names"][int(record["label"])]
        assert abs(dominant_hz(samples_of(record), RATE) - int(label[2:])) < 10
    assert all(len(splits) == 1 for splits in by_file.values())  # a recording's segments share a split
    assert info.content["stats"]["segments_clipped_at_end"] == 1
    assert info.content["stats"]["examples_per_source"] == {"4": 3, "5": 1}
    assert info.content["grouping"]["by"] == "blob" and info.content["grouping"]["crossing"]["num_groups"] == 0
    messages = {json.loads(line)["reason"]: json.loads(line)["message"] for line in (output / "rejected.jsonl").open()}
    assert messages["duplicate"] == "line 18: 'site.wav' from 7.250 s to 8.50 s is already listed on line 3"
    report = verify_dataset(str(output), info)
    assert report.ok, report.problems


def test_audioset_multi_label_segments_round_trip(recordings, tmp_path):
    """YTID, start_seconds, end_seconds, positive_labels with quoted comma-separated label ids."""
    rows = [
        ["YTID", "start_seconds", "end_seconds", "positive_labels"],
        ["site.flac", "1.0", "2.0", "/m/09x0r,/m/05zppz"],
        ["site.ogg", "7.25", "8.5", "/m/05zppz"],
        ["site.wav", "15", "17", "/m/0bt9lr,/m/09x0r,/m/0bt9lr"],
        ["site.wav", "28", "29.5", ""],
        ["site.wav", "1", "2", "/m/09x0r,,/m/05zppz"],
    ]
    output = tmp_path / "audioset"
    manifest = write_csv(tmp_path / "segments.csv", rows)
    info = ingest(manifest, output, audio_root=str(recordings), blob_column="YTID", label_separator=",")
    assert info.labels["multi_label"] and info.labels["names"] == ["/m/05zppz", "/m/09x0r", "/m/0bt9lr"]
    assert info.labels["counts"] == {"/m/05zppz": 2, "/m/09x0r": 2, "/m/0bt9lr": 1}  # once per label
    assert info.rejected["by_reason"] == {"bad_label": 2}
    lines = [json.loads(line) for line in (output / "rejected.jsonl").open()]
    assert sorted(line["message"] for line in lines) == [
        "line 5: empty label list",
        "line 6: label list '/m/09x0r,,/m/05zppz' has a blank entry",
    ]
    records = {record["blob"].decode(): record for record in parsed_records(output)}
    assert records["site.flac"]["labels"] == [0, 1]
    assert records["site.flac"]["label_names"] == [b"/m/05zppz", b"/m/09x0r"]
    assert records["site.wav"]["labels"] == [1, 2] and "label" not in records["site.wav"]
    examples = list(read_split(str(output), "train").as_numpy_iterator())
    assert sorted(example["labels"].tolist() for example in examples) == [[0], [0, 1], [1, 2]]
    assert verify_dataset(str(output), info).ok


def test_transcripts_speakers_and_kept_columns_round_trip(tmp_path):
    """Common Voice: path, sentence, client_id, age, gender; text targets, speaker-disjoint splits."""
    audio = tmp_path / "clips"
    rows = [["path", "sentence", "client_id", "age", "gender", "up_votes"]]
    for index in range(40):
        speaker = f"client{index % 7}"
        write_audio(audio / f"{index}.mp3", rate=RATE, seconds=0.3, subtype="MPEG_LAYER_III", seed=index)
        rows.append([f"{index}.mp3", f"Cafe\u0301 number {index}", speaker, "twenties", "f", str(index % 3)])
    rows.append(["40.mp3", "bad vote", "client1", "thirties", "m", "many"])
    rows.append(["41.mp3", "no speaker", "", "thirties", "m", "1"])
    output = tmp_path / "common-voice"
    info = ingest(
        write_csv(tmp_path / "validated.csv", rows),
        output,
        audio_root=str(audio),
        splits="train=0.6,dev=0.2,test=0.2",
        split_by="client_id",
        keep_columns="age,gender,up_votes",
        column_types="up_votes=int",
    )
    assert info.label_kind == "none" and info.labels["unlabeled"]
    assert info.content["text"] == {"normalization": "NFC"}
    assert info.content["columns"] == {"age": "str", "gender": "str", "up_votes": "int"}
    assert info.rejected["by_reason"] == {"bad_column": 1, "bad_group": 1}
    records = parsed_records(output)
    assert len(records) == 40
    speakers: dict[bytes, set[str]] = {}
    for record in records:
        speakers.setdefault(record["group"], set()).add(record["split"])
        assert record["text"].decode() == f"Café number {record['blob'].decode()[:-4]}"  # NFC: é is one code point
        assert record["up_votes"].dtype == np.int64 and record["age"] == b"twenties"
        assert "label" not in record and "labels" not in record
    assert all(len(splits) == 1 for splits in speakers.values())
    grouping = info.content["grouping"]
    assert grouping["by"] == "column" and grouping["column"] == "client_id"
    assert sum(grouping["groups_per_split"].values()) == 7
    histogram = info.content["stats"]["text_length_histogram"]
    assert sum(histogram.values()) == 40 and set(histogram) == {"10"}  # "Café number N": 13-14 characters
    report = verify_dataset(str(output), info)
    assert report.ok and sum(report.groups_by_split.values()) == 7


def test_a_split_column_that_splits_a_group_is_warned_about_and_recorded(tmp_path, caplog):
    audio = tmp_path / "a"
    rows = [["path", "speaker", "split"]]
    for index in range(6):
        write_audio(audio / f"{index}.wav", seconds=0.1, seed=index)
        rows.append([f"{index}.wav", "alice" if index < 3 else "bob", "train" if index != 1 else "test"])
    output = tmp_path / "out"
    info = ingest(write_csv(tmp_path / "m.csv", rows), output, audio_root=str(audio), splits="train=0.5,test=0.5",
                  split_by="speaker")  # fmt: skip
    crossing = info.content["grouping"]["crossing"]
    assert crossing == {"num_groups": 1, "examples": [{"group": "alice", "splits": ["test", "train"]}]}
    assert "puts 1 group(s) in more than one split, e.g. 'alice' in test/train" in caplog.text
    report = verify_dataset(str(output), info)
    assert report.ok and report.warnings and "'alice'" in report.warnings[0]
    # Had dataset.json not recorded it, the same dataset would fail verification.
    bare = type(info)(
        **{**info.__dict__, "content": {**info.content, "grouping": {"by": "column", "column": "speaker"}}}
    )
    assert not verify_dataset(str(output), bare).ok


def test_speech_commands_speaker_in_the_file_name(tmp_path):
    """label, path; the speaker is the file-name prefix before _nohash_: the official split hashes it."""
    audio = tmp_path / "speech_commands"
    rows = [["label", "path"]]
    for word in ("yes", "no"):
        for speaker in ("0a7c2a8d", "1b4c9b89", "3c257192", "c1d39ce8"):
            for take in range(2):
                name = f"{word}/{speaker}_nohash_{take}.wav"
                write_audio(audio / name, seconds=0.1, seed=take)
                rows.append([word, name])
    write_audio(audio / "_background_noise_/white.wav", seconds=0.1)
    rows.append(["_silence_", "_background_noise_/white.wav"])
    output = tmp_path / "out"
    info = ingest(write_csv(tmp_path / "m.csv", rows), output, audio_root=str(audio), splits="train=0.5,test=0.5",
                  split_by="path", group_pattern=r"([^/]+)_nohash_")  # fmt: skip
    assert info.rejected["by_reason"] == {"bad_group": 1}
    speakers: dict[bytes, set[str]] = {}
    for record in parsed_records(output):
        speakers.setdefault(record["group"], set()).add(record["split"])
    assert sorted(speakers) == [b"0a7c2a8d", b"1b4c9b89", b"3c257192", b"c1d39ce8"]
    assert all(len(splits) == 1 for splits in speakers.values())
    assert verify_dataset(str(output), info).ok


def test_an_unlabeled_list_of_files(tmp_path):
    audio = tmp_path / "a"
    rows = [["path"]] + [[str(write_audio(audio / f"{i}.flac", seconds=0.2, seed=i).name)] for i in range(3)]
    output = tmp_path / "out"
    info = ingest(write_csv(tmp_path / "list.csv", rows), output, audio_root=str(audio))
    assert info.num_examples == 3 and info.labels == {"names": None, "counts": {}, "unlabeled": True}
    assert set(info.features) == {"audio", "blob", "num_channels", "num_frames", "sample_rate"}
    assert info.format_version == 2  # a version-1 reader would look for a label
    assert all("label" not in example for example in read_split(str(output), "train").as_numpy_iterator())


def window_count(frames: int, window: int, hop: int, last: str) -> int:
    full = (frames - window) // hop + 1 if frames >= window else 0
    reached = (full - 1) * hop + window if full else 0
    return full + (last != "drop" and full * hop < frames and reached < frames)


@pytest.mark.parametrize("last", ["pad", "drop", "keep"])
def test_windows_are_examples_and_rows_still_add_up(recordings, tmp_path, last):
    rows = [["file", "labels"], ["site.wav", "a"], ["site.flac", "b"], ["site.mp3", "a"]]
    for index, seconds in enumerate((0.4, 2.5, 3.0)):
        write_audio(recordings / f"short{index}-{last}.wav", seconds=seconds, seed=index)
        rows.append([f"short{index}-{last}.wav", "b"])
    output = tmp_path / "windows"
    info = ingest(write_csv(tmp_path / "m.csv", rows), output, audio_root=str(recordings), window_seconds=1.0,
                  hop_seconds=0.75, last_window=last)  # fmt: skip
    frames = {"site.wav": 30 * RATE, "site.flac": 30 * RATE, "site.mp3": 30 * RATE}
    frames.update({f"short{i}-{last}.wav": round(s * RATE) for i, s in enumerate((0.4, 2.5, 3.0))})
    expected = {blob: window_count(n, RATE, 12000, last) for blob, n in frames.items()}
    records = parsed_records(output)
    found: dict[str, int] = {}
    for record in records:
        blob = record["blob"].decode()
        found[blob] = found.get(blob, 0) + 1
        real = int(record["segment_end"]) - int(record["segment_start"])
        assert int(record["window_offset"]) == int(record["segment_start"])
        if last == "keep":
            assert int(record["num_frames"]) == real
        else:
            assert int(record["num_frames"]) == RATE
            assert not samples_of(record)[real:].any()
    assert found == {blob: n for blob, n in expected.items() if n}
    rejected_rows = 1 if last == "drop" else 0  # the 0.4 s file has no full window
    assert info.rejected["by_reason"] == ({"shorter_than_window": 1} if rejected_rows else {})
    assert info.num_examples == sum(expected.values())
    assert sum(info.content["stats"]["examples_per_row"].values()) == len(rows) - 1 - rejected_rows
    assert info.content["windows"] == {"seconds": 1.0, "hop_seconds": 0.75, "last_window": last}
    assert verify_dataset(str(output), info).ok


def test_a_long_row_that_fails_part_way_leaves_nothing_behind(tmp_path):
    """A windowed row longer than the writer holds in memory streams into files of its own; when the
    source turns out bad after many windows, those files go and the row is one rejection."""
    audio = tmp_path / "a"
    audio.mkdir()
    rate = 48000
    good = np.random.default_rng(1).uniform(-0.5, 0.5, (rate * 120, 2)).astype(np.float32)
    sf.write(audio / "good.wav", good, rate, subtype="FLOAT")
    bad = good.copy()
    bad[rate * 100, 0] = np.nan  # 100 s in: after about 19 MB of windows
    sf.write(audio / "bad.wav", bad, rate, subtype="FLOAT")
    rows = [["path", "label"], ["good.wav", "x"], ["bad.wav", "y"]]
    output = tmp_path / "out"
    info = ingest(write_csv(tmp_path / "m.csv", rows), output, audio_root=str(audio), window_seconds=1.0,
                  shard_size="4MiB")  # fmt: skip
    assert info.rejected["by_reason"] == {"invalid_samples": 1}
    assert info.num_examples == 120 and info.splits["train"].num_shards > 1
    names = {path.name for path in output.iterdir()}
    assert not any(name.startswith("_temporary") for name in names)
    assert {shard.name for shard in info.splits["train"].files} == {n for n in names if n.endswith(".tfrecord")}
    assert {record["blob"] for record in parsed_records(output)} == {b"good.wav"}
    assert verify_dataset(str(output), info).ok


def test_a_header_without_rows_is_refused_unless_allowed_and_missing_columns_before_any_worker(tmp_path):
    manifest = write_csv(tmp_path / "empty.csv", [["label", "path"]])
    with pytest.raises(ManifestError, match="has a header and no data rows; pass --allow-empty"):
        ingest(manifest, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    info = ingest(manifest, tmp_path / "allowed", allow_empty=True)
    assert info.num_examples == 0
    rows = write_csv(tmp_path / "rows.csv", [["label", "path"], ["1", "a.wav"]])
    with pytest.raises(ManifestError, match="no --split-by column 'speaker'"):
        ingest(rows, tmp_path / "no-group", split_by="speaker")
    with pytest.raises(ManifestError, match="no --keep-columns column 'age'"):
        ingest(rows, tmp_path / "no-column", keep_columns="age")
    assert not (tmp_path / "no-group").exists() and not (tmp_path / "no-column").exists()
    misnamed = write_csv(tmp_path / "misnamed.csv", [["lable", "path"], ["1", "a.wav"]])
    with pytest.raises(ManifestError, match="has no label column, and these columns are not used: lable"):
        ingest(misnamed, tmp_path / "misnamed")  # not silently unlabeled
    assert not (tmp_path / "misnamed").exists()


# The shards version 1 of audioflow wrote for this input (sha256), before any of the above existed.
VERSION_1_SHARDS = {
    "labels": "1e238cfcc1a263d727d3ce679a5e78b140018c6e0b34269a3a7445b0b574b614",
    "ints": "f10eec6da07b9287e9db7f31fd762c9989fc6b33ca7efb8773aa6d2bf8ccddf8",
}


def test_a_single_label_whole_file_dataset_is_byte_identical_to_version_1(tmp_path):
    audio = tmp_path / "audio"
    write_audio(audio / "a.wav", rate=16000, seconds=0.3, seed=1)
    write_audio(audio / "b.flac", rate=22050, seconds=0.2, channels=2, subtype="PCM_16", seed=2)
    write_audio(audio / "c.ogg", rate=16000, seconds=0.25, subtype="VORBIS", seed=3)
    write_csv(tmp_path / "labels.csv", [["Label", "Blob Name"], ["dog", "a.wav"], ["cat", "b.flac"], ["dog", "c.ogg"]])
    write_csv(tmp_path / "ints.csv", [["Label", "Blob Name"], ["3", "a.wav"], ["1", "b.flac"]])
    for name, digest in VERSION_1_SHARDS.items():
        output = tmp_path / f"out-{name}"
        info = ingest(tmp_path / f"{name}.csv", output, audio_root=str(audio))
        assert info.format_version == 1 and "multi_label" not in info.labels
        assert hashlib.sha256((output / "train-00000-of-00001.tfrecord").read_bytes()).hexdigest() == digest


def test_a_whole_file_row_among_segments_says_where_it_lies(recordings, tmp_path):
    rows = [["file", "start", "end"], ["site.ogg", "", ""], ["site.flac", "1", "2"]]
    output = tmp_path / "out"
    ingest(write_csv(tmp_path / "m.csv", rows), output, audio_root=str(recordings), sample_rate=8000)
    examples = {e["blob"]: e for e in read_split(str(output), "train").as_numpy_iterator()}  # every feature present
    whole, segment = examples[b"site.ogg"], examples[b"site.flac"]
    assert (whole["segment_start"], whole["segment_end"], whole["source_sample_rate"]) == (0, 30 * RATE, RATE)
    assert whole["num_frames"] == 30 * 8000 and whole["sample_rate"] == 8000
    assert (segment["segment_start"], segment["segment_end"], segment["num_frames"]) == (RATE, 2 * RATE, 8000)
