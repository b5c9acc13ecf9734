"""A local Cloud Storage: the `gcs` pytest fixture and `make gcs-emulator` (both run gcp-storage-emulator).

The emulator listens on a free 127.0.0.1 port. Beam's gs:// filesystem and google-cloud-storage
honour STORAGE_EMULATOR_HOST; Beam still asks google.auth for credentials first, and without a
credentials file it probes the metadata server (about 20 s per process), so a throwaway
`authorized_user` file whose token expires in 2099 is written and exported as well. TensorFlow's own
gs:// client ignores all of this: it always calls https://www.googleapis.com and
https://storage.googleapis.com. `TensorflowGcsProxy` reaches it anyway: a loopback HTTPS proxy
(libcurl in TensorFlow honours https_proxy and CURL_CA_BUNDLE) that terminates TLS with a throwaway
certificate for those two names and forwards the bytes to the emulator; it refuses any other host,
so nothing leaves 127.0.0.1. `LatencyProxy` stands between a client and the emulator: it delays every
request as a distant server would and counts requests by kind (bench/gcs_latency.py, test_storage_remote.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import http.server
import json
import os
import re
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "EmulatedGcs",
    "LatencyProxy",
    "TensorflowGcsProxy",
    "credentials_info",
    "emulator_environment",
    "gcs",
    "request_kind",
    "start_emulator",
]

PROJECT = "audioflow-test"


def credentials_info() -> dict[str, str]:
    """An `authorized_user` credential that google.auth loads without any network call."""
    return {
        "type": "authorized_user",
        "client_id": "audioflow-test.apps.googleusercontent.com",
        "client_secret": "not-a-secret",
        "refresh_token": "not-a-token",
        "token": "emulator-token",
        "expiry": "2099-01-01T00:00:00Z",
        "quota_project_id": PROJECT,
    }


def emulator_environment(host: str, credentials_file: str) -> dict[str, str]:
    """The variables that send Beam and google-cloud-storage to the emulator."""
    return {
        "STORAGE_EMULATOR_HOST": host,
        "GOOGLE_APPLICATION_CREDENTIALS": credentials_file,
        # Else google.auth warns "No project ID could be determined" in every process.
        "GOOGLE_CLOUD_PROJECT": PROJECT,
        # google.auth never asks the metadata server then (a second guard against the 20 s stall).
        "NO_GCE_CHECK": "True",
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(host: str) -> bool:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a user's http_proxy
    try:
        with direct.open(host + "/", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_emulator(port: int | None = None, quiet: bool = True, timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Starts gcp-storage-emulator (in memory) on 127.0.0.1; returns the process and its URL once it answers.

    Raises:
        RuntimeError: the emulator exited or did not answer within `timeout` seconds.
    """
    port = port or _free_port()
    host = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "gcp_storage_emulator",
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
    ]
    process = subprocess.Popen([*command, "--quiet"] if quiet else command)
    deadline = time.monotonic() + timeout
    while not _answers(host):
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with code {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"gcp-storage-emulator did not answer on {host} within {timeout:.0f} s")
        time.sleep(0.05)
    return process, host


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _write_certificates(folder: Path, hosts: tuple[str, ...]) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for `hosts` signed by it: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(hours=1), "not_valid_after": now + datetime.timedelta(days=2)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "audioflow test CA")])
    usage = {
        name: False
        for name in (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        )
    }
    ca = (
        x509.CertificateBuilder(
            subject_name=ca_name,
            issuer_name=ca_name,
            public_key=ca_key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certificate = (
        x509.CertificateBuilder(
            subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]),
            issuer_name=ca_name,
            public_key=key.public_key(),
            serial_number=x509.random_serial_number(),
            **valid,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class TensorflowGcsProxy:
    """A loopback CONNECT proxy that lets TensorFlow's own gs:// client talk to the emulator.

    Only CONNECTs to Google's storage hosts are accepted (then TLS is terminated and the stream is
    piped to the emulator); everything else gets 403. `requests` lists every proxy request line.
    """

    HOSTS = ("www.googleapis.com", "storage.googleapis.com")

    def __init__(self, emulator_host: str, folder: Path):
        self._emulator_port = int(emulator_host.rsplit(":", 1)[1])
        self.ca_file, certificate, key = _write_certificates(folder, self.HOSTS)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(certificate, key)
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="tf-gcs-proxy", daemon=True).start()

    def environment(self) -> dict[str, str]:
        """Variables for TensorFlow's GCS client: every request through this proxy, a fixed token."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {
            "https_proxy": proxy,
            "http_proxy": proxy,
            "no_proxy": "127.0.0.1,localhost",
            "CURL_CA_BUNDLE": str(self.ca_file),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator-token",
        }

    def active(self) -> contextlib.AbstractContextManager[None]:
        """Sets environment() in os.environ for the block (TensorFlow reads it per request)."""
        return environment_set(self.environment())

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        head = b""
        with contextlib.ExitStack() as stack:
            stack.callback(connection.close)
            while b"\r\n\r\n" not in head:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            self.requests.append(line)
            method, target, *_ = line.split(" ")
            if method != "CONNECT" or target.rsplit(":", 1)[0] not in self.HOSTS:
                connection.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            tls = stack.enter_context(self._tls.wrap_socket(connection, server_side=True))
            upstream = stack.enter_context(socket.create_connection(("127.0.0.1", self._emulator_port)))
            with contextlib.suppress(OSError):
                self._pipe(tls, upstream)

    @staticmethod
    def _pipe(tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        """One thread per connection, alternating directions (SSL objects are not shared across threads)."""
        while True:
            ready = [tls] if tls.pending() else select.select([tls, upstream], [], [])[0]
            for source, target in ((tls, upstream), (upstream, tls)):
                if source in ready:
                    data = source.recv(1 << 16)
                    if not data:
                        return
                    target.sendall(data)


class LatencyProxy:
    """A loopback TCP proxy to `upstream_port` that waits `delay` seconds before forwarding each HTTP request.

    A request starts when the client sends bytes after the server has answered (or on a new
    connection), which is how HTTP/1.1 keep-alive alternates; so every request, however requests are
    spread over connections, pays the delay once, as a round trip to a distant server does. Requests
    are counted (`requests`, and `kinds` by `request_kind`), and so are client connections.

    It runs on one asyncio event loop in a thread of its own: waiting costs no thread, and with
    hundreds of requests in flight the proxy spends microseconds per request rather than the
    milliseconds of GIL hand-offs between two threads per connection. Both legs set TCP_NODELAY, as
    any HTTP client does, so small answers are not held back by Nagle's algorithm.
    """

    def __init__(self, upstream_port: int, delay: float = 0.0):
        self._upstream_port = upstream_port
        self.delay = delay  # seconds; may be changed while the proxy runs
        self.requests = 0
        self.connections = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="latency-proxy", daemon=True)
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        started.set()
        self._loop.run_forever()

    def reset(self) -> None:
        """Zeroes the counters."""
        self.requests = self.connections = 0
        self.kinds.clear()

    def close(self) -> None:
        """Stops listening, drops every connection and ends the proxy's thread."""
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _no_delay(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        # The event loop holds tasks weakly: keep each connection's task alive until it ends.
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._relay(client_reader, client_writer)
        except asyncio.CancelledError:  # close(): the connection is dropped, not an error
            pass
        finally:
            self._tasks.discard(task)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._no_delay(client_writer)
        self.connections += 1
        answered = [True]  # set by the answering leg: the client's next bytes start a new request
        upstream_writer: asyncio.StreamWriter | None = None
        answers: asyncio.Task | None = None
        try:
            while data := await client_reader.read(1 << 16):
                if answered[0]:
                    answered[0] = False
                    self.requests += 1
                    self.kinds[request_kind(data)] += 1
                    if self.delay:
                        await asyncio.sleep(self.delay)
                if upstream_writer is None:
                    # Connected only after the first delay, as the threaded emulator would otherwise
                    # hold a thread per waiting connection.
                    upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
                    self._no_delay(upstream_writer)
                    answers = asyncio.create_task(self._answer(upstream_reader, client_writer, answered))
                    self._tasks.add(answers)
                    answers.add_done_callback(self._tasks.discard)
                if upstream_writer.is_closing():
                    break
                upstream_writer.write(data)
                await upstream_writer.drain()
            if upstream_writer is not None and not upstream_writer.is_closing():
                upstream_writer.write_eof()
            if answers is not None:
                await answers
        except OSError:
            pass
        finally:
            for writer in (upstream_writer, client_writer):
                if writer is not None:
                    writer.close()
            if answers is not None:
                answers.cancel()

    @staticmethod
    async def _answer(upstream: asyncio.StreamReader, client: asyncio.StreamWriter, answered: list[bool]) -> None:
        with contextlib.suppress(OSError):
            while data := await upstream.read(1 << 16):
                answered[0] = True
                client.write(data)
                await client.drain()
            client.write_eof()


def request_kind(request: bytes) -> str:
    """The request line with bucket and object names elided, e.g. `GET /download/b/…/o/… alt=media`."""
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = line.partition(" ")
    path, _, query = rest.partition(" ")[0].partition("?")
    path = re.sub(r"/b/[^/]+", "/b/…", path)
    path = re.sub(r"/o/.+", "/o/…", path)
    path = re.sub(r"^/download/storage/v1", "/download", path)
    keep = [q for q in query.split("&") if q.startswith(("alt=", "uploadType="))]
    return " ".join([method, path, *keep])


@dataclass
class EmulatedGcs:
    """The running emulator and a few helpers over google-cloud-storage (which honours the emulator)."""

    host: str
    credentials_file: str
    env: dict[str, str]
    folder: Path | None = None
    _client: Any = field(default=None, repr=False)
    _proxy: TensorflowGcsProxy | None = field(default=None, repr=False)

    def tensorflow_proxy(self) -> TensorflowGcsProxy:
        """The proxy through which TensorFlow's own gs:// client reaches this emulator (started once)."""
        if self._proxy is None:
            folder = self.folder or Path(tempfile.mkdtemp(prefix="tf-gcs-proxy-"))
            self._proxy = TensorflowGcsProxy(self.host, folder)
        return self._proxy

    @property
    def client(self) -> Any:
        if self._client is None:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            self._client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
        return self._client

    def create_bucket(self, name: str) -> str:
        """Creates the bucket (if new); returns `gs://name`."""
        from google.api_core.exceptions import Conflict

        with contextlib.suppress(Conflict):
            self.client.create_bucket(name)
        return f"gs://{name}"

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        """`gs://bucket/a/b` -> ("bucket", "a/b")."""
        if not uri.startswith("gs://"):
            raise ValueError(f"not a gs:// URI: {uri}")
        bucket, _, name = uri[len("gs://") :].partition("/")
        return bucket, name

    def upload_file(self, local: str | os.PathLike, uri: str) -> str:
        bucket, name = self.split(uri)
        self.client.bucket(bucket).blob(name).upload_from_filename(str(local))
        return uri

    def upload_folder(self, local: str | os.PathLike, uri: str) -> list[str]:
        """Uploads every file under `local` to the prefix `uri`, keeping relative paths; returns the URIs."""
        root = Path(local)
        uploaded = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            uploaded.append(self.upload_file(path, f"{uri.rstrip('/')}/{path.relative_to(root).as_posix()}"))
        return uploaded

    def write_bytes(self, uri: str, data: bytes) -> str:
        bucket, name = self.split(uri)
        self.client.bucket(bucket).blob(name).upload_from_string(data)
        return uri

    def list(self, uri: str) -> list[str]:
        """Every object name under the prefix `uri`, relative to it, sorted."""
        bucket, prefix = self.split(uri)
        prefix = prefix.rstrip("/") + "/" if prefix else ""
        return sorted(blob.name[len(prefix) :] for blob in self.client.list_blobs(bucket, prefix=prefix))

    def read_bytes(self, uri: str) -> bytes:
        bucket, name = self.split(uri)
        return self.client.bucket(bucket).blob(name).download_as_bytes()

    def read_text(self, uri: str) -> str:
        return self.read_bytes(uri).decode("utf-8")

    def download(self, uri: str, local: str | os.PathLike) -> Path:
        """Copies every object under the prefix `uri` into the folder `local`; returns it."""
        target = Path(local)
        for name in self.list(uri):
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.read_bytes(f"{uri.rstrip('/')}/{name}"))
        return target


def in_new_thread(fn: Callable[[], Any]) -> Any:
    """Runs fn in a thread of its own, so it makes its own storage client (clients are per thread)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextlib.contextmanager
def loopback_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server with `handler` on a free loopback port for the block; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refusing_handler(body: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler that answers every GET as Cloud Storage answers a caller without access: 403 and `body`."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Refusing


@contextlib.contextmanager
def environment_set(env: dict[str, str]) -> Iterator[None]:
    """`env` in os.environ for the block; what was there before (or nothing) afterwards."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatedGcs]:
    """One emulator per test session; its variables are set in os.environ for the tests and their children."""
    process, host = start_emulator()
    credentials = tmp_path_factory.mktemp("gcs-credentials") / "application_default_credentials.json"
    credentials.write_text(json.dumps(credentials_info()))
    env = emulator_environment(host, str(credentials))
    emulated = EmulatedGcs(host=host, credentials_file=str(credentials), env=env, folder=credentials.parent)
    try:
        with environment_set(env):
            yield emulated
    finally:
        if emulated._proxy is not None:
            emulated._proxy.close()
        _stop(process)


def main() -> None:
    """`make gcs-emulator`: runs the emulator in the foreground and prints what to export."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9023)
    parser.add_argument("--bucket", action="append", default=[], help="Create this bucket (repeatable).")
    args = parser.parse_args()
    credentials = Path(tempfile.gettempdir()) / "audioflow-gcs-emulator-credentials.json"
    credentials.write_text(json.dumps(credentials_info()))
    process, host = start_emulator(args.port, quiet=False)
    env = emulator_environment(host, str(credentials))
    os.environ.update(env)
    emulated = EmulatedGcs(host=host, credentials_file=str(credentials), env=env)
    for bucket in args.bucket:
        print(f"created {emulated.create_bucket(bucket)}", flush=True)
    print("\n# GCS emulator running (in memory); in another shell:", flush=True)
    for name, value in env.items():
        print(f"export {name}={value}", flush=True)
    print("# Ctrl-C stops it.\n", flush=True)
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(process)


if __name__ == "__main__":
    main()
