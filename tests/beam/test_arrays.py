"""The NumPy reader, the random-access source and the sharded view.

Every example they read is compared with `read_split`'s, bit for bit, on the demo dataset and on a
multi-shard dataset with mono and stereo clips; bad input (no index, a stale index, a truncated
shard, an out-of-range index) fails with an error that says what to do; the readers never import
TensorFlow or Beam, and work in forked and spawned workers (a real Grain DataLoader).
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audioflow.beam.arrays import RandomAccessSource, ShardedView, global_worker, iter_split, load_info
from audioflow.beam.cli import main
from audioflow.beam.errors import DatasetError
from audioflow.beam.format import METADATA_FILE
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.beam.tools.indexing import write_indexes

from audio_files import expected_int16, write_audio, write_manifest

CLIPS = 14


def ingest(manifest: Path, audio_root: Path, output: Path, **options) -> str:
    defaults = {"shard_size": 64 * 1024, "splits": "train=0.7,test=0.3", "max_rejected_fraction": 0.5}
    run_ingest(
        build_ingest_options(
            manifest=str(manifest), audio_root=str(audio_root), output=str(output), **{**defaults, **options}
        ),
        [],
    )
    info = load_info(str(output))
    if options.get("compression", "none") == "none":  # ingest writes an index next to every shard
        shards = sorted(f.name for split in info.splits.values() for f in split.files)
        assert info.index == {"version": 1, "files": {name: f"{name}.index" for name in shards}}
        assert all((output / f"{name}.index").is_file() for name in shards)
    return str(output)


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> tuple[str, Path]:
    """Several shards per split; mono and stereo clips of different lengths; string labels."""
    root = tmp_path_factory.mktemp("arrays")
    rows = []
    for index in range(CLIPS):
        name = f"clip{index:02d}.wav"
        write_audio(root / "audio" / name, rate=16000, seconds=0.3 + 0.05 * index, channels=1 + index % 2, seed=index)
        rows.append((("cat", "dog", "bird")[index % 3], name))
    manifest = write_manifest(root / "labels.csv", rows)
    dataset = ingest(manifest, root / "audio", root / "ds")
    info = load_info(dataset)
    assert info.splits["train"].num_shards >= 3 and info.splits["test"].num_shards >= 2
    return dataset, root / "audio"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("demo")
    manifest = make_demo_data(root, clips_per_class=6)
    return ingest(manifest, root, root / "ds", shard_size=256 * 1024)


def by_blob(examples) -> dict[str, dict]:
    out = {}
    for example in examples:
        assert example["blob"] not in out
        out[example["blob"]] = example
    return out


def tf_by_blob(dataset: str, split: str) -> dict[str, dict]:
    from audioflow.beam.reader import read_split

    out = {}
    for example in read_split(dataset, split).as_numpy_iterator():
        example = {k: v.decode() if isinstance(v, bytes) else v for k, v in example.items()}
        out[example["blob"]] = example
    return out


def assert_same(ours: dict, theirs: dict) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        if key == "audio":
            assert ours["audio"].dtype == np.float32 and ours["audio"].shape == value.shape
            np.testing.assert_array_equal(ours["audio"].view(np.int32), value.view(np.int32))
        else:
            assert ours[key] == value, key


def assert_readers_agree(dataset: str) -> int:
    info = load_info(dataset)
    total = 0
    for split in info.splits:
        reference = tf_by_blob(dataset, split)
        iterated = by_blob(iter_split(dataset, split))
        source = RandomAccessSource(dataset, split)
        random_access = by_blob(source[i] for i in range(len(source)))
        assert sorted(iterated) == sorted(random_access) == sorted(reference)
        assert len(source) == info.splits[split].num_examples == len(reference)
        for blob, example in reference.items():
            assert_same(iterated[blob], example)
            assert_same(random_access[blob], example)
        total += len(reference)
    return total


def test_every_reader_gives_read_splits_examples_on_a_multi_shard_dataset(multi):
    dataset, audio = multi
    assert assert_readers_agree(dataset) == CLIPS
    names = load_info(dataset).label_names
    for example in iter_split(dataset, "train", audio="int16"):
        assert example["audio"].dtype == np.int16
        np.testing.assert_array_equal(example["audio"], expected_int16(audio / example["blob"]))
        assert example["label_name"] == names[example["label"]]


def test_every_reader_gives_read_splits_examples_on_the_demo_dataset(demo):
    assert assert_readers_agree(demo) == load_info(demo).num_examples > 0


def test_random_access_order_is_shard_order(multi):
    dataset, _ = multi
    source = RandomAccessSource(dataset, "train", audio="int16")
    iterated = [example["blob"] for example in iter_split(dataset, "train")]
    assert [source[i]["blob"] for i in range(len(source))] == iterated
    assert source[-1]["blob"] == iterated[-1]
    assert source[np.int64(2)]["blob"] == iterated[2]
    assert [e["blob"] for e in source.__getitems__([3, 0])] == [iterated[3], iterated[0]]
    assert repr(source) == f"RandomAccessSource({dataset!r}, 'train', audio='int16')"


def test_out_of_range_is_an_index_error(multi):
    dataset, _ = multi
    source = RandomAccessSource(dataset, "train")
    with pytest.raises(IndexError, match=f"example {len(source)} is out of range: split 'train' has {len(source)}"):
        source[len(source)]
    with pytest.raises(IndexError):
        source[-len(source) - 1]
    assert list(source)  # the sequence protocol stops at IndexError, as for a list
    with pytest.raises(TypeError):
        source["1"]


@pytest.mark.parametrize("by", ["shards", "records", "auto"])
@pytest.mark.parametrize("num_workers", [1, 2, 3, 5])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sharded_views_cover_every_example_exactly_once(multi, by, num_workers, shuffle):
    dataset, _ = multi
    everything = sorted(e["blob"] for e in iter_split(dataset, "train"))
    kwargs = {"seed": 7, "epoch": 3, "shuffle_buffer": 4} if shuffle else {}
    views = [
        ShardedView(dataset, "train", worker=k, num_workers=num_workers, by=by, **kwargs) for k in range(num_workers)
    ]
    seen = [[e["blob"] for e in view] for view in views]
    assert sorted(blob for part in seen for blob in part) == everything
    assert [len(part) for part in seen] == [len(view) for view in views]
    if views[0].by == "records":
        assert max(map(len, seen)) - min(map(len, seen)) <= 1


def test_sharded_view_order_is_seeded_per_epoch(multi):
    dataset, _ = multi

    def order(epoch: int, seed: int = 1) -> list[str]:
        return [e["blob"] for e in ShardedView(dataset, "train", seed=seed, epoch=epoch, shuffle_buffer=3)]

    assert order(0) == order(0)
    assert order(0) != order(1) or order(1) != order(2)
    assert sorted(order(0)) == sorted(order(1))
    view = ShardedView(dataset, "train", seed=1)
    view.set_epoch(1)
    assert [e["blob"] for e in view] == [e["blob"] for e in ShardedView(dataset, "train", seed=1, epoch=1)]
    with pytest.raises(ValueError, match="needs a seed"):
        ShardedView(dataset, "train", shuffle_buffer=3)
    with pytest.raises(ValueError, match="worker must be in"):
        ShardedView(dataset, "train", worker=2, num_workers=2)


def test_global_worker_gives_each_rank_and_worker_its_own_slot():
    slots = {global_worker(rank=r, world_size=2, worker_id=w, num_workers=3) for r in range(2) for w in range(3)}
    assert slots == {(k, 6) for k in range(6)}
    with pytest.raises(ValueError):
        global_worker(rank=2, world_size=2)


def test_gzip_shards_are_iterated_only(multi, tmp_path):
    dataset, audio = multi
    target = Path(copy_dataset(dataset, tmp_path / "gz"))
    gz = ingest(Path(dataset).parent / "labels.csv", audio, target, compression="gzip", overwrite=True)
    info = load_info(gz)
    assert info.compression == "gzip" and info.index is None
    assert not list(target.glob("*.index"))  # --overwrite removed the indexes of the shards it replaced
    plain = by_blob(iter_split(dataset, "train"))
    for blob, example in by_blob(iter_split(gz, "train")).items():
        assert_same(example, plain[blob])
    with pytest.raises(DatasetError, match="gzip shards have no random access"):
        RandomAccessSource(gz, "train")
    parts = [[e["blob"] for e in ShardedView(gz, "train", worker=k, num_workers=2, by="records")] for k in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(plain)
    result = CliRunner().invoke(main, ["index", gz])
    assert result.exit_code == 1 and "gzip shards have no random access" in result.output


def copy_dataset(dataset: str, target: Path) -> str:
    shutil.copytree(dataset, target)
    return str(target)


def rewrite_info(dataset: str, **changes) -> None:
    path = Path(dataset) / METADATA_FILE
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_a_dataset_without_index_says_to_run_audioflow_index(multi, tmp_path):
    dataset = copy_dataset(multi[0], tmp_path / "old")
    rewrite_info(dataset, index=None)
    written_at_ingest = {path.name: path.read_bytes() for path in Path(dataset).glob("*.index")}
    for index_file in Path(dataset).glob("*.index"):
        index_file.unlink()
    with pytest.raises(DatasetError, match=rf"no record index .* run `audioflow index {dataset}`"):
        RandomAccessSource(dataset, "train")
    assert len(list(iter_split(dataset, "train"))) == load_info(dataset).splits["train"].num_examples
    result = CliRunner().invoke(main, ["index", dataset])
    assert result.exit_code == 0, result.output
    assert "indexed" in result.output
    assert {path.name: path.read_bytes() for path in Path(dataset).glob("*.index")} == written_at_ingest
    assert load_info(dataset).index == load_info(multi[0]).index
    assert by_blob(RandomAccessSource(dataset, "train")).keys() == by_blob(iter_split(dataset, "train")).keys()


def test_a_missing_index_file_says_to_run_audioflow_index(multi, tmp_path):
    dataset = copy_dataset(multi[0], tmp_path / "lost")
    info = load_info(dataset)
    shard = info.splits["train"].files[1]
    (Path(dataset) / info.index["files"][shard.name]).unlink()
    source = RandomAccessSource(dataset, "train")
    source[0]  # shard 0 still reads
    with pytest.raises(
        DatasetError, match=rf"{shard.name}.index: listed in dataset.json but missing: run `audioflow index"
    ):
        source[info.splits["train"].files[0].num_examples]


def test_an_index_that_does_not_match_its_shard_is_caught(multi, tmp_path):
    dataset = copy_dataset(multi[0], tmp_path / "stale")
    files = load_info(dataset).splits["train"].files
    first, second = (Path(dataset) / f"{shard.name}.index" for shard in files[:2])
    shutil.copy(first, second)  # another shard's index: wrong length or size
    source = RandomAccessSource(dataset, "train")
    with pytest.raises(DatasetError, match=rf"^{files[1].name}\.index: indexes "):
        source[files[0].num_examples]
    result = CliRunner().invoke(main, ["inspect", dataset, "--verify"])
    assert result.exit_code == 1 and f"{files[1].name}.index: indexes" in result.output


def test_an_index_with_shifted_offsets_is_caught_at_the_read(multi, tmp_path):
    from audioflow.beam.format.index import RecordIndex, decode_index

    dataset = copy_dataset(multi[0], tmp_path / "shifted")
    files = load_info(dataset).splits["train"].files
    number = max(range(len(files)), key=lambda i: files[i].num_examples)
    shard, first = files[number], sum(f.num_examples for f in files[:number])
    path = Path(dataset) / f"{shard.name}.index"
    good = decode_index(path.read_bytes(), path.name)
    assert len(good) >= 2
    sizes = [good.span(i)[1] for i in range(len(good))]
    sizes[0], sizes[1] = sizes[0] + 2, sizes[1] - 2  # same count and shard size, offsets off by two
    path.write_bytes(RecordIndex.from_record_sizes(sizes).encode())
    source = RandomAccessSource(dataset, "train")
    with pytest.raises(
        DatasetError, match=rf"^{shard.name}: record 0 at byte 0: a record of \d+ bytes, its index says"
    ):
        source[first]
    with pytest.raises(DatasetError, match=rf"^{shard.name}: record 1 at byte \d+: length checksum mismatch"):
        source[first + 1]
    result = CliRunner().invoke(main, ["inspect", dataset, "--verify"])
    assert result.exit_code == 1 and "does not match its shard: record 1 indexed at byte" in result.output


def test_a_truncated_shard_names_the_file_and_offset(multi, tmp_path):
    dataset = copy_dataset(multi[0], tmp_path / "cut")
    shard = load_info(dataset).splits["train"].files[0]
    path = Path(dataset) / shard.name
    path.write_bytes(path.read_bytes()[: shard.num_bytes - 100])
    last = shard.num_examples - 1
    with pytest.raises(DatasetError, match=rf"^{shard.name}: record {last} at byte \d+: truncated record"):
        list(iter_split(dataset, "train"))
    with pytest.raises(DatasetError, match=rf"^{shard.name}: record {last} at byte \d+: truncated record"):
        RandomAccessSource(dataset, "train")[last]
    # Cut at a record boundary, the count gives it away.
    start, _ = RandomAccessSource(dataset, "train").index(0).span(last)
    path.write_bytes(path.read_bytes()[:start])
    with pytest.raises(DatasetError, match=rf"{shard.name}: {last} records, dataset.json says {last + 1}"):
        list(iter_split(dataset, "train"))


def test_the_source_pickles_without_handles(multi):
    dataset, _ = multi
    source = RandomAccessSource(dataset, "train")
    first = source[0]
    copy = pickle.loads(pickle.dumps(source))
    assert_same(copy[0], {k: v for k, v in first.items()})
    assert len(pickle.dumps(source)) < 4096


READ_ONLY_PROCESS = """
import multiprocessing, sys
import numpy as np
from audioflow.beam.arrays import RandomAccessSource, ShardedView, iter_split

dataset = sys.argv[1]
source = RandomAccessSource(dataset, "train")
mine = [source[i]["audio"] for i in range(len(source))]  # files now open in this process

def read(i):
    return source[i]["audio"]

with multiprocessing.get_context("fork").Pool(2) as pool:
    forked = pool.map(read, range(len(source)))
assert all(np.array_equal(a, b) for a, b in zip(mine, forked, strict=True))
count = sum(1 for _ in iter_split(dataset, "train", audio="int16"))
count += sum(1 for _ in ShardedView(dataset, "train", worker=1, num_workers=2, by="records"))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "apache_beam", "keras", "torch"))
# VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report the forking pytest's peak.
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(heavy, count, peak_kb // 1024)
"""


def test_reading_imports_neither_tensorflow_nor_beam_and_forks_safely(multi):
    dataset, _ = multi
    done = subprocess.run(
        [sys.executable, "-c", READ_ONLY_PROCESS, dataset], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    heavy, count, peak_mb = done.stdout.strip().rsplit(" ", 2)
    assert heavy == "[]" and int(count) > 0
    assert int(peak_mb) < 150


MANY_SHARDS_FEW_DESCRIPTORS = """
import resource, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np

resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from audioflow.beam import byte_ranges
from audioflow.beam.arrays import RandomAccessSource, iter_split

source = RandomAccessSource(sys.argv[1], "train", audio="int16")
expected = [example["audio"] for example in iter_split(sys.argv[1], "train", audio="int16")]
order = np.random.default_rng(0).integers(len(source), size=20 * len(source)).tolist()
with ThreadPoolExecutor(4) as pool:
    got = list(pool.map(lambda i: (i, source[i]["audio"]), order))
assert all(np.array_equal(audio, expected[i]) for i, audio in got)
print(byte_ranges._MAX_MAPPED, len(byte_ranges._MAPS), len(expected))
"""


def test_more_shards_than_maps_read_right_from_threads_within_the_descriptor_limit(tmp_path):
    """With 64 descriptors, 16 files stay mapped; 4 threads reading at random across more shards than
    that evict and remap them, and every read is still the right example."""
    audio = tmp_path / "audio"
    names = [write_audio(audio / f"c{index:02d}.wav", rate=8000, seconds=0.4, seed=index).name for index in range(30)]
    manifest = write_manifest(tmp_path / "labels.csv", [("cat", name) for name in names])
    dataset = ingest(manifest, audio, tmp_path / "ds", shard_size=8 * 1024, splits="train=1")
    assert load_info(dataset).splits["train"].num_shards > 16
    done = subprocess.run(
        [sys.executable, "-c", MANY_SHARDS_FEW_DESCRIPTORS, dataset],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    limit, mapped, examples = map(int, done.stdout.split())
    assert limit == 16 and mapped <= 16 and examples == 30


def test_grain_dataloader_with_worker_processes_reads_each_example_once_per_epoch(multi):
    grain = pytest.importorskip("grain")
    dataset, _ = multi
    source = RandomAccessSource(dataset, "train", audio="int16")
    everything = sorted(e["blob"] for e in iter_split(dataset, "train"))
    epochs = 2
    sampler = grain.samplers.IndexSampler(len(source), shuffle=True, seed=5, num_epochs=epochs)
    loader = grain.DataLoader(data_source=source, sampler=sampler, worker_count=2)
    seen = [example["blob"] for example in loader]
    assert len(seen) == epochs * len(everything)
    for epoch in range(epochs):
        assert sorted(seen[epoch * len(everything) : (epoch + 1) * len(everything)]) == everything
    assert seen[: len(everything)] != everything  # shuffled
    # Two hosts (ShardOptions), each with its own workers: disjoint, and together everything.
    hosts = []
    for host in range(2):
        options = grain.sharding.ShardOptions(shard_index=host, shard_count=2, drop_remainder=False)
        sampler = grain.samplers.IndexSampler(len(source), shard_options=options, shuffle=True, seed=5, num_epochs=1)
        loader = grain.DataLoader(data_source=source, sampler=sampler, worker_count=2, shard_options=options)
        hosts.append([example["blob"] for example in loader])
    assert not set(hosts[0]) & set(hosts[1])
    assert sorted(hosts[0] + hosts[1]) == everything
    assert collections.Counter(hosts[0] + hosts[1]).most_common(1)[0][1] == 1


def test_gcs_readers_agree_with_local(multi, gcs):
    dataset, _ = multi
    bucket = gcs.create_bucket("audioflow-arrays")
    gcs.upload_folder(dataset, f"{bucket}/ds")
    remote = f"{bucket}/ds"
    local = by_blob(iter_split(dataset, "train"))
    assert assert_readers_agree(remote) == CLIPS
    for blob, example in by_blob(iter_split(remote, "train")).items():
        assert_same(example, local[blob])
    source = RandomAccessSource(remote, "train")
    with pytest.raises(IndexError):
        source[len(source)]
    parts = [[e["blob"] for e in ShardedView(remote, "train", worker=k, num_workers=2, by="records")] for k in range(2)]
    assert sorted(parts[0] + parts[1]) == sorted(local)


def test_audioflow_index_on_gcs_writes_the_indexes_ingest_writes(multi, gcs, tmp_path):
    from audioflow.beam.reader import load_dataset_info

    dataset, _ = multi
    old = copy_dataset(dataset, tmp_path / "old")
    rewrite_info(old, index=None)
    for index_file in Path(old).glob("*.index"):
        index_file.unlink()
    remote = f"{gcs.create_bucket('audioflow-arrays-old')}/ds"
    gcs.upload_folder(old, remote)
    with pytest.raises(DatasetError, match="run `audioflow index"):
        RandomAccessSource(remote, "train")
    write_indexes(remote, load_dataset_info(remote))
    for name, index_file in load_info(remote).index["files"].items():
        assert gcs.read_bytes(f"{remote}/{index_file}") == (Path(dataset) / f"{name}.index").read_bytes()
    source = RandomAccessSource(remote, "train")
    assert [source[i]["blob"] for i in range(len(source))] == [e["blob"] for e in iter_split(dataset, "train")]


def test_gcs_missing_dataset_is_a_clear_error(gcs):
    bucket = gcs.create_bucket("audioflow-arrays-empty")
    with pytest.raises(DatasetError, match=r"has no dataset\.json"):
        load_info(f"{bucket}/nothing")


def test_only_local_paths_and_gcs(tmp_path):
    with pytest.raises(ValueError, match="only local paths and gs://"):
        load_info("s3://bucket/ds")
    assert os.path.exists(tmp_path)
