"""Object-store latency: audioflow reading gs:// through a proxy that adds 30 ms to every request.

Cloud Storage answers each request after tens of milliseconds however small the object, so a job
that fetches one file at a time is bound by requests × latency, not by bandwidth or CPU. This
puts a loopback proxy that delays the first bytes of every HTTP request by `--latency-ms` in front
of the GCS emulator (tests/helpers/gcs_emulator.LatencyProxy), uploads N clips and a manifest, and runs:

  sequential fetch  a plain loop downloading each object with google-cloud-storage (no decoding,
                    no writing): the cost of fetching one file at a time, the floor of a naive job;
  audioflow, 1 in flight   `audioflow ingest --fetch-concurrency 1` (stat and fetch one at a time);
  audioflow (default)      the default number of stats and fetches in flight for remote audio;
  audioflow, N in flight   for each --concurrency N;
  audioflow, local files   the same clips from local disk: what the job costs with no object store
                           at all, a bound on any gs:// run (start-up, decoding, writing).

Every contender runs --repeat times, round robin (A B C A B C ...), and the median is reported with
the range. --audioflow LABEL=COMMAND (repeatable) compares builds in the same session, e.g. a patched
copy of the repository: `--audioflow main=.venv/bin/audioflow --audioflow new="python /tmp/copy/af.py"`.

Before the contenders, the emulator's own cost is measured through the proxy at 0 ms (metadata and
media GETs, one at a time and 16 at a time): it is the ceiling. With R requests per file, no amount
of concurrency makes a file cheaper than R × (the emulator's cost per request when saturated), so
the best ratio to the sequential loop is (latency + one media GET) / (R × that cost).

The emulator runs on a threaded HTTP server with keep-alive (as Cloud Storage keeps connections
open), so that the benchmark measures latency hiding rather than a one-request-at-a-time server.
The output goes to a local folder so that only reads cross the proxy. Prints a Markdown table.

Usage: gcs_latency.py [--clips 1000] [--latency-ms 30] [--repeat 3] [--concurrency 32 ...]
                      [--audioflow LABEL=COMMAND ...] [--markdown FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests" / "helpers"))

from contenders import AUDIOFLOW, PYTHON, contender_env  # noqa: E402
from data import VARIANTS, make_workload  # noqa: E402
from monitor import run_measured  # noqa: E402

from gcs_emulator import EmulatedGcs, LatencyProxy, credentials_info, emulator_environment  # noqa: E402

BUCKET = "audioflow-bench"


# gcp-storage-emulator serves one request at a time (http.server.HTTPServer), which would measure the
# emulator rather than latency hiding; the benchmark runs it on ThreadingHTTPServer, speaking HTTP/1.1
# with keep-alive (its answers always carry Content-Length) and TCP_NODELAY (else each small answer
# waits ~40 ms for a delayed ACK), and with the in-memory index no longer serialised on every upload.
THREADED_EMULATOR = (
    "import http.server, sys; http.server.HTTPServer = http.server.ThreadingHTTPServer; "
    "import gcp_storage_emulator.server as server, gcp_storage_emulator.storage as storage; "
    "server.RequestHandler.protocol_version = 'HTTP/1.1'; server.RequestHandler.disable_nagle_algorithm = True; "
    "storage.Storage._write_config_to_file = lambda self: None; "
    "from gcp_storage_emulator.__main__ import main; main(sys.argv[1:])"
)


def start_threaded_emulator(timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Like tests/helpers/gcs_emulator.start_emulator, on a threaded HTTP server; returns the process and its URL."""
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


EMULATOR_COST = """
import json, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
bucket_name, names = sys.argv[1], sys.argv[2:]
local = threading.local()
def bucket():
    if not hasattr(local, "bucket"):
        client = storage.Client(project="audioflow-test", credentials=AnonymousCredentials())
        local.bucket = client.bucket(bucket_name)
    return local.bucket
ops = {"metadata GET": lambda name: bucket().get_blob(name),
       "media GET": lambda name: bucket().blob(name).download_as_bytes(raw_download=True)}
result = {}
for label, op in ops.items():
    for threads in (1, 16):
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(op, names[:threads * 4]))  # connections and clients made
            start = time.perf_counter()
            list(pool.map(op, names))
            result[f"{label}, {threads} at a time"] = (time.perf_counter() - start) / len(names) * 1000
print(json.dumps(result))
"""


def measure_emulator(env: dict[str, str], names: list[str]) -> dict[str, float]:
    """Milliseconds per request (wall time / requests) for metadata and media GETs, 1 and 16 at a time."""
    completed = subprocess.run(
        [PYTHON, "-c", EMULATOR_COST, BUCKET, *names], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender, round robin (median reported)")
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        default=[],
        help="also run audioflow with this --fetch-concurrency (repeatable)",
    )
    parser.add_argument(
        "--audioflow",
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="an audioflow build to measure (repeatable; default: this venv's audioflow)",
    )
    parser.add_argument("--no-one-in-flight", action="store_true", help="skip `--fetch-concurrency 1` (slow)")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    parser.add_argument("--markdown", type=Path, help="also write the Markdown section to this file")
    parser.add_argument("--json", type=Path, help="write the key numbers to this file (bench/sections.py reads them)")
    args = parser.parse_args()
    builds = [spec.split("=", 1) for spec in args.audioflow] or [["", AUDIOFLOW]]

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
        blobs = [line.split(",", 1)[1] for line in workload.manifest.read_text().splitlines()[1:]]
        for blob in blobs:
            gcs.upload_file(workload.audio_root / blob, f"gs://{BUCKET}/{blob}")

        print("measuring the emulator through the proxy at 0 ms", file=sys.stderr, flush=True)
        emulator = measure_emulator(env, blobs[: min(len(blobs), 800)])
        proxy.delay = args.latency_ms / 1000

        ingest = ["ingest", "--manifest", f"gs://{BUCKET}/manifest.csv", "--output"]
        contenders: dict[str, tuple[list[str], dict[str, str]]] = {
            "sequential fetch (google-cloud-storage loop)": (
                [PYTHON, "-c", SEQUENTIAL_FETCH, BUCKET, "manifest.csv"],
                env,
            ),
        }
        for label, command in builds:
            tag = f" [{label}]" if label else ""
            base = shlex.split(command)
            out = folder / f"out-{len(contenders)}"
            if not args.no_one_in_flight:
                contenders[f"audioflow{tag}, 1 in flight"] = (
                    [*base, *ingest, str(out) + "-1", "--fetch-concurrency", "1"],
                    env,
                )
            contenders[f"audioflow{tag} (default in flight)"] = ([*base, *ingest, str(out) + "-d"], env)
            for n in args.concurrency:
                contenders[f"audioflow{tag}, {n} in flight"] = (
                    [*base, *ingest, str(out) + f"-{n}", "--fetch-concurrency", str(n)],
                    env,
                )
            # The same clips from local disk: the job with no object store at all.
            contenders[f"audioflow{tag}, local files (no object store)"] = (
                [*base, "ingest", "--manifest", str(workload.manifest), "--output", str(out) + "-local"],
                contender_env(),
            )
        walls: dict[str, list[float]] = {name: [] for name in contenders}
        failed: dict[str, int] = {}
        requests: dict[str, int] = {}
        kinds: dict[str, dict[str, int]] = {}
        peaks: dict[str, int] = {}
        for round_ in range(args.repeat):
            for name, (command, run_env) in contenders.items():
                for path in folder.glob("out-*"):
                    shutil.rmtree(path, ignore_errors=True)
                proxy.reset()
                slug = "".join(c if c.isalnum() else "-" for c in name)[:60]
                result = run_measured(command, args.out / "logs" / f"gcs-{slug}-{round_}.log", env=run_env)
                requests[name], kinds[name] = proxy.requests, dict(proxy.kinds)
                peaks[name] = max(peaks.get(name, 0), result.peak_rss_bytes)
                if result.ok:
                    walls[name].append(result.wall_seconds)
                else:
                    failed[name] = result.returncode
                status = f"{result.wall_seconds:.1f} s" if result.ok else f"FAILED (exit {result.returncode})"
                print(
                    f"  [{round_ + 1}/{args.repeat}] {name:<50} {status}, {proxy.requests} requests, "
                    f"others' cores {result.others_cores:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        if proxy is not None:
            proxy.close()
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)

    sequential = next(iter(contenders))
    seq_wall = statistics.median(walls[sequential]) if walls[sequential] else float("nan")
    rows = []
    for name in contenders:
        if name in failed or not walls[name]:
            rows.append(f"| {name} | FAILED (exit {failed.get(name)}) | | | | | |")
            continue
        wall = statistics.median(walls[name])
        spread = f" ({min(walls[name]):.1f}–{max(walls[name]):.1f})" if len(walls[name]) > 1 else ""
        per_file = f"{requests[name] / args.clips:.2f}" if requests[name] else "0 (local)"
        rows.append(
            f"| {name} | {wall:.1f}{spread} | {args.clips / wall:,.0f} | {seq_wall / wall:.2f}× "
            f"| {requests[name]:,} | {per_file} | {peaks[name] / 1e6:,.0f} |"
        )
    saturated = min(emulator["metadata GET, 16 at a time"], emulator["media GET, 16 at a time"])
    media_one = emulator["media GET, 1 at a time"]
    ceiling = [f"R = {r}: {(args.latency_ms + media_one) / (r * saturated):.1f}×" for r in (1, 2, 5)]
    lines = [
        f"### gs:// with {args.latency_ms:g} ms per request ({args.clips:,} five-second WAV clips on the GCS "
        f"emulator, median of {args.repeat})",
        "",
        "| contender | wall s | files/s | vs sequential | requests through the proxy | requests per file "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"One request at a time costs at least requests × latency: "
        f"{requests[sequential] * args.latency_ms / 1000:.0f} s for the sequential loop's "
        f"{requests[sequential]:,} requests.",
        "",
        "The emulator's own cost through the proxy at 0 ms (wall ms per request, one google-cloud-storage client "
        "per thread): " + ", ".join(f"{k} {v:.2f}" for k, v in emulator.items()) + ".",
        f"Ceiling of the ratio to the sequential loop with R requests per file, the emulator saturated at "
        f"{saturated:.2f} ms per request: " + ", ".join(ceiling) + " (before any of the job's own work).",
        "",
        "Requests by kind (bucket and object names elided), last run:",
        "",
        *(
            f"- {name}: " + ", ".join(f"`{k}` ×{n:,}" for k, n in sorted(kind.items()))
            for name, kind in kinds.items()
            if kind
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        default = next((name for name in contenders if name.endswith("(default in flight)")), None)
        one = next((name for name in contenders if name.endswith(", 1 in flight")), None)

        def wall(name: str | None) -> float | None:
            return statistics.median(walls[name]) if name and walls.get(name) and name not in failed else None

        summary = {
            "clips": args.clips,
            "latency_ms": args.latency_ms,
            "sequential_wall_s": wall(sequential),
            "default_wall_s": wall(default),
            "one_in_flight_wall_s": wall(one),
            "default_requests_per_file": requests.get(default, 0) / args.clips if default else None,
            "saturated_ms_per_request": saturated,
            "ceiling_by_requests_per_file": {r: (args.latency_ms + media_one) / (r * saturated) for r in (1, 2, 5)},
        }
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
