"""Load: 200,000 manifest rows through `audioflow ingest` on the local runner (make test-slow).

194,000 tiny clips (hard links of six 10-20 ms files under distinct names, so the disk holds six
files) with 6,000 bad rows mixed in at fixed positions: duplicates, missing and corrupt files, bad
labels, rows outside the root, malformed rows and empty blob names. The run must finish, the peak
RSS of its whole process tree stays bounded, the accounting balances to the row, and every record
written passes `verify`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflow.beam.prep.manifest import iter_manifest_rows
from audioflow.beam.prep.splits import parse_splits
from audioflow.beam.reader import load_dataset_info
from audioflow.beam.tools.verify import verify_dataset

from audio_files import tone, write_corrupt_files, write_manifest

ROWS = 200_000
SPLITS = "train=0.8,validation=0.1,test=0.1"
# reason -> how many rows of that kind are mixed in
BAD_ROWS = {
    "duplicate": 2000,
    "missing": 1000,
    "unreadable": 1000,
    "bad_label": 500,
    "outside_root": 500,
    "malformed_row": 500,
    "bad_blob": 500,
}
GOOD_ROWS = ROWS - sum(BAD_ROWS.values())
# Measured: 403 MiB (2 vCPU, 24 GB; 171 MiB of shards written); 633-646 MiB before rows had their
# own coders (beam/job/coders.py). The local runner keeps each step's rows in memory (about 1.2 KB a
# row), never audio, which is read, encoded and streamed to a shard file a clip at a time. The limit
# leaves room for other machines and allocators, and fails if rows fall back to pickling.
PEAK_RSS_LIMIT = 600 * 1024**2
SOURCES = [(8000, 0.01, 1, "wav"), (16000, 0.01, 2, "wav"), (16000, 0.02, 1, "flac"), (22050, 0.01, 1, "wav")]
SOURCES += [(44100, 0.01, 2, "flac"), (48000, 0.01, 1, "wav")]


def build_corpus(root: Path) -> Path:
    """Writes the audio and the manifest (CSV rows; malformed ones have a single field)."""
    audio = root / "audio"
    sources = []
    for index, (rate, seconds, channels, extension) in enumerate(SOURCES):
        path = root / "src" / f"{index}.{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(rate, seconds, channels, seed=index), rate)
        sources.append(path)
    corrupt = write_corrupt_files(root / "src" / "corrupt")["text_named_wav"]
    for folder in range(200):
        (audio / f"d{folder:03d}").mkdir(parents=True)
    rng = np.random.default_rng(2026)
    rest = ["good"] * (GOOD_ROWS - 1) + [kind for kind, count in BAD_ROWS.items() for _ in range(count)]
    rng.shuffle(rest)
    rows: list[tuple[str, ...]] = []
    good = 0
    for index, kind in enumerate(["good", *rest]):  # a good row first: a duplicate needs an earlier row
        if kind == "good":
            name = f"d{good % 200:03d}/clip-{good:06d}.wav"
            os.link(sources[good % len(sources)], audio / name)
            rows.append((str(good % 10), name))
            good += 1
        elif kind == "duplicate":
            earlier = int(rng.integers(0, good))
            rows.append(("3", f"d{earlier % 200:03d}/clip-{earlier:06d}.wav"))
        elif kind == "missing":
            rows.append(("1", f"missing/{index}.wav"))
        elif kind == "unreadable":
            os.link(corrupt, audio / f"corrupt-{index}.wav")
            rows.append(("1", f"corrupt-{index}.wav"))
        elif kind == "bad_label":
            rows.append(("not-an-int", f"d000/clip-{index}.wav"))
        elif kind == "outside_root":
            rows.append(("1", f"../outside/{index}.wav"))
        elif kind == "malformed_row":
            rows.append(("1",))
        else:
            rows.append(("1", ""))
    return write_manifest(root / "labels.csv", rows)  # type: ignore[arg-type]


class TreeRss:
    """Samples the summed RSS of every process in a session (the CLI and any runner workers) from /proc."""

    def __init__(self, session: int, interval: float = 0.2):
        self.session, self.interval = session, interval
        self.peak_total = self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[3]) != self.session:  # field 6 of stat: the session id
                    continue
                with open(f"/proc/{pid}/status") as status:
                    rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            except (OSError, StopIteration, ValueError, IndexError):
                continue  # the process ended while we looked
            total += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.slow
def test_200k_rows_finish_in_bounded_memory_and_balance_to_the_row(tmp_path):
    manifest = build_corpus(tmp_path)
    output = tmp_path / "dataset"
    command = [sys.executable, "-m", "audioflow.beam.cli", "ingest", "--manifest", str(manifest)]
    command += ["--audio-root", str(tmp_path / "audio"), "--output", str(output), "--label-type", "int"]
    command += ["--splits", SPLITS, "--max-rejected-fraction", "0.05"]
    started = time.monotonic()
    with open(tmp_path / "ingest.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeRss(process.pid)
        code = process.wait(timeout=3 * 3600)
        sampler.stop()
    seconds = time.monotonic() - started
    assert code == 0, (tmp_path / "ingest.log").read_text()[-3000:]
    print(
        f"\n{ROWS} rows: {seconds:.0f} s, peak RSS {sampler.peak_total / 1024**2:.0f} MiB for the process tree "
        f"({sampler.peak_single / 1024**2:.0f} MiB for the largest process)"
    )
    assert sampler.peak_total < PEAK_RSS_LIMIT

    info = load_dataset_info(str(output))
    print(f"{info.num_examples} examples, {info.stats['total_bytes'] / 1024**2:.0f} MiB of shards")
    assert info.manifest["num_rows"] == ROWS
    assert info.num_examples == GOOD_ROWS
    assert info.rejected["by_reason"] == dict(sorted(BAD_ROWS.items()))
    assert info.num_examples + info.rejected["num_rows"] == ROWS
    lines = [json.loads(line) for line in (output / "rejected.jsonl").read_text().split("\n") if line]
    assert Counter(r["reason"] for r in lines) == Counter(BAD_ROWS)
    assert len({r["line"] for r in lines}) == len(lines), "a row was rejected twice"
    # Per split, recomputed outside the pipeline: rows assigned to it == examples in it + rows rejected from it.
    spec = parse_splits(SPLITS)
    with manifest.open("rb") as stream:
        rows_by_split = Counter(row.split or spec.assign(row.blob) for row in iter_manifest_rows(stream))
    for split, split_info in info.splits.items():
        assert rows_by_split[split] == split_info.num_examples + info.rejected["by_split"].get(split, 0), split
    report = verify_dataset(str(output), info)
    assert report.ok, report.problems[:10]
    assert sum(report.records_by_split.values()) == GOOD_ROWS
