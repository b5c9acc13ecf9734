"""The HTML dataset report: its numbers match dataset.json, its plots and players render in a real
browser (headless Chromium), strings from manifests are escaped, and the audio sample stays bounded.
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

import numpy as np
import pytest
from click.testing import CliRunner

from audioflow.beam.cli import main
from audioflow.beam.format import (
    FORMAT_VERSION,
    METADATA_FILE,
    AudioExample,
    DatasetInfo,
    ShardInfo,
    SplitInfo,
    encode_example,
    shard_file_name,
)
from audioflow.beam.format.tfrecord import frame_record
from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.options import build_ingest_options
from audioflow.beam.tools.demo_data import make_demo_data
from audioflow.beam.tools.report import clip_samples, sample_dataset, write_html_report

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


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, DatasetInfo]:
    root = tmp_path_factory.mktemp("report-data")
    manifest = make_demo_data(root / "demo", clips_per_class=8)
    options = build_ingest_options(
        manifest=str(manifest),
        output=str(root / "dataset"),
        splits="train=0.8,test=0.2",
        max_rejected_fraction=0.2,  # the demo's 3 bad rows are 11% of its 27 rows
    )
    return root / "dataset", run_ingest(options, [])


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


# --- small, hand-written datasets -----------------------------------------------------------------


def _tone(frames: int, channels: int, sample_format: str) -> bytes:
    wave = 0.5 * np.sin(2 * np.pi * 440 * np.arange(frames) / 16000)
    samples = np.repeat(wave[:, None], channels, axis=1)
    if sample_format == "int16":
        return (samples * 32767).astype("<i2").tobytes()
    return samples.astype("<f4").tobytes()


def write_dataset(
    folder: Path,
    rows: list[tuple[str, str]],
    *,
    rejected_examples: list[dict] | None = None,
    sample_format: str = "int16",
) -> DatasetInfo:
    """Writes one shard of 0.5 s tones, one per (blob, label) row, and a dataset.json describing it."""
    folder.mkdir(parents=True, exist_ok=True)
    names = sorted({label for _, label in rows})
    payloads = [
        frame_record(
            encode_example(
                AudioExample(
                    audio=_tone(8000, 1, sample_format),
                    label=names.index(label),
                    label_name=label,
                    sample_rate=16000,
                    num_channels=1,
                    num_frames=8000,
                    blob=blob,
                )
            )
        )
        for blob, label in rows
    ]
    shard = shard_file_name("train", 0, 1)
    (folder / shard).write_bytes(b"".join(payloads))
    size = sum(map(len, payloads))
    counts = dict(sorted(Counter(label for _, label in rows).items()))
    rejected_examples = rejected_examples or []
    by_reason = dict(Counter(row["reason"] for row in rejected_examples))
    info = DatasetInfo(
        format_version=FORMAT_VERSION,
        created="2026-01-01T00:00:00+00:00",
        audio={
            "sample_format": sample_format,
            "encoding": "pcm_le_interleaved",
            "sample_rate": 16000,
            "num_channels": 1,
        },
        compression="none",
        splits={
            "train": SplitInfo(
                num_examples=len(rows),
                num_shards=1,
                files=[ShardInfo(shard, len(rows), size)],
                duration_seconds=0.5 * len(rows),
                num_bytes=size,
                label_counts=counts,
            )
        },
        labels={"names": names, "counts": counts},
        rejected={
            "num_rows": len(rejected_examples),
            "by_reason": by_reason,
            "by_split": {"train": len(rejected_examples)},
            "file": "rejected.jsonl",
            "fraction": 0.0,
            "max_fraction": 1.0,
            "passed": True,
            "examples": {reason: [r for r in rejected_examples if r["reason"] == reason] for reason in by_reason},
        },
        manifest={
            "uri": str(folder / "labels.csv"),
            "sha256": "0" * 64,
            "num_rows": len(rows) + len(rejected_examples),
        },
        audio_root=str(folder),
        stats={
            "num_examples": len(rows),
            "total_hours": 0.5 * len(rows) / 3600,
            "total_bytes": size,
            "sample_rates": {"16000": len(rows)},
            "source_sample_rates": {"16000": len(rows)},
            "channels": {"1": len(rows)},
            "duration_seconds_percentiles": {"p0": 0.5, "p50": 0.5, "p100": 0.5},
            "duration_seconds_histogram": {"0": len(rows)},
        },
        options={},
        tool={"name": "audioflow", "version": "test"},
    )
    (folder / METADATA_FILE).write_text(info.to_json(), encoding="utf-8")
    return info


def test_strings_from_data_are_escaped(tmp_path):
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


def test_sample_is_bounded_and_keeps_a_few_clips_per_label(tmp_path):
    rows = [(f"clip-{index:03d}.wav", ("a", "b")[index % 2]) for index in range(40)]
    info = write_dataset(tmp_path / "ds", rows)
    small = sample_dataset(str(tmp_path / "ds"), info, examples_per_label=2, max_records=10)
    assert small.num_records == 10 and not small.complete
    assert sum(map(len, small.durations.values())) == 10
    assert {label: len(clips) for label, clips in small.clips.items()} == {"a": 2, "b": 2}
    assert [clip.blob for clip in small.clips["a"]] == ["clip-000.wav", "clip-002.wav"]  # deterministic: first ones
    whole = sample_dataset(str(tmp_path / "ds"), info, max_records=1000)
    assert whole.num_records == 40 and whole.complete and not whole.problems
    (tmp_path / "ds" / info.splits["train"].files[0].name).write_bytes(b"not a tfrecord at all")
    broken = sample_dataset(str(tmp_path / "ds"), info)
    assert broken.problems and not broken.complete  # reported on the page, not raised


@pytest.mark.parametrize("sample_format", ["int16", "float32"])
def test_clip_samples_scale_downmix_and_truncate(sample_format):
    frames = 16000 * 7
    stereo = np.stack([np.full(frames, 0.5), np.full(frames, 0.25)], axis=1)
    raw = (stereo * 32768).astype("<i2").tobytes() if sample_format == "int16" else stereo.astype("<f4").tobytes()
    example = AudioExample(audio=raw, label=0, sample_rate=16000, num_channels=2, num_frames=frames, blob="x.wav")
    clip = clip_samples(example, sample_format, seconds=5.0)
    assert clip.dtype == np.float32 and clip.shape == (16000 * 5,)
    np.testing.assert_allclose(clip, 0.375, atol=1e-6)


def test_inspect_html_writes_the_report(tmp_path):
    write_dataset(tmp_path / "ds", [("a.wav", "yes"), ("b.wav", "no")])
    page = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds"), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"report    {page}" in result.output
    assert parse_html(page.read_text(encoding="utf-8")).one("tr", data_split="train").attrs["data-num-examples"] == "2"
