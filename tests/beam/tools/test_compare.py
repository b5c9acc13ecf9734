"""`inspect NEW --compare OLD`: the distances, the threshold's exit code, and one-line errors for bad OLD folders."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from audioflow.beam.cli import main
from audioflow.beam.errors import DatasetError
from audioflow.beam.tools.compare import compare_datasets, js_distance, linf_distance, load_previous

ROWS = [(f"{label}{index}.wav", label) for label in ("a", "b", "c") for index in range(4)]


@pytest.fixture
def old_and_new(tmp_path, write_dataset):
    """Twelve examples of a, b and c; then the same without c's rows (and one new label)."""
    old = write_dataset(tmp_path / "old", ROWS)
    new = write_dataset(tmp_path / "new", [row for row in ROWS if row[1] != "c"] + [("d0.wav", "d")])
    return tmp_path / "old", old, tmp_path / "new", new


def test_distances_are_the_documented_ones():
    assert linf_distance({"a": 1, "b": 1}, {"a": 1, "b": 1}) == 0 and js_distance({"a": 5}, {"a": 1}) == 0
    assert js_distance({"a": 1}, {"b": 1}) == 1.0 and linf_distance({"a": 1}, {"b": 1}) == 1.0
    # (1/3, 1/3, 1/3) against (1/2, 1/2, 0): JSD = 0.5·KL(p‖m) + 0.5·KL(q‖m), m = (5/12, 5/12, 1/6), base 2
    p, q, m = (1 / 3, 1 / 3, 1 / 3), (0.5, 0.5, 0), (5 / 12, 5 / 12, 1 / 6)
    divergence = 0.5 * sum(a * math.log2(a / c) for a, c in zip(p, m, strict=True) if a)
    divergence += 0.5 * sum(b * math.log2(b / c) for b, c in zip(q, m, strict=True) if b)
    assert js_distance({"a": 4, "b": 4, "c": 4}, {"a": 4, "b": 4}) == pytest.approx(math.sqrt(divergence), abs=1e-6)
    assert linf_distance({"a": 4, "b": 4, "c": 4}, {"a": 4, "b": 4}) == pytest.approx(1 / 3, abs=1e-6)
    assert js_distance({}, {}) == 0.0 and js_distance({"a": 1}, {}) == 1.0


def test_comparison_names_new_and_vanished_labels(old_and_new):
    old_path, old, new_path, new = old_and_new
    comparison = compare_datasets(new, old, new_uri=str(new_path), old_uri=str(old_path))
    assert comparison.vanished_labels == ["c"] and comparison.new_labels == ["d"]
    assert comparison.label_linf == pytest.approx(1 / 3, abs=1e-5)
    assert (comparison.old_examples, comparison.new_examples) == (12, 9)
    assert comparison.over(0.3) and not comparison.over(0.5) and not comparison.over(None)
    # Hand-written datasets predate quality data: loudness cannot be compared, durations can.
    assert comparison.distributions["rms_dbfs"].js_distance is None
    assert comparison.distributions["duration_seconds"].js_distance == 0.0


def test_inspect_compare_fails_over_the_threshold(old_and_new):
    old_path, _, new_path, _ = old_and_new
    over = CliRunner().invoke(main, ["inspect", str(new_path), "--compare", str(old_path), "--max-label-drift", "0.2"])
    assert over.exit_code == 1, over.output
    assert "(OVER --max-label-drift 0.2)" in over.output and "vanished: c" in over.output and "new: d" in over.output
    within = CliRunner().invoke(
        main, ["inspect", str(new_path), "--compare", str(old_path), "--max-label-drift", "0.5"]
    )
    assert within.exit_code == 0 and "(within --max-label-drift 0.5)" in within.output
    as_json = CliRunner().invoke(
        main, ["inspect", str(new_path), "--json", "--compare", str(old_path), "--max-label-drift", "0.2"]
    )
    compared = json.loads(as_json.output)["compare"]
    assert as_json.exit_code == 1 and compared["passed"] is False and compared["labels"]["vanished"] == ["c"]
    unbounded = CliRunner().invoke(main, ["inspect", str(new_path), "--compare", str(old_path)])
    assert unbounded.exit_code == 0  # without a threshold, drift is reported, never fatal
    lonely = CliRunner().invoke(main, ["inspect", str(new_path), "--max-label-drift", "0.2"])
    assert lonely.exit_code == 2 and "--max-label-drift needs --compare OLD" in lonely.output


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("empty", "is not a complete audioflow dataset: it has no dataset.json"),
        ("future", "dataset format_version 99 is not supported"),
        ("garbage", "is not valid dataset metadata"),
    ],
)
def test_an_unusable_compare_dataset_is_one_clear_line(old_and_new, tmp_path, setup, expected):
    _, _, new_path, _ = old_and_new
    old = tmp_path / f"old-{setup}"
    old.mkdir()
    if setup == "future":
        metadata = json.loads((new_path / "dataset.json").read_text())
        (old / "dataset.json").write_text(json.dumps({**metadata, "format_version": 99}))
    elif setup == "garbage":
        (old / "dataset.json").write_text("{not json")
    with pytest.raises(DatasetError, match=f"^cannot compare with {old}: "):
        load_previous(str(old))
    result = CliRunner().invoke(main, ["inspect", str(new_path), "--compare", str(old)])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: cannot compare with {old}: ") and expected in line
