"""beam/storage.py's per-file remote reads (`stat_object`, `stat_size`, `read_bytes`) on the GCS emulator.

What the ingest job relies on: a missing object is a FileNotFoundError (a `missing` rejection), the
size is known from one metadata request, a read is one media request and is refused when the object
is no longer the one stat()ed, errors are one line, and the same calls work on local paths (the
scheme-independent fallback through Beam's FileSystems). Requests are counted by a proxy in front of
the emulator (`LatencyProxy` with no delay), not by patching the client.
"""

from __future__ import annotations

import http.server
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from apache_beam.io.filesystem import BeamIOError

from audioflow.beam.storage import (
    ObjectChangedError,
    ObjectStat,
    ObjectTooLargeError,
    RemoteStorageError,
    read_bytes,
    stat_object,
    stat_size,
)

from gcs_emulator import (
    EmulatedGcs,
    LatencyProxy,
    environment_set,
    in_new_thread,
    loopback_server,
    refusing_handler,
)

BUCKET = "audioflow-storage-remote"


@pytest.fixture(scope="module")
def bucket(gcs: EmulatedGcs) -> str:
    return gcs.create_bucket(BUCKET)


@pytest.fixture
def counted(gcs: EmulatedGcs) -> Iterator[Callable[[Callable[[], Any]], tuple[Any, dict[str, int]]]]:
    """Runs a function with a fresh client that reaches the emulator through a counting proxy.

    Returns (the function's value, requests by kind).
    """
    proxy = LatencyProxy(int(gcs.host.rsplit(":", 1)[1]))

    def run(fn: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
        saved = os.environ["STORAGE_EMULATOR_HOST"]
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{proxy.port}"
        proxy.reset()
        try:
            value = in_new_thread(fn)
        finally:
            os.environ["STORAGE_EMULATOR_HOST"] = saved
        return value, dict(proxy.kinds)

    try:
        yield run
    finally:
        proxy.close()


def object_requests(kinds: dict[str, int]) -> dict[str, int]:
    """The requests about objects. google-cloud-storage (3.17+) also fetches each bucket's metadata once per
    client, in a background thread, for its tracing attributes; with one client per thread that is one
    request per thread and bucket, not per file, and it may or may not have gone out yet."""
    assert kinds.get("GET /storage/v1/b/…", 0) <= 1, kinds
    return {kind: n for kind, n in kinds.items() if kind != "GET /storage/v1/b/…"}


def test_stat_gives_size_and_generation(gcs: EmulatedGcs, bucket: str) -> None:
    uri = gcs.write_bytes(f"{bucket}/stat/clip.wav", b"RIFF" + bytes(1000))
    blob = gcs.client.bucket(BUCKET).get_blob("stat/clip.wav")
    assert stat_object(uri) == ObjectStat(1004, int(blob.generation))
    assert stat_size(uri) == 1004


def test_stat_is_one_metadata_request_and_read_one_media_request(gcs: EmulatedGcs, bucket: str, counted) -> None:
    data = os.urandom(5000)
    uri = gcs.write_bytes(f"{bucket}/count/a b+é.wav", data)  # a name that needs quoting
    (size, kinds) = counted(lambda: stat_size(uri))
    assert size == 5000
    assert object_requests(kinds) == {"GET /storage/v1/b/…/o/…": 1}
    (read, kinds) = counted(lambda: read_bytes(uri, expected_size=5000))
    assert read == data
    assert object_requests(kinds) == {"GET /download/b/…/o/… alt=media": 1}


def test_one_client_per_thread_keeps_its_connection(gcs: EmulatedGcs, bucket: str, counted) -> None:
    uris = [gcs.write_bytes(f"{bucket}/reuse/{i}.wav", bytes([i]) * 100) for i in range(5)]

    def stat_and_read_all() -> list[bytes]:
        return [read_bytes(uri, expected_size=stat_size(uri)) for uri in uris]

    (datas, kinds) = counted(stat_and_read_all)
    assert datas == [bytes([i]) * 100 for i in range(5)]
    assert sum(object_requests(kinds).values()) == 10  # no reloads: 2 requests per file, on one client


def test_missing_object_and_bucket_are_file_not_found(bucket: str) -> None:
    for uri in (f"{bucket}/nothing/here.wav", "gs://audioflow-no-such-bucket/a.wav"):
        with pytest.raises(FileNotFoundError):
            stat_size(uri)
        with pytest.raises(FileNotFoundError):
            read_bytes(uri)
        with pytest.raises(FileNotFoundError):
            read_bytes(uri, expected_size=10)


def test_read_without_expectations_reads_everything(gcs: EmulatedGcs, bucket: str) -> None:
    data = os.urandom(300_000)
    uri = gcs.write_bytes(f"{bucket}/plain/big.wav", data)
    assert read_bytes(uri) == data


def test_empty_object(gcs: EmulatedGcs, bucket: str) -> None:
    uri = gcs.write_bytes(f"{bucket}/empty/zero.wav", b"")
    assert stat_size(uri) == 0
    assert read_bytes(uri, expected_size=0) == b""


@pytest.mark.parametrize(
    ("replacement", "says"),
    # The media GET's headers give the new size (a server that did not say it: "more than 1000 now").
    [(b"x" * 2000, "1000 bytes then, 2000 now"), (b"x" * 10, "1000 bytes then, 10 now"), (b"", "0 now")],
    ids=["grown", "shrunk", "emptied"],
)
def test_object_replaced_after_stat_is_refused(gcs: EmulatedGcs, bucket: str, replacement: bytes, says: str) -> None:
    uri = gcs.write_bytes(f"{bucket}/replaced/{len(replacement)}.wav", b"y" * 1000)
    stat = stat_object(uri)
    gcs.write_bytes(uri, replacement)
    with pytest.raises(ObjectChangedError, match=says) as caught:
        read_bytes(uri, expected_size=stat.size, generation=None)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, OSError)


def test_read_at_the_stat_generation(gcs: EmulatedGcs, bucket: str) -> None:
    """The generation is sent as ifGenerationMatch (Cloud Storage answers 412 once the object is replaced;
    the emulator does not check preconditions, so only the matching case is exercised here)."""
    uri = gcs.write_bytes(f"{bucket}/generation/clip.wav", b"z" * 64)
    stat = stat_object(uri)
    assert stat.generation is not None
    assert read_bytes(uri, expected_size=stat.size, generation=stat.generation) == b"z" * 64


# What Cloud Storage answers a caller without access: 403 and a JSON body on many lines.
_REFUSAL = json.dumps(
    {
        "error": {
            "code": 403,
            "message": "caller does not have storage.objects.get access\nto the object.",
            "errors": [{"reason": "forbidden"}],
        }
    },
    indent=2,
).encode()


def test_a_refused_request_is_one_line(gcs: EmulatedGcs) -> None:
    uri = "gs://private-bucket/x.wav"
    with loopback_server(refusing_handler(_REFUSAL)) as url, environment_set({"STORAGE_EMULATOR_HOST": url}):
        for call in (lambda: stat_size(uri), lambda: read_bytes(uri, expected_size=3), lambda: read_bytes(uri)):
            with pytest.raises(RemoteStorageError) as caught:
                in_new_thread(call)
            message = str(caught.value)
            assert "\n" not in message, message
            assert message.startswith(uri + ": HTTP 403: "), message
        with pytest.raises(RemoteStorageError, match=r"storage\.objects\.get access to the object"):
            in_new_thread(lambda: stat_size(uri))  # the JSON API's own reason, on one line


def test_not_an_object_uri(bucket: str) -> None:
    with pytest.raises(ValueError, match="not a gs:// object"):
        stat_size(bucket + "/")


def test_many_threads_read_the_right_bytes(gcs: EmulatedGcs, bucket: str) -> None:
    payloads = {f"{bucket}/threads/{i:03d}.wav": os.urandom(1000 + i) for i in range(64)}
    for uri, data in payloads.items():
        gcs.write_bytes(uri, data)

    def fetch(uri: str) -> bytes:
        return read_bytes(uri, expected_size=stat_size(uri))

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(fetch, payloads)) == list(payloads.values())


def test_local_files_go_through_beam_filesystems(tmp_path: Path) -> None:
    path = tmp_path / "clip.wav"
    path.write_bytes(b"local" * 10)
    assert stat_size(str(path)) == 50
    assert stat_object(str(path)) == ObjectStat(50, None)
    assert read_bytes(str(path), expected_size=50) == b"local" * 10
    assert read_bytes(str(path)) == b"local" * 10
    with pytest.raises(ObjectChangedError, match="more than 40"):
        read_bytes(str(path), expected_size=40)
    with pytest.raises(ObjectChangedError, match="60 bytes then, 50 now"):
        read_bytes(str(path), expected_size=60)
    with pytest.raises(BeamIOError):  # Beam's own error for a missing file (the pipeline then checks exists())
        stat_size(str(tmp_path / "missing.wav"))


# One request per file: what the media GET's headers tell, on an emulator that sends them as Cloud
# Storage does (tests/helpers/gcs_faithful.py), and on loopback servers for what no emulator does.


@pytest.fixture(scope="module")
def faithful_bucket(faithful_gcs) -> str:
    with faithful_gcs.active():
        return faithful_gcs.create_bucket(BUCKET)


@pytest.fixture
def faithful_counted(faithful_gcs) -> Iterator[Callable[[Callable[[], Any]], tuple[Any, dict[str, int]]]]:
    """Like `counted`, in front of the faithful emulator."""
    proxy = LatencyProxy(int(faithful_gcs.host.rsplit(":", 1)[1]))

    def run(fn: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
        proxy.reset()
        with faithful_gcs.active(f"http://127.0.0.1:{proxy.port}"):
            value = in_new_thread(fn)
        return value, dict(proxy.kinds)

    try:
        yield run
    finally:
        proxy.close()


def test_a_read_is_one_request_pinned_to_the_listed_generation(faithful_gcs, faithful_bucket, faithful_counted) -> None:
    with faithful_gcs.active():
        uri = faithful_gcs.write_bytes(f"{faithful_bucket}/pinned/clip.wav", b"a" * 100)
        generation = int(faithful_gcs.client.bucket(BUCKET).get_blob("pinned/clip.wav").generation)
    data, kinds = faithful_counted(lambda: read_bytes(uri, 100, generation, max_size=1000))
    assert data == b"a" * 100
    assert object_requests(kinds) == {"GET /download/b/…/o/… alt=media": 1}
    with faithful_gcs.active():
        faithful_gcs.write_bytes(uri, b"b" * 100)  # same size, new generation
    with pytest.raises(ObjectChangedError, match=f"replaced after it was listed \\(generation {generation}\\)"):
        faithful_counted(lambda: read_bytes(uri, 100, generation))


def test_an_object_over_the_limit_is_refused_from_its_headers(faithful_gcs, faithful_bucket, faithful_counted) -> None:
    with faithful_gcs.active():
        uri = faithful_gcs.write_bytes(f"{faithful_bucket}/large/clip.wav", os.urandom(300_000))
    with pytest.raises(ObjectTooLargeError, match="has 300000 bytes, over --max-file-size 1000") as caught:
        faithful_counted(lambda: read_bytes(uri, max_size=1000))
    assert isinstance(caught.value, RemoteStorageError)
    data, kinds = faithful_counted(lambda: read_bytes(uri, max_size=300_000))
    assert len(data) == 300_000 and object_requests(kinds) == {"GET /download/b/…/o/… alt=media": 1}


def test_an_emptied_object_is_refused(faithful_gcs, faithful_bucket, faithful_counted) -> None:
    """Cloud Storage refuses a range on an empty object (416)."""
    with faithful_gcs.active():
        uri = faithful_gcs.write_bytes(f"{faithful_bucket}/emptied/clip.wav", b"c" * 50)
        faithful_gcs.write_bytes(uri, b"")
    with pytest.raises(ObjectChangedError, match="50 bytes then, 0 now"):
        faithful_counted(lambda: read_bytes(uri, 50))
    assert faithful_counted(lambda: read_bytes(uri, 0))[0] == b""


class _Answering(http.server.BaseHTTPRequestHandler):
    """Answers every GET with `headers` and then closes the connection, without sending the body they
    announce: a client that reads the body fails (and retries); one that stops at the headers does not."""

    headers_to_send: ClassVar[dict[str, str]] = {}
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        self.send_response(200)
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def answering(gcs: EmulatedGcs) -> Iterator[Callable[[dict[str, str], Callable[[], Any]], list[str]]]:
    """Runs a function against a server that answers with the given headers; returns the paths it was asked."""
    with loopback_server(_Answering) as url:

        def run(headers: dict[str, str], fn: Callable[[], Any]) -> list[str]:
            _Answering.headers_to_send, _Answering.requests = headers, []
            with environment_set({"STORAGE_EMULATOR_HOST": url}):
                in_new_thread(fn)
            return _Answering.requests

        yield run


def test_the_body_of_an_object_over_the_limit_is_never_read(answering) -> None:
    ten_gb = str(10 * 1024**3)
    headers = {"Content-Length": ten_gb, "x-goog-stored-content-length": ten_gb, "x-goog-generation": "7"}
    with pytest.raises(ObjectTooLargeError, match=f"has {ten_gb} bytes, over --max-file-size 2147483648"):
        answering(headers, lambda: read_bytes("gs://huge/a.wav", max_size=2 * 1024**3))
    assert len(_Answering.requests) == 1  # refused at the headers: no body read, so no failed read to retry


def test_a_generation_other_than_the_listed_one_is_refused_from_the_headers(answering) -> None:
    """Cloud Storage enforces ifGenerationMatch itself (412); the headers are checked too, for servers
    that do not, and before the body is read."""
    headers = {"Content-Length": "100", "x-goog-stored-content-length": "100", "x-goog-generation": "8"}
    with pytest.raises(ObjectChangedError, match="replaced after it was listed: generation 7 then, 8 now"):
        answering(headers, lambda: read_bytes("gs://b/a.wav", 100, 7))
    [path] = _Answering.requests
    assert path.endswith("/download/storage/v1/b/b/o/a.wav?alt=media&ifGenerationMatch=7")
    headers = {**headers, "x-goog-generation": "7", "x-goog-stored-content-length": "120"}
    with pytest.raises(ObjectChangedError, match="100 bytes then, 120 now"):
        answering(headers, lambda: read_bytes("gs://b/a.wav", 100, 7))
