"""gs:// end to end on the GCS emulator: the real CLI ingests from a bucket into a bucket, and
inspect --verify, the overwrite guard and the reader all work on the result.

Everything is checked from the bucket's side (google-cloud-storage on the emulator), and the audio
read back through `read_split` is compared bit for bit with soundfile's decode of the source files.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from audioflow.beam.format import METADATA_FILE, REJECTED_FILE, DatasetInfo, parse_shard_name
from audioflow.beam.format.quality import QUALITY_FILE
from audioflow.beam.prep.audio import AudioOptions, decode_audio

from audio_files import FORMATS, write_audio, write_corrupt_files, write_manifest
from gcs_emulator import EmulatedGcs

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))
BUCKET = "audioflow-e2e"
SPLITS = "train=0.7,test=0.3"
RATES = (8000, 16000, 22050, 44100, 48000)


@dataclass
class Ingested:
    """The uploaded corpus and the first ingest run's outcome."""

    local_audio: Path
    manifest: str
    audio_root: str
    output: str
    num_rows: int
    expected_rejections: dict[str, str]  # blob -> reason
    good_blobs: set[str]
    run: subprocess.CompletedProcess
    workdir: Path


def audioflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Runs the installed CLI as users do (cwd without a .env, so only the test's environment counts)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RUNNER", "AUDIOFLOW_ENV_FILE")}
    return subprocess.run([AUDIOFLOW, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def ingest_args(corpus: Ingested, *extra: str) -> list[str]:
    return [
        "ingest",
        "--manifest",
        corpus.manifest,
        "--audio-root",
        corpus.audio_root,
        "--output",
        corpus.output,
        "--splits",
        SPLITS,
        "--max-rejected-fraction",
        "0.5",
        "--shard-size",
        "64KiB",
        *extra,
    ]


def build_corpus(folder: Path) -> tuple[Path, dict[str, str], set[str]]:
    """Real audio in every claimed format (some stereo, nested names), corrupt files, and a manifest
    that also lists a file that does not exist."""
    rows: list[tuple[str, str]] = []
    good = set()
    for index, (extension, subtype) in enumerate(FORMATS):
        name = f"{'nested/' if index % 3 == 0 else ''}{extension}-{subtype.lower()}.{extension}"
        write_audio(
            folder / "audio" / name,
            rate=RATES[index % len(RATES)],
            seconds=0.4 + 0.05 * index,
            channels=1 + index % 2,
            subtype=subtype,
            seed=index,
        )
        rows.append((("cat", "dog", "bird")[index % 3], name))
        good.add(name)
    expected = {}
    for path in write_corrupt_files(folder / "audio" / "corrupt").values():
        rows.append(("cat", f"corrupt/{path.name}"))
        expected[f"corrupt/{path.name}"] = "unreadable"
    rows.append(("dog", "missing.wav"))
    expected["missing.wav"] = "missing"
    manifest = write_manifest(folder / "manifest" / "labels.csv", rows)
    return manifest, expected, good


@pytest.fixture(scope="module")
def ingested(gcs: EmulatedGcs, tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    folder = tmp_path_factory.mktemp("gcs-corpus")
    manifest, expected, good = build_corpus(folder)
    bucket = gcs.create_bucket(BUCKET)
    gcs.upload_folder(folder / "audio", f"{bucket}/raw/audio")
    gcs.write_bytes(f"{bucket}/raw/labels.csv.gz", gzip.compress(manifest.read_bytes()))
    corpus = Ingested(
        # A gzipped manifest, and a whole bucket as the output (gs://bucket has no object part).
        local_audio=folder / "audio",
        manifest=f"{bucket}/raw/labels.csv.gz",
        audio_root=f"{bucket}/raw/audio",
        output=gcs.create_bucket(f"{BUCKET}-out"),
        num_rows=len(expected) + len(good),
        expected_rejections=expected,
        good_blobs=good,
        run=None,
        workdir=folder,  # type: ignore[arg-type]
    )
    corpus.run = audioflow(*ingest_args(corpus), cwd=folder)
    assert corpus.run.returncode == 0, corpus.run.stderr[-3000:]
    return corpus


def load_bucket_info(gcs: EmulatedGcs, output: str) -> DatasetInfo:
    return DatasetInfo.from_json(gcs.read_text(f"{output}/{METADATA_FILE}"))


def test_ingest_from_bucket_to_bucket(gcs: EmulatedGcs, ingested: Ingested) -> None:
    names = gcs.list(ingested.output)
    info = load_bucket_info(gcs, ingested.output)
    listed = {shard.name for split in info.splits.values() for shard in split.files}
    shards = {name for name in names if parse_shard_name(name)}
    assert shards == listed and len(shards) >= 2, names
    indexes = {f"{shard}.index" for shard in shards}  # each shard's record index
    assert set(names) == shards | indexes | {METADATA_FILE, REJECTED_FILE, QUALITY_FILE}  # no temporary files left
    for split in info.splits.values():
        for shard in split.files:
            assert len(gcs.read_bytes(f"{ingested.output}/{shard.name}")) == shard.num_bytes

    rejected = [json.loads(line) for line in gcs.read_text(f"{ingested.output}/{REJECTED_FILE}").splitlines()]
    assert {row["blob"]: row["reason"] for row in rejected} == ingested.expected_rejections
    missing = next(row for row in rejected if row["reason"] == "missing")
    assert f"{ingested.audio_root}/missing.wav" in missing["message"]

    written = sum(split.num_examples for split in info.splits.values())
    assert written == len(ingested.good_blobs)
    assert written + info.rejected["num_rows"] == info.manifest["num_rows"] == ingested.num_rows
    assert info.manifest["uri"] == ingested.manifest
    assert info.audio_root == ingested.audio_root
    assert info.labels["names"] == ["bird", "cat", "dog"]
    assert f"dataset   {ingested.output}" in ingested.run.stdout


def test_inspect_verify_reads_the_bucket(ingested: Ingested) -> None:
    run = audioflow("inspect", ingested.output, "--verify", "--json", cwd=ingested.workdir)
    assert run.returncode == 0, run.stderr[-3000:]
    verify = json.loads(run.stdout)["verify"]
    assert verify["ok"] and not verify["problems"]
    assert sum(verify["records_by_split"].values()) == len(ingested.good_blobs)


def read_all(dataset: str, info: DatasetInfo, **kwargs) -> list[dict]:
    from audioflow.beam.reader import read_split

    examples = []
    for split in sorted(info.splits):
        for example in read_split(dataset, split, info=info, **kwargs).as_numpy_iterator():
            examples.append({**example, "split": split})
    return examples


def assert_matches_source(example: dict, ingested: Ingested, info: DatasetInfo) -> None:
    """The example's audio equals soundfile's decode of the source file, bit for bit."""
    blob = example["blob"].decode()
    expected = decode_audio(str(ingested.local_audio / blob), AudioOptions(), name=blob)
    want = expected.samples.astype(np.float32) * np.float32(1 / 32768)
    assert example["audio"].dtype == np.float32 and example["audio"].shape == want.shape, blob
    assert np.array_equal(example["audio"], want), blob
    assert example["sample_rate"] == expected.sample_rate
    assert info.labels["names"][example["label"]] == example["label_name"].decode()


def test_read_split_from_bucket_is_bit_exact(gcs: EmulatedGcs, ingested: Ingested, tmp_path: Path) -> None:
    from audioflow.beam.reader import shard_source

    assert shard_source(ingested.output) == "beam"  # the emulator is set: TensorFlow's client would miss it
    info = load_bucket_info(gcs, ingested.output)
    remote = read_all(ingested.output, info)
    assert sorted(e["blob"].decode() for e in remote) == sorted(ingested.good_blobs)
    for example in remote:
        assert_matches_source(example, ingested, info)

    # The same shards from a local copy, read by TFRecordDataset: the same records.
    local = gcs.download(ingested.output, tmp_path / "copy")
    by_blob = {e["blob"]: e for e in remote}
    copied = read_all(str(local), info)
    assert len(copied) == len(by_blob)
    for example in copied:
        assert np.array_equal(example["audio"], by_blob[example["blob"]]["audio"])
        assert example["label"] == by_blob[example["blob"]]["label"]


def test_tensorflow_gcs_client_reads_the_bucket(gcs: EmulatedGcs, ingested: Ingested) -> None:
    """What users get on real GCS (source="auto" without an emulator): TensorFlow's own gs:// client,
    here reaching the emulator through a loopback TLS proxy that refuses every other host."""
    info = load_bucket_info(gcs, ingested.output)
    proxy = gcs.tensorflow_proxy()
    with proxy.active():
        native = read_all(ingested.output, info, source="tensorflow")
    assert sorted(e["blob"].decode() for e in native) == sorted(ingested.good_blobs)
    for example in native:
        assert_matches_source(example, ingested, info)
    hosts = {line.split()[1] for line in proxy.requests}
    assert proxy.requests and all(line.startswith("CONNECT ") for line in proxy.requests), proxy.requests
    assert hosts <= {"storage.googleapis.com:443", "www.googleapis.com:443"}


def test_output_bucket_must_exist(gcs: EmulatedGcs, ingested: Ingested) -> None:
    from audioflow.beam.errors import SettingsError
    from audioflow.beam.job.launch import prepare_output
    from audioflow.beam.prep.options import build_ingest_options

    options = build_ingest_options(manifest=ingested.manifest, output="gs://audioflow-no-such-bucket/ds")
    with pytest.raises(SettingsError, match="cannot list the output folder gs://audioflow-no-such-bucket/ds"):
        prepare_output(options)


def test_rerun_is_refused_and_overwrite_replaces(gcs: EmulatedGcs, ingested: Ingested) -> None:
    before = {name: gcs.read_bytes(f"{ingested.output}/{name}") for name in gcs.list(ingested.output)}

    refused = audioflow(*ingest_args(ingested), cwd=ingested.workdir)
    assert refused.returncode != 0
    assert f"{ingested.output} already holds a dataset; pass --overwrite" in refused.stderr
    assert {name: gcs.read_bytes(f"{ingested.output}/{name}") for name in gcs.list(ingested.output)} == before

    # A crashed earlier run's leftovers must go too; gzip shards replace the uncompressed ones.
    gcs.write_bytes(f"{ingested.output}/_temporary-crashed/train-00000-0000.tfrecord", b"partial")
    replaced = audioflow(*ingest_args(ingested, "--overwrite", "--compression", "gzip"), cwd=ingested.workdir)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    names = gcs.list(ingested.output)
    assert not any(name.startswith("_temporary") or name.endswith(".tfrecord") for name in names), names
    info = load_bucket_info(gcs, ingested.output)
    assert info.compression == "gzip"
    listed = {shard.name for split in info.splits.values() for shard in split.files}
    assert listed == {name for name in names if parse_shard_name(name)}

    old = DatasetInfo.from_json(before[METADATA_FILE].decode())
    assert {s: v.num_examples for s, v in info.splits.items()} == {s: v.num_examples for s, v in old.splits.items()}
    reread = read_all(ingested.output, info)  # gzip shards through the emulator
    assert sorted(e["blob"].decode() for e in reread) == sorted(ingested.good_blobs)
    for example in reread:
        assert_matches_source(example, ingested, info)


def _median_seconds(make_dataset, repeats: int = 3) -> float:
    import statistics
    import time

    times = []
    for _ in range(repeats):
        dataset = make_dataset()
        start = time.perf_counter()
        dataset.reduce(0, lambda count, _: count + 1)  # iterate in C++: no Python per element
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.slow
def test_reader_speed(gcs: EmulatedGcs, tmp_path: Path) -> None:
    """The numbers in docs/gcs.md: 2,000 one-second 16 kHz clips in 8 shards, read four ways.

    Run with `pytest -m slow tests/e2e/test_gcs.py -k speed -s`.
    """
    from audioflow.beam.job.launch import run_ingest
    from audioflow.beam.prep.options import build_ingest_options
    from audioflow.beam.reader import load_dataset_info, read_split

    rows = []
    for index in range(2000):
        write_audio(tmp_path / "audio" / f"{index:05d}.wav", rate=16000, seconds=1.0, seed=index % 50)
        rows.append((str(index % 10), f"{index:05d}.wav"))
    manifest = write_manifest(tmp_path / "audio" / "labels.csv", rows)
    local = str(tmp_path / "dataset")
    options = build_ingest_options(manifest=str(manifest), output=local, shard_size="8MiB")
    run_ingest(options, ["--runner", "FnApiRunner"])
    remote = gcs.create_bucket("audioflow-speed") + "/dataset"
    gcs.upload_folder(local, remote)
    info = load_dataset_info(local)
    megabytes = info.splits["train"].num_bytes / 1e6
    proxy = gcs.tensorflow_proxy()
    routes = {
        "local files, TFRecordDataset (source=tensorflow)": lambda: read_split(local, "train", info=info),
        "local files, Beam FileSystems (source=beam)": lambda: read_split(local, "train", info=info, source="beam"),
        "emulator, Beam FileSystems (source=beam)": lambda: read_split(remote, "train", info=info, source="beam"),
    }
    seconds = {name: _median_seconds(make) for name, make in routes.items()}
    with proxy.active():  # TensorFlow reads the proxy settings as each request is made
        seconds["emulator via TLS proxy, TensorFlow's GCS client"] = _median_seconds(
            lambda: read_split(remote, "train", info=info, source="tensorflow")
        )
    for name, value in seconds.items():
        print(f"{name:52s} {value:6.2f} s {2000 / value:7.0f} clips/s {megabytes / value:6.1f} MB/s")
    local_routes = list(seconds.values())[:2]
    assert local_routes[1] < 3 * local_routes[0]  # the Python route costs little CPU next to TensorFlow's
