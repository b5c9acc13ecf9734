"""Datasets the tools' tests read: one ingested from the demo data, and hand-written one-shard ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from audioflow.beam.format import (
    FORMAT_VERSION,
    METADATA_FILE,
    AudioExample,
    DatasetInfo,
    ShardInfo,
    SplitInfo,
    encode_example,
    shard_file_name,
)
from audioflow.beam.format.tfrecord import frame_record
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.demo_data import make_demo_data


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> tuple[Path, DatasetInfo]:
    """The demo data (8 clips per class, mixed rates and channels, 3 bad rows) ingested into train and test."""
    root = tmp_path_factory.mktemp("report-data")
    manifest = make_demo_data(root / "demo", clips_per_class=8)
    options = build_ingest_options(
        manifest=str(manifest),
        output=str(root / "dataset"),
        splits="train=0.8,test=0.2",
        max_rejected_fraction=0.2,  # the demo's 3 bad rows are 11% of its 27 rows
    )
    return root / "dataset", run_ingest(options, [])


@pytest.fixture
def write_dataset() -> Callable[..., DatasetInfo]:
    """Writes a one-shard dataset of 0.5 s tones by hand: data no manifest could produce (or only slowly)."""
    return _write_dataset


def _tone(frames: int, channels: int, sample_format: str) -> bytes:
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(frames) / 16000)
    samples = np.repeat(wave[:, None], channels, axis=1)
    if sample_format == "int16":
        return (samples * 32767).astype("<i2").tobytes()
    return samples.astype("<f4").tobytes()


def _write_dataset(
    folder: Path,
    rows: list[tuple[str, str]],
    *,
    rejected_examples: list[dict] | None = None,
    sample_format: str = "int16",
) -> DatasetInfo:
    """Writes one shard of 0.5 s tones, one per (blob, label) row, and a dataset.json describing it."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted({label for _, label in rows})
    payloads = [
        frame_record(
            encode_example(
                AudioExample(
                    audio=_tone(8000, 1, sample_format),
                    label=names.index(label),
                    label_name=label,
                    sample_rate=16000,
                    num_channels=1,
                    num_frames=8000,
                    blob=blob,
                )
            )
        )
        for blob, label in rows
    ]
    shard = shard_file_name("train", 0, 1)
    (folder / shard).write_bytes(b"".join(payloads))
    size = sum(map(len, payloads))
    counts = dict(sorted(Counter(label for _, label in rows).items()))
    rejected_examples = rejected_examples or []
    by_reason = dict(Counter(row["reason"] for row in rejected_examples))
    info = DatasetInfo(
        format_version=FORMAT_VERSION,
        created="2026-01-01T00:00:00+00:00",
        audio={
            "sample_format": sample_format,
            "encoding": "pcm_le_interleaved",
            "sample_rate": 16000,
            "num_channels": 1,
        },
        compression="none",
        splits={
            "train": SplitInfo(
                num_examples=len(rows),
                num_shards=1,
                files=[ShardInfo(shard, len(rows), size)],
                duration_seconds=0.5 * len(rows),
                num_bytes=size,
                label_counts=counts,
            )
        },
        labels={"names": names, "counts": counts},
        rejected={
            "num_rows": len(rejected_examples),
            "by_reason": by_reason,
            "by_split": {"train": len(rejected_examples)},
            "file": "rejected.jsonl",
            "fraction": 0.0,
            "max_fraction": 1.0,
            "passed": True,
            "examples": {reason: [r for r in rejected_examples if r["reason"] == reason] for reason in by_reason},
        },
        manifest={
            "uri": str(folder / "labels.csv"),
            "sha256": "0" * 64,
            "num_rows": len(rows) + len(rejected_examples),
        },
        audio_root=str(folder),
        stats={
            "num_examples": len(rows),
            "total_hours": 0.5 * len(rows) / 3600,
            "total_bytes": size,
            "sample_rates": {"16000": len(rows)},
            "source_sample_rates": {"16000": len(rows)},
            "channels": {"1": len(rows)},
            "duration_seconds_percentiles": {"p0": 0.5, "p50": 0.5, "p100": 0.5},
            "duration_seconds_histogram": {"0": len(rows)},
        },
        options={},
        tool={"name": "audioflow", "version": "test"},
    )
    (folder / METADATA_FILE).write_text(info.to_json(), encoding="utf-8")
    return info
