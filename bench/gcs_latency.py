"""Object-store latency: audioflow reading gs:// through a proxy that adds 30 ms to every request.

Cloud Storage answers each request after tens of milliseconds however small the object, so a job
that fetches one file at a time is bound by requests × latency, not by bandwidth or CPU. This
puts a loopback proxy that delays the first bytes of every HTTP request by `--latency-ms` in front
of the GCS emulator (tests/gcs_emulator.py), uploads N clips and a manifest, and runs:

  sequential fetch  a plain loop downloading each object with google-cloud-storage (no decoding,
                    no writing): the cost of fetching one file at a time, the floor of a naive job;
  audioflow, 1 in flight   `audioflow ingest --fetch-concurrency 1` (stat and fetch one at a time);
  audioflow (default)      16 stats and fetches in flight per worker for remote audio.

The emulator is a Python process (run on a threaded HTTP server here), so absolute rates measure
it as much as the latency; what matters is how much of the per-request latency each contender
hides. The output goes to a local folder so that only reads cross the proxy. Prints a Markdown
table (or appends it to RESULTS.md's notes with --results).

Usage: gcs_latency.py [--clips 1000] [--latency-ms 30] [--results bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))

from data import VARIANTS, make_workload  # noqa: E402
from monitor import run_measured  # noqa: E402
from run import AUDIOFLOW, PYTHON, contender_env  # noqa: E402

from gcs_emulator import EmulatedGcs, credentials_info, emulator_environment  # noqa: E402

BUCKET = "audioflow-bench"


class LatencyProxy:
    """A loopback TCP proxy to `upstream_port` that waits `delay` seconds before forwarding each request.

    A request starts when the client sends bytes after the server has answered (or on a new
    connection), which is how HTTP/1.1 keep-alive alternates; so every request, however it is
    pipelined into connections, pays the delay once, as a round trip to a distant server does.
    """

    def __init__(self, upstream_port: int, delay: float):
        self._upstream_port = upstream_port
        self.delay = delay  # seconds; may be changed while the proxy runs
        self.requests = 0
        self.kinds: collections.Counter[str] = collections.Counter()  # "GET /storage/v1/b/…/o/… alt=media"
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="latency-proxy", daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.ExitStack() as stack:
            stack.callback(client.close)
            first = client.recv(1 << 16)
            if not first:
                return
            self._wait(first)
            # Only now connect: the emulator serves one connection at a time, so connecting before
            # the delay would make it wait out every request's latency in turn.
            upstream = stack.enter_context(socket.create_connection(("127.0.0.1", self._upstream_port)))
            upstream.sendall(first)
            new_request = threading.Event()

            def answers() -> None:
                with contextlib.suppress(OSError):
                    while data := upstream.recv(1 << 16):
                        new_request.set()
                        client.sendall(data)
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)

            reader = threading.Thread(target=answers, daemon=True)
            reader.start()
            with contextlib.suppress(OSError):
                while data := client.recv(1 << 16):
                    if new_request.is_set():
                        new_request.clear()
                        self._wait(data)
                    upstream.sendall(data)
                upstream.shutdown(socket.SHUT_WR)
            reader.join()

    def _wait(self, request: bytes) -> None:
        with self._lock:
            self.requests += 1
            self.kinds[_kind(request)] += 1
        if self.delay:
            time.sleep(self.delay)


def _kind(request: bytes) -> str:
    """The request line with bucket and object names replaced, so requests can be counted by kind."""
    line = request.split(b"\r\n", 1)[0].decode("latin-1")
    method, _, rest = line.partition(" ")
    path, _, query = rest.partition(" ")[0].partition("?")
    path = re.sub(r"/b/[^/]+", "/b/…", path)
    path = re.sub(r"/o/.+", "/o/…", path)
    path = re.sub(r"^/download/storage/v1", "/download", path)
    keep = [q for q in query.split("&") if q.startswith(("alt=", "uploadType="))]
    return " ".join([method, path, *keep])


# gcp-storage-emulator serves one request at a time (http.server.HTTPServer), which would measure the
# emulator rather than latency hiding; the benchmark runs it on ThreadingHTTPServer (reads only).
THREADED_EMULATOR = (
    "import http.server, sys; http.server.HTTPServer = http.server.ThreadingHTTPServer; "
    "from gcp_storage_emulator.__main__ import main; main(sys.argv[1:])"
)


def start_threaded_emulator(timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Like tests/gcs_emulator.start_emulator, on a threaded HTTP server; returns the process and its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    command = [PYTHON, "-c", THREADED_EMULATOR, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    process = subprocess.Popen([*command, "--quiet"])
    deadline = time.monotonic() + timeout
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        with contextlib.suppress(OSError), direct.open(host + "/", timeout=1) as response:
            if response.status == 200:
                return process, host
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the GCS emulator did not start on {host}")
        time.sleep(0.05)


SEQUENTIAL_FETCH = """
import csv, sys, time
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
bucket_name, manifest = sys.argv[1], sys.argv[2]
bucket = storage.Client(project="audioflow-test", credentials=AnonymousCredentials()).bucket(bucket_name)
rows = list(csv.reader(bucket.blob(manifest).download_as_text().splitlines()))[1:]
total = 0
for _, blob in rows:
    total += len(bucket.blob(blob).download_as_bytes())
print(len(rows), total)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--results", type=Path, help="append the table to this file (RESULTS.md's notes)")
    args = parser.parse_args()

    workload = make_workload(args.out / "data", VARIANTS["wav"], args.clips)
    process, host = start_threaded_emulator()
    folder = Path(tempfile.mkdtemp(prefix="audioflow-gcs-bench-"))
    proxy = None
    try:
        credentials = folder / "credentials.json"
        credentials.write_text(json.dumps(credentials_info()))
        # Everything goes through the proxy, uploads included: the emulator writes the address an
        # object was uploaded through into its mediaLink, and clients download from there.
        proxy = LatencyProxy(int(host.rsplit(":", 1)[1]), delay=0.0)
        env = {**contender_env(), **emulator_environment(f"http://127.0.0.1:{proxy.port}", str(credentials))}
        os.environ.update(emulator_environment(f"http://127.0.0.1:{proxy.port}", str(credentials)))
        gcs = EmulatedGcs(host=host, credentials_file=str(credentials), env=env, folder=folder)
        print(f"uploading {args.clips} clips to the emulator", file=sys.stderr, flush=True)
        gcs.create_bucket(BUCKET)
        gcs.upload_file(workload.manifest, f"gs://{BUCKET}/manifest.csv")
        for line in workload.manifest.read_text().splitlines()[1:]:
            blob = line.split(",", 1)[1]
            gcs.upload_file(workload.audio_root / blob, f"gs://{BUCKET}/{blob}")
        proxy.delay = args.latency_ms / 1000

        ingest = [AUDIOFLOW, "ingest", "--manifest", f"gs://{BUCKET}/manifest.csv", "--output"]
        contenders = {
            "sequential fetch (google-cloud-storage loop)": [PYTHON, "-c", SEQUENTIAL_FETCH, BUCKET, "manifest.csv"],
            "audioflow, 1 in flight": [*ingest, str(folder / "one"), "--fetch-concurrency", "1"],
            "audioflow (default: 16 in flight)": [*ingest, str(folder / "default")],
        }
        rows = []
        kinds = {}
        for name, command in contenders.items():
            proxy.kinds.clear()
            before = proxy.requests
            result = run_measured(command, args.out / "logs" / f"gcs-{name.split(' ')[0]}-{len(rows)}.log", env=env)
            requests = proxy.requests - before
            kinds[name] = dict(proxy.kinds)
            status = f"{result.wall_seconds:.1f}" if result.ok else f"FAILED (exit {result.returncode})"
            rows.append((name, status, args.clips / result.wall_seconds, requests, result.peak_rss_bytes))
            print(f"  {name:<45} {status} s, {requests} requests", file=sys.stderr, flush=True)
    finally:
        if proxy is not None:
            proxy.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    bound = rows[0][3] * args.latency_ms / 1000
    lines = [
        f"### gs:// with {args.latency_ms:g} ms per request ({args.clips:,} five-second WAV clips on the GCS emulator)",
        "",
        "| contender | wall s | files/s | requests through the proxy | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
        *(f"| {n} | {w} | {f:,.0f} | {r:,} | {p / 1e6:,.0f} |" for n, w, f, r, p in rows),
        "",
        f"One request at a time costs at least requests × latency: {bound:.0f} s for the sequential loop's "
        f"{rows[0][3]:,} requests.",
        "",
        "Requests by kind (bucket and object names elided):",
        "",
        *(f"- {name}: " + ", ".join(f"`{k}` ×{n:,}" for k, n in sorted(kind.items())) for name, kind in kinds.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if args.results:
        with open(args.results, "a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
