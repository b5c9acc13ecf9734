"""StatFiles: each file's size (and gs:// generation), or why it cannot be read at all."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from stat import S_ISLNK
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from audioflow.beam.job.metrics import REJECTED, rejected
from audioflow.beam.prep.options import IngestOptions
from audioflow.beam.prep.paths import OutsideRootError, is_remote, real_path_inside
from audioflow.beam.prep.rows import PlannedRow, Rejection
from audioflow.beam.storage import stat_object

__all__ = ["Sized", "StatFiles"]


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
        if not os.path.isfile(real):
            raise FileNotFoundError(uri)
        return os.path.getsize(real), None

    def _stat(self, planned: PlannedRow) -> PlannedRow | Rejection:
        row, split, uri, line = planned.row, planned.split, planned.uri, planned.row.line
        try:
            size, generation = self._size_and_generation(uri)
        except OutsideRootError as error:
            return Rejection.of(row, split, "outside_root", f"line {line}: {error}")
        except Exception as error:
            if isinstance(error, FileNotFoundError) or not FileSystems.exists(uri):
                return Rejection.of(row, split, "missing", f"line {line}: no file at {uri}")
            return Rejection.of(row, split, "unreadable", f"line {line}: {uri}: {type(error).__name__}: {error}")
        limit = self._options.max_file_size
        if limit is not None and size > limit:
            message = f"line {line}: {uri} has {size} bytes, over --max-file-size {limit}"
            return Rejection.of(row, split, "too_large", message)
        return dataclasses.replace(planned, size=size, generation=generation)


class StatFiles(beam.PTransform):
    """PlannedRow -> Sized: the file of every row is looked up (never read) before any is written."""

    def __init__(self, options: IngestOptions):
        super().__init__()
        self._options = options

    def expand(self, planned: beam.PCollection) -> Sized:
        stat = (
            planned
            | "BatchForStat" >> beam.BatchElements(min_batch_size=16, max_batch_size=256)
            | "Stat"
            >> beam.ParDo(_StatFilesFn(self._options))
            .with_output_types(PlannedRow, **{REJECTED: Rejection})
            .with_outputs(REJECTED, main="sized")
        )
        return Sized(stat.sized, stat[REJECTED])
