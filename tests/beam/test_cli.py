"""The `audioflow` command as users run it: exit codes, one-line errors, .env settings, verify."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audio_files import write_audio, write_manifest

AUDIOFLOW = [sys.executable, "-m", "audioflow.beam.cli"]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AUDIOFLOW, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    for index in range(6):
        write_audio(root / "audio" / f"{index}.wav", seed=index)
    write_manifest(root / "labels.csv", [(str(i % 2), f"audio/{i}.wav") for i in range(6)] + [("1", "audio/gone.wav")])
    return root


def test_too_many_rejected_exits_2_and_still_writes_the_report(small):
    result = run(["ingest", "--manifest", "labels.csv", "--output", "out-strict"], cwd=small)
    assert result.returncode == 2, result.stderr
    assert "1 of 7 rows were rejected" in result.stderr and "rejected.jsonl" in result.stderr
    assert "Traceback" not in result.stderr
    report = [json.loads(line) for line in (small / "out-strict" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["blob"], r["reason"]) for r in report] == [("audio/gone.wav", "missing")]
    info = json.loads((small / "out-strict" / "dataset.json").read_text())
    assert info["rejected"]["passed"] is False


def test_existing_dataset_is_refused_then_overwritten(small):
    args = ["ingest", "--manifest", "labels.csv", "--output", "out", "--max-rejected-fraction", "0.2", "--json"]
    first = run(args, cwd=small)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["splits"]["train"]["num_examples"] == 6
    again = run(args, cwd=small)
    assert again.returncode == 1
    assert "already holds a dataset; pass --overwrite" in again.stderr and "Traceback" not in again.stderr
    overwritten = run([*args, "--overwrite"], cwd=small)
    assert overwritten.returncode == 0, overwritten.stderr


def test_settings_come_from_dotenv_and_flags_win(small, tmp_path):
    env_file = tmp_path / "settings.env"
    env_file.write_text(
        f"MANIFEST_URI={small / 'labels.csv'}\nDATASET_URI={tmp_path / 'from-env'}\n"
        "MAX_REJECTED_FRACTION=0.5\nSPLITS=a=0.5,b=0.5\n"
    )
    result = run(["--env-file", str(env_file), "ingest", "--splits", "only=1"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "from-env" / "dataset.json").read_text())
    assert list(info["splits"]) == ["only"] and info["options"]["max_rejected_fraction"] == 0.5


def test_bad_manifest_is_one_clear_line(tmp_path):
    write_manifest(tmp_path / "weird.csv", [("1", "a.wav")], header=("foo", "bar"))
    result = run(["ingest", "--manifest", "weird.csv", "--output", "out"], cwd=tmp_path)
    assert result.returncode == 1
    assert "does not name a label and a blob column" in result.stderr and "Traceback" not in result.stderr
    missing = run(["ingest", "--manifest", "nope.csv", "--output", "out"], cwd=tmp_path)
    assert missing.returncode == 1 and "nope.csv" in missing.stderr and "Traceback" not in missing.stderr


def test_inspect_verify_finds_a_flipped_byte(small, tmp_path):
    output = tmp_path / "ds"
    assert (
        run(
            ["ingest", "--manifest", "labels.csv", "--output", str(output), "--max-rejected-fraction", "0.2"], cwd=small
        ).returncode
        == 0
    )
    ok = run(["inspect", str(output), "--verify"], cwd=tmp_path)
    assert ok.returncode == 0 and "verify    ok: train=6" in ok.stdout
    shard = output / "train-00000-of-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40
    shard.write_bytes(bytes(data))
    bad = run(["inspect", str(output), "--verify", "--json"], cwd=tmp_path)
    assert bad.returncode == 1
    problems = json.loads(bad.stdout)["verify"]["problems"]
    assert any("train-00000-of-00001.tfrecord: record" in p and "checksum" in p for p in problems), problems


def test_inspect_refuses_an_incomplete_dataset(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train-00000-of-00001.tfrecord").write_bytes(b"")
    result = run(["inspect", str(tmp_path / "half")], cwd=tmp_path)
    assert result.returncode == 1 and "not a complete audioflow dataset" in result.stderr
