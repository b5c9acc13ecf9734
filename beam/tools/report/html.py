"""The report page: its sections, styles and script, built from dataset.json and the sample.

Every string that comes from data (labels, blob names, paths, rejection messages) is escaped, and a
Content-Security-Policy allows only the page's own inline script, as a second line of defence.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
from collections.abc import Iterable

import numpy as np

from audioflow.beam.format import REJECT_REASONS, REJECTED_EXAMPLES_PER_REASON, DatasetInfo
from audioflow.beam.storage import write_text_atomically
from audioflow.beam.tools.compare import Comparison
from audioflow.beam.tools.report.content import content_section
from audioflow.beam.tools.report.plots import (
    CLIP_MAX_RATE,
    duration_overview_plot,
    example_plot,
    format_plot,
    label_balance_plot,
    label_duration_plot,
    shard_size_plot,
    wav_data_uri,
)
from audioflow.beam.tools.report.quality import quality_section
from audioflow.beam.tools.report.sample import CLIP_SECONDS, ReportSample, label_order, sample_dataset

__all__ = ["MAX_LABELS", "MAX_TABLE_ROWS", "render_html_report", "write_html_report"]

_LOGGER = logging.getLogger(__name__)

MAX_LABELS = 30  # labels that get examples, a duration histogram and a bar in the balance chart
MAX_TABLE_ROWS = 1000  # rows of the label and shard tables (a note says how many were left out)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _data(**values: object) -> str:
    """` data-key="value"` attributes (underscores become dashes), every value escaped."""
    return "".join(f' data-{key.replace("_", "-")}="{_e(value)}"' for key, value in values.items())


def _td(text: object, /, *, numeric: bool = False, code: bool = False, **data: object) -> str:
    content = f"<code>{_e(text)}</code>" if code else _e(text)
    return f"<td{' class=n' if numeric else ''}{_data(**data)}>{content}</td>"


def _th(*names: str, numeric_from: int = 1, numeric_to: int | None = None) -> str:
    """A header row; columns numeric_from..numeric_to-1 are right-aligned like their numbers."""
    end = len(names) if numeric_to is None else numeric_to
    cells = "".join(f"<th{' class=n' if numeric_from <= i < end else ''}>{_e(n)}</th>" for i, n in enumerate(names))
    return f"<tr>{cells}</tr>"


def _tr(cells: Iterable[str], **data: object) -> str:
    return f"<tr{_data(**data)}>{''.join(cells)}</tr>"


def _img(uri: str, alt: str, **data: object) -> str:
    return f'<img class="plot" alt="{_e(alt)}"{_data(**data)} src="{uri}">'


def _bytes(num_bytes: float) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{num_bytes} B"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_MONO = "ui-monospace,SFMono-Regular,Menlo,Consolas,monospace"
_CSS = f"""
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
  margin:0;background:#f6f8fa}}
main{{max-width:1180px;margin:0 auto;padding:24px}}
h1{{font-size:24px;margin:0 0 4px}}
h2{{font-size:18px;margin:28px 0 10px;border-bottom:1px solid #d0d7de;padding-bottom:4px}}
h3{{font-size:15px;margin:16px 0 6px}}
.meta{{color:#57606a;font-size:13px;word-break:break-all}}
.cards{{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}}
.card{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 16px;min-width:120px}}
.card .value{{font-size:22px;font-weight:600}}.card .name{{color:#57606a;font-size:12px}}
.card.bad{{border-color:#cf222e}}.card.bad .value{{color:#cf222e}}
table{{border-collapse:collapse;background:#fff;margin:6px 0}}
th,td{{border:1px solid #d0d7de;padding:3px 10px;text-align:left;vertical-align:top}}
th{{background:#eef1f4;font-weight:600}}td.n,th.n{{text-align:right;font-variant-numeric:tabular-nums}}
.note{{color:#57606a;font-size:12.5px;margin:4px 0}}
.row{{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}}
.scroll{{max-height:460px;overflow:auto}}
img.plot{{display:block;max-width:100%;background:#fff;border:1px solid #d0d7de;border-radius:4px}}
.grid,.examples{{display:flex;flex-wrap:wrap;gap:10px}}
.example-card{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px;width:302px}}
.example-card audio{{width:100%;height:32px;margin-top:6px}}
.blob,code{{font-family:{_MONO};font-size:12px;word-break:break-all}}
.ok{{color:#1a7f37;font-weight:600}}.over{{color:#cf222e;font-weight:600}}
ul.rejected{{margin:4px 0 12px;padding-left:20px}}ul.rejected li{{margin:2px 0;word-break:break-all}}
nav a{{margin-right:12px;color:#0969da;text-decoration:none}}
"""

# Marks what rendered, for people and for the test that opens the page in a headless browser:
# images that decoded (naturalWidth > 0) and audio whose metadata loaded (its duration).
_SCRIPT = """
(function () {
  function count(imageSelector, audioSelector) {
    var rendered = 0, loaded = 0;
    document.querySelectorAll(imageSelector).forEach(function (img) {
      var ok = img.complete && img.naturalWidth > 0;
      img.dataset.rendered = ok ? "1" : "0";
      rendered += ok ? 1 : 0;
    });
    document.querySelectorAll(audioSelector).forEach(function (audio) {
      if (audio.readyState >= 1) { audio.dataset.duration = String(audio.duration); loaded += 1; }
    });
    return [String(rendered), String(loaded)];
  }
  function mark() {
    var page = count("img.plot", "audio.example"), quality = count("img.quality-plot", "audio.quality-clip");
    document.body.dataset.imagesRendered = page[0];
    document.body.dataset.audioLoaded = page[1];
    document.body.dataset.qualityImagesRendered = quality[0];
    document.body.dataset.qualityAudioLoaded = quality[1];
  }
  document.querySelectorAll("audio.example, audio.quality-clip").forEach(function (audio) {
    audio.addEventListener("loadedmetadata", mark);
  });
  window.addEventListener("load", mark);
})();
"""

_SECTIONS = (
    ("splits", "Splits"),
    ("labels", "Labels"),
    ("content", "Content"),
    ("examples", "Examples"),
    ("durations", "Durations"),
    ("formats", "Formats"),
    ("rejected", "Rejected"),
    ("quality", "Quality"),
    ("shards", "Shards"),
)


def _header(dataset: str, info: DatasetInfo) -> str:
    stats, rejected, manifest, audio, tool = info.stats, info.rejected, info.manifest, info.audio, info.tool
    hours, size = stats.get("total_hours", 0), stats.get("total_bytes", 0)
    num_labels, num_rejected = len(label_order(info)), rejected.get("num_rows", 0)
    cards = [
        ("total-examples", info.num_examples, f"{info.num_examples:,}", "examples", ""),
        ("total-hours", hours, f"{hours:.2f}", "hours of audio", ""),
        ("total-bytes", size, _bytes(size), "on storage", ""),
        ("total-labels", num_labels, f"{num_labels:,}", "labels", ""),
        (
            "total-rejected",
            num_rejected,
            f"{num_rejected:,}",
            "rows rejected",
            "" if rejected.get("passed", True) else " bad",
        ),
    ]
    card_html = "".join(
        f'<div class="card{bad}" id="{key}"{_data(value=value)}><div class="value">{_e(text)}</div>'
        f'<div class="name">{_e(name)}</div></div>'
        for key, value, text, name, bad in cards
    )
    created = f"{info.created} by {tool.get('name', 'audioflow')} {tool.get('version', '')}"
    created += f" (Beam {tool.get('beam_version', '?')})"
    audio_text = (
        f"{audio.get('sample_format')}, {audio.get('sample_rate') or 'mixed'} Hz, "
        f"{audio.get('num_channels') or 'mixed'} channel(s), compression {info.compression}"
    )
    about = [
        ("created", _e(created)),
        (
            "manifest",
            f"<code>{_e(manifest.get('uri', ''))}</code>, {_e(manifest.get('num_rows', 0))} rows, "
            f"sha256 <code>{_e(str(manifest.get('sha256', ''))[:16])}…</code>",
        ),
        ("audio root", f"<code>{_e(info.audio_root)}</code>"),
        ("audio", _e(audio_text)),
    ]
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in _SECTIONS)
    return (
        f'<h1>Dataset report</h1><div class="meta" id="dataset-uri">{_e(dataset)}</div>'
        f'<div class="cards">{card_html}</div>'
        '<table class="about">' + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in about) + "</table>"
        f"<nav>{nav}</nav>"
    )


def _splits_section(info: DatasetInfo) -> str:
    rejected_by_split = info.rejected.get("by_split", {})
    rows = []
    for name, split in info.splits.items():
        rejected = rejected_by_split.get(name, 0)
        cells = [
            _td(name),
            _td(split.num_examples, numeric=True, field="num_examples"),
            _td(f"{split.num_examples / max(1, info.num_examples):.1%}", numeric=True),
            _td(split.num_shards, numeric=True, field="num_shards"),
            _td(_duration(split.duration_seconds), numeric=True),
            _td(_bytes(split.num_bytes), numeric=True),
            _td(rejected, numeric=True, field="rejected"),
        ]
        rows.append(
            _tr(
                cells,
                split=name,
                num_examples=split.num_examples,
                num_shards=split.num_shards,
                num_bytes=split.num_bytes,
                duration_seconds=split.duration_seconds,
                rejected=rejected,
            )
        )
    header = _th("split", "examples", "share", "shards", "duration", "size", "rejected rows")
    return f'<h2 id="splits">Splits</h2><table id="split-table">{header}{"".join(rows)}</table>'


def _labels_section(info: DatasetInfo, labels: list[str], shown: list[str]) -> str:
    if not info.labeled:
        return f'<h2 id="labels">Labels</h2><p class="note">Unlabeled audio: {info.num_examples:,} examples.</p>'
    counts = info.labels.get("counts", {})
    named = info.label_names is not None
    splits = list(info.splits)
    if named:
        header = _th("index", "name", "examples", "share", *splits, numeric_from=2)
    else:
        header = _th("label", "examples", "share", *splits)
    rows = []
    for index, label in enumerate(labels[:MAX_TABLE_ROWS]):
        count = counts.get(label, 0)
        head = [_td(index, numeric=True), _td(label)] if named else [_td(label)]
        per_split = [
            _td(info.splits[split].label_counts.get(label, 0), numeric=True, label_split=split) for split in splits
        ]
        share = _td(f"{count / max(1, info.num_examples):.1%}", numeric=True)
        cells = [*head, _td(count, numeric=True, field="count"), share, *per_split]
        rows.append(_tr(cells, label=label, count=count))
    notes = ""
    if len(labels) > MAX_TABLE_ROWS:
        notes += f'<p class="note">The first {MAX_TABLE_ROWS:,} of {len(labels):,} labels are listed.</p>'
    chart = ""
    if shown:
        chart = _img(label_balance_plot(info, shown), "examples per label and split", plot="label-balance")
        if len(shown) < len(labels):
            chart += f'<p class="note">The chart shows the first {len(shown)} of {len(labels):,} labels.</p>'
    table = f'<table id="label-table">{header}{"".join(rows)}</table>{notes}'
    return f'<h2 id="labels">Labels</h2><div class="row"><div class="scroll">{table}</div><div>{chart}</div></div>'


def _examples_section(sample: ReportSample, labels: list[str], shown: list[str]) -> str:
    note = f"The first {CLIP_SECONDS:g} s of each example, mono, at most {CLIP_MAX_RATE / 1000:g} kHz; "
    note += "waveform over log-mel spectrogram (0 to -100 dBFS)."
    if len(shown) < len(labels):
        note += f" Examples are shown for the first {len(shown)} of {len(labels):,} labels."
    parts = [f'<h2 id="examples">Examples</h2><p class="note">{_e(note)}</p>']
    for label in shown:
        clips = sample.clips.get(label, [])
        parts.append(f'<section class="label-examples"{_data(examples_label=label)}><h3>{_e(label)}</h3>')
        if not clips:
            parts.append('<p class="note">No example of this label in the sample.</p></section>')
            continue
        cards = []
        for clip in clips:
            details = f"{clip.split} · {clip.duration_seconds:.2f} s · {clip.sample_rate} Hz"
            details += f" · {clip.num_channels} ch"
            cards.append(
                f'<div class="example-card"{_data(example_split=clip.split)}>'
                + _img(example_plot(clip), f"waveform and spectrogram of {clip.blob}", plot="example")
                + f'<audio class="example" controls preload="metadata"{_data(blob=clip.blob)} '
                f'src="{wav_data_uri(clip.samples, clip.sample_rate)}"></audio>'
                f'<div class="blob">{_e(clip.blob)}</div><div class="note">{_e(details)}</div></div>'
            )
        parts.append(f'<div class="examples">{"".join(cards)}</div></section>')
    return "".join(parts)


def _durations_section(info: DatasetInfo, sample: ReportSample, shown: list[str]) -> str:
    percentiles = info.stats.get("duration_seconds_percentiles", {})
    histogram = info.stats.get("duration_seconds_histogram", {})
    exact = ""
    if percentiles:
        cells = [_td(f"{v:g} s", numeric=True, percentile=key, value=v) for key, v in percentiles.items()]
        exact += f'<table id="duration-percentiles">{_th(*percentiles, numeric_from=0)}{_tr(cells)}</table>'
    if histogram:
        exact += _img(duration_overview_plot(histogram), "durations of all examples", plot="durations")
    if exact:
        exact = f'<p class="note">All examples (exact, from dataset.json):</p>{exact}'
    if sample.complete:
        source = f"all {sample.num_records:,} records of the dataset"
    else:
        source = (
            f"a sample of {sample.num_records:,} records (the first records of the first shards "
            "of each split), not the whole dataset"
        )
    note = (
        f'<p class="note" id="sample-note"{_data(sample_records=sample.num_records)}'
        f"{_data(complete=str(sample.complete).lower())}>Per label, from {_e(source)}:</p>"
    )
    sampled = [label for label in shown if sample.durations.get(label)]
    plots = ""
    if sampled:
        edges = np.histogram_bin_edges(np.concatenate([sample.durations[label] for label in sampled]), bins=20)
        if edges[0] == edges[-1]:
            edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
        plots = "".join(
            _img(
                label_duration_plot(label, sample.durations[label], edges),
                f"durations of {label}",
                plot="label-durations",
                duration_label=label,
                sample_count=len(sample.durations[label]),
            )
            for label in sampled
        )
    missing = [label for label in shown if not sample.durations.get(label)]
    if missing:
        plots += f'<p class="note">Not in the sample: {_e(", ".join(missing))}.</p>'
    return f'<h2 id="durations">Durations</h2>{exact}{note}<div class="grid">{plots}</div>'


def _formats_section(info: DatasetInfo) -> str:
    stats = info.stats
    rates, channels = stats.get("sample_rates", {}), stats.get("channels", {})
    rate_rows = "".join(
        _tr([_td(f"{rate} Hz", numeric=True), _td(count, numeric=True)], sample_rate=rate, count=count)
        for rate, count in rates.items()
    )
    channel_rows = "".join(
        _tr([_td(number, numeric=True), _td(count, numeric=True)], channels=number, count=count)
        for number, count in channels.items()
    )
    extra = ""
    source_rates = stats.get("source_sample_rates", {})
    if source_rates and source_rates != rates:
        before = ", ".join(f"{rate} Hz: {count}" for rate, count in source_rates.items())
        extra += f'<p class="note">Before resampling: {_e(before)}</p>'
    if rates or channels:
        extra = _img(format_plot(stats), "sample rates and channels", plot="formats") + extra
    return (
        '<h2 id="formats">Sample rates and channels</h2><div class="row">'
        f'<table id="sample-rate-table">{_th("sample rate", "examples", numeric_from=0)}{rate_rows}</table>'
        f'<table id="channel-table">{_th("channels", "examples", numeric_from=0)}{channel_rows}</table>'
        f"<div>{extra}</div></div>"
    )


def _rejected_section(info: DatasetInfo) -> str:
    rejected = info.rejected
    passed = rejected.get("passed", True)
    num_rows = rejected.get("num_rows", 0)
    verdict = '<span class="ok">within the limit</span>' if passed else '<span class="over">OVER the limit</span>'
    summary = (
        f'<p id="rejected-summary"{_data(num_rows=num_rows, passed=str(passed).lower())}>'
        f"{_e(num_rows)} of {_e(info.manifest.get('num_rows', 0))} manifest rows rejected "
        f"({rejected.get('fraction', 0):.2%}; --max-rejected-fraction {rejected.get('max_fraction', 0):.2%}): "
        f"{verdict}. Every row is listed in <code>{_e(rejected.get('file', 'rejected.jsonl'))}</code>.</p>"
    )
    by_reason = rejected.get("by_reason", {})
    if not by_reason:
        return f'<h2 id="rejected">Rejected rows</h2>{summary}'
    rows = "".join(
        _tr(
            [_td(reason, code=True), _td(count, numeric=True), _td(REJECT_REASONS.get(reason, ""))],
            reason=reason,
            count=count,
        )
        for reason, count in by_reason.items()
    )
    parts = [summary, f'<table id="rejected-table">{_th("reason", "rows", "meaning", numeric_to=2)}{rows}</table>']
    examples = rejected.get("examples", {})
    for reason, count in by_reason.items():
        listed = examples.get(reason, [])[:REJECTED_EXAMPLES_PER_REASON]
        if not listed:
            continue
        items = "".join(
            f'<li class="rejected-example"{_data(reason=reason, line=row.get("line", ""))}>'
            f"line {_e(row.get('line', '?'))} · split {_e(row.get('split', '?'))} · "
            f"label <code>{_e(row.get('label', ''))}</code> · <code>{_e(row.get('blob', ''))}</code><br>"
            f'<span class="note">{_e(row.get("message", ""))}</span></li>'
            for row in listed
        )
        parts.append(f'<h3>{_e(reason)}: first {len(listed)} of {_e(count)}</h3><ul class="rejected">{items}</ul>')
    return f'<h2 id="rejected">Rejected rows</h2>{"".join(parts)}'


def _shards_section(info: DatasetInfo) -> str:
    summary = []
    for split, split_info in info.splits.items():
        sizes = sorted(shard.num_bytes for shard in split_info.files)
        spread = [_bytes(sizes[0]), _bytes(sizes[len(sizes) // 2]), _bytes(sizes[-1])] if sizes else ["", "", ""]
        summary.append(_tr([_td(split), _td(len(sizes), numeric=True), *(_td(s, numeric=True) for s in spread)]))
    shards = [shard for split_info in info.splits.values() for shard in split_info.files]
    rows = "".join(
        _tr(
            [
                _td(shard.name, code=True),
                _td(shard.num_examples, numeric=True),
                _td(_bytes(shard.num_bytes), numeric=True),
            ],
            shard=shard.name,
            num_examples=shard.num_examples,
            num_bytes=shard.num_bytes,
        )
        for shard in shards[:MAX_TABLE_ROWS]
    )
    more = ""
    if len(shards) > MAX_TABLE_ROWS:
        more = f'<p class="note">The first {MAX_TABLE_ROWS:,} of {len(shards):,} shards are listed.</p>'
    plot = _img(shard_size_plot(info), "shard sizes", plot="shard-sizes") if shards else ""
    summary_table = f'<table id="shard-summary">{_th("split", "shards", "smallest", "median", "largest")}'
    return (
        f'<h2 id="shards">Shards</h2><div class="row"><div>{summary_table}{"".join(summary)}</table>{plot}</div>'
        f'<div class="scroll"><table id="shard-table">{_th("file", "examples", "size")}{rows}</table>{more}</div></div>'
    )


def _problems_section(sample: ReportSample) -> str:
    if not sample.problems:
        return ""
    items = "".join(f"<li>{_e(problem)}</li>" for problem in sample.problems[:50])
    return (
        '<h2 id="problems">Problems while sampling</h2>'
        '<p class="note">Run <code>audioflow inspect --verify</code> for a full check.</p>'
        f'<ul class="rejected" id="sample-problems">{items}</ul>'
    )


def render_html_report(
    dataset: str,
    info: DatasetInfo,
    sample: ReportSample,
    *,
    max_labels: int = MAX_LABELS,
    comparison: Comparison | None = None,
) -> str:
    """Returns the page as one string: dataset.json's numbers plus the sample's durations and clips.

    With `comparison` (tools/compare.py), the Quality section also shows the drift from an older dataset.
    """
    labels = label_order(info)
    shown = labels[:max_labels]
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode("ascii")
    policy = (
        "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'"
    )
    sections = [
        _header(dataset, info),
        _splits_section(info),
        _labels_section(info, labels, shown),
        content_section(info),
        _examples_section(sample, labels, shown),
        _durations_section(info, sample, shown),
        _formats_section(info),
        _rejected_section(info),
        quality_section(dataset, info, comparison),
        _shards_section(info),
        _problems_section(sample),
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>audioflow report: {_e(dataset)}</title><style>{_CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main><script>{_SCRIPT}</script></body></html>\n"
    )


def write_html_report(
    dataset: str, info: DatasetInfo, path: str, examples_per_label: int = 3, comparison: Comparison | None = None
) -> None:
    """Writes the self-contained HTML report of a dataset to `path` (local or gs://).

    Reads at most SAMPLE_RECORDS records (SAMPLE_BYTES bytes) from the first shards of each split,
    never the whole dataset; shards that cannot be read are listed on the page rather than raised,
    since a report is most useful exactly when something is wrong.

    Args:
        dataset: the dataset folder (local path or gs:// URI).
        info: its dataset.json, as loaded by `load_dataset_info`.
        path: where to write the page; written to a temporary name, then renamed.
        examples_per_label: example clips shown per label (for the first MAX_LABELS labels).
        comparison: a comparison with an older dataset, shown side by side in the Quality section.
    """
    shown = label_order(info)[:MAX_LABELS]
    sample = sample_dataset(dataset, info, examples_per_label=examples_per_label, labels=shown)
    _LOGGER.info(
        "report: sampled %d records (%s) from %d shards",
        sample.num_records,
        _bytes(sample.num_bytes),
        len(sample.shards_read),
    )
    write_text_atomically(path, render_html_report(dataset, info, sample, comparison=comparison))
