"""The report's sample: bounded, deterministic, exact when it holds every record, and never raising
on a broken shard (the page lists the problem instead)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from audioflow.beam.format import AudioExample
from audioflow.beam.tools.report import clip_samples, label_key, label_order, sample_dataset


def test_sample_is_bounded_and_keeps_a_few_clips_per_label(tmp_path, write_dataset):
    rows = [(f"clip-{index:03d}.wav", ("a", "b")[index % 2]) for index in range(40)]
    info = write_dataset(tmp_path / "ds", rows)
    small = sample_dataset(str(tmp_path / "ds"), info, examples_per_label=2, max_records=10)
    assert small.num_records == 10 and not small.complete
    assert sum(map(len, small.durations.values())) == 10
    assert {label: len(clips) for label, clips in small.clips.items()} == {"a": 2, "b": 2}
    assert [clip.blob for clip in small.clips["a"]] == ["clip-000.wav", "clip-002.wav"]  # deterministic: first ones
    whole = sample_dataset(str(tmp_path / "ds"), info, max_records=1000)
    assert whole.num_records == 40 and whole.complete and not whole.problems
    (tmp_path / "ds" / info.splits["train"].files[0].name).write_bytes(b"not a tfrecord at all")
    broken = sample_dataset(str(tmp_path / "ds"), info)
    assert broken.problems and not broken.complete  # reported on the page, not raised


@pytest.mark.parametrize("sample_format", ["int16", "float32"])
def test_clip_samples_scale_downmix_and_truncate(sample_format):
    frames = 16000 * 7
    stereo = np.stack([np.full(frames, 0.5), np.full(frames, 0.25)], axis=1)
    raw = (stereo * 32768).astype("<i2").tobytes() if sample_format == "int16" else stereo.astype("<f4").tobytes()
    example = AudioExample(audio=raw, label=0, sample_rate=16000, num_channels=2, num_frames=frames, blob="x.wav")
    clip = clip_samples(example, sample_format, seconds=5.0)
    assert clip.dtype == np.float32 and clip.shape == (16000 * 5,)
    np.testing.assert_allclose(clip, 0.375, atol=1e-6)


def test_complete_sample_of_an_ingested_dataset_matches_dataset_json(dataset):
    folder, info = dataset
    sample = sample_dataset(str(folder), info, examples_per_label=2)
    assert sample.complete and not sample.problems
    assert sample.num_records == info.num_examples
    assert sample.shards_read == [shard.name for split in info.splits.values() for shard in split.files]
    assert {label: len(durations) for label, durations in sample.durations.items()} == info.labels["counts"]
    total = sum(split.duration_seconds for split in info.splits.values())
    assert math.isclose(sum(map(sum, sample.durations.values())), total, abs_tol=0.01)  # dataset.json: ms
    for label, clips in sample.clips.items():
        assert len(clips) == 2 and all(clip.label == label and clip.samples.dtype == np.float32 for clip in clips)
        assert all(clip.samples.shape == (round(clip.duration_seconds * clip.sample_rate),) for clip in clips)


def test_only_wanted_labels_get_clips_and_budgets_are_shared_by_split_size(dataset):
    folder, info = dataset
    first = label_order(info)[0]
    sample = sample_dataset(str(folder), info, labels=[first], max_records=10)
    assert [label for label, clips in sample.clips.items() if clips] == [first]
    # Each split reads its share of the 10 records, rounded up: so the sample is not all from `train`.
    shares = {name: math.ceil(10 * split.num_examples / info.num_examples) for name, split in info.splits.items()}
    assert sample.num_records == sum(shares.values()) and not sample.complete


def test_labels_are_keyed_and_ordered_as_dataset_json_spells_them(dataset):
    _, info = dataset
    assert label_order(info) == info.label_names  # string labels: the dataset's own order
    named = AudioExample(
        audio=b"", label=2, label_name="whistle", sample_rate=1, num_channels=1, num_frames=0, blob="x.wav"
    )
    numbered = AudioExample(audio=b"", label=10, sample_rate=1, num_channels=1, num_frames=0, blob="x.wav")
    assert (label_key(named), label_key(numbered)) == ("whistle", "10")
