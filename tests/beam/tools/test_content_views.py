"""What `inspect` shows of a version-2 dataset: the summary's content lines, the report's Content section
(per-label counts, examples per source, windows per row, text lengths, groups per split), verify's
group line, and the CLI's launch refusals."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.report import write_html_report
from audioflow.beam.tools.summary import format_summary

from audio_files import write_audio


@pytest.fixture(scope="module")
def windowed(tmp_path_factory) -> tuple[Path, object]:
    """Two speakers' recordings in 1-second windows, multi-label, with transcripts and a kept column."""
    root = tmp_path_factory.mktemp("windowed")
    rows = [["path", "labels", "text", "speaker", "start", "end"]]
    for index in range(6):
        write_audio(root / f"{index}.flac", seconds=3.2, seed=index, subtype="PCM_16")
        rows.append(
            [f"{index}.flac", "dog,cat" if index % 2 else "cat", f"clip number {index}", f"s{index % 2}", "", ""]
        )
    rows.append(["0.flac", "bird", "a segment", "s0", "0.5", "2.5"])
    with (root / "m.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    options = build_ingest_options(
        manifest=str(root / "m.csv"),
        output=str(root / "ds"),
        label_separator=",",
        window_seconds=1.0,
        keep_columns="speaker",
        split_by="speaker",
        splits="train=0.5,test=0.5",
    )
    return root / "ds", run_ingest(options, [])


def test_the_summary_says_what_the_records_hold(windowed):
    folder, info = windowed
    text = format_summary(str(folder), info)
    assert "content   multi-label (separator ',', an example counts once per label); text (NFC); segments; " in text
    assert "windows of 1 s every 1 s (last: pad); columns speaker:str" in text
    assert "sources   6 files, 4.3 examples per file" in text  # 0.flac: 4 windows + 2 of its segment
    groups = next(line for line in text.splitlines() if line.startswith("groups"))
    assert groups.startswith("groups    by column 'speaker': ")


def test_the_report_has_the_content_section(windowed, tmp_path):
    folder, info = windowed
    page = tmp_path / "report.html"
    write_html_report(str(folder), info, str(page))
    html = page.read_text()
    assert '<h2 id="content">Content</h2>' in html and 'href="#content"' in html
    assert "multi-label, string labels (an example counts once per label)" in html
    for table in ("per-source-table", "per-row-table", "text-lengths-table", "groups-table"):
        assert f'id="{table}"' in html, table
    assert "<tr><td>4</td><td>6</td></tr>" in html  # windows per row: six whole files of 4 windows
    label_counts = info.labels["counts"]
    assert label_counts["cat"] == 24 and label_counts["dog"] == 12 and label_counts["bird"] == 2


def test_verify_prints_the_groups_per_split(windowed):
    folder, _ = windowed
    result = subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", "inspect", str(folder), "--verify"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "(no group in two splits)" in result.stdout
    as_json = subprocess.run(
        [sys.executable, "-m", "audioflow.beam.cli", "inspect", str(folder), "--verify", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    verify = json.loads(as_json.stdout)["verify"]
    assert sum(verify["groups_by_split"].values()) == 2 and verify["warnings"] == []


def test_the_cli_refuses_an_empty_manifest_in_one_line(tmp_path):
    (tmp_path / "m.csv").write_text("label,path\n")
    run = [sys.executable, "-m", "audioflow.beam.cli", "ingest", "--manifest", "m.csv", "--output", "out"]
    refused = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "has a header and no data rows; pass --allow-empty" in refused.stderr
    allowed = subprocess.run([*run, "--allow-empty"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["manifest"]["num_rows"] == 0
