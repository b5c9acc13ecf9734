"""Small file operations on any Beam filesystem (local paths and gs:// alike).

`read_bytes` is the ingest job's one request per remote audio file. For gs:// it talks to Cloud
Storage directly: Beam's gs:// filesystem builds a new client (a new connection) for every call and
fetches the object's metadata again on open. Here a read is one streamed media GET whose response
headers carry the object's size and generation, so a read can be checked against what a listing
said, and an object over the size limit is refused before its body is read. It runs on a storage
client made once per thread with the credentials, project and retry policy Beam's GcsIO would use
(so STORAGE_EMULATOR_HOST and GOOGLE_APPLICATION_CREDENTIALS work as before). `stat_object` is one
metadata GET, for objects no listing covered. Other schemes (s3://, local paths...) go through
Beam's FileSystems.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems
from google.api_core.exceptions import (
    GoogleAPICallError,
    NotFound,
    PreconditionFailed,
    RequestRangeNotSatisfiable,
    from_http_response,
)

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import METADATA_FILE, DatasetInfo, iter_shard_records

__all__ = [
    "INCOMPLETE_SUFFIX",
    "ObjectChangedError",
    "ObjectStat",
    "ObjectTooLargeError",
    "RemoteStorageError",
    "delete_if_exists",
    "delete_tree",
    "gcs_client",
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
    """The object is not the one that was listed or stat()ed: replaced, truncated or grown in between."""


class ObjectTooLargeError(RemoteStorageError):
    """The object is over the size limit; found from a response's headers, before its body was read."""

    def __init__(self, uri: str, size: int | None, limit: int):
        has = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"{uri} has {has}, over --max-file-size {limit}")
        self.size, self.limit = size, limit


@dataclass(frozen=True)
class ObjectStat:
    """What a stat learns: the size in bytes and, for gs://, the object's generation (else None)."""

    size: int
    generation: int | None = None


class _Clients(threading.local):
    made_for: tuple[int, str | None] = (-1, None)  # (process, emulator address) the client was made for
    client: Any = None
    retry: Any = None


_CLIENTS = _Clients()


def gcs_client() -> tuple[Any, Any]:
    """This thread's storage client and retry policy, made as Beam's GcsIO makes them.

    One client per thread (and per process: a forked worker makes its own) keeps its connection
    open between files, and no client is shared between threads (google-cloud-storage does not
    promise that a client is thread-safe). Making one reads the credentials but sends no request.
    A client is made again if STORAGE_EMULATOR_HOST changed since (a test moving between emulators).
    """
    made_for = (os.getpid(), os.environ.get("STORAGE_EMULATOR_HOST"))
    if _CLIENTS.client is None or _CLIENTS.made_for != made_for:
        from apache_beam.io.gcp import gcsio, gcsio_retry
        from apache_beam.options.pipeline_options import PipelineOptions

        options = FileSystems._pipeline_options or PipelineOptions()  # what Beam's gs:// filesystem uses
        _CLIENTS.client = gcsio.create_storage_client(options)
        _CLIENTS.retry = gcsio_retry.get_retry(options)
        _CLIENTS.made_for = made_for
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
    client, retry = gcs_client()
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


def read_bytes(
    uri: str, expected_size: int | None = None, generation: int | None = None, *, max_size: int | None = None
) -> bytes:
    """The whole content of one object or file, checked against what a listing or stat said.

    gs:// costs one request, the media GET. Its response headers give the object's size
    (x-goog-stored-content-length, else Content-Range or Content-Length) and generation
    (x-goog-generation), which are checked before the body is read: a generation or size other than
    `generation` / `expected_size` raises ObjectChangedError, a size over `max_size` raises
    ObjectTooLargeError, and in both cases the body is never downloaded. The GET also asks Cloud
    Storage to refuse another generation (ifGenerationMatch) and to send at most expected_size + 1
    bytes (a range), for servers that do not say the size. The bytes are the stored ones, as Beam
    reads them (no decompressive transcoding), so their length is the listing's size.

    Raises:
        FileNotFoundError: nothing at `uri` (any more).
        ObjectChangedError: the object's generation or size is not the one given.
        ObjectTooLargeError: the object has more than `max_size` bytes.
        RemoteStorageError: Cloud Storage refused the request, in one line.
        Exception: for other schemes, whatever Beam's FileSystems raises.
    """
    if not uri.startswith("gs://"):
        bound = expected_size if expected_size is not None else max_size
        with FileSystems.open(uri, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
            data = stream.read(-1 if bound is None else bound + 1)
        if expected_size is None and max_size is not None and len(data) > max_size:
            raise ObjectTooLargeError(uri, None, max_size)
    else:
        data = _read_gcs(uri, expected_size, generation, max_size)
    if expected_size is not None and len(data) != expected_size:
        raise ObjectChangedError(
            f"{uri} changed after it was listed: {expected_size} bytes then, "
            f"{'more than ' + str(expected_size) if len(data) > expected_size else len(data)} now"
        )
    return data


# What a media GET may wait for a connection and between bytes (google-cloud-storage's default).
_TIMEOUT = 60


def _media_url(client: Any, bucket: str, name: str, generation: int | None) -> str:
    url = f"{client.api_endpoint}/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"
    return url if generation is None else f"{url}&ifGenerationMatch={generation}"


def _header_stat(response: Any) -> ObjectStat | None:
    """The object's size and generation as a media GET's headers give them (None if they don't say)."""
    headers = response.headers
    generation = headers.get("x-goog-generation")
    size: str | None = headers.get("x-goog-stored-content-length")
    if size is None and response.status_code == 206:
        size = headers.get("Content-Range", "").rpartition("/")[2]
    elif size is None and "Content-Encoding" not in headers:
        size = headers.get("Content-Length")
    if size is None or not size.isdigit():
        return None
    return ObjectStat(int(size), int(generation) if generation and generation.isdigit() else None)


def _check_headers(
    uri: str, found: ObjectStat | None, expected_size: int | None, generation: int | None, max_size: int | None
) -> None:
    if found is None:
        return
    if generation is not None and found.generation is not None and found.generation != generation:
        raise ObjectChangedError(
            f"{uri} was replaced after it was listed: generation {generation} then, {found.generation} now"
        )
    if expected_size is not None and found.size != expected_size:
        raise ObjectChangedError(f"{uri} changed after it was listed: {expected_size} bytes then, {found.size} now")
    if max_size is not None and found.size > max_size:
        raise ObjectTooLargeError(uri, found.size, max_size)


def _read_body(response: Any, bound: int | None) -> bytes:
    """The raw (never decompressed) body, at most bound + 1 bytes of it."""
    chunks, total = [], 0
    while bound is None or total <= bound:
        want = 1 << 20 if bound is None else min(1 << 20, bound + 1 - total)
        chunk = response.raw.read(want, decode_content=False)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_gcs(uri: str, expected_size: int | None, generation: int | None, max_size: int | None) -> bytes:
    bucket, name = _split_gcs(uri)
    client, retry = gcs_client()
    url = _media_url(client, bucket, name, generation)
    bound = expected_size if expected_size is not None else max_size
    # gzip: the stored bytes even for objects stored gzip-encoded (Cloud Storage would otherwise
    # decompress them in transit, and the length would not be the listed size).
    headers = {"Accept-Encoding": "gzip"}
    if bound:  # a range bounds what is sent; a range on an empty object is refused (416)
        headers["Range"] = f"bytes=0-{bound}"

    def attempt() -> bytes:
        # Streamed, so the headers are checked before the body; closing a response whose body was
        # not read drops its connection instead of downloading the rest.
        with client._http.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as response:
            if response.status_code >= 400:
                raise from_http_response(response)
            _check_headers(uri, _header_stat(response), expected_size, generation, max_size)
            return _read_body(response, bound)

    try:
        return retry(attempt)()  # retries what Beam's GcsIO retries (429, 5xx, dropped connections)
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
    # A name of its own per writer: worker processes may write the same file at once (run.json).
    temporary = f"{uri}.{os.getpid()}-{uuid.uuid4().hex[:8]}{INCOMPLETE_SUFFIX}"
    with FileSystems.create(temporary, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
        yield stream
    if FileSystems.exists(uri):
        with suppress(BeamIOError):  # another writer replaced it first; ours is renamed over it below
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
