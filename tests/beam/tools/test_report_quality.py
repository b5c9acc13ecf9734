"""The report's Quality section on real duplicates: groups with listenable examples, flags, and drift side by side.

Rendered in headless Chromium like the rest of the report (test_report.py), so its pictures must
decode and its players load.
"""

from __future__ import annotations

import pytest
from test_report import chromium, parse_html, run_chromium  # noqa: F401 - chromium is a fixture

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.compare import compare_datasets
from audioflow.beam.tools.report import write_html_report

from audio_files import write_manifest
from quality_corpus import DUPLICATE_ROWS, write_duplicate_corpus


@pytest.fixture(scope="module")
def report(chromium, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("quality-report")
    manifest = write_duplicate_corpus(root / "data")
    options = {"splits": "train=0.8,test=0.2", "max_rejected_fraction": 1.0}
    info = run_ingest(build_ingest_options(manifest=str(manifest), output=str(root / "new"), **options), [])
    # The previous dataset: the same rows but two of the cats, so the label shares moved.
    rows = [(label, blob, split) for line, label, blob, split in DUPLICATE_ROWS if line not in (9, 11)]
    older = write_manifest(root / "data" / "older.csv", rows, header=("label", "blob", "split"))
    old = run_ingest(build_ingest_options(manifest=str(older), output=str(root / "old"), **options), [])
    comparison = compare_datasets(info, old, new_uri=str(root / "new"), old_uri=str(root / "old"))
    page = root / "report.html"
    write_html_report(str(root / "new"), info, str(page), comparison=comparison)
    return info, comparison, parse_html(run_chromium(chromium, root, "--dump-dom", page.as_uri()))


def test_cards_count_groups_conflicts_and_leakage(report):
    info, _, dom = report
    cards = {
        card.attrs["data-quality-card"]: card.attrs["data-value"]
        for card in dom.find_all("div")
        if "data-quality-card" in card.attrs
    }
    assert cards["duplicate_groups"] == "2" and cards["label_conflicts"] == "1" and cards["split_leakage"] == "6"
    assert cards["silent"] == str(info.quality["flags"]["silent"]["count"])


def test_groups_list_their_rows_with_one_listenable_example(report):
    _, _, dom = report
    conflicts = [card for card in dom.find_all("div") if card.attrs.get("data-kind") == "conflict"]
    [conflict] = conflicts
    assert conflict.attrs["data-num-rows"] == "4"
    lines = [row.attrs["data-line"] for row in conflict.find_all("tr") if "data-line" in row.attrs]
    assert lines == ["2", "3", "4", "5"]
    [player] = conflict.find_all("audio")
    assert player.attrs["class"] == "quality-clip" and player.attrs["src"].startswith("data:audio/wav;base64,")
    assert player.attrs["data-blob"] == "audio/dogs/bark.wav"  # the first row by manifest line
    duplicates = [card for card in dom.find_all("div") if card.attrs.get("data-kind") == "duplicate"]
    assert [card.attrs["data-num-rows"] for card in duplicates] == ["4", "2"]


def test_drift_is_shown_side_by_side(report):
    _, comparison, dom = report
    summary = dom.one(id="drift-summary")
    assert float(summary.attrs["data-linf"]) == pytest.approx(comparison.label_linf) and comparison.label_linf > 0
    shares = {
        row.attrs["data-label"]: row for row in dom.one(id="drift-labels").find_all("tr") if "data-label" in row.attrs
    }
    assert set(shares) == {"cat", "dog"}
    assert float(shares["dog"].attrs["data-old-share"]) > float(shares["dog"].attrs["data-new-share"])


def test_quality_pictures_decode_and_players_load_without_changing_the_page_counts(report):
    _, _, dom = report
    body = dom.one("body")
    pictures = dom.find_all("img", **{"class": "quality-plot"})
    players = dom.find_all("audio", **{"class": "quality-clip"})
    assert pictures and players
    assert body.attrs["data-quality-images-rendered"] == str(len(pictures))
    assert body.attrs["data-quality-audio-loaded"] == str(len(players))
    assert body.attrs["data-images-rendered"] == str(len(dom.find_all("img", **{"class": "plot"})))
    assert all(picture.attrs.get("data-rendered") == "1" for picture in pictures)
