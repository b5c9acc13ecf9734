"""ReadManifest on its own: a CSV file in, its rows and its identity (hash, row count) out."""

from __future__ import annotations

import hashlib
from pathlib import Path

from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.read import ReadManifest
from audioflow.beam.prep.manifest import ManifestRow


def test_rows_and_the_manifest_identity(pipeline, run_counting, tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    manifest.write_bytes(b"Label,Blob Name,Split\ndog,a.wav,train\ncat,b.wav,\n7\n\n")
    read = pipeline | "ReadManifest" >> ReadManifest(str(manifest), None, None)
    assert_that(
        read.rows,
        equal_to(
            [
                ManifestRow(line=2, label="dog", blob="a.wav", split="train"),
                ManifestRow(line=3, label="cat", blob="b.wav", split=""),
                ManifestRow(line=4, label="7", blob="", problem="row has 1 field(s); the header has 3"),
            ]
        ),
        label="Rows",
    )
    sha256 = hashlib.sha256(manifest.read_bytes()).hexdigest()  # trailing blank lines included
    assert_that(read.info, equal_to([{"uri": str(manifest), "sha256": sha256, "num_rows": 3}]), label="Info")
    assert run_counting(pipeline) == {"manifest_rows": 3}
