"""Launching a Flex Template job through the Dataflow REST API (`projects.locations.flexTemplates.launch`),
following it to the end, and cancelling it when the step that started it is cancelled.

The REST client is google-cloud-dataflow-client, the one Beam's DataflowRunner uses (apache-beam[gcp]
installs it); an endpoint like `http://localhost:PORT` (Beam's `--dataflow_endpoint`) switches it to
the REST transport with anonymous credentials, which is how the tests reach a loopback fake.
"""

from __future__ import annotations

import datetime
import logging
import re
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from audioflow.beam.errors import AudioflowError, SettingsError

__all__ = ["TERMINAL_STATES", "DataflowJobs", "LaunchedJob", "cancel_on_sigterm", "default_job_name"]

_LOGGER = logging.getLogger(__name__)
TERMINAL_STATES = frozenset(
    {"JOB_STATE_DONE", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_UPDATED", "JOB_STATE_DRAINED"}
)


def default_job_name() -> str:
    """A Dataflow job name ([a-z]([-a-z0-9]*[a-z0-9])?) that is unique per second."""
    return "audioflow-ingest-" + datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class LaunchedJob:
    project: str
    region: str
    id: str
    name: str

    @property
    def resource_uri(self) -> str:
        return f"https://dataflow.googleapis.com/v1b3/projects/{self.project}/locations/{self.region}/jobs/{self.id}"

    @property
    def console_url(self) -> str:
        return f"https://console.cloud.google.com/dataflow/jobs/{self.region}/{self.id}?project={self.project}"


class DataflowJobs:
    """Launches Flex Template jobs, follows and cancels them (one project and region).

    Args:
        project: the Google Cloud project.
        region: the Dataflow region.
        endpoint: the API endpoint (default: Google's); `http://localhost:PORT` for a loopback fake.
    """

    def __init__(self, project: str, region: str, endpoint: str | None = None) -> None:
        from google.api_core.client_options import ClientOptions
        from google.cloud import dataflow_v1beta3 as dataflow

        if not project or not region:
            raise SettingsError("a template launch needs a project and a region (--project, --region)")
        self.project, self.region = project, region
        self._dataflow = dataflow
        settings: dict[str, Any] = {"credentials": _credentials(endpoint)}
        if endpoint:
            local = "localhost" in endpoint
            address = endpoint.strip().rstrip("/") if local else re.sub("^https?://", "", endpoint.strip()).rstrip("/")
            settings["client_options"] = ClientOptions(api_endpoint=address)
            settings["transport"] = "rest" if local else None
        self._templates = dataflow.FlexTemplatesServiceClient(**settings)
        self._jobs = dataflow.JobsV1Beta3Client(**settings)
        self._messages = dataflow.MessagesV1Beta3Client(**settings)

    def launch(
        self,
        template: str,
        parameters: Mapping[str, str],
        *,
        job_name: str | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> LaunchedJob:
        """Starts a job from the template spec at `template` (gs://); returns once Dataflow accepted it.

        Raises:
            AudioflowError: Dataflow refused the launch (its message names the parameter, if one is wrong).
        """
        dataflow = self._dataflow
        launch_parameter = dataflow.LaunchFlexTemplateParameter(
            job_name=job_name or default_job_name(),
            container_spec_gcs_path=template,
            parameters=dict(parameters),
            environment=dataflow.FlexTemplateRuntimeEnvironment(**dict(environment or {})),
        )
        request = dataflow.LaunchFlexTemplateRequest(
            project_id=self.project, location=self.region, launch_parameter=launch_parameter
        )
        response = self._call("launch the template", self._templates.launch_flex_template, request=request)
        job = response.job
        return LaunchedJob(self.project, self.region, job.id, job.name)

    def state(self, job_id: str) -> str:
        request = self._dataflow.GetJobRequest(project_id=self.project, location=self.region, job_id=job_id)
        return self._call("read the job's state", self._jobs.get_job, request=request).current_state.name

    def cancel(self, job_id: str) -> None:
        dataflow = self._dataflow
        request = dataflow.UpdateJobRequest(
            project_id=self.project,
            location=self.region,
            job_id=job_id,
            job=dataflow.Job(requested_state=dataflow.JobState.JOB_STATE_CANCELLED),
        )
        self._call("cancel the job", self._jobs.update_job, request=request)

    def error_messages(self, job_id: str) -> list[str]:
        dataflow = self._dataflow
        request = dataflow.ListJobMessagesRequest(
            project_id=self.project,
            location=self.region,
            job_id=job_id,
            minimum_importance=dataflow.JobMessageImportance.JOB_MESSAGE_ERROR,
        )
        pages = self._call("read the job's messages", self._messages.list_job_messages, request=request)
        return [message.message_text for message in pages.job_messages if message.message_text]

    def wait(self, job_id: str, *, poll_seconds: float = 30.0, on_state: Callable[[str], None] | None = None) -> str:
        """Polls the job until it reaches a terminal state, and returns that state.

        The first poll comes after a second; the interval then grows by half up to `poll_seconds`.
        """
        last = None
        delay = min(1.0, poll_seconds)
        while True:
            state = self.state(job_id)
            if state != last:
                _LOGGER.info("Dataflow job %s: %s", job_id, state)
                if on_state is not None:
                    on_state(state)
                last = state
            if state in TERMINAL_STATES:
                return state
            time.sleep(delay)
            delay = min(delay * 1.5, poll_seconds)

    @staticmethod
    def _call(what: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        from google.api_core.exceptions import GoogleAPICallError

        try:
            return method(**kwargs)
        except GoogleAPICallError as error:
            raise AudioflowError(f"Dataflow refused to {what}: {error.message or error}") from error


def _credentials(endpoint: str | None) -> Any:
    """Application-default credentials; anonymous ones for a loopback endpoint (as Beam does with no_auth)."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError

    if endpoint and "localhost" in endpoint:
        return AnonymousCredentials()
    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as error:
        raise SettingsError(
            f"no Google credentials to call Dataflow ({error}); run `gcloud auth application-default login` "
            "or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return credentials


@contextmanager
def cancel_on_sigterm(cancel: Callable[[], None], what: str) -> Iterator[None]:
    """While the block runs, SIGTERM (a cancelled KFP step) calls `cancel` and exits with 128 + 15;
    the previous handler is restored afterwards."""

    def handler(signum: int, _frame: Any) -> None:
        _LOGGER.warning("step cancelled (signal %d): cancelling %s", signum, what)
        cancel()
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
