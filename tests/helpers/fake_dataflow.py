"""A loopback stand-in for the Dataflow REST API (v1b3): records job creations, answers with scripted states.

Beam's real DataflowRunner talks to it when given `--dataflow_endpoint=http://localhost:PORT` (the
host must start with `localhost`; Beam then uses the REST transport and skips the project-id
check). Nothing runs: a created job walks through `states` on successive GETs (the last one
sticks), and a failed job reports `error_message` as a JOB_MESSAGE_ERROR so Beam stops waiting
at once instead of counting down 50 s.

Flex Templates: `POST …/flexTemplates:launch` creates a job whose body is the launch parameter.
Given `read_template` (e.g. the GCS emulator's read_bytes), it first reads the spec at
`containerSpecGcsPath` and applies its metadata as Dataflow does at launch: required parameters
present, every value matching its parameter's regexes; a refusal is a 400 that names the parameter.
Parameters the metadata does not name are passed on, as Dataflow passes pipeline options; the
launcher checks them.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["CreatedJob", "FakeDataflow", "fake_dataflow"]

_JOBS = re.compile(r"^/v1b3/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/jobs(?P<rest>/.*)?$")
_LAUNCH = re.compile(r"^/v1b3/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/flexTemplates:launch$")


@dataclass
class CreatedJob:
    """One accepted job-creation request: where it was sent, its raw size and its JSON body (for a
    template launch, the launch parameter: jobName, containerSpecGcsPath, parameters, environment)."""

    project: str
    location: str
    body: dict[str, Any]
    size: int
    id: str
    gets: int = 0
    requested_state: str | None = None
    template: dict[str, Any] | None = None  # the spec a template launch read
    state: str | None = None  # set by a test when the work it stands in for ends; wins over `states`


@dataclass
class FakeDataflow:
    """The server's script and what it recorded. `endpoint` is what --dataflow_endpoint takes."""

    states: tuple[str, ...] = ("JOB_STATE_RUNNING", "JOB_STATE_DONE")
    error_message: str = "Workflow failed. Causes: S01:WriteShards failed (fake Dataflow)."
    create_error: tuple[int, str] | None = None  # e.g. (403, "Permission denied") refuses every creation
    read_template: Callable[[str], bytes] | None = None  # reads a template spec (gs:// path) for launches
    on_launch: Callable[[CreatedJob], None] | None = None  # called with each launched job (e.g. to run it)
    jobs: list[CreatedJob] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def job(self) -> CreatedJob:
        """The only job created (fails the test if there were none or several)."""
        assert len(self.jobs) == 1, f"{len(self.jobs)} jobs were created: {self.requests}"
        return self.jobs[0]

    def state_of(self, job: CreatedJob) -> str:
        if job.requested_state == "JOB_STATE_CANCELLED":
            return "JOB_STATE_CANCELLED"
        if job.state is not None:
            return job.state
        return self.states[min(job.gets, len(self.states)) - 1] if job.gets else "JOB_STATE_PENDING"

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        self.requests.append((method, path))
        launch = _LAUNCH.match(path.split("?", 1)[0])
        if launch and method == "POST":
            return self._launch(launch["project"], launch["location"], body)
        match = _JOBS.match(path.split("?", 1)[0])
        if not match:
            return HTTPStatus.NOT_FOUND, _error(404, f"no such resource: {path}")
        project, location, rest = match["project"], match["location"], match["rest"] or ""
        if method == "POST" and not rest:
            return self._create(project, location, body)
        job = next((j for j in self.jobs if rest.startswith(f"/{j.id}")), None)
        if job is None:
            return HTTPStatus.NOT_FOUND, _error(404, f"no job for {path}")
        if rest == f"/{job.id}/messages":
            return HTTPStatus.OK, self._messages(job)
        if rest == f"/{job.id}/metrics":
            return HTTPStatus.OK, {"metrics": []}
        if method == "GET":
            job.gets += 1
            return HTTPStatus.OK, self._describe(job)
        if method == "PUT":
            job.requested_state = _state_name(json.loads(body or b"{}").get("requestedState"))
            return HTTPStatus.OK, self._describe(job)
        return HTTPStatus.METHOD_NOT_ALLOWED, _error(405, f"{method} {path}")

    def _create(self, project: str, location: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.create_error is not None:
            code, message = self.create_error
            return code, _error(code, message)
        request = json.loads(body)
        job = CreatedJob(project, location, request, len(body), f"2099-01-01_00_00_00-{len(self.jobs) + 1:019d}")
        self.jobs.append(job)
        return HTTPStatus.OK, {**self._describe(job), "clientRequestId": request.get("clientRequestId", "")}

    def _launch(self, project: str, location: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.create_error is not None:
            code, message = self.create_error
            return code, _error(code, message)
        request = json.loads(body)
        launch = request.get("launchParameter", {})
        path = launch.get("containerSpecGcsPath", "")
        try:
            spec = json.loads(self.read_template(path)) if self.read_template else None
        except Exception as error:  # any failure to read is a 400 for the caller
            return HTTPStatus.BAD_REQUEST, _error(400, f"Unable to read the template spec {path}: {error}")
        problem = _invalid_parameter(spec, launch.get("parameters", {})) if spec is not None else None
        if problem:
            return HTTPStatus.BAD_REQUEST, _error(400, f"The template parameters are invalid: {problem}")
        job = CreatedJob(project, location, launch, len(body), f"2099-01-01_00_00_00-{len(self.jobs) + 1:019d}")
        job.template = spec
        self.jobs.append(job)
        if self.on_launch is not None:
            self.on_launch(job)
        return HTTPStatus.OK, {"job": self._describe(job)}

    def _describe(self, job: CreatedJob) -> dict[str, Any]:
        return {
            "id": job.id,
            "projectId": job.project,
            "location": job.location,
            "name": job.body.get("name") or job.body.get("jobName", ""),
            "type": job.body.get("type", "JOB_TYPE_BATCH"),
            "currentState": self.state_of(job),
            "currentStateTime": _now(),
            "createTime": _now(),
        }

    def _messages(self, job: CreatedJob) -> dict[str, Any]:
        if self.state_of(job) != "JOB_STATE_FAILED":
            return {"jobMessages": []}
        return {
            "jobMessages": [
                {"id": "1", "time": _now(), "messageText": self.error_message, "messageImportance": "JOB_MESSAGE_ERROR"}
            ]
        }


def _invalid_parameter(spec: dict[str, Any], parameters: dict[str, str]) -> str | None:
    """What Dataflow checks against the spec's metadata at launch: required present, regexes matched."""
    for parameter in spec.get("metadata", {}).get("parameters", []):
        name = parameter["name"]
        if name not in parameters:
            if not parameter.get("isOptional", False):
                return f"Missing required parameter: {name}"
            continue
        for regex in parameter.get("regexes", []):
            if not re.fullmatch(regex, parameters[name]):
                return f"Parameter {name}: value {parameters[name]!r} does not match regex {regex}"
    return None


def _state_name(value: int | str | None) -> str | None:
    """Beam's client sends enums as numbers (`$alt=json;enum-encoding=int`); names are easier to assert on."""
    if isinstance(value, int):
        from google.cloud.dataflow_v1beta3 import JobState

        return JobState(value).name
    return value


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(code: int, message: str) -> dict[str, Any]:
    status = {403: "PERMISSION_DENIED", 404: "NOT_FOUND", 400: "INVALID_ARGUMENT"}.get(code, "UNKNOWN")
    return {"error": {"code": code, "message": message, "status": status}}


def _handler(fake: FakeDataflow) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, payload = fake.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@contextmanager
def fake_dataflow(**script: Any) -> Iterator[FakeDataflow]:
    """Runs a FakeDataflow on 127.0.0.1 (reachable as localhost) for the block."""
    fake = FakeDataflow(**script)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="fake-dataflow", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
