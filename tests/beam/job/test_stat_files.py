"""StatFiles on its own: sizes of real files, and missing / too_large / outside_root (a symlink out)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.stat import StatFiles
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.prep.paths import resolve_blob
from audioflow.beam.prep.rows import PlannedRow, Rejection

from audio_files import write_audio


def test_sizes_and_rejections(pipeline, run_counting, tmp_path: Path) -> None:
    root = tmp_path / "audio"
    small = write_audio(root / "small.wav", seconds=0.1)
    large = write_audio(root / "large.wav", seconds=1.0)
    write_audio(root / "in" / "target.wav", seconds=0.2)
    (root / "link-in.wav").symlink_to(root / "in" / "target.wav")  # a symlink inside the root is fine
    outside = write_audio(tmp_path / "elsewhere" / "secret.wav", seconds=0.1)
    (root / "link-out.wav").symlink_to(outside)
    (root / "folder.wav").mkdir()  # not a file
    limit = (small.stat().st_size + large.stat().st_size) // 2
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), audio_root=str(root), max_file_size=limit
    )

    def planned(line: int, blob: str) -> PlannedRow:
        uri = resolve_blob(options.audio_root, blob)
        return PlannedRow(row=ManifestRow(line, "1", blob), split="train", uri=uri, label=1, label_name=None)

    blobs = ["small.wav", "link-in.wav", "missing.wav", "large.wav", "link-out.wav", "folder.wav"]
    rows = [planned(line, blob) for line, blob in enumerate(blobs, start=2)]
    sized = pipeline | beam.Create(rows) | "StatFiles" >> StatFiles(options)

    target_size = os.path.getsize(root / "in" / "target.wav")
    assert_that(
        sized.rows,
        equal_to(
            [
                dataclasses.replace(rows[0], size=small.stat().st_size),
                dataclasses.replace(rows[1], size=target_size),
            ]
        ),
        label="Sized",
    )
    uri = {blob: row.uri for blob, row in zip(blobs, rows, strict=True)}
    assert_that(
        sized.rejected,
        equal_to(
            [
                Rejection.of(rows[2].row, "train", "missing", f"line 4: no file at {uri['missing.wav']}"),
                Rejection.of(
                    rows[3].row,
                    "train",
                    "too_large",
                    f"line 5: {uri['large.wav']} has {large.stat().st_size} bytes, over --max-file-size {limit}",
                ),
                Rejection.of(
                    rows[4].row,
                    "train",
                    "outside_root",
                    f"line 6: {uri['link-out.wav']!r} resolves to {str(outside)!r}, "
                    f"outside the audio root {options.audio_root!r}",
                ),
                Rejection.of(rows[5].row, "train", "missing", f"line 7: no file at {uri['folder.wav']}"),
            ]
        ),
        label="Rejected",
    )
    assert run_counting(pipeline) == {"rejected_missing": 2, "rejected_too_large": 1, "rejected_outside_root": 1}
