"""The report's Quality section: equal audio, label conflicts, split leakage, signal statistics and drift.

Counts and histograms come from dataset.json's `quality` section. The examples it lists name their
shard and record, so the few clips shown are read directly (a bounded read, `QUALITY_BYTES`), never
by scanning the dataset. Its pictures and players have classes of their own (`quality-plot`,
`quality-clip`), so the page's other counts of plots and players are unchanged.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from matplotlib.ticker import MaxNLocator

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import AudioExample, DatasetInfo, decode_example
from audioflow.beam.format.quality import FLAGS, SIGNAL_FIELDS
from audioflow.beam.storage import read_shard_records
from audioflow.beam.tools.compare import Comparison
from audioflow.beam.tools.report.plots import (
    _ACCENT,
    _SPLIT_COLORS,
    _figure,
    _png_data_uri,
    _split_legend,
    _style,
    example_plot,
    wav_data_uri,
)
from audioflow.beam.tools.report.sample import Clip, clip_samples, label_key

__all__ = ["QUALITY_BYTES", "fetch_examples", "quality_section"]

QUALITY_BYTES = 64 * 1024 * 1024  # record bytes read at most to find the listed examples' audio
_MEANINGS = {**SIGNAL_FIELDS, "bandwidth_fraction": "the bandwidth as a fraction of the file's Nyquist frequency"}


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _data(**values: object) -> str:
    return "".join(f' data-{key.replace("_", "-")}="{_e(value)}"' for key, value in values.items())


def fetch_examples(
    dataset: str, info: DatasetInfo, wanted: Iterable[tuple[str, int]], max_bytes: int = QUALITY_BYTES
) -> dict[tuple[str, int], AudioExample]:
    """Reads the records at (shard, index): each shard once, up to its last wanted record, within max_bytes.

    Records beyond the budget, and shards that cannot be read, are left out (the page says so).
    """
    by_shard: dict[str, set[int]] = defaultdict(set)
    for shard, index in wanted:
        by_shard[shard].add(index)
    order = [shard.name for split in info.splits.values() for shard in split.files]
    found, spent = {}, 0
    for name in [shard for shard in order if shard in by_shard]:
        indexes, last = by_shard[name], max(by_shard[name])
        try:
            for index, payload in enumerate(read_shard_records(FileSystems.join(dataset.rstrip("/"), name))):
                spent += len(payload)
                if index in indexes:
                    found[(name, index)] = decode_example(payload)
                if index >= last or spent > max_bytes:
                    break
        except (DatasetError, ValueError):
            continue
        if spent > max_bytes:
            break
    return found


def _clip(example: AudioExample, split: str, sample_format: str) -> Clip:
    return Clip(
        label=label_key(example),
        split=split,
        blob=example.blob,
        sample_rate=example.sample_rate,
        num_channels=example.num_channels,
        duration_seconds=example.num_frames / example.sample_rate,
        samples=clip_samples(example, sample_format),
    )


def _player(example: AudioExample | None, split: str, info: DatasetInfo, what: str) -> str:
    """A picture and a player of one example, or a note that it was not read."""
    if example is None:
        return '<p class="note">Not read: the report reads at most 64 MiB of records for this section.</p>'
    clip = _clip(example, split, info.sample_format)
    return (
        f'<img class="quality-plot" alt="waveform and spectrogram of {_e(clip.blob)}"{_data(plot=what)} '
        f'src="{example_plot(clip)}">'
        f'<audio class="quality-clip" controls preload="metadata"{_data(blob=clip.blob)} '
        f'src="{wav_data_uri(clip.samples, clip.sample_rate)}"></audio>'
    )


def _group_card(group: dict[str, Any], kind: str, clips: dict, info: DatasetInfo) -> str:
    """One group of equal audio: its rows, what happened to each, and one player (they all sound the same)."""
    rows = "".join(
        f"<tr{_data(line=row['line'], outcome=row['outcome'])}><td class=n>{_e(row['line'])}</td>"
        f'<td class="blob">{_e(row["blob"])}</td><td>{_e(row["label"])}</td><td>{_e(row["split"])}</td>'
        f"<td><code>{_e(row['outcome'])}</code></td></tr>"
        for row in group["rows"]
    )
    shown = len(group["rows"])
    more = f'<p class="note">The first {shown} of {group["num_rows"]} rows.</p>' if group["num_rows"] > shown else ""
    located = next((row for row in group["rows"] if "shard" in row), None)
    player = ""
    if located is not None:
        player = _player(clips.get((located["shard"], located["index"])), located["split"], info, f"{kind}-example")
    labels = ", ".join(group["labels"])
    return (
        f'<div class="example-card quality-group"{_data(kind=kind, hash=group["hash"], num_rows=group["num_rows"])}>'
        f'<div class="note">hash <code>{_e(group["hash"][:12])}…</code> · {_e(group["num_rows"])} rows · '
        f"labels {_e(labels)}</div>{player}"
        f"<table>{'<tr><th>line</th><th>blob</th><th>label</th><th>split</th><th>outcome</th></tr>'}{rows}</table>"
        f"{more}</div>"
    )


def _cards(items: list[tuple[str, object, bool, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card{" bad" if bad else ""}"{_data(quality_card=key, value=value)}>'
            f'<div class="value">{_e(value)}</div><div class="name">{_e(name)}</div></div>'
            for key, value, bad, name in items
        )
        + "</div>"
    )


def _histogram_plot(signal: dict[str, Any]) -> str:
    """RMS and peak levels of every example (dataset.json's 1 dB histograms), as step outlines."""
    figure = _figure(5.0, 1.9)
    ax = figure.subplots()
    for index, (name, label) in enumerate((("rms_dbfs", "RMS"), ("peak_dbfs", "peak"))):
        histogram = signal.get(name, {}).get("histogram", {})
        if histogram:
            edges = [float(key) for key in histogram]
            ax.bar(
                edges,
                list(histogram.values()),
                width=0.9,
                align="edge",
                alpha=0.7,
                color=_SPLIT_COLORS[index],
                label=label,
            )
    ax.set_xlabel("level (dBFS, 1 dB bins)", fontsize=8)
    ax.set_ylabel("examples", fontsize=8)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7, frameon=False)
    _style(ax)
    return _png_data_uri(figure)


def _signal_part(quality: dict[str, Any], clips: dict, info: DatasetInfo) -> str:
    signal, flags = quality["signal"], quality["flags"]
    stats_rows = "".join(
        f"<tr{_data(statistic=name)}><td><code>{_e(name)}</code></td>"
        + "".join(
            f"<td class=n>{_e(signal[name]['percentiles'].get(key, ''))}</td>"
            for key in ("p0", "p5", "p50", "p95", "p100")
        )
        + f"<td>{_e(_MEANINGS.get(name, ''))}</td></tr>"
        for name in signal
    )
    flag_rows = "".join(
        f"<tr{_data(flag=flag, count=entry['count'])}><td><code>{_e(flag)}</code></td>"
        f"<td class=n>{_e(entry['count'])}</td><td>{_e(FLAGS.get(flag, ''))}</td></tr>"
        for flag, entry in flags.items()
    )
    examples = []
    for flag, entry in flags.items():
        for row in entry["examples"][:2]:
            player = _player(clips.get((row["shard"], row["index"])), row["split"], info, "flagged-example")
            examples.append(
                f'<div class="example-card"{_data(flagged=flag, line=row["line"])}>{player}'
                f'<div class="blob">{_e(row["blob"])}</div><div class="note">{_e(flag)} · line {_e(row["line"])} · '
                f"peak {_e(row['peak_dbfs'])} dBFS · RMS {_e(row['rms_dbfs'])} dBFS · "
                f"clipped {row['clipped_fraction']:.2%} · DC {_e(row['dc_offset'])} · "
                f"bandwidth {_e(row['bandwidth_hz'])} Hz</div></div>"
            )
    loudness = _histogram_plot(signal)
    plot = f'<img class="quality-plot" alt="loudness of every example"{_data(plot="loudness")} src="{loudness}">'
    return (
        '<h3>Clipping, silence and loudness</h3><div class="row"><div>'
        '<table id="quality-flags"><tr><th>flag</th><th class=n>examples</th><th>meaning</th></tr>'
        f"{flag_rows}</table>"
        '<table id="signal-percentiles"><tr><th>statistic</th><th class=n>p0</th><th class=n>p5</th>'
        f"<th class=n>p50</th><th class=n>p95</th><th class=n>p100</th><th>meaning</th></tr>{stats_rows}</table>"
        f"</div><div>{plot}</div></div>" + (f'<div class="examples">{"".join(examples)}</div>' if examples else "")
    )


def _group_part(
    title: str, anchor: str, section: dict[str, Any], note: str, kind: str, clips: dict, info: DatasetInfo
) -> str:
    cards = "".join(_group_card(group, kind, clips, info) for group in section["examples"])
    return f'<h3 id="{anchor}">{_e(title)}</h3><p class="note">{note}</p>' + (
        f'<div class="examples">{cards}</div>' if cards else ""
    )


def _drift_plot(comparison: Comparison, limit: int = 30) -> str:
    shares = comparison.shares()[:limit]
    figure = _figure(5.0, 0.9 + 0.3 * len(shares))
    ax = figure.subplots()
    positions = np.arange(len(shares))
    ax.barh(positions - 0.2, [old for _, old, _ in shares], height=0.4, color=_SPLIT_COLORS[7], label="old")
    ax.barh(positions + 0.2, [new for _, _, new in shares], height=0.4, color=_ACCENT, label="new")
    ax.set_yticks(positions, [label[:28] for label, _, _ in shares])
    ax.invert_yaxis()
    ax.set_xlabel("share of the examples", fontsize=8)
    _style(ax)
    _split_legend(ax)
    return _png_data_uri(figure)


def _drift_part(comparison: Comparison) -> str:
    c = comparison
    rows = "".join(
        f"<tr{_data(label=label, old_share=round(old, 6), new_share=round(new, 6))}><td>{_e(label)}</td>"
        f"<td class=n>{old:.2%}</td><td class=n>{new:.2%}</td><td class=n>{new - old:+.2%}</td></tr>"
        for label, old, new in c.shares()
    )
    distributions = "".join(
        f"<tr{_data(distribution=name)}><td><code>{_e(name)}</code></td>"
        f"<td class=n>{'—' if change.js_distance is None else f'{change.js_distance:.4f}'}</td>"
        f"<td>{_e(' '.join(f'{k}={v:g}' for k, v in change.old.items() if k in ('p5', 'p50', 'p95')))}</td>"
        f"<td>{_e(' '.join(f'{k}={v:g}' for k, v in change.new.items() if k in ('p5', 'p50', 'p95')))}</td></tr>"
        for name, change in c.distributions.items()
    )
    changed = ""
    if c.new_labels:
        changed += f"<p>New labels: {_e(', '.join(c.new_labels))}</p>"
    if c.vanished_labels:
        changed += f'<p class="over">Vanished labels: {_e(", ".join(c.vanished_labels))}</p>'
    return (
        '<h3 id="drift">Drift against a previous dataset</h3>'
        f'<p id="drift-summary"{_data(linf=c.label_linf, js=c.label_js)}>Old: <code>{_e(c.old_uri)}</code> '
        f"({_e(c.old_examples)} examples, {c.old_hours:.3f} h). New: <code>{_e(c.new_uri)}</code> "
        f"({_e(c.new_examples)} examples, {c.new_hours:.3f} h). Label shares moved by at most "
        f"<b>{c.label_linf:.4f}</b> (L∞ distance); Jensen-Shannon distance {c.label_js:.4f}.</p>{changed}"
        '<div class="row"><div class="scroll"><table id="drift-labels"><tr><th>label</th><th class=n>old</th>'
        f"<th class=n>new</th><th class=n>change</th></tr>{rows}</table></div><div>"
        f'<img class="quality-plot" alt="label shares, old and new"{_data(plot="drift")} src="{_drift_plot(c)}">'
        "</div></div>"
        '<table id="drift-distributions"><tr><th>distribution</th><th class=n>Jensen-Shannon</th>'
        f"<th>old (p5 p50 p95)</th><th>new (p5 p50 p95)</th></tr>{distributions}</table>"
    )


def _wanted(quality: dict[str, Any]) -> set[tuple[str, int]]:
    wanted = set()
    for name in ("duplicates", "label_conflicts", "split_leakage"):
        for group in quality[name]["examples"]:
            located = next((row for row in group["rows"] if "shard" in row), None)
            if located is not None:
                wanted.add((located["shard"], located["index"]))
    for entry in quality["flags"].values():
        wanted.update((row["shard"], row["index"]) for row in entry["examples"][:2])
    return wanted


def quality_section(dataset: str, info: DatasetInfo, comparison: Comparison | None = None) -> str:
    """The section's HTML (a note for datasets written before quality data, unless there is a comparison)."""
    quality = info.quality
    parts = ['<h2 id="quality">Quality</h2>']
    if quality is None:
        parts.append('<p class="note">This dataset was written before audioflow measured data quality.</p>')
    else:
        clips = fetch_examples(dataset, info, _wanted(quality))
        duplicates, conflicts, leakage = quality["duplicates"], quality["label_conflicts"], quality["split_leakage"]
        flags = quality["flags"]
        parts.append(
            _cards(
                [
                    ("duplicate_groups", duplicates["num_groups"], False, "groups of equal audio"),
                    ("duplicate_rejected", duplicates["num_rejected"], False, "rows rejected for it"),
                    ("label_conflicts", conflicts["num_groups"], conflicts["num_groups"] > 0, "label conflicts"),
                    ("split_leakage", leakage["num_examples"], leakage["num_groups"] > 0, "examples in 2+ splits"),
                    *(
                        (flag, entry["count"], entry["count"] > 0, flag.replace("_", " "))
                        for flag, entry in flags.items()
                    ),
                ]
            )
        )
        dedupe = quality["dedupe"]
        parts.append(
            _group_part(
                "Equal audio under other names",
                "quality-duplicates",
                duplicates,
                f"{duplicates['num_groups']} groups of equal audio, {duplicates['num_rows']} rows in all "
                f"(--dedupe {_e(dedupe)}: rows after the first are "
                f"{'rejected as duplicate_content' if dedupe == 'content' else 'kept'}). Equal means equal "
                "content hashes: of the decoded samples, before resampling or downmixing (dataset.json "
                "quality.content_hash).",
                "duplicate",
                clips,
                info,
            )
        )
        parts.append(
            _group_part(
                "Label conflicts",
                "quality-conflicts",
                conflicts,
                f"{conflicts['num_groups']} groups of equal audio carry more than one label "
                f"({conflicts['num_rows']} rows; --on-label-conflict {_e(quality['on_label_conflict'])}).",
                "conflict",
                clips,
                info,
            )
        )
        pairs = ", ".join(f"{splits}: {count}" for splits, count in leakage["by_splits"].items()) or "none"
        parts.append(
            _group_part(
                "Split leakage",
                "quality-leakage",
                leakage,
                f"{leakage['num_examples']} examples in {leakage['num_groups']} groups of equal audio are in more "
                f"than one split ({_e(pairs)}): a test metric on them measures memory, not generalisation.",
                "leak",
                clips,
                info,
            )
        )
        parts.append(_signal_part(quality, clips, info))
    if comparison is not None:
        parts.append(_drift_part(comparison))
    return "".join(parts)
