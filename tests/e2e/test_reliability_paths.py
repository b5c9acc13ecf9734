"""Nothing outside the audio root gets in, end to end: the manifest is data, and a row must not pull
a worker's files (/etc/passwd, credentials, other buckets) into a dataset.

tests/beam/prep/test_paths_and_splits.py unit-tests resolve_blob and real_path_inside; here the rows go through
the real pipeline, and the proof is in the output: every hostile row is rejected as outside_root, and
no record holds the bytes of the file outside the root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import soundfile as sf

from audioflow.beam.format import decode_example, parse_shard_name
from audioflow.beam.format.tfrecord import iter_records
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options

from audio_files import write_audio, write_manifest


def written_records(output: Path) -> list:
    records = []
    for path in sorted(output.iterdir()):
        if parse_shard_name(path.name):
            with path.open("rb") as stream:
                records += [decode_example(payload) for payload in iter_records(stream, path.name)]
    return records


def rejections(output: Path) -> dict[str, dict]:
    lines = (output / "rejected.jsonl").read_text().split("\n")
    return {r["blob"]: r for r in map(json.loads, filter(None, lines))}


def test_rows_pointing_outside_a_local_root_are_rejected(tmp_path):
    root = tmp_path / "data" / "audio"
    secret = write_audio(tmp_path / "data" / "secret.wav", seed=666)  # a real WAV: it would decode fine
    sibling = write_audio(tmp_path / "data" / "audio-other" / "a.wav", seed=667)  # shares the root's prefix
    write_audio(root / "inside.wav", seed=1)
    write_audio(root / "sub" / "inside.wav", seed=2)
    (tmp_path / "outside-dir").mkdir()
    write_audio(tmp_path / "outside-dir" / "x.wav", seed=668)
    os.symlink(secret, root / "link-out.wav")  # a file symlink leading out
    os.symlink(tmp_path / "outside-dir", root / "dir-link")  # a directory symlink leading out
    os.symlink("/dev/zero", root / "zero.wav")  # endless bytes
    os.symlink("/etc/passwd", root / "passwd.wav")
    os.symlink(root / "link-out.wav", root / "chain.wav")  # a link to a link that leads out
    os.symlink(root / "inside.wav", root / "alias.wav")  # a link that stays inside: allowed
    hostile = [
        "../secret.wav",
        "sub/../../secret.wav",
        "%2e%2e/secret.wav",
        "%2E%2E%2Fsecret.wav",
        "%252e%252e/secret.wav",
        "..\\secret.wav",
        "..%5csecret.wav",
        str(secret),
        f"{root}/../secret.wav",
        f"file://{secret}",
        str(sibling),
        "/etc/passwd",
        "gs://other-bucket/secret.wav",
        "s3://bucket/secret.wav",
        "link-out.wav",
        "dir-link/x.wav",
        "zero.wav",
        "passwd.wav",
        "chain.wav",
        "inside\x00.wav",
    ]
    good = ["inside.wav", "sub/inside.wav", str(root / "sub" / "inside.wav"), "alias.wav"]
    manifest = write_manifest(tmp_path / "labels.csv", [("1", blob) for blob in [*good, *hostile]])
    output = tmp_path / "dataset"
    info = run_ingest(
        build_ingest_options(manifest=str(manifest), audio_root=str(root), output=str(output), max_rejected_fraction=1),
        [],
    )
    rejected = rejections(output)
    assert {blob: r["reason"] for blob, r in rejected.items() if r["reason"] != "duplicate"} == dict.fromkeys(
        hostile, "outside_root"
    )
    assert rejected[str(root / "sub" / "inside.wav")]["reason"] == "duplicate"  # same file as sub/inside.wav
    assert all(
        "outside" in r["message"] or "'..'" in r["message"] or "NUL" in r["message"]
        for r in rejected.values()
        if r["reason"] == "outside_root"
    ), rejected
    records = written_records(output)
    # a symlink that stays inside the root is an ordinary file of the root (its own example)
    assert sorted(r.blob for r in records) == ["alias.wav", "inside.wav", "sub/inside.wav"]
    assert info.num_examples == 3
    outside_audio = {sf.read(path, dtype="int16")[0].tobytes() for path in (secret, sibling)}
    assert not outside_audio & {r.audio for r in records}, "audio from outside the root was written"


def test_rows_pointing_outside_a_bucket_root_are_rejected_before_any_read(tmp_path):
    """With a gs:// root, other buckets, sibling prefixes, other schemes and local paths are refused at
    classification: no request is ever made for them (this test has no GCS at all)."""
    hostile = [
        "gs://other-bucket/audio/a.wav",
        "gs://bucket/audio-2/a.wav",
        "gs://bucket/a.wav",
        "gs://bucket/audio/../secret.wav",
        "gs://bucket/audio/%2e%2e/secret.wav",
        "s3://bucket/audio/a.wav",
        "file:///etc/passwd",
        "/etc/passwd",
        "../secret.wav",
        "sub/%252e%252e/%252e%252e/secret.wav",
    ]
    manifest = write_manifest(tmp_path / "labels.csv", [("1", blob) for blob in hostile])
    output = tmp_path / "dataset"
    info = run_ingest(
        build_ingest_options(
            manifest=str(manifest), audio_root="gs://bucket/audio", output=str(output), max_rejected_fraction=1
        ),
        [],
    )
    assert {blob: r["reason"] for blob, r in rejections(output).items()} == dict.fromkeys(hostile, "outside_root")
    assert info.num_examples == 0 and info.rejected["by_reason"] == {"outside_root": len(hostile)}
