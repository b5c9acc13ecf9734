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
from gcs_emulator import LatencyProxy


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

    target = os.stat(root / "in" / "target.wav")  # through the link: the file's size and modification time
    assert_that(
        sized.rows,
        equal_to(
            [
                dataclasses.replace(rows[0], size=small.stat().st_size, generation=small.stat().st_mtime_ns),
                dataclasses.replace(rows[1], size=target.st_size, generation=target.st_mtime_ns),
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
    assert run_counting(pipeline) == {
        "rows_rejected": 4,
        "rejected_missing": 2,
        "rejected_too_large": 1,
        "rejected_outside_root": 1,
    }


def test_a_local_file_rewritten_in_place_with_its_size_gets_a_new_generation(tmp_path: Path) -> None:
    """A local file's generation is its modification time: what --resume compares, as it does a gs://
    object's generation, to notice a source that changed between two runs with the same size."""
    from apache_beam.testing.test_pipeline import TestPipeline

    clip = write_audio(tmp_path / "audio" / "a.wav", seconds=0.1)
    options = build_ingest_options(
        manifest=str(tmp_path / "labels.csv"), output=str(tmp_path / "out"), audio_root=str(tmp_path / "audio")
    )
    row = PlannedRow(row=ManifestRow(2, "1", "a.wav"), split="train", uri=str(clip), label=1, label_name=None)

    def assert_generation(expected: int) -> None:
        with TestPipeline() as pipeline:
            sized = pipeline | beam.Create([row]) | StatFiles(options)
            assert_that(sized.rows | beam.Map(lambda planned: (planned.size, planned.generation)), equal_to([expected]))

    size, before = clip.stat().st_size, clip.stat().st_mtime_ns
    assert_generation((size, before))
    data = clip.read_bytes()
    clip.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one byte of the last sample changed: the same size
    os.utime(clip, ns=(before + 10**9, before + 10**9))  # a second later (a coarse clock may not show the write)
    assert_generation((size, before + 10**9))


GCS_BUCKET = "audioflow-stat-files"


def test_gs_files_are_sized_from_listings_without_a_request_per_file(pipeline, run_counting, faithful_gcs) -> None:
    """Three listing keys (the root's own files, d1/, d2/): three listing requests size every row, and
    decide `missing` and `too_large`; no object is fetched or stat()ed."""
    root = f"gs://{GCS_BUCKET}/root"
    sizes = {"a.wav": 100, "big.wav": 5000, "d1/x.wav": 10, "d1/y.wav": 20, "d1/other.wav": 30, "d2/z.wav": 40}
    with faithful_gcs.active():
        faithful_gcs.create_bucket(GCS_BUCKET)
        generations = {}
        for name, size in sizes.items():
            faithful_gcs.write_bytes(f"{root}/{name}", b"x" * size)
            generations[name] = int(faithful_gcs.client.bucket(GCS_BUCKET).get_blob(f"root/{name}").generation)
    options = build_ingest_options(manifest=f"{root}/labels.csv", output="/tmp/unused", max_file_size=1000)
    blobs = ["a.wav", "big.wav", "d1/x.wav", "d1/missing.wav", "d2/z.wav", "nothere.wav", "d1/y.wav"]
    rows = [gs_planned(options, line, blob) for line, blob in enumerate(blobs, start=2)]
    sized = pipeline | beam.Create(rows) | "StatFiles" >> StatFiles(options)
    found = [row for row in rows if row.row.blob in sizes]
    expected = [dataclasses.replace(r, size=sizes[r.row.blob], generation=generations[r.row.blob]) for r in found]
    assert_that(sized.rows, equal_to([row for row in expected if row.size <= 1000]), label="Sized")
    assert_that(
        sized.rejected,
        equal_to(
            [
                Rejection.of(
                    rows[1].row,
                    "train",
                    "too_large",
                    f"line 3: {root}/big.wav has 5000 bytes, over --max-file-size 1000",
                ),
                Rejection.of(rows[3].row, "train", "missing", f"line 5: no file at {root}/d1/missing.wav"),
                Rejection.of(rows[5].row, "train", "missing", f"line 7: no file at {root}/nothere.wav"),
            ]
        ),
        label="Rejected",
    )
    proxy = LatencyProxy(int(faithful_gcs.host.rsplit(":", 1)[1]))
    try:
        with faithful_gcs.active(f"http://127.0.0.1:{proxy.port}"):
            counts = run_counting(pipeline)
    finally:
        proxy.close()
    assert counts == {"listing_pages": 3, "rows_rejected": 3, "rejected_missing": 2, "rejected_too_large": 1}
    assert {kind: n for kind, n in proxy.kinds.items() if kind != "GET /storage/v1/b/…"} == {"GET /storage/v1/b/…/o": 3}


def test_rows_past_a_listings_page_budget_are_stat_ed(pipeline, run_counting, faithful_gcs) -> None:
    """A key whose 3 rows are spread over 25 objects gets one page of 10 (its budget); the rows past
    the page are stat()ed one by one, and a name the page passed without finding is missing."""
    root = f"gs://{GCS_BUCKET}/sparse"
    with faithful_gcs.active():
        faithful_gcs.create_bucket(GCS_BUCKET)
        for index in range(25):
            faithful_gcs.write_bytes(f"{root}/d/a{index:02d}.wav", b"y" * (index + 1))
    options = build_ingest_options(manifest=f"{root}/labels.csv", output="/tmp/unused")
    blobs = ["d/a00.wav", "d/a05x.wav", "d/a24.wav", "d/zz.wav"]
    rows = [gs_planned(options, line, blob) for line, blob in enumerate(blobs, start=2)]
    sized = pipeline | beam.Create(rows) | "StatFiles" >> StatFiles(options, listing_page_size=10)
    assert_that(
        sized.rows | beam.Map(lambda row: (row.row.blob, row.size, row.generation is not None)),
        equal_to([("d/a00.wav", 1, True), ("d/a24.wav", 25, True)]),
        label="Sized",
    )
    assert_that(
        sized.rejected | beam.Map(lambda rejection: (rejection.blob, rejection.reason)),
        equal_to([("d/a05x.wav", "missing"), ("d/zz.wav", "missing")]),
        label="Rejected",
    )
    proxy = LatencyProxy(int(faithful_gcs.host.rsplit(":", 1)[1]))
    try:
        with faithful_gcs.active(f"http://127.0.0.1:{proxy.port}"):
            counts = run_counting(pipeline)
    finally:
        proxy.close()
    assert counts == {"listing_pages": 1, "rows_rejected": 2, "rejected_missing": 2}
    kinds = {kind: n for kind, n in proxy.kinds.items() if kind != "GET /storage/v1/b/…"}
    # one listing page; a24 and zz are stat()ed, one metadata GET each.
    assert kinds == {"GET /storage/v1/b/…/o": 1, "GET /storage/v1/b/…/o/…": 2}


def gs_planned(options, line: int, blob: str) -> PlannedRow:
    uri = resolve_blob(options.audio_root, blob)
    return PlannedRow(row=ManifestRow(line, "1", blob), split="train", uri=uri, label=1, label_name=None)
