"""gcp-storage-emulator with what Cloud Storage does that it does not: the `faithful_gcs` fixture.

The emulator lists every object in one answer, ignores `startOffset`, sends no `x-goog-generation`
or `x-goog-stored-content-length` header on a download, ignores `ifGenerationMatch`, and answers a
range on an empty object with 206. Code that sizes objects from listing pages and checks a download's
headers needs those behaviours, so this fixture runs the emulator in a process of its own with its
`ls` and `download` handlers wrapped (as bench/gcs_latency.py runs it on a threaded server):

- listings honour `startOffset`, `endOffset`, `maxResults` (at most 1,000, the default) and
  `pageToken`, and answer `nextPageToken` while objects remain;
- downloads carry `x-goog-generation`, `x-goog-metageneration` and `x-goog-stored-content-length`,
  refuse another generation than `ifGenerationMatch` with 412, and a range on an empty object with 416.

Only this emulator process is changed; our code and google-cloud-storage run unmodified against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from gcs_emulator import (
    EmulatedGcs,
    _answers,
    _free_port,
    _stop,
    credentials_info,
    emulator_environment,
    environment_set,
)

__all__ = ["FaithfulGcs", "faithful_gcs", "start_faithful_emulator"]

_FAITHFUL_EMULATOR = r"""
import base64, json, sys
from http import HTTPStatus

import gcp_storage_emulator.handlers.objects as objects
from gcp_storage_emulator.exceptions import NotFound

listed, downloaded = objects.ls, objects.download


def query(request, name):
    values = request.query.get(name)
    return values[0] if values else None


def error(response, status, message):
    response.status = status
    response.json({"error": {"code": status.value, "message": message, "errors": [{"message": message}]}})


def ls(request, response, storage, *args, **kwargs):
    listed(request, response, storage, *args, **kwargs)
    if response.status != HTTPStatus.OK:
        return
    body = json.loads(response._content)
    items = sorted(body.get("items") or [], key=lambda item: item["name"])
    start, end, token = query(request, "startOffset"), query(request, "endOffset"), query(request, "pageToken")
    after = base64.urlsafe_b64decode(token.encode()).decode() if token else None
    items = [
        item for item in items
        if (start is None or item["name"] >= start) and (end is None or item["name"] < end)
        and (after is None or item["name"] > after)
    ]
    size = min(int(query(request, "maxResults") or 1000), 1000)
    body["items"] = items[:size]
    body.pop("nextPageToken", None)
    if len(items) > size:
        body["nextPageToken"] = base64.urlsafe_b64encode(items[size - 1]["name"].encode()).decode()
    if token:
        body["prefixes"] = []  # folder prefixes come with the first page
    response.json(body)


def download(request, response, storage, *args, **kwargs):
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except NotFound:
        obj = None
    if obj is not None:
        match = query(request, "ifGenerationMatch")
        if match is not None and str(match) != str(obj["generation"]):
            message = "At least one of the pre-conditions you specified did not hold."
            return error(response, HTTPStatus.PRECONDITION_FAILED, message)
        if request.get_header("range", None) and int(obj["size"]) == 0:
            message = "The requested range cannot be satisfied."
            return error(response, HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, message)
    downloaded(request, response, storage, *args, **kwargs)
    if obj is not None and response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
        response["x-goog-generation"] = str(obj["generation"])
        response["x-goog-metageneration"] = str(obj.get("metageneration", 1))
        response["x-goog-stored-content-length"] = str(obj["size"])


objects.ls, objects.download = ls, download  # before the server module builds its routing table

from gcp_storage_emulator.__main__ import main

main(sys.argv[1:])
"""


def start_faithful_emulator(timeout: float = 30.0) -> tuple[subprocess.Popen, str]:
    """Starts the wrapped emulator (in memory) on 127.0.0.1; returns the process and its URL once it answers.

    Raises:
        RuntimeError: the emulator exited or did not answer within `timeout` seconds.
    """
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-c", _FAITHFUL_EMULATOR, "start", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen([*command, "--in-memory", "--quiet"])
    deadline = time.monotonic() + timeout
    while not _answers(host):
        if process.poll() is not None:
            raise RuntimeError(f"the faithful GCS emulator exited with code {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the faithful GCS emulator did not answer on {host} within {timeout:.0f} s")
        time.sleep(0.05)
    return process, host


class FaithfulGcs(EmulatedGcs):
    """The wrapped emulator, with EmulatedGcs's helpers; `active()` points this process at it."""

    def active(self, host: str | None = None) -> AbstractContextManager[None]:
        """Sets the emulator variables (with `host`, e.g. a proxy in front of it) in os.environ for the block."""
        return environment_set({**self.env, "STORAGE_EMULATOR_HOST": host or self.host})


@pytest.fixture(scope="session")
def faithful_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaithfulGcs]:
    """One wrapped emulator per session. Unlike `gcs`, it does not set os.environ: use `active()`."""
    process, host = start_faithful_emulator()
    credentials = tmp_path_factory.mktemp("faithful-gcs-credentials") / "application_default_credentials.json"
    credentials.write_text(json.dumps(credentials_info()))
    env = emulator_environment(host, str(credentials))
    emulated = FaithfulGcs(host=host, credentials_file=str(credentials), env=env, folder=credentials.parent)
    try:
        with emulated.active():
            emulated.client  # noqa: B018 - google-cloud-storage reads the emulator's address when a client is made
        yield emulated
    finally:
        _stop(process)
