"""Small file operations on any Beam filesystem (local paths and gs:// alike).

`stat_object`/`stat_size` and `read_bytes` are the ingest job's per-file reads of remote audio. For
gs:// they talk to Cloud Storage with google-cloud-storage directly: Beam's gs:// filesystem builds
a new client (a new connection) for every call and fetches the object's metadata again on open.
Here a stat is one metadata GET and a read one media GET, on a storage client made once per thread
with the credentials, project and retry policy Beam's GcsIO would use (so STORAGE_EMULATOR_HOST and
GOOGLE_APPLICATION_CREDENTIALS work as before). Other schemes (s3://, local paths...) go through
Beam's FileSystems.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.api_core.exceptions import (
    GoogleAPICallError,
    NotFound,
    PreconditionFailed,
    RequestRangeNotSatisfiable,
)

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import METADATA_FILE, DatasetInfo, iter_shard_records

__all__ = [
    "INCOMPLETE_SUFFIX",
    "ObjectChangedError",
    "ObjectStat",
    "RemoteStorageError",
    "delete_if_exists",
    "delete_tree",
    "list_names",
    "load_dataset_info",
    "read_bytes",
    "read_shard_records",
    "read_text",
    "stat_object",
    "stat_size",
    "write_atomically",
    "write_text_atomically",
]

# What a file being written is called until it is complete; prepare_output removes leftovers.
INCOMPLETE_SUFFIX = ".incomplete"


class RemoteStorageError(OSError):
    """Cloud Storage refused or failed a request; the message is one line (status and reason)."""


class ObjectChangedError(RemoteStorageError):
    """The object is not the one that was stat()ed: replaced, truncated or grown in between."""


@dataclass(frozen=True)
class ObjectStat:
    """What a stat learns: the size in bytes and, for gs://, the object's generation (else None)."""

    size: int
    generation: int | None = None


class _Clients(threading.local):
    pid = -1
    client: Any = None
    retry: Any = None


_CLIENTS = _Clients()


def _gcs() -> tuple[Any, Any]:
    """This thread's storage client and retry policy, made as Beam's GcsIO makes them.

    One client per thread (and per process: a forked worker makes its own) keeps its connection
    open between files, and no client is shared between threads (google-cloud-storage does not
    promise that a client is thread-safe). Making one reads the credentials but sends no request.
    """
    if _CLIENTS.client is None or _CLIENTS.pid != os.getpid():
        from apache_beam.io.gcp import gcsio, gcsio_retry
        from apache_beam.options.pipeline_options import PipelineOptions

        options = FileSystems._pipeline_options or PipelineOptions()  # what Beam's gs:// filesystem uses
        _CLIENTS.client = gcsio.create_storage_client(options)
        _CLIENTS.retry = gcsio_retry.get_retry(options)
        _CLIENTS.pid = os.getpid()
    return _CLIENTS.client, _CLIENTS.retry


def _split_gcs(uri: str) -> tuple[str, str]:
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise ValueError(f"not a gs:// object: {uri}")
    return bucket, name


def _one_line(uri: str, error: Exception) -> RemoteStorageError:
    code = getattr(error, "code", None)
    reason = " ".join(str(getattr(error, "message", None) or error).split())
    return RemoteStorageError(f"{uri}: HTTP {code}: {reason}" if code else f"{uri}: {reason}")


def stat_object(uri: str) -> ObjectStat:
    """Size (and generation, for gs://) of one object or file.

    gs:// costs one request: the object's metadata GET (no bucket lookup, no download).

    Raises:
        FileNotFoundError: nothing at `uri`.
        RemoteStorageError: Cloud Storage refused the request (e.g. 403), in one line.
        Exception: for other schemes, whatever Beam's FileSystems raises.
    """
    if not uri.startswith("gs://"):
        return ObjectStat(FileSystems.get_filesystem(uri).metadata(uri).size_in_bytes)
    bucket, name = _split_gcs(uri)
    client, retry = _gcs()
    try:
        blob = client.bucket(bucket).get_blob(name, retry=retry)
    except NotFound:  # get_blob answers None for a missing object; a missing bucket raises
        blob = None
    except GoogleAPICallError as error:
        raise _one_line(uri, error) from None
    if blob is None:
        raise FileNotFoundError(uri)
    return ObjectStat(int(blob.size), int(blob.generation) if blob.generation is not None else None)


def stat_size(uri: str) -> int:
    """The size in bytes of one object or file (see `stat_object`)."""
    return stat_object(uri).size


def read_bytes(uri: str, expected_size: int | None = None, generation: int | None = None) -> bytes:
    """The whole content of one object or file, checked against what a stat said.

    gs:// costs one request, the media GET, made with raw_download (the stored bytes, as Beam
    reads them: no decompressive transcoding, so the length matches the stat's size). With
    `generation`, Cloud Storage itself refuses the read if the object has been replaced since
    (if_generation_match). With `expected_size`, at most expected_size + 1 bytes are fetched (a
    ranged GET), so an object replaced by a larger one can neither slip past --max-file-size nor
    exhaust memory, and any other length is refused.

    Raises:
        FileNotFoundError: nothing at `uri` (any more).
        ObjectChangedError: the object's generation or size is not the one given.
        RemoteStorageError: Cloud Storage refused the request, in one line.
        Exception: for other schemes, whatever Beam's FileSystems raises.
    """
    if not uri.startswith("gs://"):
        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            data = stream.read(-1 if expected_size is None else expected_size + 1)
    else:
        data = _read_gcs(uri, expected_size, generation)
    if expected_size is not None and len(data) != expected_size:
        raise ObjectChangedError(
            f"{uri} changed after it was listed: {expected_size} bytes then, "
            f"{'more than ' + str(expected_size) if len(data) > expected_size else len(data)} now"
        )
    return data


def _read_gcs(uri: str, expected_size: int | None, generation: int | None) -> bytes:
    bucket, name = _split_gcs(uri)
    client, retry = _gcs()
    blob = client.bucket(bucket).blob(name)
    # Ranged only when it bounds anything: a range on an empty object is refused (416).
    end = expected_size if expected_size else None
    try:
        return blob.download_as_bytes(
            start=0 if end is not None else None,
            end=end,
            raw_download=True,
            if_generation_match=generation,
            # Cloud Storage's hash is the whole object's, so a ranged (206) answer is never checked
            # against it: computing one would be wasted CPU (Beam's own reader does not check either).
            checksum=None if end is not None else "auto",
            retry=retry,
        )
    except NotFound:
        raise FileNotFoundError(uri) from None
    except PreconditionFailed:
        raise ObjectChangedError(f"{uri} was replaced after it was listed (generation {generation})") from None
    except RequestRangeNotSatisfiable:  # the object is now empty
        raise ObjectChangedError(f"{uri} changed after it was listed: {expected_size} bytes then, 0 now") from None
    except GoogleAPICallError as error:
        raise _one_line(uri, error) from None


def read_text(uri: str) -> str:
    with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        return stream.read().decode("utf-8")


@contextmanager
def write_atomically(uri: str) -> Iterator[BinaryIO]:
    """A stream to a temporary name, renamed to `uri` when the block ends without an error: readers
    see the whole file or none of it. A failed write leaves `uri` as it was."""
    temporary = uri + INCOMPLETE_SUFFIX
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        yield stream
    if FileSystems.exists(uri):
        FileSystems.delete([uri])
    FileSystems.rename([temporary], [uri])


def write_text_atomically(uri: str, text: str) -> None:
    with write_atomically(uri) as stream:
        stream.write(text.encode("utf-8"))


def read_shard_records(uri: str) -> Iterator[bytes]:
    """A shard's record payloads from any filesystem, under the format's one gzip and CRC policy.

    Raises:
        DatasetError: naming the shard and record (corrupt, truncated, or unreadable storage).
    """
    name = uri.rsplit("/", 1)[-1]
    try:
        raw = FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED)
    except (OSError, BeamIOError) as error:
        raise DatasetError(f"{name}: cannot be opened: {type(error).__name__}: {error}") from None
    with raw:
        yield from iter_shard_records(raw, name)


def delete_if_exists(uris: list[str]) -> None:
    existing = [uri for uri in uris if FileSystems.exists(uri)]
    if existing:
        FileSystems.delete(existing)


def delete_tree(uri: str) -> None:
    """Deletes a folder and everything under it (a local directory, or every object under a prefix)."""
    base = uri.rstrip("/")
    if FileSystems.exists(base):  # a local directory (object stores have no directories)
        FileSystems.delete([base])
        return
    matched = FileSystems.match([base + "/**"])[0].metadata_list
    if matched:
        FileSystems.delete([metadata.path for metadata in matched])


def list_names(folder: str) -> list[str]:
    """The names of the files directly in a folder (local or object-store prefix)."""
    base = folder.rstrip("/") + "/"
    matched = FileSystems.match([base + "*"])[0].metadata_list
    return sorted(metadata.path[len(base) :] for metadata in matched if "/" not in metadata.path[len(base) :])


def load_dataset_info(dataset: str) -> DatasetInfo:
    """Reads dataset.json.

    Raises:
        DatasetError: the folder has no dataset.json (an interrupted run, or not a dataset), or it
            is unreadable.
    """
    uri = FileSystems.join(dataset.rstrip("/"), METADATA_FILE)
    if not FileSystems.exists(uri):
        raise DatasetError(
            f"{dataset} is not a complete audioflow dataset: it has no {METADATA_FILE} "
            "(the run that wrote it did not finish, or this is the wrong folder)"
        )
    try:
        return DatasetInfo.from_json(read_text(uri))
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{uri} is not valid dataset metadata: {error}") from None
