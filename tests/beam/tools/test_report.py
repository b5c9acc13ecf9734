"""The HTML dataset report: its numbers match dataset.json, its plots and players render in a real
browser (headless Chromium), and strings from manifests are escaped. The sample it reads and its
plots have their own tests (test_report_sample.py, test_report_plots.py).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from audioflow.beam.cli import main
from audioflow.beam.format import METADATA_FILE
from audioflow.beam.tools.report import write_html_report

EXAMPLES_PER_LABEL = 3
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    # Virtual time runs until the page is idle (images decoded, audio metadata loaded), then 10 s more at
    # most; it is not wall-clock time, so a slow machine does not change the outcome.
    "--virtual-time-budget=10000",
]
EVIL_BLOB = "<script>alert(1)</script>.wav"
EVIL_LABEL = '<b onmouseover="alert(2)">"bold" & co</b>'


# --- a tiny DOM, from the HTML Chromium dumps after running the page ---------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    children: list[Element] = field(default_factory=list)

    def iter(self):
        for child in self.children:
            yield child
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str | None) -> list[Element]:
        """Descendants with this tag and these attributes (value None: the attribute is present)."""
        wanted = {key.replace("_", "-"): value for key, value in attrs.items()}
        return [
            element
            for element in self.iter()
            if (tag is None or element.tag == tag)
            and all(key in element.attrs and value in (None, element.attrs[key]) for key, value in wanted.items())
        ]

    def one(self, tag: str | None = None, **attrs: str | None) -> Element:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag}> with {attrs}, found {len(found)}"
        return found[0]


_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {key: value or "" for key, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {key: value or "" for key, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text += data


def parse_html(text: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(text)
    builder.close()
    return builder.root


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium is not installed: run `make chromium` (Debian package `chromium`); "
            "the report's rendering test needs a real browser",
            pytrace=False,
        )
    return binary


def run_chromium(binary: str, workdir: Path, *args: str) -> str:
    """Runs headless Chromium with a fresh profile; returns stdout (fails the test with stderr)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-", dir=workdir, ignore_cleanup_errors=True) as profile:
        result = subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,  # timeout only guards against a hang
        )
    assert result.returncode == 0, f"chromium exited with {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


@dataclass
class RenderedReport:
    folder: Path
    html: str
    dom: Element  # after Chromium ran the page's script
    screenshot: Path


@pytest.fixture(scope="module")
def rendered(chromium, dataset, tmp_path_factory) -> RenderedReport:
    folder, info = dataset
    out = tmp_path_factory.mktemp("report-out")
    page = out / "report.html"
    write_html_report(str(folder), info, str(page), examples_per_label=EXAMPLES_PER_LABEL)
    dom = run_chromium(chromium, out, "--dump-dom", page.as_uri())
    screenshot = out / "report.png"
    run_chromium(chromium, out, f"--screenshot={screenshot}", "--window-size=1280,2000", page.as_uri())
    return RenderedReport(out, page.read_text(encoding="utf-8"), parse_html(dom), screenshot)


# --- the rendered report ---------------------------------------------------------------------------


def test_numbers_on_the_page_match_dataset_json(rendered, dataset):
    meta = json.loads((dataset[0] / METADATA_FILE).read_text(encoding="utf-8"))
    dom = rendered.dom
    total = sum(split["num_examples"] for split in meta["splits"].values())
    assert dom.one(id="total-examples").attrs["data-value"] == str(total)
    for name, split in meta["splits"].items():
        row = dom.one("tr", data_split=name)
        assert row.attrs["data-num-examples"] == str(split["num_examples"])
        assert row.attrs["data-num-shards"] == str(split["num_shards"])
        assert row.attrs["data-num-bytes"] == str(split["num_bytes"])
        assert row.one("td", data_field="num_examples").text == str(split["num_examples"])
        assert row.one("td", data_field="rejected").text == str(meta["rejected"]["by_split"].get(name, 0))
        for shard in split["files"]:
            shard_row = dom.one("tr", data_shard=shard["name"])
            assert shard_row.attrs["data-num-examples"] == str(shard["num_examples"])
            assert shard_row.attrs["data-num-bytes"] == str(shard["num_bytes"])
    assert len(dom.find_all("tr", data_label=None)) == len(meta["labels"]["counts"])
    for label, count in meta["labels"]["counts"].items():
        row = dom.one("tr", data_label=label)
        assert row.one("td", data_field="count").text == str(count)
        for split_name, split in meta["splits"].items():
            assert row.one("td", data_label_split=split_name).text == str(split["label_counts"].get(label, 0))
    for rate, count in meta["stats"]["sample_rates"].items():
        assert dom.one("tr", data_sample_rate=rate).attrs["data-count"] == str(count)
    for channels, count in meta["stats"]["channels"].items():
        assert dom.one("tr", data_channels=channels).attrs["data-count"] == str(count)

    rejected = meta["rejected"]
    assert dom.one(id="rejected-summary").attrs["data-num-rows"] == str(rejected["num_rows"])
    assert rejected["by_reason"] == {"duplicate": 1, "missing": 1, "unreadable": 1}
    for reason, count in rejected["by_reason"].items():
        assert dom.one("tr", data_reason=reason).attrs["data-count"] == str(count)
        listed = dom.find_all("li", data_reason=reason)
        examples = rejected["examples"][reason]
        assert [item.attrs["data-line"] for item in listed] == [str(row["line"]) for row in examples]
        assert all(row["blob"] in item.text for item, row in zip(listed, examples, strict=True))


def test_plots_and_audio_players_render_in_chromium(rendered, dataset):
    meta = json.loads((dataset[0] / METADATA_FILE).read_text(encoding="utf-8"))
    dom = rendered.dom
    images = dom.find_all("img", **{"class": "plot"})
    kinds = Counter(image.attrs.get("data-plot") for image in images)
    num_labels = len(meta["labels"]["counts"])
    expected_players = sum(min(EXAMPLES_PER_LABEL, count) for count in meta["labels"]["counts"].values())
    assert kinds == {
        "label-balance": 1,
        "example": expected_players,
        "durations": 1,
        "label-durations": num_labels,
        "formats": 1,
        "shard-sizes": 1,
    }
    not_rendered = [image.attrs.get("alt") for image in images if image.attrs.get("data-rendered") != "1"]
    assert not not_rendered, f"images that did not decode: {not_rendered}"
    assert all(image.attrs["src"].startswith("data:image/png;base64,") for image in images)

    players = dom.find_all("audio", **{"class": "example"})
    assert len(players) == expected_players
    for player in players:
        assert player.attrs["src"].startswith("data:audio/wav;base64,")
        assert "data-duration" in player.attrs, f"audio metadata did not load for {player.attrs.get('data-blob')}"
        assert 0.5 < float(player.attrs["data-duration"]) <= 5.0  # demo clips last 0.8-1.6 s
    for label in meta["labels"]["counts"]:
        section = dom.one("section", data_examples_label=label)
        assert len(section.find_all("audio")) == min(EXAMPLES_PER_LABEL, meta["labels"]["counts"][label])
    body = dom.one("body")
    assert body.attrs["data-images-rendered"] == str(len(images))
    assert body.attrs["data-audio-loaded"] == str(len(players))
    # The per-label histograms say where their numbers come from (here: every record, the dataset is tiny).
    note = dom.one(id="sample-note")
    assert note.attrs["data-sample-records"] == str(sum(s["num_examples"] for s in meta["splits"].values()))
    assert note.attrs["data-complete"] == "true"


def test_report_is_self_contained_and_screenshot_is_written(rendered):
    dom = parse_html(rendered.html)
    for element in dom.iter():
        for name in ("src", "href"):
            value = element.attrs.get(name, "")
            assert not value or value.startswith(("data:", "#")), f"<{element.tag} {name}={value[:80]!r}>"
    assert dom.one("meta", http_equiv="Content-Security-Policy").attrs["content"].startswith("default-src 'none'")
    assert len(rendered.html) < 3_000_000
    header = rendered.screenshot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 2000)


# --- small, hand-written datasets (conftest.write_dataset) ----------------------------------------


def test_strings_from_data_are_escaped(tmp_path, write_dataset):
    rejected = [
        {
            "line": 3,
            "blob": EVIL_BLOB,
            "label": EVIL_LABEL,
            "split": "train",
            "reason": "missing",
            "message": f"line 3: no file at /data/{EVIL_BLOB}",
        }
    ]
    info = write_dataset(tmp_path / "ds", [(EVIL_BLOB, EVIL_LABEL), ("plain.wav", "plain")], rejected_examples=rejected)
    page = tmp_path / "report.html"
    write_html_report(str(tmp_path / "ds"), info, str(page))
    text = page.read_text(encoding="utf-8")

    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in text
    assert text.count("<script") == 1  # the page's own, allowed by hash in its Content-Security-Policy
    assert "<b onmouseover" not in text and 'onmouseover="alert' not in text
    dom = parse_html(text)
    assert not dom.find_all("b")
    assert dom.one("tr", data_label=EVIL_LABEL).attrs["data-count"] == "1"  # escaped, and round-trips
    assert dom.one("audio", data_blob=EVIL_BLOB)
    assert EVIL_BLOB in dom.one("li", data_reason="missing").text


def test_inspect_html_writes_the_report(tmp_path, write_dataset):
    write_dataset(tmp_path / "ds", [("a.wav", "yes"), ("b.wav", "no")])
    page = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds"), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"report    {page}" in result.output
    assert parse_html(page.read_text(encoding="utf-8")).one("tr", data_split="train").attrs["data-num-examples"] == "2"
