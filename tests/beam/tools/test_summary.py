"""The plain-text summary `inspect` and `ingest` print: its lines agree with dataset.json, on real
ingested datasets (string labels with mixed audio; integer labels, resampled, over the reject limit)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audioflow.beam.errors import TooManyRejectedError
from audioflow.beam.format import METADATA_FILE
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.storage import load_dataset_info
from audioflow.beam.tools.summary import format_summary

from audio_files import write_audio, write_manifest


def _block(lines: list[str], first: str) -> list[list[str]]:
    """The rows of the table whose header starts with `first`, split into cells (header and rule dropped)."""
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [first])
    rows = []
    for line in lines[start + 2 :]:
        if not line:
            return rows
        rows.append(line.split())
    return rows


def test_summary_of_the_demo_dataset(dataset):
    folder, info = dataset
    meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    text = format_summary(str(folder), info)
    lines = text.splitlines()

    assert lines[0] == f"dataset   {folder}"
    assert lines[1].startswith(f"created   {meta['created']} by audioflow {meta['tool']['version']} (Beam ")
    assert lines[2] == (
        f"manifest  {meta['manifest']['uri']} ({meta['manifest']['num_rows']} rows, "
        f"sha256 {meta['manifest']['sha256'][:12]}…)"
    )
    # The demo mixes 16, 22.05 and 44.1 kHz, mono and stereo, and was not resampled.
    assert lines[3].startswith("audio     int16, mixed Hz, mixed channel(s), ")
    assert lines[3].endswith(", compression none")

    splits = _block(lines, "split")
    assert [row[0] for row in splits] == list(meta["splits"])
    for row in splits:
        split = meta["splits"][row[0]]
        assert row[1:3] == [str(split["num_examples"]), str(split["num_shards"])]
        assert row[-1] == str(meta["rejected"]["by_split"].get(row[0], 0))

    # String labels: index, name and count, in the dataset's own label order.
    labels = _block(lines, "label")
    names = meta["labels"]["names"]
    assert labels == [[str(i), name, str(meta["labels"]["counts"][name])] for i, name in enumerate(names)]

    rates = ", ".join(f"{rate} Hz: {n}" for rate, n in meta["stats"]["sample_rates"].items())
    assert f"rates     {rates}" in lines
    assert "channels  " + ", ".join(f"{c}: {n}" for c, n in meta["stats"]["channels"].items()) in lines
    assert next(line for line in lines if line.startswith("duration  p0=")).split()[-1].startswith("p100=")
    assert "rejected  3 rows (11.11%, ok) → rejected.jsonl" in lines
    assert lines[-3:] == [f"          {reason:<16} 1" for reason in ("duplicate", "missing", "unreadable")]


@pytest.fixture(scope="module")
def integer_dataset(tmp_path_factory) -> Path:
    """Integer labels 0, 2 and 10 (so numeric and text order differ), resampled to 16 kHz mono; one missing
    file against a limit of 0, so the job writes the dataset and then fails the reject check."""
    root = tmp_path_factory.mktemp("summary-int")
    rows = []
    files = [("10", 22050, 2), ("2", 16000, 1), ("0", 44100, 1), ("2", 8000, 2)]  # label, rate, channels
    for index, (label, rate, channels) in enumerate(files):
        write_audio(root / f"clip-{index}.wav", rate=rate, seconds=0.3, channels=channels, seed=index)
        rows.append((label, f"clip-{index}.wav"))
    rows.append(("0", "not-there.wav"))
    manifest = write_manifest(root / "labels.csv", rows)
    options = build_ingest_options(
        manifest=str(manifest),
        output=str(root / "dataset"),
        label_type="int",
        sample_rate=16000,
        mono=True,
        max_rejected_fraction=0,
    )
    with pytest.raises(TooManyRejectedError):
        run_ingest(options, [])
    return root / "dataset"


def test_summary_of_integer_labels_resampled_and_over_the_limit(integer_dataset):
    info = load_dataset_info(str(integer_dataset))
    lines = format_summary(str(integer_dataset), info).splitlines()

    assert lines[3].startswith("audio     int16, 16000 Hz, 1 channel(s), ")
    size = f"{info.splits['train'].num_bytes / 1024:.1f}"  # 4 clips of 0.3 s at 16 kHz: some 38 KiB
    assert _block(lines, "split") == [["train", "4", "1", "0.000", size, "KiB", "1"]]
    # Integer labels: numeric order, no name column.
    assert _block(lines, "label") == [["0", "1"], ["2", "2"], ["10", "1"]]
    assert "rates     16000 Hz: 4" in lines
    assert "channels  1: 4" in lines
    assert "rejected  1 rows (20.00%, OVER the limit of 0.00%) → rejected.jsonl" in lines
    assert lines[-1] == "          missing          1"
