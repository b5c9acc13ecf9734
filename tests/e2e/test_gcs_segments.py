"""Segments and windows of gs:// objects on the GCS emulator: the span is read through ranged reads,
and the samples are those of the local file."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audioflow.beam.format import DatasetInfo, decode_example, iter_records

from audio_files import write_bursts
from gcs_emulator import EmulatedGcs

AUDIOFLOW = str(Path(sys.executable).with_name("audioflow"))


def test_segments_and_windows_of_bucket_objects(gcs: EmulatedGcs, tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    write_bursts(audio / "site.flac", 16000, 60.0, [(10.0, 11.0, 1000.0)], "PCM_16")
    write_bursts(audio / "site.ogg", 16000, 60.0, [(10.0, 11.0, 1000.0)], "VORBIS")
    bucket = gcs.create_bucket("audioflow-segments")
    gcs.upload_folder(audio, f"{bucket}/audio")
    rows = [
        ["file", "start", "end"],
        ["site.flac", "10", "11.5"],
        ["site.ogg", "10", "11.5"],
        ["site.flac", "70", "71"],
    ]
    with (tmp_path / "m.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    gcs.write_bytes(f"{bucket}/m.csv", (tmp_path / "m.csv").read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in ("RUNNER", "AUDIOFLOW_ENV_FILE")}
    for name, extra in (("segments", []), ("windows", ["--window-seconds", "0.5"])):
        output = f"{bucket}/{name}"
        command = [AUDIOFLOW, "ingest", "--manifest", f"{bucket}/m.csv", "--audio-root", f"{bucket}/audio",
                   "--output", output, "--max-rejected-fraction", "0.5", *extra]  # fmt: skip
        run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        info = DatasetInfo.from_json(gcs.read_text(f"{output}/dataset.json"))
        assert info.rejected["by_reason"] == {"bad_segment": 1}
        examples = []
        for shard in info.splits["train"].files:
            data = gcs.read_bytes(f"{output}/{shard.name}")
            examples += [decode_example(record) for record in iter_records(io.BytesIO(data), shard.name)]
        assert len(examples) == (2 if name == "segments" else 6)
        for example in examples:
            expected = sf.read(audio / example.blob, start=example.segment_start, stop=example.segment_end,
                               dtype="int16", always_2d=True)[0]  # fmt: skip
            got = np.frombuffer(example.audio, "<i2").reshape(-1, 1)[: example.segment_end - example.segment_start]
            assert np.array_equal(got, expected)
