"""Requests per gs:// file: `audioflow ingest` reading a bucket makes one request per file it writes,
plus a constant.

The installed CLI runs against the emulator that pages listings and sends generation headers as
Cloud Storage does (tests/helpers/gcs_faithful.py), through a proxy that counts requests by kind. The
audio sits in three listing keys (the root's own files and two folders); the manifest also names a
missing file and one over --max-file-size, which the listings reject without a request. An object
replaced between the listing and its read is rejected as `unreadable`, not read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from audioflow.beam.job.coders import register_row_coders
from audioflow.beam.job.write import WriteShards
from audioflow.beam.prep.manifest import ManifestRow
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.prep.rows import PlannedRow

from audio_files import write_audio, write_manifest
from gcs_emulator import LatencyProxy
from gcs_faithful import FaithfulGcs

AUDIOFLOW = [sys.executable, "-m", "audioflow.beam.cli"]
BUCKET = "audioflow-requests"
FILES = 150  # 50 in the root, 50 in x/, 50 in y/
BUCKET_METADATA = "GET /storage/v1/b/…"  # google-cloud-storage fetches it once per client (one client per thread)
LISTING = "GET /storage/v1/b/…/o"
OBJECT_METADATA = "GET /storage/v1/b/…/o/…"
MEDIA = "GET /download/b/…/o/… alt=media"


@pytest.fixture(scope="module")
def proxy(faithful_gcs: FaithfulGcs) -> Iterator[LatencyProxy]:
    """A counting proxy in front of the emulator; objects are uploaded through it too, since the emulator
    gives each object a media link at the address it was uploaded through, and Beam downloads from there."""
    counting = LatencyProxy(int(faithful_gcs.host.rsplit(":", 1)[1]))
    try:
        yield counting
    finally:
        counting.close()


@pytest.fixture(scope="module")
def bucket(faithful_gcs: FaithfulGcs, proxy: LatencyProxy, tmp_path_factory) -> str:
    """The audio (three listing keys, plus files the manifest does not name) and a manifest naming
    150 files, a missing one and one of 200 KB."""
    local = tmp_path_factory.mktemp("requests-audio")
    rows = []
    for index in range(FILES):
        name = [f"a-{index:03d}.wav", f"x/{index:03d}.wav", f"y/deeper/{index:03d}.wav"][index % 3]
        write_audio(local / name, rate=8000, seconds=0.02, seed=index)
        rows.append((str(index % 2), name))
    write_audio(local / "x" / "not-in-the-manifest.wav", rate=8000, seconds=0.02)
    write_audio(local / "big.wav", rate=8000, seconds=12.5)  # 200 KB
    rows += [("1", "x/missing.wav"), ("0", "big.wav")]
    write_manifest(local / "labels.csv", rows)
    with faithful_gcs.active(f"http://127.0.0.1:{proxy.port}"):
        through_proxy = FaithfulGcs(faithful_gcs.host, faithful_gcs.credentials_file, faithful_gcs.env)
        root = through_proxy.create_bucket(BUCKET) + "/data"
        through_proxy.upload_folder(local, root)
    return root


def test_one_request_per_file_plus_a_constant(faithful_gcs, proxy, bucket: str, tmp_path: Path) -> None:
    env = {**os.environ, **faithful_gcs.env, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{proxy.port}"}
    output = tmp_path / "dataset"  # local: only reads cross the proxy
    args = ["ingest", "--manifest", f"{bucket}/labels.csv", "--output", str(output), "--max-file-size", "100KB"]
    args += ["--max-rejected-fraction", "0.05"]
    proxy.reset()
    done = subprocess.run([*AUDIOFLOW, *args, "--json"], env=env, capture_output=True, text=True, timeout=600)
    kinds = dict(proxy.kinds)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout)
    assert info["splits"]["train"]["num_examples"] == FILES
    assert info["rejected"]["by_reason"] == {"missing": 1, "too_large": 1}

    assert kinds[LISTING] == 3  # one page per listing key
    # The audio files, then the manifest: opened by the launcher's check, its hash and the job (Beam's
    # reader may need two GETs for one open).
    reads = kinds[MEDIA] - FILES
    assert 0 < reads <= 8, kinds
    assert kinds.get(OBJECT_METADATA, 0) <= 4, kinds  # the manifest's; never one per audio file
    assert kinds.get(BUCKET_METADATA, 0) <= 2 * 16 + 4, kinds  # one per storage client made
    assert set(kinds) <= {LISTING, MEDIA, OBJECT_METADATA, BUCKET_METADATA}, kinds
    per_file = sum(n for kind, n in kinds.items() if kind != BUCKET_METADATA) / FILES
    assert per_file <= 1 + 20 / FILES, kinds  # measured: 163 requests for 150 files, bucket metadata aside


def test_an_object_replaced_after_it_was_listed_is_not_read(faithful_gcs, bucket, tmp_path: Path) -> None:
    """WriteShards reads at the generation StatFiles listed: a replaced object is `unreadable`."""
    register_row_coders()
    pipeline = test_pipeline.TestPipeline(runner=FnApiRunner())
    uri = f"{bucket}/a-000.wav"
    with faithful_gcs.active():
        blob = faithful_gcs.client.bucket(BUCKET).get_blob("data/a-000.wav")
        listed_size, listed_generation = int(blob.size), int(blob.generation)
        faithful_gcs.write_bytes(uri, faithful_gcs.read_bytes(uri))  # the same bytes, a new generation
    options = build_ingest_options(manifest=f"{bucket}/labels.csv", output="/tmp/unused")
    row = PlannedRow(ManifestRow(2, "0", "a-000.wav"), "train", uri, 0, None, listed_size, listed_generation)
    why = f"(generation {listed_generation})"  # Cloud Storage refused the read (412)
    written = pipeline | beam.Create([row]) | WriteShards(options, str(tmp_path / "_temporary-x"))
    assert_that(written.shards, equal_to([]), label="NothingWritten")
    assert_that(
        written.rejected | beam.Map(lambda r: (r.reason, r.message)),
        equal_to([("unreadable", f"line 2: {uri}: ObjectChangedError: {uri} was replaced after it was listed {why}")]),
        label="Unreadable",
    )
    with faithful_gcs.active():
        result = pipeline.run()
        result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("audioflow"))["counters"]
    assert {c.key.metric.name: c.committed for c in counters} == {
        "files_decoded": 1,
        "rows_rejected": 1,
        "rejected_unreadable": 1,
    }
