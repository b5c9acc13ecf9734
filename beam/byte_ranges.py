"""Whole files, byte ranges and sequential streams of local files and gs:// objects, without Beam.

The NumPy reader (`audioflow.beam.arrays`) reads through this module so that a reading process
imports neither Apache Beam (about 160 MB) nor TensorFlow (about 490 MB):

    local paths  `open` for streams; ranges are slices of the file mapped once per process
                 (`mmap`, up to a quarter of the descriptor limit at once): a copy from the page
                 cache without a system call, about half the cost of a pread for a 160 kB
                 record. Mapped pages count in the process's RSS (as shared, reclaimable file
                 pages) until the file is unmapped.
    gs://        google-cloud-storage: one media GET per file, one ranged GET per range, and
                 streams in 8 MiB ranged GETs. It honours STORAGE_EMULATOR_HOST and finds
                 credentials as gcloud does (GOOGLE_APPLICATION_CREDENTIALS, the metadata server).

Nothing open is shared across a fork or a spawn: file maps are made lazily per process and storage
clients per thread and process (a forked DataLoader or Grain worker makes its own on first use),
so objects that use this module pickle and fork safely as long as they keep no handle themselves.
"""

from __future__ import annotations

import collections
import io
import mmap
import os
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

__all__ = ["is_gcs", "join", "open_stream", "read_file", "read_range", "read_ranges", "size"]

_STREAM_CHUNK = 8 << 20  # bytes per ranged GET when streaming an object


def is_gcs(uri: str) -> bool:
    return uri.startswith("gs://")


def _check_scheme(uri: str) -> None:
    if "://" in uri and not is_gcs(uri):
        raise ValueError(f"{uri}: only local paths and gs:// are supported here (read_split reads other schemes)")


def join(folder: str, name: str) -> str:
    """`name` inside the dataset folder `folder` (a local path or gs:// prefix)."""
    _check_scheme(folder)
    return f"{folder.rstrip('/')}/{name}" if is_gcs(folder) else os.path.join(folder, name)


class _PerThread(threading.local):
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.client: Any = None

    def check_fork(self) -> None:
        """A forked child drops the client it inherited."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.client = None


_LOCAL = _PerThread()


def _max_mapped_files() -> int:
    """How many files stay mapped at once: each map holds a descriptor (Python's mmap keeps a copy of
    it), so a quarter of the process's descriptor limit, between 16 and 4,096."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        return 256
    return 4096 if soft == resource.RLIM_INFINITY else max(16, min(4096, soft // 4))


# The process's maps, least recently used first, shared by its threads (slicing a map is safe from
# any thread). An evicted map is not closed but dropped: a thread may still be slicing it, and it is
# unmapped with its last reference.
_MAPS: collections.OrderedDict[str, mmap.mmap | None] = collections.OrderedDict()
_MAPS_LOCK = threading.Lock()
_MAX_MAPPED = _max_mapped_files()


def _forget_after_fork() -> None:
    """In a forked child: a fresh lock (another thread may have held it at the fork), no maps, no client."""
    global _MAPS_LOCK
    _MAPS_LOCK = threading.Lock()
    _MAPS.clear()
    _LOCAL.check_fork()


os.register_at_fork(after_in_child=_forget_after_fork)


def _mapped(path: str) -> mmap.mmap | None:
    """The process's read-only map of the file (None for an empty file, which cannot be mapped)."""
    with _MAPS_LOCK:
        if path in _MAPS:
            _MAPS.move_to_end(path)
            return _MAPS[path]
    with open(path, "rb") as file:  # outside the lock: system calls; the map keeps its own descriptor
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(file.fileno()).st_size else None
    with _MAPS_LOCK:
        if path in _MAPS:  # another thread mapped it meanwhile: use that map, drop this one
            return _MAPS[path]
        _MAPS[path] = mapped
        while len(_MAPS) > _MAX_MAPPED:
            _MAPS.popitem(last=False)
    return mapped


def _client() -> Any:
    """This thread's storage client (google-cloud-storage does not promise a client is thread-safe)."""
    _LOCAL.check_fork()
    if _LOCAL.client is None:
        from google.cloud import storage

        try:
            _LOCAL.client = storage.Client()
        except OSError:  # no project can be determined: reading objects needs none
            import google.auth

            credentials, _ = google.auth.default()
            _LOCAL.client = storage.Client(project="<none>", credentials=credentials)
    return _LOCAL.client


def _blob(uri: str) -> Any:
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise ValueError(f"not a gs:// object: {uri}")
    return _client().bucket(bucket).blob(name)


def _gcs_errors(uri: str, call: Any) -> Any:
    from google.api_core.exceptions import GoogleAPICallError, NotFound, RequestRangeNotSatisfiable

    try:
        return call()
    except NotFound:
        raise FileNotFoundError(uri) from None
    except RequestRangeNotSatisfiable:  # a range starting at or past the end of the object
        return b""
    except GoogleAPICallError as error:
        raise OSError(f"{uri}: HTTP {getattr(error, 'code', '?')}: {' '.join(str(error).split())}") from None


def read_file(uri: str) -> bytes:
    """The whole content of a file or object.

    Raises:
        FileNotFoundError: nothing at `uri`.
        OSError: the read failed (for gs://, in one line with the HTTP status).
    """
    _check_scheme(uri)
    if not is_gcs(uri):
        with open(uri, "rb") as stream:
            return stream.read()
    blob = _blob(uri)
    return _gcs_errors(uri, lambda: blob.download_as_bytes(raw_download=True))


def read_range(uri: str, offset: int, length: int) -> bytes:
    """`length` bytes from `offset`: fewer only where the file ends first (the caller says what is missing).

    Local files cost one copy out of the process's map of the file; gs:// one ranged GET. Local
    files must not shrink while mapped (a read past a cut would fault): shards never change once
    written, and a shard cut before it was mapped reads short, as with pread.
    """
    if length <= 0:
        return b""
    if not is_gcs(uri):
        _check_scheme(uri)
        mapped = _mapped(uri)
        return b"" if mapped is None else mapped[offset : offset + length]
    blob = _blob(uri)
    end = offset + length - 1  # inclusive
    # The object's hash covers all of it, never a range: the records' own CRCs check what is read.
    return _gcs_errors(uri, lambda: blob.download_as_bytes(start=offset, end=end, raw_download=True, checksum=None))


def read_ranges(uri: str, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The bytes of each (offset, length) range, in order, as `read_range` reads them: slices of one
    map locally, and one ranged GET spanning them all on gs:// (for the parts of one record)."""
    if not is_gcs(uri):
        _check_scheme(uri)
        mapped = _mapped(uri)
        if mapped is None:
            return [b"" for _ in ranges]
        return [mapped[offset : offset + length] if length > 0 else b"" for offset, length in ranges]
    start = min(offset for offset, _ in ranges)
    data = read_range(uri, start, max(offset + length for offset, length in ranges) - start)
    return [data[offset - start : offset - start + length] if length > 0 else b"" for offset, length in ranges]


def size(uri: str) -> int:
    """The size in bytes of a file or object (gs:// costs one metadata GET)."""
    _check_scheme(uri)
    if not is_gcs(uri):
        return os.stat(uri).st_size
    blob = _blob(uri)
    _gcs_errors(uri, lambda: blob.reload())
    return int(blob.size)


class _GcsRawStream(io.RawIOBase):
    """An object read front to back in ranged GETs (each `readinto` is one request)."""

    def __init__(self, uri: str):
        self._uri, self._position, self._blob = uri, 0, _blob(uri)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = len(buffer)
        if not wanted:
            return 0
        data = read_range(self._uri, self._position, wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)


def open_stream(uri: str) -> BinaryIO:
    """A buffered binary stream over the file or object, front to back."""
    _check_scheme(uri)
    if not is_gcs(uri):
        return open(uri, "rb", buffering=1 << 20)  # the caller closes it
    return io.BufferedReader(_GcsRawStream(uri), buffer_size=_STREAM_CHUNK)
