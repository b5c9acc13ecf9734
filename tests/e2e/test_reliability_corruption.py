"""A corrupted shard is found by `inspect --verify`, which names the file and the record.

tests/beam/test_cli.py covers one flipped byte in an uncompressed shard; here: truncation (inside a record
and exactly at a record boundary), gzip shards (a flipped byte in the deflate stream, a cut stream, a
cut or damaged gzip trailer), a deleted shard, an empty shard and a stray file. Damage that leaves
every record intact but breaks the file (a gzip trailer) is reported as well.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.verify import verify_dataset

from audio_files import write_audio, write_manifest

CLIPS = 8


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """One small dataset per compression, one shard each (all 8 records in train-00000-of-00001)."""
    root = tmp_path_factory.mktemp("corruption")
    for index in range(CLIPS):
        write_audio(root / "audio" / f"{index}.wav", seconds=0.1, seed=index)
    manifest = write_manifest(root / "labels.csv", [(str(i % 2), f"audio/{i}.wav") for i in range(CLIPS)])
    folders = {}
    for compression in ("none", "gzip"):
        folders[compression] = root / compression
        run_ingest(
            build_ingest_options(manifest=str(manifest), output=str(folders[compression]), compression=compression),
            [],
        )
    return folders


def damaged_copy(source: Path, target: Path, damage: Callable[[bytes], bytes | None]) -> Path:
    """Copies a dataset and rewrites its one shard as `damage` says (None: delete it)."""
    shutil.copytree(source, target)
    shard = next(p for p in target.glob("train-00000-of-00001.tfrecord*") if not p.name.endswith(".index"))
    data = damage(shard.read_bytes())
    if data is None:
        shard.unlink()
    else:
        shard.write_bytes(data)
    return target


def problems_of(folder: Path) -> list[str]:
    report = verify_dataset(str(folder), load_dataset_info(str(folder)))
    assert not report.ok
    return report.problems


def record_offsets(data: bytes) -> list[int]:
    """Where each TFRecord starts (uncompressed shard): 8-byte length, 4-byte CRC, payload, 4-byte CRC."""
    offsets, position = [], 0
    while position < len(data):
        offsets.append(position)
        position += 16 + int.from_bytes(data[position : position + 8], "little")
    return offsets


def flip(at: Callable[[bytes], int]) -> Callable[[bytes], bytes]:
    def damage(data: bytes) -> bytes:
        position = at(data)
        return data[:position] + bytes([data[position] ^ 0x10]) + data[position + 1 :]

    return damage


def test_truncated_shard_is_found_by_the_cli(datasets, tmp_path):
    shard = "train-00000-of-00001.tfrecord"
    folder = damaged_copy(datasets["none"], tmp_path / "ds", lambda data: data[: record_offsets(data)[5] + 100])
    result = subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", "inspect", str(folder), "--verify", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    problems = json.loads(result.stdout)["verify"]["problems"]
    assert any(p.startswith(f"{shard}: record 5 at byte") and "truncated record" in p for p in problems), problems
    assert f"{shard}: 5 valid records, dataset.json says {CLIPS}" in problems


def test_truncation_at_a_record_boundary_is_found_by_the_count(datasets, tmp_path):
    """Every record left is intact, so only the count against dataset.json can tell."""
    folder = damaged_copy(datasets["none"], tmp_path / "ds", lambda data: data[: record_offsets(data)[-1]])
    assert problems_of(folder) == [
        f"train-00000-of-00001.tfrecord: {CLIPS - 1} valid records, dataset.json says {CLIPS}",
        f"split train: {CLIPS - 1} valid records, dataset.json says {CLIPS}",
    ]


def test_gzip_shard_with_a_flipped_byte_is_found_by_the_cli(datasets, tmp_path):
    """zlib's own error (not an OSError) used to escape verify as a traceback."""
    folder = damaged_copy(datasets["gzip"], tmp_path / "ds", flip(lambda data: len(data) // 2))
    result = subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", "inspect", str(folder), "--verify"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "verify    FAILED" in result.stdout
    assert "train-00000-of-00001.tfrecord.gz: record " in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda data: data[: len(data) // 2], "cannot be read: EOFError: Compressed file ended"),
        (lambda data: data[:-4], "cannot be read: EOFError: Compressed file ended"),  # every record intact
        (flip(lambda data: len(data) - 8), "cannot be read: BadGzipFile: CRC check failed"),  # trailer's CRC32
        (flip(lambda data: 20), "record 0"),  # the first deflate block
    ],
    ids=["cut-in-half", "trailer-cut", "trailer-crc-flipped", "first-block-flipped"],
)
def test_damaged_gzip_shard_is_found_naming_file_and_record(datasets, tmp_path, damage, expected):
    problems = problems_of(damaged_copy(datasets["gzip"], tmp_path / "ds", damage))
    first = problems[0]
    assert first.startswith("train-00000-of-00001.tfrecord.gz: record "), problems
    assert expected in first, problems


def test_missing_empty_and_stray_shards_are_found(datasets, tmp_path):
    missing = problems_of(damaged_copy(datasets["none"], tmp_path / "missing", lambda data: None))
    assert "train-00000-of-00001.tfrecord: listed in dataset.json but missing" in missing
    empty = problems_of(damaged_copy(datasets["none"], tmp_path / "empty", lambda data: b""))
    assert f"train-00000-of-00001.tfrecord: 0 valid records, dataset.json says {CLIPS}" in empty
    stray_folder = damaged_copy(datasets["none"], tmp_path / "stray", lambda data: data)
    shutil.copy(stray_folder / "train-00000-of-00001.tfrecord", stray_folder / "train-00000-of-00002.tfrecord")
    stray = problems_of(stray_folder)
    assert stray == ["train-00000-of-00002.tfrecord: a shard file that dataset.json does not list"]
