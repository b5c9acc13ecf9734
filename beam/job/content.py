"""dataset.json's `content` section: what the records hold beyond audio, and how the splits were grouped.

Finalize calls `describe_content` with the facts of the run (options, the manifest's columns, the label
policy, the merged ContentStats and CheckGroups' summary). A dataset whose records hold nothing new is
format_version 1; anything else is version 2 (`format_version_of`).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from audioflow.beam.format import EXTENDED_FORMAT_VERSION, FORMAT_VERSION, record_features
from audioflow.beam.prep.content import TEXT_LENGTH_BUCKET, ContentStats
from audioflow.beam.prep.manifest import LabelPolicy, ManifestColumns
from audioflow.beam.prep.options import IngestOptions

__all__ = ["describe_content", "format_version_of", "label_section_extras"]

_LOGGER = logging.getLogger(__name__)


def _histogram(counter: Counter) -> dict[str, int]:
    return {str(key): count for key, count in sorted(counter.items())}


def describe_content(
    options: IngestOptions,
    policy: LabelPolicy,
    columns: ManifestColumns | None,
    stats: ContentStats,
    groups: dict[str, Any] | None,
    rows_by_split: dict[str, int],
) -> dict[str, Any]:
    """The `content` section of dataset.json.

    Args:
        rows_by_split: rows written per split (the number of groups when each row is its own group).
    """
    has_text = columns is not None and columns.text is not None
    has_segments = columns is not None and columns.start is not None
    by_column = bool(options.columns.split_by)
    features = record_features(
        label_kind=policy.kind,
        text=has_text,
        segments=has_segments,
        windows=options.windows is not None,
        group=by_column,
        columns=options.columns.types,
    )
    grouping: dict[str, Any] = {
        "by": "column" if by_column else "blob",
        "column": options.columns.split_by or None,
        "pattern": options.columns.group_pattern or None,
        "salt": options.splits.salt,
    }
    if groups is not None and (by_column or has_segments):
        grouping.update(groups)
    else:  # each written row is its own file, hence its own group
        grouping.update({"groups_per_split": dict(sorted(rows_by_split.items())), "crossing": None})
    crossing = grouping.get("crossing") or {}
    if crossing.get("num_groups"):
        named = ", ".join(f"{item['group']} ({'/'.join(item['splits'])})" for item in crossing["examples"])
        _LOGGER.warning(
            "%d group(s) are in more than one split because the manifest's split column puts them there: %s",
            crossing["num_groups"],
            named,
        )
    content: dict[str, Any] = {
        "label_kind": policy.kind,
        "label_separator": policy.separator,
        "text": {"normalization": "NFC"} if has_text else None,
        "segments": has_segments,
        "windows": None if options.windows is None else options.windows.to_json_dict(),
        "columns": dict(options.columns.types),
        "grouping": grouping,
        "features": features,
    }
    if has_segments or options.windows is not None or has_text:
        content["stats"] = {
            "examples_per_source": _histogram(stats.examples_per_source) if has_segments or options.windows else {},
            "examples_per_row": _histogram(stats.examples_per_row),
            "segments_clipped_at_end": stats.clipped_segments,
            "text_length_bucket": TEXT_LENGTH_BUCKET,
            "text_length_histogram": _histogram(stats.text_lengths),
        }
    return content


def format_version_of(content: dict[str, Any]) -> int:
    """1 for records that hold only version 1's features (a single label or integer label), else 2."""
    plain = content["label_kind"] in ("int", "string") and set(content["features"]) == set(
        record_features(label_kind=content["label_kind"])
    )
    return FORMAT_VERSION if plain else EXTENDED_FORMAT_VERSION


def label_section_extras(policy: LabelPolicy) -> dict[str, Any]:
    """Keys dataset.json's `labels` gains for multi-label and unlabeled datasets (none otherwise)."""
    if policy.kind == "none":
        return {"unlabeled": True}
    if policy.separator:
        return {"multi_label": True, "separator": policy.separator}
    return {}
