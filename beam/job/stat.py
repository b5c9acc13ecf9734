"""StatFiles: each file's size (and gs:// generation), or why it cannot be read at all.

Local files are stat()ed. gs:// objects are sized from bucket listings (beam/gcs_listing.py): a
listing page costs one request for up to 1,000 objects, so the media GET that WriteShards makes is
the only request per file; the rows a listing did not reach (a manifest sparse in a large bucket)
get one metadata GET each, as every remote file did before.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from stat import S_ISLNK, S_ISREG
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.pvalue import AsDict, TaggedOutput

from audioflow.beam.gcs_listing import LISTING_PAGE_SIZE, ListingKey, PrefixListing, listing_key, page_budget
from audioflow.beam.job.metrics import NAMESPACE, REJECTED, rejected
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import OutsideRootError, is_remote, real_path_inside
from audioflow.beam.prep.rows import PlannedRow, Rejection
from audioflow.beam.storage import RemoteStorageError, stat_object

__all__ = ["Sized", "StatFiles"]

_LOGGER = logging.getLogger(__name__)


class Sized(NamedTuple):
    """What StatFiles outputs."""

    rows: beam.PCollection  # PlannedRow with its size (and gs:// generation)
    rejected: beam.PCollection  # Rejection: missing, unreadable, too_large, outside_root (symlinks)


class _RealPathsInside:
    """`real_path_inside(root, path)` for many files, with each folder's real path resolved once.

    `os.path.realpath` lstat()s every component of every path in Python, holding the GIL, which
    costs more than the stat itself (bench/RESULTS.md). A file's real path is its folder's real
    path plus its name unless the file itself is a symlink (realpath resolves left to right), so
    folders are resolved once and the file gets one lstat. Symlinks, files that cannot be lstat()ed
    and paths outside the root take the full `real_path_inside`, so errors and messages are the same.
    """

    _MAX_FOLDERS = 65536  # bounds the cache for manifests spread over very many folders

    def __init__(self, root: str):
        self._root = root
        self._real_root = os.path.realpath(root).rstrip(os.sep) + os.sep
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, name = os.path.split(path)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = os.path.realpath(folder)
            if len(self._folders) < self._MAX_FOLDERS:
                self._folders[folder] = real_folder
        real = os.path.join(real_folder, name)
        try:
            plain = name not in ("", ".", "..") and not S_ISLNK(os.lstat(real).st_mode)
        except OSError:
            plain = False
        if plain and real.startswith(self._real_root):
            return real
        return real_path_inside(self._root, path)


class _StatFilesFn(beam.DoFn):
    """[PlannedRow] -> PlannedRow with its size, or a Rejection.

    Works on batches with a thread pool so object stores see many metadata requests in flight.
    """

    def __init__(self, options: IngestOptions):
        self._options = options

    def setup(self) -> None:
        self._pool = ThreadPoolExecutor(self._options.effective_fetch_concurrency)
        self._real_path = _RealPathsInside(self._options.audio_root)

    def teardown(self) -> None:
        self._pool.shutdown(wait=False)

    def process(self, batch: list[PlannedRow]) -> Iterator[Any]:
        # A local stat takes microseconds: handing it to a thread would cost more than it saves.
        local = not is_remote(self._options.audio_root)
        for outcome in map(self._stat, batch) if local else self._pool.map(self._stat, batch):
            yield rejected(outcome) if isinstance(outcome, Rejection) else outcome

    def _size_and_generation(self, uri: str) -> tuple[int, int | None]:
        if is_remote(uri):
            stat = stat_object(uri)  # gs://: one metadata GET on this thread's client
            return stat.size, stat.generation
        real = self._real_path(uri)
        stat = os.stat(real)
        if not S_ISREG(stat.st_mode):
            raise FileNotFoundError(uri)
        # A local file's generation is its modification time, so that --resume notices a source
        # rewritten in place with the same size (as a gs:// object's new generation shows it).
        return stat.st_size, stat.st_mtime_ns

    def _stat(self, planned: PlannedRow) -> PlannedRow | Rejection:
        row, split, uri, line = planned.row, planned.split, planned.uri, planned.row.line
        try:
            size, generation = self._size_and_generation(uri)
        except OutsideRootError as error:
            return Rejection.of(row, split, "outside_root", f"line {line}: {error}")
        except Exception as error:
            if isinstance(error, FileNotFoundError) or not FileSystems.exists(uri):
                return _missing(planned)
            return Rejection.of(row, split, "unreadable", f"line {line}: {uri}: {type(error).__name__}: {error}")
        return _sized(planned, size, generation, self._options.max_file_size)


def _missing(planned: PlannedRow) -> Rejection:
    return Rejection.of(planned.row, planned.split, "missing", f"line {planned.row.line}: no file at {planned.uri}")


def _sized(planned: PlannedRow, size: int, generation: int | None, limit: int | None) -> PlannedRow | Rejection:
    """The row with its size, or a too_large rejection."""
    if limit is not None and size > limit:
        message = f"line {planned.row.line}: {planned.uri} has {size} bytes, over --max-file-size {limit}"
        return Rejection.of(planned.row, planned.split, "too_large", message)
    return dataclasses.replace(planned, size=size, generation=generation)


_UNLISTED = "unlisted"  # MatchListing's output of rows no listing reached
_REACHED = "reached"  # ListObjects' output of how far each key's listing got
ListedStat = tuple[int, int]  # (size, generation) of a listed object


class _NameRangeFn(beam.CombineFn):
    """uri -> (number of rows, first uri, last uri) of one listing key."""

    def create_accumulator(self) -> tuple[int, str | None, str | None]:
        return 0, None, None

    def add_input(self, accumulator: tuple, uri: str) -> tuple:
        count, first, last = accumulator
        return count + 1, uri if first is None or uri < first else first, uri if last is None or uri > last else last

    def merge_accumulators(self, accumulators: Iterable[tuple]) -> tuple:
        count, first, last = 0, None, None
        for other_count, other_first, other_last in accumulators:
            count += other_count
            if other_first is not None and (first is None or other_first < first):
                first = other_first
            if other_last is not None and (last is None or other_last > last):
                last = other_last
        return count, first, last

    def extract_output(self, accumulator: tuple) -> tuple:
        return accumulator


class _ListObjectsFn(beam.DoFn):
    """(key, (rows, first, last)) -> (uri, (size, generation)) per object listed, and (key, reached).

    `reached` is None when the key's objects from `first` to `last` were all listed, else the last
    uri listed (the listing was refused, or stopped at its page budget).
    """

    def __init__(self, page_size: int):
        self._page_size = page_size
        self._pages = Metrics.counter(NAMESPACE, "listing_pages")

    def process(self, element: tuple[tuple[str, bool], tuple[int, str, str]]) -> Iterator[Any]:
        key, (count, first, last) = element
        listing = PrefixListing(ListingKey(*key), first, last, page_budget(count), self._page_size)
        try:
            for uri, stat in listing:
                yield uri, (stat.size, stat.generation)
        except RemoteStorageError as error:
            _LOGGER.warning("%s; its files are looked up one by one instead", error)
        self._pages.inc(listing.pages)
        yield TaggedOutput(_REACHED, (key, listing.reached))


def _keyed_by_listing(planned: PlannedRow, root: str) -> tuple[tuple[str, bool], str]:
    key = listing_key(root, planned.uri)
    return (key.prefix, key.recursive), planned.uri


def _keyed_by_uri(planned: PlannedRow) -> tuple[str, PlannedRow]:
    return planned.uri, planned


class _MatchListingFn(beam.DoFn):
    """(uri, {rows, listed}) -> PlannedRow with its size, a Rejection (missing, too_large), or an unlisted row."""

    def __init__(self, options: IngestOptions):
        self._root, self._limit = options.audio_root, options.max_file_size

    def process(self, element: tuple[str, dict[str, list]], reached: dict) -> Iterator[Any]:
        uri, joined = element
        listed = list(joined["listed"])
        for planned in joined["rows"]:
            if listed:
                size, generation = listed[0]
                outcome = _sized(planned, size, generation, self._limit)
                yield rejected(outcome) if isinstance(outcome, Rejection) else outcome
                continue
            key = listing_key(self._root, uri)
            until = reached.get((key.prefix, key.recursive), "")
            if until is None or uri <= until:  # the listing covered this name and did not find it
                yield rejected(_missing(planned))
            else:
                yield TaggedOutput(_UNLISTED, planned)


class StatFiles(beam.PTransform):
    """PlannedRow -> Sized: the file of every row is looked up (never read) before any is written.

    For a gs:// audio root, rows are first sized from listings (ListingRanges, ListObjects,
    JoinListing, MatchListing) and only the rows no listing reached are stat()ed.
    `listing_page_size` is Cloud Storage's page size; tests make it small.
    """

    def __init__(self, options: IngestOptions, *, listing_page_size: int = LISTING_PAGE_SIZE):
        super().__init__()
        self._options, self._page_size = options, listing_page_size

    def expand(self, planned: beam.PCollection) -> Sized:
        if not self._options.audio_root.startswith("gs://"):
            return self._stat(planned)
        root = self._options.audio_root
        listed = (
            planned
            | "ListingKeys" >> beam.Map(_keyed_by_listing, root).with_output_types(tuple[tuple[str, bool], str])
            | "ListingRanges" >> beam.CombinePerKey(_NameRangeFn())
            # ((prefix, recursive), (rows, first uri, last uri))
            | "ListObjects"
            >> beam.ParDo(_ListObjectsFn(self._page_size))
            .with_output_types(tuple[str, ListedStat], **{_REACHED: tuple[tuple[str, bool], Any]})
            .with_outputs(_REACHED, main="objects")
        )
        # objects: (uri, (size, generation)); reached: ((prefix, recursive), last uri listed or None)
        matched = (
            {
                "rows": planned | "KeyRowsByUri" >> beam.Map(_keyed_by_uri).with_output_types(tuple[str, PlannedRow]),
                "listed": listed.objects,
            }
            | "JoinListing" >> beam.CoGroupByKey()
            # (uri, {rows: [PlannedRow], listed: [(size, generation)]})
            | "MatchListing"
            >> beam.ParDo(_MatchListingFn(self._options), reached=AsDict(listed[_REACHED]))
            .with_output_types(PlannedRow, **{REJECTED: Rejection, _UNLISTED: PlannedRow})
            .with_outputs(REJECTED, _UNLISTED, main="sized")
        )
        # sized: PlannedRow with size and generation; rejected: missing, too_large; unlisted: PlannedRow
        stat = self._stat(matched[_UNLISTED])
        return Sized(
            (matched.sized, stat.rows) | "SizedRows" >> beam.Flatten(),
            (matched[REJECTED], stat.rejected) | "NotSized" >> beam.Flatten(),
        )

    def _stat(self, planned: beam.PCollection) -> Sized:
        stat = (
            planned
            | "BatchForStat" >> beam.BatchElements(min_batch_size=16, max_batch_size=256)
            | "Stat"
            >> beam.ParDo(_StatFilesFn(self._options))
            .with_output_types(PlannedRow, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="sized")
        )
        return Sized(stat.sized, stat[REJECTED])
