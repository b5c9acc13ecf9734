"""Files that lie: headers that claim billions of frames, a 3 GiB file, files that decode to nothing,
codecs libsndfile does not know. Each is refused with a clear reason, decided from the header or the
file size before any sample is decoded, and refusing it never allocates what it claims.

Memory is measured two ways: tracemalloc around one decode (numpy reports its arrays to it, even
pages never touched, so a claimed 2 GB array shows as 2 GB), and the peak RSS of a whole
`audioflow ingest` process whose limits let the lying files reach the decoder.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioflow.beam.job.launch import run_ingest
from audioflow.beam.prep.audio import AudioOptions, AudioRejected, decode_audio
from audioflow.beam.prep.options import build_ingest_options

from audio_files import tone, write_audio, write_manifest

GIB = 1024**3
HUGE_BYTES = 3 * GIB  # over the default --max-file-size (2 GiB); sparse, so it costs no disk
CLAIM_FRAMES = 1_000_000_000


def wav_header(data_size: int, *, rate: int = 16000, channels: int = 1, bits: int = 16, format_tag: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header whose data chunk claims `data_size` bytes."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block, block, bits)
    riff_size = min(4 + 8 + len(fmt) + 8 + data_size, 0xFFFFFFFF)
    chunks = [b"RIFF", struct.pack("<I", riff_size), b"WAVEfmt ", struct.pack("<I", len(fmt)), fmt, b"data"]
    return b"".join([*chunks, struct.pack("<I", data_size)])


def flac_claiming(frames: int, rate: int) -> bytes:
    """A real 0.1 s FLAC whose STREAMINFO claims `frames` frames at `rate` Hz (20-bit rate, 36-bit count)."""
    buffer = io.BytesIO()
    sf.write(buffer, tone(16000, 0.1), 16000, format="FLAC", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    start = 8 + 10  # 'fLaC', the metadata block header, then 10 bytes of block sizes in STREAMINFO
    packed = int.from_bytes(data[start : start + 8], "big")
    channels_and_bits = packed & (((1 << 8) - 1) << 36)  # keep channels-1 (3 bits) and bits-1 (5 bits)
    data[start : start + 8] = ((rate << 44) | channels_and_bits | frames).to_bytes(8, "big")
    return bytes(data)


def write_lying_files(folder: Path) -> dict[str, bytes | None]:
    """name -> content written (None: made another way). Every one must be rejected."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = np.zeros(500, "<i2").tobytes()
    empty_ogg = io.BytesIO()
    sf.write(empty_ogg, np.zeros((0, 1), np.float32), 16000, format="OGG", subtype="VORBIS")
    files: dict[str, bytes | None] = {
        # RIFF and data chunk claim 4 GiB (2 billion frames); the file holds 1,000 bytes.
        "claims-4gib.wav": wav_header(0xFFFFFFF0) + payload,
        # STREAMINFO claims 2^36 - 1 frames (49 days at 16 kHz).
        "claims-2e36-frames.flac": flac_claiming((1 << 36) - 1, 16000),
        # A billion frames at 1,048,575 Hz is 954 s, under --max-duration: only the size gives it away.
        "claims-1e9-frames.flac": flac_claiming(CLAIM_FRAMES, 1_048_575),
        "no-frames.wav": wav_header(0),
        "no-samples.ogg": empty_ogg.getvalue(),
        "unknown-codec.wav": wav_header(1000, format_tag=0x1234) + payload,
        "opus-in-wav.wav": wav_header(1000, format_tag=0x704F) + payload,  # Opus's (unofficial) WAV tag
        "movie.mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(2000),
        "text.mp3": b"not audio at all\n" * 40,
        "huge.wav": None,
    }
    for name, content in files.items():
        if content is not None:
            (folder / name).write_bytes(content)
    # An honest header for 3 GiB of samples over a sparse 3 GiB file: big on paper, nothing on disk.
    with (folder / "huge.wav").open("wb") as stream:
        stream.write(wav_header(HUGE_BYTES - 44))
        stream.truncate(HUGE_BYTES)
    return files


@pytest.fixture(scope="module")
def lying(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lying")
    write_lying_files(root / "audio")
    write_audio(root / "audio" / "good.wav", seconds=0.2)
    os.mkfifo(root / "audio" / "fifo.wav")  # opening a FIFO blocks until a writer comes: must not hang
    (root / "audio" / "folder.wav").mkdir()
    return root


def test_the_huge_file_costs_no_disk(lying):
    huge = lying / "audio" / "huge.wav"
    assert huge.stat().st_size == HUGE_BYTES
    assert huge.stat().st_blocks * 512 < 1024**2, "the 3 GiB test file must be sparse"


def decode_measured(source: str | bytes, options: AudioOptions) -> tuple[AudioRejected, int]:
    """The rejection and the peak bytes Python/numpy allocated while deciding it."""
    tracemalloc.start()
    try:
        with pytest.raises(AudioRejected) as raised:
            decode_audio(source, options, name="lying")
        return raised.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("name", "max_duration", "reason", "detail"),
    [
        ("claims-4gib.wav", 1200.0, "unreadable", "header declares 4294967280 data bytes, file has 1000"),
        ("claims-4gib.wav", None, "unreadable", "header declares 4294967280 data bytes, file has 1000"),
        ("claims-2e36-frames.flac", 1200.0, "too_long", "is over --max-duration 1200 s"),
        ("claims-2e36-frames.flac", None, "too_large", "68719476735 frames"),
        ("claims-1e9-frames.flac", 1200.0, "too_large", "would decode to 2000000000 bytes"),
        ("huge.wav", 1200.0, "too_long", "is over --max-duration"),
        ("huge.wav", None, "too_large", "would decode to 3221225428 bytes"),
    ],
)
def test_lying_header_is_refused_before_its_claim_is_allocated(lying, name, max_duration, reason, detail):
    path = lying / "audio" / name
    for source in (str(path), path.read_bytes() if name != "huge.wav" else None):  # local path and remote bytes
        if source is None:
            continue
        rejected, peak = decode_measured(source, AudioOptions(max_duration=max_duration))
        assert (rejected.reason, detail in rejected.message) == (reason, True), rejected.message
        assert rejected.message.startswith("lying: ")
        assert peak < 16 * 1024**2, f"refusing {name} allocated {peak} bytes"


def test_decoded_size_limit_holds_for_honest_files_too(tmp_path):
    """A small file may really hold a lot: 2 s of 8-channel silence is ~10 KB of FLAC, 1.5 MB decoded."""
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros((96000, 8), np.float32), 48000, subtype="PCM_16")
    assert path.stat().st_size < 64 * 1024
    limit = 1024**2
    rejected, peak = decode_measured(str(path), AudioOptions(max_decoded_bytes=limit))
    assert rejected.reason == "too_large" and "96000 frames × 8 channel(s) would decode to 1536000 bytes" in (
        rejected.message
    )
    assert peak < limit
    # Resampling is counted too: 0.2 s at 8 kHz is small, at 384 kHz in float32 it is not.
    low = tmp_path / "low.wav"
    sf.write(low, tone(8000, 0.2), 8000)
    rejected, _ = decode_measured(str(low), AudioOptions(sample_rate=384000, max_decoded_bytes=200_000))
    assert rejected.reason == "too_large" and "would decode to 307200 bytes" in rejected.message
    assert decode_audio(str(path), AudioOptions(max_decoded_bytes=2 * limit)).samples.shape == (96000, 8)


@pytest.mark.parametrize(
    ("name", "options", "detail"),
    [
        ("no-frames.wav", AudioOptions(), "the file holds no audio frames"),
        ("no-samples.ogg", AudioOptions(), "the file holds no audio frames"),
        ("one-frame.wav", AudioOptions(sample_rate=8000), "resampling 1 frame(s) from 48000 Hz to 8000 Hz leaves no"),
    ],
)
def test_files_that_decode_to_nothing_are_empty_audio(lying, tmp_path, name, options, detail):
    """Found by the fuzzer: one frame at 48 kHz resamples to zero frames at 8 kHz, and an example with
    no frames was written (which `inspect --verify` then reported as a broken record)."""
    path = lying / "audio" / name
    if name == "one-frame.wav":
        path = tmp_path / name
        sf.write(path, np.full((1, 2), 0.5, np.float32), 48000, subtype="FLOAT")
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(path), options, name=name)
    assert raised.value.reason == "empty_audio" and detail in raised.value.message


EXPECTED_REASONS = {
    "claims-4gib.wav": "unreadable",
    "claims-2e36-frames.flac": "too_long",
    "claims-1e9-frames.flac": "too_large",
    "no-frames.wav": "empty_audio",
    "no-samples.ogg": "empty_audio",
    "unknown-codec.wav": "unreadable",
    "opus-in-wav.wav": "unreadable",
    "movie.mp4": "unreadable",
    "text.mp3": "unreadable",
    "huge.wav": "too_large",
    "fifo.wav": "missing",
    "folder.wav": "missing",
}


def write_lying_manifest(lying: Path) -> Path:
    rows = [("1", "good.wav")] + [("0", name) for name in EXPECTED_REASONS]
    return write_manifest(lying / "labels.csv", rows)


def rejected_reasons(output: Path) -> dict[str, tuple[str, str]]:
    lines = (output / "rejected.jsonl").read_text().split("\n")
    return {r["blob"]: (r["reason"], r["message"]) for r in map(json.loads, filter(None, lines))}


def test_lying_files_through_the_pipeline_get_clear_reasons(lying, tmp_path):
    output = tmp_path / "dataset"
    info = run_ingest(
        build_ingest_options(
            manifest=str(write_lying_manifest(lying)),
            audio_root=str(lying / "audio"),
            output=str(output),
            max_rejected_fraction=1.0,
        ),
        [],
    )
    assert info.num_examples == 1
    reasons = rejected_reasons(output)
    assert {blob: reason for blob, (reason, _) in reasons.items()} == EXPECTED_REASONS
    for blob, (_, message) in reasons.items():
        assert blob in message and "line " in message, message
    assert f"has {HUGE_BYTES} bytes, over --max-file-size {2 * GIB}" in reasons["huge.wav"][1]


def test_a_worker_decoding_lying_files_keeps_its_memory(lying, tmp_path):
    """With --max-duration 0 (off) and --max-file-size 4GiB, every lying file reaches the decoder of a
    real `audioflow ingest`; the decoded-size limit alone keeps the process small."""
    output = tmp_path / "dataset"
    command = [sys.executable, "-m", "audioflow.beam.cli", "ingest", "--manifest", str(write_lying_manifest(lying))]
    command += ["--audio-root", str(lying / "audio"), "--output", str(output)]
    command += ["--max-duration", "0", "--max-file-size", "4GiB"]
    command += ["--max-rejected-fraction", "1"]
    # A parent of its own, so RUSAGE_CHILDREN is this run's peak RSS and nothing else's.
    measure = "import resource, subprocess, sys; code = subprocess.call(sys.argv[1:]); "
    measure += "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)"
    result = subprocess.run(
        [sys.executable, "-c", measure, *command], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    code, peak_rss = map(int, result.stdout.split()[-2:])
    assert code == 0, result.stderr
    reasons = rejected_reasons(output)
    assert reasons["huge.wav"][0] == "too_large" and "would decode to 3221225428 bytes" in reasons["huge.wav"][1]
    assert reasons["claims-2e36-frames.flac"][0] == "too_large"
    assert reasons["claims-1e9-frames.flac"][0] == "too_large"
    print(f"\npeak RSS of `audioflow ingest` over the lying files: {peak_rss / 1024**2:.0f} MiB")
    assert peak_rss < 1 * GIB, f"peak RSS {peak_rss / 1024**2:.0f} MiB"
