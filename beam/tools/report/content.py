"""The report's Content section: what the records hold beyond one file and one label, and the grouping.

All numbers are exact, from dataset.json's `content`: the label kind, text, segments and windows,
kept columns, examples per source file, windows per row, the text-length histogram, groups per
split and the groups a `split` column put in two splits.
"""

from __future__ import annotations

import html
import itertools

from audioflow.beam.format import DatasetInfo
from audioflow.beam.tools.report.plots import _ACCENT, _figure, _png_data_uri, _style

__all__ = ["content_section", "histogram_plot"]

_LABEL_KINDS = {
    "int": "one integer label per example",
    "string": "one string label per example",
    "multi_int": "multi-label, integer labels (an example counts once per label)",
    "multi_string": "multi-label, string labels (an example counts once per label)",
    "none": "unlabeled audio",
}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def histogram_plot(histogram: dict[str, int], xlabel: str, ylabel: str) -> str:
    """Bars of a {bucket: count} histogram whose buckets are integers written as text."""
    figure = _figure(5.0, 1.8)
    ax = figure.subplots()
    keys = [int(key) for key in histogram]
    width = min((b - a for a, b in itertools.pairwise(keys)), default=1) * 0.9
    ax.bar(keys, list(histogram.values()), width=width, align="edge", color=_ACCENT)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    _style(ax)
    return _png_data_uri(figure)


def _table(header: list[str] | None, rows: list[list[object]], table_id: str) -> str:
    """A table; with no header, a list of (name, value) rows."""
    head = "" if header is None else "<tr>" + "".join(f"<th>{_e(cell)}</th>" for cell in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}">{head}{body}</table>'


def _img(uri: str, alt: str, plot: str) -> str:
    return f'<img class="plot" alt="{_e(alt)}" data-plot="{plot}" src="{uri}">'


def content_section(info: DatasetInfo) -> str:
    """The section, or "" for datasets written before dataset.json described their content."""
    content = info.content
    if not content:
        return ""
    windows = content.get("windows")
    about = [
        ["labels", _LABEL_KINDS.get(info.label_kind, info.label_kind)],
        ["text", "UTF-8, NFC-normalised" if content.get("text") else "none"],
        ["segments", "rows name spans of their files" if content.get("segments") else "whole files"],
        [
            "windows",
            f"{windows['seconds']:g} s every {windows['hop_seconds']:g} s, last window: {windows['last_window']}"
            if windows
            else "none",
        ],
        ["kept columns", ", ".join(f"{n} ({k})" for n, k in content.get("columns", {}).items()) or "none"],
    ]
    parts = ['<h2 id="content">Content</h2>', _table(None, about, "content-table")]
    stats = content.get("stats") or {}
    for key, title, xlabel, ylabel, plot in (
        ("examples_per_source", "Examples per source file", "examples from one file", "files", "per-source"),
        ("examples_per_row", "Windows per row", "windows of one row", "rows", "per-row"),
        ("text_length_histogram", "Text length", "characters (bucket start)", "examples", "text-lengths"),
    ):
        histogram = stats.get(key) or {}
        if histogram:
            rows = [[bucket, count] for bucket, count in histogram.items()]
            parts.append(f"<h3>{_e(title)}</h3>")
            parts.append('<div class="row">' + _table([xlabel, ylabel], rows, f"{plot}-table"))
            parts.append(_img(histogram_plot(histogram, xlabel, ylabel), title, plot) + "</div>")
    if stats.get("segments_clipped_at_end"):
        parts.append(
            f'<p class="note">{stats["segments_clipped_at_end"]:,} segment(s) ended past the end of their file '
            "and were cut at the file's end.</p>"
        )
    grouping = content.get("grouping") or {}
    by = f"the column {grouping.get('column')!r}" if grouping.get("by") == "column" else "the source file (blob)"
    if grouping.get("pattern"):
        by += f", through the pattern {grouping['pattern']!r}"
    per_split = grouping.get("groups_per_split") or {}
    parts.append(
        f'<h3>Groups per split</h3><p class="note">Rows are grouped by {_e(by)}; a group\'s rows hash to one split.</p>'
    )
    parts.append(_table(["split", "groups"], [[split, count] for split, count in per_split.items()], "groups-table"))
    crossing = grouping.get("crossing") or {}
    if crossing.get("num_groups"):
        items = "".join(
            f"<li>{_e(item['group'])}: {_e(', '.join(item['splits']))}</li>" for item in crossing.get("examples", [])
        )
        parts.append(
            f'<p class="over" id="crossing-groups">{crossing["num_groups"]:,} group(s) are in more than one split '
            f'(the manifest\'s split column put them there):</p><ul class="rejected">{items}</ul>'
        )
    return "".join(parts)
