"""A readable, plain-text summary of a dataset (what `inspect` and the end of `ingest` print)."""

from __future__ import annotations

from audioflow.beam.format import DatasetInfo

__all__ = ["format_summary"]


def _size(num_bytes: int) -> str:
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{num_bytes} B"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    line = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [line.format(*header), line.format(*("-" * w for w in widths))] + [line.format(*row) for row in rows]


def _content_lines(info: DatasetInfo) -> list[str]:
    """What the records hold beyond one whole file and one label, and how the splits were grouped."""
    content = info.content or {}
    parts = []
    if info.multi_label:
        parts.append(f"multi-label (separator {content.get('label_separator')!r}, an example counts once per label)")
    if content.get("text"):
        parts.append("text (NFC)")
    if content.get("segments"):
        parts.append("segments")
    windows = content.get("windows")
    if windows:
        parts.append(
            f"windows of {windows['seconds']:g} s every {windows['hop_seconds']:g} s (last: {windows['last_window']})"
        )
    columns = content.get("columns") or {}
    if columns:
        parts.append("columns " + ", ".join(f"{name}:{kind}" for name, kind in columns.items()))
    lines = ["content   " + "; ".join(parts or ["audio only"])]
    stats = content.get("stats") or {}
    per_source = stats.get("examples_per_source") or {}
    if per_source:
        sources = sum(per_source.values())
        examples = sum(int(n) * count for n, count in per_source.items())
        lines.append(f"sources   {sources} files, {examples / sources:.1f} examples per file")
    grouping = content.get("grouping") or {}
    by = f"column {grouping['column']!r}" if grouping.get("by") == "column" else "source file"
    per_split = ", ".join(f"{split}={n}" for split, n in (grouping.get("groups_per_split") or {}).items())
    crossing = (grouping.get("crossing") or {}).get("num_groups", 0)
    lines.append(f"groups    by {by}: {per_split}" + (f"; {crossing} in more than one split" if crossing else ""))
    return lines


def format_summary(dataset: str, info: DatasetInfo) -> str:
    """Splits, labels, durations, rejections and shards, as aligned tables."""
    stats, rejected = info.stats, info.rejected
    lines = [
        f"dataset   {dataset}",
        f"created   {info.created} by audioflow {info.tool.get('version')} (Beam {info.tool.get('beam_version')})",
        f"manifest  {info.manifest['uri']} ({info.manifest['num_rows']} rows, sha256 {info.manifest['sha256'][:12]}…)",
        f"audio     {info.sample_format}, "
        f"{info.audio.get('sample_rate') or 'mixed'} Hz, {info.audio.get('num_channels') or 'mixed'} channel(s), "
        f"{stats['total_hours']:.3f} h, {_size(stats['total_bytes'])}, compression {info.compression}",
        "",
    ]
    split_rows = [
        [
            name,
            str(s.num_examples),
            str(s.num_shards),
            f"{s.duration_seconds / 3600:.3f}",
            _size(s.num_bytes),
            str(rejected.get("by_split", {}).get(name, 0)),
        ]
        for name, s in info.splits.items()
    ]
    lines += [*_table(["split", "examples", "shards", "hours", "size", "rejected"], split_rows), ""]
    names = info.label_names
    counts = info.labels["counts"]
    if not info.labeled:
        lines += ["labels    none: unlabeled audio", ""]
    else:
        if names is None:
            label_rows = [[label, "", str(count)] for label, count in sorted(counts.items(), key=lambda kv: int(kv[0]))]
        else:
            label_rows = [[str(index), name, str(counts.get(name, 0))] for index, name in enumerate(names)]
        lines += [*_table(["label", "name", "examples"], label_rows), ""]
    if info.format_version > 1:
        lines += [*_content_lines(info), ""]
    percentiles = stats.get("duration_seconds_percentiles", {})
    if percentiles:
        lines.append("duration  " + "  ".join(f"{key}={value:g}s" for key, value in percentiles.items()))
    lines.append("rates     " + ", ".join(f"{rate} Hz: {n}" for rate, n in stats.get("sample_rates", {}).items()))
    lines.append("channels  " + ", ".join(f"{ch}: {n}" for ch, n in stats.get("channels", {}).items()))
    if info.quality is not None:
        lines += ["", *_quality_lines(info.quality)]
    lines.append("")
    verdict = "ok" if rejected.get("passed", True) else f"OVER the limit of {rejected.get('max_fraction', 0):.2%}"
    lines.append(
        f"rejected  {rejected['num_rows']} rows ({rejected.get('fraction', 0):.2%}, {verdict}) → {rejected['file']}"
    )
    for reason, count in rejected["by_reason"].items():
        lines.append(f"          {reason:<16} {count}")
    return "\n".join(lines)


def _quality_lines(quality: dict) -> list[str]:
    """Duplicates, label conflicts, split leakage and the flagged examples (dataset.json's quality section)."""
    duplicates, conflicts = quality["duplicates"], quality["label_conflicts"]
    leakage = quality["split_leakage"]
    lines = [
        f"quality   equal audio: {duplicates['num_groups']} groups of {duplicates['num_rows']} rows "
        f"(--dedupe {quality['dedupe']}: {duplicates['num_rejected']} rejected); "
        f"label conflicts: {conflicts['num_groups']} groups; "
        f"split leakage: {leakage['num_groups']} groups, {leakage['num_examples']} examples",
        "flagged   " + ", ".join(f"{flag} {entry['count']}" for flag, entry in quality["flags"].items()),
    ]
    rms = quality["signal"]["rms_dbfs"]["percentiles"]
    if rms:
        lines.append("loudness  RMS " + "  ".join(f"{key}={value:g}" for key, value in rms.items()) + " dBFS")
    return lines
