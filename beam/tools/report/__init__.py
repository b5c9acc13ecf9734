"""The dataset report (`inspect --html`): one self-contained HTML page describing a dataset.

The page embeds everything it shows (plots as base64 PNG, example clips as base64 WAV) and loads
nothing from the network, so it can be mailed, attached to a KFP run or opened offline. Numbers come
from dataset.json; per-label durations and the example clips come from a bounded sample of records
(`sample`), drawn by `plots` and laid out by `html`.
"""

from audioflow.beam.tools.report.html import MAX_LABELS, MAX_TABLE_ROWS, render_html_report, write_html_report
from audioflow.beam.tools.report.plots import CLIP_MAX_RATE
from audioflow.beam.tools.report.sample import (
    CLIP_SECONDS,
    SAMPLE_BYTES,
    SAMPLE_RECORDS,
    SHARDS_PER_SPLIT,
    Clip,
    ReportSample,
    clip_samples,
    label_key,
    label_order,
    sample_dataset,
)

__all__ = [
    "CLIP_MAX_RATE",
    "CLIP_SECONDS",
    "MAX_LABELS",
    "MAX_TABLE_ROWS",
    "SAMPLE_BYTES",
    "SAMPLE_RECORDS",
    "SHARDS_PER_SPLIT",
    "Clip",
    "ReportSample",
    "clip_samples",
    "label_key",
    "label_order",
    "render_html_report",
    "sample_dataset",
    "write_html_report",
]
