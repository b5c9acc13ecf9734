"""Reading a dataset as NumPy arrays from any framework: iteration, random access, sharding.

Nothing here imports TensorFlow or Apache Beam (tests check `sys.modules`): a process that only reads
pays NumPy and google-cloud-storage, not 500 MB and 2 s of TensorFlow. Records, their CRCs and
their features are read by the format layer's own code (`audioflow.beam.format`), bytes by
`audioflow.beam.byte_ranges` (local paths and gs://). Every example is a dict:

    audio         np.ndarray [num_frames, num_channels]: float32 in [-1, 1] (x / 32768,
                  bit-identical to `read_split`'s), or with audio="int16" the samples as stored.
                  Samples as stored (int16, or float32 datasets) are a read-only view of the
                  record, not a copy: np.array(x) makes a writable one.
    label         int    single-label: the label as written, or its index in `labels.names`
    label_name    str    single-label string labels
    labels        np.ndarray int64 [n]   multi-label: the label indices (or integers)
    label_names   list[str]              multi-label string labels, in the order of `labels`
    sample_rate, num_channels, num_frames   int
    blob          str    the blob name as written in the manifest
    text          str    the text target (NFC)
    source_sample_rate, segment_start, segment_end, window_offset   int   segments and windows
    group         str    the --split-by group
    <column>      str, int or float   kept columns
A key is present only when the dataset's records hold that feature.

Three ways in:

    iter_split(dataset, split)             every example once, shard after shard
    RandomAccessSource(dataset, split)     len() and [i], one positioned read per example through
                                           the record index (a PyTorch map-style dataset, a Grain
                                           data source, the body of a keras.utils.PyDataset)
    ShardedView(dataset, split, worker=k, num_workers=n, seed=..., epoch=..., shuffle_buffer=...)
                                           the part of an epoch that consumer k of n reads
                                           (DataLoader workers × DDP ranks, Grain's ShardOptions)

Gzip shards have no random access (a deflate stream cannot be entered in the middle): they are
iterated only, and `RandomAccessSource` refuses them.
"""

from __future__ import annotations

import bisect
import operator
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from audioflow.beam.byte_ranges import is_gcs, join, open_stream, read_file, read_ranges
from audioflow.beam.errors import DatasetError
from audioflow.beam.format import (
    METADATA_FILE,
    SAMPLE_FORMATS,
    DatasetInfo,
    decode_fields,
    iter_shard_records,
)
from audioflow.beam.format.index import RecordIndex, decode_index
from audioflow.beam.format.tfrecord import check_record

__all__ = ["AudioType", "RandomAccessSource", "ShardedView", "global_worker", "iter_split", "load_info"]

AudioType = Literal["int16", "float32"]
_INT16_SCALE = np.float32(1 / 32768)  # a power of two: x * 2^-15 is exact, as read_split's dequantize
_FRAME_BYTES = 16
_ALLOCATOR_SETTLED = [-1]  # the pid of the process whose allocator _settle_allocator has set


def _settle_allocator() -> None:
    """Frees one 8 MiB block, once per process, so glibc's malloc stops returning freed memory to the
    kernel after every record. Called where a random-access source is made or unpickled (a forked
    child inherits the parent's allocator state).

    A random read allocates the record (~160 kB for 5 s of audio), a copy of its audio and, for
    float32, an array twice that size, and frees most of it before the next read. glibc starts
    with 128 kB mmap and trim thresholds, so each read got fresh pages and faulted them in again
    (124 page faults per 5-s float32 read, which made it 2.4x slower). Freeing an mmapped block is
    glibc's own signal to raise both thresholds (its documented dynamic mmap threshold: any process
    that frees a large buffer gets the same). After this one, records stay in the heap, and the heap
    keeps at most 16 MiB free at its top. With other allocators it is just one allocation.
    """
    if _ALLOCATOR_SETTLED[0] != os.getpid():
        _ALLOCATOR_SETTLED[0] = os.getpid()
        bytearray(8 << 20)


def load_info(dataset: str) -> DatasetInfo:
    """Reads dataset.json (local path or gs://).

    Raises:
        DatasetError: the folder has no dataset.json (an interrupted run, or not a dataset), or it is invalid.
    """
    uri = join(dataset, METADATA_FILE)
    try:
        text = read_file(uri).decode("utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"{dataset} is not a complete audioflow dataset: it has no {METADATA_FILE} "
            "(the run that wrote it did not finish, or this is the wrong folder)"
        ) from None
    try:
        return DatasetInfo.from_json(text)
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{uri} is not valid dataset metadata: {error}") from None


@dataclass(frozen=True)
class _Split:
    """A split's shards as dataset.json lists them, and where each one's examples start globally."""

    dataset: str
    name: str
    shard_names: tuple[str, ...]
    uris: tuple[str, ...]
    counts: tuple[int, ...]
    sizes: tuple[int, ...]
    starts: tuple[int, ...]  # global index of each shard's first example
    num_examples: int
    sample_format: str
    gzip: bool
    remote: bool

    @classmethod
    def of(cls, dataset: str, split: str, info: DatasetInfo) -> _Split:
        if split not in info.splits:
            raise DatasetError(f"{dataset} has no split {split!r}; it has {sorted(info.splits)}")
        files = info.splits[split].files
        counts = tuple(shard.num_examples for shard in files)
        starts = tuple(int(start) for start in np.cumsum((0, *counts[:-1]))) if files else ()
        return cls(
            dataset=dataset,
            name=split,
            shard_names=tuple(shard.name for shard in files),
            uris=tuple(join(dataset, shard.name) for shard in files),
            counts=counts,
            sizes=tuple(shard.num_bytes for shard in files),
            starts=starts,
            num_examples=sum(counts),
            sample_format=info.sample_format,
            gzip=info.compression == "gzip",
            remote=is_gcs(dataset),
        )


def _check_audio_type(audio: str, sample_format: str) -> None:
    if audio not in ("int16", "float32"):
        raise ValueError(f"audio must be 'int16' or 'float32', not {audio!r}")
    if audio == "int16" and sample_format != "int16":
        raise ValueError(f"this dataset stores {sample_format} samples: read them with audio='float32'")


def _to_example(payload: bytes, where: str, sample_format: str, audio: AudioType) -> dict[str, Any]:
    """The record as the reader's dict: the decoded fields, with NumPy audio and label indices."""
    try:
        out = decode_fields(payload, audio_view=True)
    except ValueError as error:
        raise DatasetError(f"{where}: cannot be parsed: {error}") from None
    num_frames, num_channels = out["num_frames"], out["num_channels"]
    samples = np.frombuffer(out["audio"], dtype=SAMPLE_FORMATS[sample_format][0])
    if samples.size != num_frames * num_channels:
        raise DatasetError(
            f"{where} ({out['blob']}): {len(out['audio'])} audio bytes for "
            f"{num_frames} frames × {num_channels} channels"
        )
    samples = samples.reshape(num_frames, num_channels)
    if audio == "float32" and sample_format == "int16":
        samples = np.multiply(samples, _INT16_SCALE, dtype=np.float32)
    # else a read-only view of the record's audio bytes: no copy (np.array(x) makes a writable one)
    out["audio"] = samples
    if "labels" in out:
        out["labels"] = np.array(out["labels"], dtype=np.int64)
    if "label_names" in out:
        out["label_names"] = list(out["label_names"])
    if "columns" in out:
        out.update(out.pop("columns"))
    return out


def _iter_shard(split: _Split, shard: int, audio: AudioType, keep: Any = None) -> Iterator[dict[str, Any]]:
    """One shard front to back, CRCs checked; `keep(local index)` picks records (all by default).

    Raises:
        DatasetError: the shard is missing, corrupt, truncated, or holds another count than dataset.json says.
    """
    name, uri = split.shard_names[shard], split.uris[shard]
    try:
        raw = open_stream(uri)
    except FileNotFoundError:
        raise DatasetError(f"{name}: listed in dataset.json but missing") from None
    count = 0
    with raw:
        for count, payload in enumerate(iter_shard_records(raw, name), start=1):
            if keep is None or keep(count - 1):
                yield _to_example(payload, f"{name}: record {count - 1}", split.sample_format, audio)
    if count != split.counts[shard]:
        raise DatasetError(
            f"{name}: {count} records, dataset.json says {split.counts[shard]} (a truncated or replaced shard)"
        )


def iter_split(
    dataset: str, split: str, *, audio: AudioType = "float32", info: DatasetInfo | None = None
) -> Iterator[dict[str, Any]]:
    """Every example of a split once, shard after shard in dataset.json's order, as NumPy dicts.

    Args:
        dataset: the dataset folder (local path or gs://).
        split: a split name from dataset.json.
        audio: "float32" (in [-1, 1], as read_split) or "int16" (as stored; int16 datasets only).
        info: the dataset's metadata if already loaded.

    Raises:
        DatasetError: incomplete dataset, unknown split, or a corrupt or truncated shard (naming
            the shard, the record and its byte offset).
    """
    return iter(ShardedView(dataset, split, audio=audio, info=info))


class RandomAccessSource:
    """Example `i` of a split in one positioned read, through the record index.

    `len(source)` is the split's size, `source[i]` its i-th example (shards in dataset.json's order,
    records in shard order), one copy out of the mapped shard on local paths and one ranged GET on
    gs://. The object holds no open file or client (each process maps the shards it reads, each
    thread opens its own storage client, on first use), so it pickles, and it is safe in forked or
    spawned workers. Loaded indexes travel with it.

    PyTorch (a map-style dataset; shuffle=True gives a global random order)::

        loader = torch.utils.data.DataLoader(RandomAccessSource(ds, "train"), batch_size=32,
                                             shuffle=True, num_workers=4, collate_fn=collate)

    Grain (a RandomAccessDataSource)::

        source = RandomAccessSource(ds, "train")
        loader = grain.DataLoader(
            data_source=source,
            sampler=grain.samplers.IndexSampler(len(source), shuffle=True, seed=0, num_epochs=1,
                                                shard_options=grain.sharding.ShardByJaxProcess()),
            operations=[grain.transforms.Batch(32)], worker_count=4)

    Keras (the body of a keras.utils.PyDataset: batches of fixed-length crops)::

        class Batches(keras.utils.PyDataset):
            def __init__(self, source, batch_size, **kwargs):
                super().__init__(**kwargs)
                self.source, self.batch_size = source, batch_size
            def __len__(self):
                return math.ceil(len(self.source) / self.batch_size)
            def __getitem__(self, batch):
                rows = [self.source[i] for i in range(batch * self.batch_size,
                                                      min(len(self.source), (batch + 1) * self.batch_size))]
                return np.stack([crop(r["audio"]) for r in rows]), np.array([r["label"] for r in rows])

    Raises (on construction):
        DatasetError: gzip shards (no random access), or no record index (datasets written before
            indexes: `audioflow index DATASET` writes them).
    """

    def __init__(self, dataset: str, split: str, *, audio: AudioType = "float32", info: DatasetInfo | None = None):
        info = info or load_info(dataset)
        self._split = _Split.of(dataset, split, info)
        _check_audio_type(audio, self._split.sample_format)
        self._audio: AudioType = audio
        if self._split.gzip:
            raise DatasetError(
                f"{dataset}: gzip shards have no random access; iterate them with iter_split or ShardedView"
            )
        files = (info.index or {}).get("files") or {}
        missing = [name for name in self._split.shard_names if name not in files]
        if missing:
            raise DatasetError(
                f"{dataset}: no record index for {missing[0]}"
                + (f" and {len(missing) - 1} more shards" if len(missing) > 1 else "")
                + f" (datasets written before indexes have none): run `audioflow index {dataset}` to write them"
            )
        self._index_names = tuple(files[name] for name in self._split.shard_names)
        self._indexes: list[RecordIndex | None] = [None] * len(self._index_names)
        _settle_allocator()

    def __len__(self) -> int:
        return self._split.num_examples

    def __repr__(self) -> str:  # stable across processes: Grain compares it when restoring a checkpoint
        return f"RandomAccessSource({self._split.dataset!r}, {self._split.name!r}, audio={self._audio!r})"

    def index(self, shard: int) -> RecordIndex:
        """The checked record index of shard `shard` (loaded on first use, then kept)."""
        loaded = self._indexes[shard]
        if loaded is None:
            name = self._index_names[shard]
            uri = join(self._split.dataset, name)
            try:
                data = read_file(uri)
            except FileNotFoundError:
                raise DatasetError(
                    f"{name}: listed in dataset.json but missing: run `audioflow index {self._split.dataset}`"
                ) from None
            loaded = decode_index(
                data, name, num_records=self._split.counts[shard], shard_size=self._split.sizes[shard]
            )
            self._indexes[shard] = loaded
        return loaded

    def locate(self, i: int) -> tuple[int, int]:
        """(shard, record within the shard) of global example `i`.

        Raises:
            IndexError: `i` is out of range (negative indices count from the end, as for a list).
        """
        position = operator.index(i)
        size = len(self)
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError(f"example {i} is out of range: split {self._split.name!r} has {size} examples")
        shard = bisect.bisect_right(self._split.starts, position) - 1
        return shard, position - self._split.starts[shard]

    def __setstate__(self, state: dict[str, Any]) -> None:  # unpickled in a spawned worker
        _settle_allocator()
        self.__dict__.update(state)

    def read(self, shard: int, record: int) -> dict[str, Any]:
        """Record `record` of shard `shard`, CRCs checked."""
        offset, length = self.index(shard).span(record)
        uri, name = self._split.uris[shard], self._split.shard_names[shard]
        payload_length = length - _FRAME_BYTES
        # the payload lands in its own bytes, which the audio array then views: one copy in all
        parts = ((offset, 12), (offset + 12, payload_length), (offset + length - 4, 4))
        header, payload, footer = read_ranges(uri, parts)
        where = f"{name}: record {record} at byte {offset}"
        payload = check_record(header, payload, footer, where, expected_length=payload_length)
        del header, footer
        return _to_example(payload, where, self._split.sample_format, self._audio)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.read(*self.locate(i))

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        """A batch of examples (PyTorch's DataLoader fetches batches through this when it exists)."""
        return [self[i] for i in indices]


def global_worker(*, rank: int = 0, world_size: int = 1, worker_id: int = 0, num_workers: int = 1) -> tuple[int, int]:
    """(worker, num_workers) for DataLoader worker `worker_id` of `num_workers` in DDP rank `rank` of
    `world_size`: every (rank, worker) pair gets its own slot, so together they read each example once."""
    if not (0 <= rank < world_size and 0 <= worker_id < num_workers):
        raise ValueError(f"rank {rank} of {world_size}, worker {worker_id} of {num_workers}: out of range")
    return rank * num_workers + worker_id, world_size * num_workers


class ShardedView:
    """The part of a split that consumer `worker` of `num_workers` reads in one epoch, as an iterable.

    Together the `num_workers` views of one epoch yield every example exactly once:

    - by="shards": whole shards, shard j of the epoch's order going to worker j % num_workers (no
      random access needed, gzip included; the workers' counts differ by up to a shard).
    - by="records": the epoch's records dealt out one by one (counts differ by at most one); read by
      position through the record index, or, for shards without one, by reading the shard and
      skipping the others' records.
    - by="auto" (default): "shards" when the shard count is a multiple of num_workers, else "records".

    With a `seed`, the shard order is shuffled per epoch (the same order in every worker, from
    (seed, epoch)), and `shuffle_buffer` > 0 mixes examples through a buffer of that many (seeded by
    seed, epoch and worker). That is a bounded shuffle; the full random order is RandomAccessSource
    with a shuffling sampler. The view holds no open file or client, so it pickles and forks safely.

    For PyTorch, in an IterableDataset's __iter__::

        info = torch.utils.data.get_worker_info()
        worker, n = global_worker(rank=dist.get_rank(), world_size=dist.get_world_size(),
                                  worker_id=info.id if info else 0, num_workers=info.num_workers if info else 1)
        return iter(ShardedView(ds, "train", worker=worker, num_workers=n, seed=0, epoch=epoch,
                                shuffle_buffer=1000))

    For Grain's ShardOptions: ShardedView(ds, "train", worker=options.shard_index,
    num_workers=options.shard_count, ...).
    """

    def __init__(
        self,
        dataset: str,
        split: str,
        *,
        worker: int = 0,
        num_workers: int = 1,
        by: Literal["auto", "shards", "records"] = "auto",
        seed: int | None = None,
        epoch: int = 0,
        shuffle_buffer: int = 0,
        audio: AudioType = "float32",
        info: DatasetInfo | None = None,
    ):
        if not 0 <= worker < num_workers:
            raise ValueError(f"worker must be in [0, {num_workers}), not {worker}")
        if by not in ("auto", "shards", "records"):
            raise ValueError(f"by must be 'auto', 'shards' or 'records', not {by!r}")
        if shuffle_buffer and seed is None:
            raise ValueError("shuffle_buffer needs a seed (every worker must agree on the epoch's order)")
        info = info or load_info(dataset)
        self._split = _Split.of(dataset, split, info)
        _check_audio_type(audio, self._split.sample_format)
        self._audio: AudioType = audio
        self.worker, self.num_workers, self.seed, self.epoch = worker, num_workers, seed, epoch
        self.shuffle_buffer = shuffle_buffer
        num_shards = len(self._split.uris)
        self.by = ("shards" if num_shards % num_workers == 0 else "records") if by == "auto" else by
        self._source: RandomAccessSource | None = None
        if self.by == "records" and num_workers > 1 and not self._split.gzip and info.index:
            self._source = RandomAccessSource(dataset, split, audio=audio, info=info)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order to read next (as torch's DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def shard_order(self) -> list[int]:
        """The epoch's shard order, the same in every worker."""
        order = list(range(len(self._split.uris)))
        if self.seed is not None:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        return order

    def _plan(self) -> Iterator[tuple[int, range | None]]:
        """(shard, this worker's records in it or None for all) in the epoch's order."""
        order = self.shard_order()
        if self.by == "shards":
            for position, shard in enumerate(order):
                if position % self.num_workers == self.worker:
                    yield shard, None
            return
        start = 0  # position in the epoch of the current shard's first record
        for shard in order:
            count = self._split.counts[shard]
            first = (self.worker - start) % self.num_workers
            if first < count:
                yield shard, range(first, count, self.num_workers)
            start += count

    def __len__(self) -> int:
        """How many examples this worker reads this epoch."""
        return sum(self._split.counts[shard] if mine is None else len(mine) for shard, mine in self._plan())

    def _examples(self) -> Iterator[dict[str, Any]]:
        for shard, mine in self._plan():
            if mine is None:
                yield from _iter_shard(self._split, shard, self._audio)
            elif self._source is not None:
                for record in mine:
                    yield self._source.read(shard, record)
            else:
                wanted = set(mine)
                yield from _iter_shard(self._split, shard, self._audio, keep=wanted.__contains__)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        examples = self._examples()
        if not self.shuffle_buffer:
            yield from examples
            return
        rng = np.random.default_rng([self.seed, self.epoch, self.worker])
        buffer: list[dict[str, Any]] = []
        for example in examples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(example)
                continue
            slot = int(rng.integers(len(buffer)))
            buffer[slot], example = example, buffer[slot]
            yield example
        rng.shuffle(buffer)  # type: ignore[arg-type]
        yield from buffer
