"""A loopback fake of the Vertex AI Pipelines REST API, for the real Vertex AI SDK to talk to.

It records every request, answers pipelineJobs create/get like Vertex (PENDING, then RUNNING, then
the configured final state), and answers Cloud Storage requests with 404, so the SDK's check of
the pipeline-root bucket (STORAGE_EMULATOR_HOST pointed here) gives up at once instead of retrying.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_CREATE = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/pipelineJobs$")
_GET = re.compile(r"^/v1(?:beta1)?/projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/:]+)$")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeVertex:
    """State of the fake: requests seen, jobs created, and how runs end."""

    final_state: str = "PIPELINE_STATE_SUCCEEDED"
    requests: list[RecordedRequest] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    url: str = ""

    def created_jobs(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.method == "POST" and _CREATE.match(r.path)]

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        self.requests.append(RecordedRequest(method, path, query, body))
        if "/storage/v1/" in path or path.startswith("/b/") or path.startswith("/upload/"):
            return 404, {"error": {"code": 404, "message": "The specified bucket does not exist."}}
        create, get = _CREATE.match(path), _GET.match(path)
        if method == "POST" and create:
            project, location = create.groups()
            job_id = query.get("pipelineJobId", [f"job-{len(self.jobs) + 1}"])[0]
            job = {
                **body,
                "name": f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
                "state": "PIPELINE_STATE_PENDING",
                "createTime": "2026-11-25T00:00:00Z",
            }
            self.jobs[job_id] = job
            return 200, job
        if method == "GET" and get:
            job_id = get.group(3)
            if job_id not in self.jobs:
                return 404, {"error": {"code": 404, "message": f"pipeline job {job_id} not found"}}
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
            job = self.jobs[job_id]
            job["state"] = "PIPELINE_STATE_RUNNING" if self.polls[job_id] < 2 else self.final_state
            if job["state"] == "PIPELINE_STATE_FAILED":
                job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed."}
            return 200, job
        return 404, {"error": {"code": 404, "message": f"the fake does not know {method} {path}"}}


def start_fake_vertex() -> tuple[FakeVertex, ThreadingHTTPServer]:
    """Starts the fake on a free loopback port; stop it with server.shutdown()."""
    state = FakeVertex()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parsed = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            status, answer = state.handle(self.command, parsed.path, parse_qs(parsed.query), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
