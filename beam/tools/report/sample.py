"""The report's bounded sample: the first records of the first shards of each split, never the whole dataset.

Per-label durations and a few clips per label come from here; the report's cost therefore stays
the same however large the dataset grows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from apache_beam.io.filesystems import FileSystems

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import SAMPLE_FORMATS, AudioExample, DatasetInfo, decode_example
from audioflow.beam.storage import read_shard_records

__all__ = [
    "CLIP_SECONDS",
    "SAMPLE_BYTES",
    "SAMPLE_RECORDS",
    "SHARDS_PER_SPLIT",
    "Clip",
    "ReportSample",
    "clip_samples",
    "label_key",
    "label_order",
    "sample_dataset",
]

SAMPLE_RECORDS = 2000  # records read at most, over all splits
SAMPLE_BYTES = 256 * 1024 * 1024  # record bytes read at most, over all splits
SHARDS_PER_SPLIT = 16  # shards opened per split at most (the budgets above usually stop sooner)
CLIP_SECONDS = 5.0  # each embedded clip is the start of the example, downmixed to mono


@dataclass(frozen=True)
class Clip:
    """The start of one example as mono float32 at its own rate: what the page plays and pictures."""

    label: str
    split: str
    blob: str
    sample_rate: int
    num_channels: int
    duration_seconds: float
    samples: np.ndarray


@dataclass
class ReportSample:
    """What the report read from the shards: per-label durations, a few clips per label, and problems.

    `complete` is true when the sample holds every record of the dataset, so its numbers are exact.
    """

    num_records: int = 0
    num_bytes: int = 0
    shards_read: list[str] = field(default_factory=list)
    durations: dict[str, list[float]] = field(default_factory=dict)
    clips: dict[str, list[Clip]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    complete: bool = False


UNLABELED = "(unlabeled)"  # the one "label" of an unlabeled dataset, under which the report shows examples


def label_key(example: AudioExample) -> str:
    """The label as dataset.json's `labels.counts` spells it (the name, or the integer as text); for
    multi-label examples the first of their labels, for unlabeled ones UNLABELED."""
    keys = example.label_keys
    return keys[0] if keys else UNLABELED


def label_order(info: DatasetInfo) -> list[str]:
    """Labels in the dataset's own order: `labels.names` for string labels, numeric for integers."""
    if not info.labeled:
        return [UNLABELED]
    if info.label_names is not None:
        return list(info.label_names)
    return sorted(info.labels.get("counts", {}), key=_int_or_text)


def _int_or_text(value: str) -> tuple[int, int | str]:
    try:
        return (0, int(value))
    except ValueError:
        return (1, value)


def clip_samples(example: AudioExample, sample_format: str, seconds: float = CLIP_SECONDS) -> np.ndarray:
    """Returns the first `seconds` of an example as mono float32 (int16 / 32768; float32 as stored).

    Only the bytes of the clip are converted, so a 20-minute example costs no more than a short one.
    """
    dtype, _ = SAMPLE_FORMATS[sample_format]
    channels = max(1, example.num_channels)
    frames = min(example.num_frames, math.ceil(seconds * example.sample_rate))
    raw = np.frombuffer(example.audio, dtype=dtype, count=frames * channels).reshape(frames, channels)
    samples = raw.astype(np.float32)
    if sample_format == "int16":
        samples /= 32768.0
    return samples.mean(axis=1, dtype=np.float32)


def sample_dataset(
    dataset: str,
    info: DatasetInfo,
    *,
    examples_per_label: int = 3,
    labels: Iterable[str] | None = None,
    max_records: int = SAMPLE_RECORDS,
    max_bytes: int = SAMPLE_BYTES,
) -> ReportSample:
    """Reads a bounded, deterministic sample: the first records of the first shards of each split.

    Each split gets a share of the record and byte budgets proportional to its size, so the sampled
    durations reflect the whole dataset rather than whichever split comes first. Clips are kept only
    for the first `examples_per_label` records of each label in `labels`; of the other records only
    the duration is kept, so memory stays small.

    Args:
        dataset: the dataset folder (local path or gs:// URI).
        info: its dataset.json.
        examples_per_label: clips kept per label.
        labels: the labels that get clips (default: all).
        max_records: records read at most, over all splits.
        max_bytes: record bytes read at most, over all splits.

    Returns:
        The sample; unreadable shards or records are listed in `problems` instead of raising.
    """
    wanted = set(label_order(info) if labels is None else labels)
    sample = ReportSample()
    total = info.num_examples
    for split, split_info in info.splits.items():
        if not split_info.num_examples:
            continue
        share = split_info.num_examples / total
        budget = _Budget(records=max(1, math.ceil(max_records * share)), bytes=max_bytes * share)
        for shard in split_info.files[:SHARDS_PER_SPLIT]:
            if budget.spent:
                break
            sample.shards_read.append(shard.name)
            uri = FileSystems.join(dataset.rstrip("/"), shard.name)
            _sample_shard(uri, shard.name, split, info, sample, budget, wanted, examples_per_label)
    sample.complete = not sample.problems and sample.num_records == total
    return sample


@dataclass
class _Budget:
    """What one split may still read."""

    records: int
    bytes: float

    @property
    def spent(self) -> bool:
        return self.records <= 0 or self.bytes <= 0


def _sample_shard(
    uri: str,
    name: str,
    split: str,
    info: DatasetInfo,
    sample: ReportSample,
    budget: _Budget,
    wanted: set[str],
    examples_per_label: int,
) -> None:
    """Adds a shard's first records to the sample until the split's budget is spent."""
    try:
        for index, payload in enumerate(read_shard_records(uri)):
            size = len(payload) + 16  # with the TFRecord framing
            budget.records, budget.bytes = budget.records - 1, budget.bytes - size
            sample.num_records, sample.num_bytes = sample.num_records + 1, sample.num_bytes + size
            problem = _add_record(payload, split, info, sample, wanted, examples_per_label)
            if problem:
                sample.problems.append(f"{name}: record {index}: {problem}")
            if budget.spent:
                return
    except DatasetError as error:
        sample.problems.append(str(error))


def _add_record(
    payload: bytes, split: str, info: DatasetInfo, sample: ReportSample, wanted: set[str], examples_per_label: int
) -> str | None:
    """Adds one record's duration (and clip, if its label still needs one); returns a problem, if any."""
    try:
        example = decode_example(payload)
    except ValueError as error:
        return f"cannot be parsed: {error}"
    if example.sample_rate <= 0 or example.num_frames <= 0:
        return f"{example.blob}: no audio ({example.num_frames} frames at {example.sample_rate} Hz)"
    keys = example.label_keys or [UNLABELED]  # a multi-label example counts under each of its labels
    duration = example.num_frames / example.sample_rate
    for each in keys:
        sample.durations.setdefault(each, []).append(duration)
    key = next((each for each in keys if each in wanted and len(sample.clips.get(each, [])) < examples_per_label), None)
    if key is None:
        return None
    clips = sample.clips.setdefault(key, [])
    try:
        samples = clip_samples(example, info.sample_format)
    except ValueError as error:  # fewer audio bytes than the header claims
        return f"{example.blob}: {error}"
    clips.append(
        Clip(
            label=key,
            split=split,
            blob=example.blob,
            sample_rate=example.sample_rate,
            num_channels=example.num_channels,
            duration_seconds=duration,
            samples=samples,
        )
    )
    return None
