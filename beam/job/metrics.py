"""The metrics namespace every step counts in, and how a step hands on a row it rejects.

Dashboards and the KFP component read these counters by name, so the namespace and the names
(`manifest_rows`, `rows_rejected`, `rejected_<reason>`, `examples_written`, `bytes_written`) are
part of the job's interface.
"""

from __future__ import annotations

from apache_beam.metrics import Metrics
from apache_beam.pvalue import TaggedOutput

from audioflow.beam.prep.rows import Rejection

__all__ = ["NAMESPACE", "REJECTED", "rejected"]

NAMESPACE = "audioflow"
REJECTED = "rejected"  # the tagged output that carries a step's Rejections


def rejected(rejection: Rejection) -> TaggedOutput:
    """Counts `rows_rejected` and `rejected_<reason>`, and returns the rejection as the step's
    `rejected` output: every step rejects through here, so the counters add up to rejected.jsonl."""
    Metrics.counter(NAMESPACE, "rows_rejected").inc()
    Metrics.counter(NAMESPACE, f"rejected_{rejection.reason}").inc()
    return TaggedOutput(REJECTED, rejection)
