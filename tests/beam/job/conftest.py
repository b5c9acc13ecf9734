"""What the composite-transform tests share: a TestPipeline as the job runs locally, and its counters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineResult
from apache_beam.testing.test_pipeline import TestPipeline

from audioflow.beam.job.coders import register_row_coders


@pytest.fixture
def pipeline() -> TestPipeline:
    """A TestPipeline on the in-process FnApiRunner (what `audioflow ingest` runs locally; naming it
    skips the DirectRunner's attempt to download Prism), with the row coders the graph registers."""
    register_row_coders()
    return TestPipeline(runner=FnApiRunner())


@pytest.fixture
def run_counting() -> Callable[[TestPipeline], dict[str, int]]:
    """Runs a pipeline to completion and returns its `audioflow` counters, summed over steps."""
    return _run_counting


def _run_counting(pipeline: TestPipeline) -> dict[str, int]:
    result: PipelineResult = pipeline.run()
    result.wait_until_finish()
    totals: dict[str, int] = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace("audioflow"))["counters"]:
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + counter.committed
    return totals
