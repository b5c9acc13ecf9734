"""`inspect NEW --compare OLD`: how a dataset drifted from a previous one, read from the two dataset.json files.

Nothing is re-read but the metadata, so a comparison costs the same for a terabyte dataset. Labels
are compared by their share of the examples: the L-infinity distance (the largest change of any one
label's share, what `--max-label-drift` bounds, as TFX's drift comparator does for categorical
features) and the Jensen-Shannon distance (base 2: 0 for equal distributions, 1 for disjoint ones).
Durations, sample rates and loudness are compared by the Jensen-Shannon distance of their histograms,
with their percentiles side by side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from audioflow.beam.errors import DatasetError
from audioflow.beam.format import DatasetInfo
from audioflow.beam.storage import load_dataset_info

__all__ = ["Comparison", "DistributionChange", "compare_datasets", "format_comparison", "load_previous"]


@dataclass(frozen=True)
class DistributionChange:
    """One histogram of the two datasets: how far apart they are, and their percentiles."""

    js_distance: float | None  # None when either dataset lacks the histogram
    old: dict[str, float]
    new: dict[str, float]
    old_histogram: dict[str, int] = field(default_factory=dict)
    new_histogram: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """What changed between an old dataset and a new one."""

    old_uri: str
    new_uri: str
    old_examples: int
    new_examples: int
    old_hours: float
    new_hours: float
    labels: list[tuple[str, int, int]]  # (label, old count, new count), in the new dataset's label order
    label_linf: float
    label_js: float
    new_labels: list[str]
    vanished_labels: list[str]
    distributions: dict[str, DistributionChange]

    def shares(self) -> list[tuple[str, float, float]]:
        """(label, old share, new share) of every label of either dataset."""
        return [
            (label, _share(old, self.old_examples), _share(new, self.new_examples)) for label, old, new in self.labels
        ]

    def over(self, max_label_drift: float | None) -> bool:
        """True if the labels drifted further than `max_label_drift` (L-infinity); never for None."""
        return max_label_drift is not None and self.label_linf > max_label_drift

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "old": self.old_uri,
            "new": self.new_uri,
            "examples": {"old": self.old_examples, "new": self.new_examples},
            "hours": {"old": self.old_hours, "new": self.new_hours},
            "labels": {
                "linf_distance": self.label_linf,
                "js_distance": self.label_js,
                "new": self.new_labels,
                "vanished": self.vanished_labels,
                "shares": {label: {"old": old, "new": new} for label, old, new in self.shares()},
            },
            "distributions": {
                name: {"js_distance": change.js_distance, "old": change.old, "new": change.new}
                for name, change in self.distributions.items()
            },
        }


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0


def _normalised(counts: dict[str, int | float], keys: list[str]) -> list[float]:
    total = sum(counts.get(key, 0) for key in keys)
    return [counts.get(key, 0) / total if total else 0.0 for key in keys]


def js_distance(old: dict[str, int | float], new: dict[str, int | float]) -> float:
    """The Jensen-Shannon distance (base 2) of two histograms over the same keys; 1 if exactly one is empty."""
    keys = sorted(set(old) | set(new))
    p, q = _normalised(old, keys), _normalised(new, keys)
    if not any(p) or not any(q):
        return 0.0 if not any(p) and not any(q) else 1.0
    divergence = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a:
            divergence += 0.5 * a * math.log2(a / m)
        if b:
            divergence += 0.5 * b * math.log2(b / m)
    return round(math.sqrt(max(0.0, divergence)), 6)


def linf_distance(old: dict[str, int | float], new: dict[str, int | float]) -> float:
    """The largest difference of any key's share between two histograms."""
    keys = sorted(set(old) | set(new))
    p, q = _normalised(old, keys), _normalised(new, keys)
    return round(max((abs(a - b) for a, b in zip(p, q, strict=True)), default=0.0), 6)


def _distribution(old: dict | None, new: dict | None, old_pct: dict, new_pct: dict) -> DistributionChange:
    distance = js_distance(old, new) if old is not None and new is not None else None
    return DistributionChange(distance, old_pct or {}, new_pct or {}, old or {}, new or {})


def _rms(info: DatasetInfo) -> dict | None:
    return ((info.quality or {}).get("signal") or {}).get("rms_dbfs")


def _label_order(new: DatasetInfo, old: DatasetInfo) -> list[str]:
    order = list(new.label_names or sorted(new.labels.get("counts", {}), key=_numeric_first))
    return order + [label for label in old.labels.get("counts", {}) if label not in order]


def _numeric_first(label: str) -> tuple[int, int | str]:
    return (0, int(label)) if label.lstrip("-").isdigit() else (1, label)


def compare_datasets(new: DatasetInfo, old: DatasetInfo, *, new_uri: str = "", old_uri: str = "") -> Comparison:
    """Compares the metadata of a new dataset with an old one's."""
    old_counts, new_counts = old.labels.get("counts", {}), new.labels.get("counts", {})
    labels = [(label, old_counts.get(label, 0), new_counts.get(label, 0)) for label in _label_order(new, old)]
    old_rms, new_rms = _rms(old), _rms(new)
    distributions = {
        "duration_seconds": _distribution(
            old.stats.get("duration_seconds_histogram"),
            new.stats.get("duration_seconds_histogram"),
            old.stats.get("duration_seconds_percentiles", {}),
            new.stats.get("duration_seconds_percentiles", {}),
        ),
        "source_sample_rate": _distribution(
            old.stats.get("source_sample_rates"), new.stats.get("source_sample_rates"), {}, {}
        ),
        "sample_rate": _distribution(old.stats.get("sample_rates"), new.stats.get("sample_rates"), {}, {}),
        "rms_dbfs": _distribution(
            old_rms and old_rms["histogram"],
            new_rms and new_rms["histogram"],
            (old_rms or {}).get("percentiles", {}),
            (new_rms or {}).get("percentiles", {}),
        ),
    }
    return Comparison(
        old_uri=old_uri,
        new_uri=new_uri,
        old_examples=old.num_examples,
        new_examples=new.num_examples,
        old_hours=old.stats.get("total_hours", 0.0),
        new_hours=new.stats.get("total_hours", 0.0),
        labels=labels,
        label_linf=linf_distance(old_counts, new_counts),
        label_js=js_distance(old_counts, new_counts),
        new_labels=[label for label, before, after in labels if after and not before],
        vanished_labels=[label for label, before, after in labels if before and not after],
        distributions=distributions,
    )


def load_previous(uri: str) -> DatasetInfo:
    """The dataset.json of the dataset to compare with.

    Raises:
        DatasetError: one line naming the folder and why it cannot be compared (not a complete
            dataset, unreadable metadata, another format_version).
    """
    try:
        return load_dataset_info(uri)
    except DatasetError as error:
        raise DatasetError(f"cannot compare with {uri}: {error}") from None
    except Exception as error:  # storage errors: no such bucket, no permission, not a folder
        raise DatasetError(f"cannot compare with {uri}: {type(error).__name__}: {error}") from None


def _percentiles(values: dict[str, float]) -> str:
    keys = [key for key in ("p5", "p50", "p95") if key in values]
    return " ".join(f"{key}={values[key]:g}" for key in keys) or "—"


def format_comparison(comparison: Comparison, max_label_drift: float | None = None) -> str:
    """The comparison as aligned text, for `inspect --compare`."""
    c = comparison
    verdict = ""
    if max_label_drift is not None:
        verdict = f" ({'OVER' if c.over(max_label_drift) else 'within'} --max-label-drift {max_label_drift:g})"
    lines = [
        f"compare   {c.old_uri} (old) → {c.new_uri} (new)",
        f"          examples {c.old_examples} → {c.new_examples}, hours {c.old_hours:.3f} → {c.new_hours:.3f}",
        f"labels    L∞ distance {c.label_linf:.4f}{verdict}, Jensen-Shannon distance {c.label_js:.4f}",
    ]
    if c.new_labels:
        lines.append("          new: " + ", ".join(c.new_labels))
    if c.vanished_labels:
        lines.append("          vanished: " + ", ".join(c.vanished_labels))
    width = max((len(label) for label, _, _ in c.labels), default=5)
    for label, old, new in c.shares():
        lines.append(f"          {label:<{width}}  {old:7.2%} → {new:7.2%}  ({new - old:+.2%})")
    for name, change in c.distributions.items():
        distance = "n/a (missing in one dataset)" if change.js_distance is None else f"{change.js_distance:.4f}"
        detail = f"; old {_percentiles(change.old)}, new {_percentiles(change.new)}" if change.old or change.new else ""
        lines.append(f"{name:<18} Jensen-Shannon distance {distance}{detail}")
    return "\n".join(lines)
