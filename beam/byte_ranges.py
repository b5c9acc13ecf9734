"""Whole files, byte ranges and sequential streams of local files and gs:// objects, without Beam.

The NumPy reader (`audioflow.beam.arrays`) reads through this module so that a reading process
imports neither Apache Beam (about 160 MB) nor TensorFlow (about 490 MB):

    local paths  `open` for streams; `os.pread` on a file opened once per thread for ranges.
    gs://        google-cloud-storage: one media GET per file, one ranged GET per range, and
                 streams in 8 MiB ranged GETs. It honours STORAGE_EMULATOR_HOST and finds
                 credentials as gcloud does (GOOGLE_APPLICATION_CREDENTIALS, the metadata server).

Nothing open is shared across a fork, a spawn or threads: open files and storage clients are made
lazily, per thread and per process (a forked DataLoader or Grain worker makes its own on first use),
so objects that use this module pickle and fork safely as long as they keep no handle themselves.
"""

from __future__ import annotations

import collections
import io
import os
import threading
from typing import Any, BinaryIO

__all__ = ["is_gcs", "join", "open_stream", "read_file", "read_range", "size"]

_STREAM_CHUNK = 8 << 20  # bytes per ranged GET when streaming an object
_OPEN_FILES_PER_THREAD = 64  # least recently used files are closed beyond this


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
        self.files: collections.OrderedDict[str, io.FileIO] = collections.OrderedDict()
        self.client: Any = None

    def check_fork(self) -> None:
        """A forked child drops what it inherited (closing only its own copies of the descriptors)."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            self.files.clear()
            self.client = None


_LOCAL = _PerThread()


def _forget_after_fork() -> None:
    _LOCAL.check_fork()


os.register_at_fork(after_in_child=_forget_after_fork)


def _file(path: str) -> io.FileIO:
    _LOCAL.check_fork()
    files = _LOCAL.files
    handle = files.get(path)
    if handle is None:
        handle = files[path] = io.FileIO(path, "r")
        if len(files) > _OPEN_FILES_PER_THREAD:
            files.popitem(last=False)[1].close()
    else:
        files.move_to_end(path)
    return handle


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

    Local files cost one pread (on a descriptor this thread keeps open); gs:// one ranged GET.
    """
    if length <= 0:
        return b""
    if not is_gcs(uri):
        _check_scheme(uri)
        fd = _file(uri).fileno()
        data = os.pread(fd, length, offset)
        if len(data) < length:  # a short read is allowed before the end of a file
            parts = [data]
            while (got := sum(map(len, parts))) < length and (more := os.pread(fd, length - got, offset + got)):
                parts.append(more)
            data = b"".join(parts)
        return data
    blob = _blob(uri)
    end = offset + length - 1  # inclusive
    # The object's hash covers all of it, never a range: the records' own CRCs check what is read.
    return _gcs_errors(uri, lambda: blob.download_as_bytes(start=offset, end=end, raw_download=True, checksum=None))


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
