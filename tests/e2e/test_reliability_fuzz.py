"""Fuzzing the decode step and the whole pipeline: hostile bytes and hostile manifests.

Every input must end as decoded audio or as an `AudioRejected` with a stable reason; nothing may
raise anything else, crash the process or hang. libsndfile is C code, so each decode runs in a
worker process with a deadline: a segfault or an endless loop fails the one input that caused it
(with its bytes in the message) instead of killing or stalling the test run.

Inputs tried (each run; hypothesis also replays failures it saved in .hypothesis/):
    random bytes, and random bytes behind the magic numbers of every container libsndfile knows;
    real files in 17 encodings (the claimed WAV/FLAC/OGG/MP3 ones, plus the ADPCM, GSM, u-law, Opus,
    ALAC, AIFF, RF64 and W64 parsers any file can reach) with flipped, set, inserted, deleted and
    truncated bytes, header integers set to extremes, and chunks spliced from other files;
    decoded as bytes (how remote files arrive) and by path (local files), with every option mix.
The totals are printed at the end of the module (`pytest -s` or `-rP` shows them).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from audioflow.beam.format import REJECT_REASONS, decode_example, parse_shard_name
from audioflow.beam.format.tfrecord import iter_records
from audioflow.beam.prep.audio import DEFAULT_MAX_DECODED_BYTES, AudioOptions, AudioRejected, decode_audio
from audioflow.beam.prep.manifest import iter_manifest_rows
from audioflow.beam.prep.options import build_ingest_options

from audio_files import tone

# A decode of a few-KB file takes milliseconds; 30 s without an answer can only be a hang.
DECODE_DEADLINE_SECONDS = 30.0
NAME = "fuzzed.bin"

# (container, subtype, sample rate, channels): every parser a hostile file can reach through libsndfile's
# format detection, not only the formats audioflow documents.
SEED_SPECS: list[tuple[str, str, int, int]] = [
    ("WAV", "PCM_16", 16000, 2),
    ("WAV", "PCM_24", 22050, 1),
    ("WAV", "PCM_U8", 8000, 1),
    ("WAV", "FLOAT", 16000, 2),
    ("WAV", "ULAW", 8000, 1),
    ("WAV", "IMA_ADPCM", 16000, 1),
    ("WAV", "MS_ADPCM", 16000, 2),
    ("WAV", "GSM610", 8000, 1),
    ("FLAC", "PCM_16", 16000, 2),
    ("FLAC", "PCM_24", 44100, 1),
    ("OGG", "VORBIS", 16000, 2),
    ("OGG", "OPUS", 48000, 1),
    ("MP3", "MPEG_LAYER_III", 16000, 1),
    ("AIFF", "PCM_16", 16000, 1),
    ("CAF", "ALAC_16", 16000, 1),
    ("RF64", "PCM_16", 16000, 1),
    ("W64", "PCM_16", 16000, 1),
]
MAGIC = [
    b"RIFF\xff\xff\xff\xffWAVEfmt ",
    b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",
    b"RF64\xff\xff\xff\xffWAVEds64",
    b"riff.\x91\xcf\x11",
    b"fLaC\x00\x00\x00\x22",
    b"OggS\x00\x02",
    b"ID3\x03\x00",
    b"\xff\xfb\x90",
    b"FORM\x00\x00\x00\x00AIFF",
    b".snd",
    b"caff\x00\x01",
    b"NIST_1A",
    b"\x00\x00\x00\x20ftypisom",
    b"",
]
EXTREME_INTS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x01\x00\x00\x00"]


@cache
def seeds() -> dict[str, bytes]:
    """Real, valid, small files (50 ms) to mutate; small keeps each decode in the milliseconds."""
    files = {}
    for container, subtype, rate, channels in SEED_SPECS:
        buffer = io.BytesIO()
        sf.write(buffer, tone(rate, 0.05, channels, seed=len(files)), rate, format=container, subtype=subtype)
        files[f"{container}/{subtype}"] = buffer.getvalue()
    return files


# --- the worker process -----------------------------------------------------------------------


def _serve(connection: Any) -> None:
    """The child's loop: decode what arrives, answer with the outcome. Runs in a spawned process."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # libmpg123 and libsndfile print notes about broken frames to stderr
    folder = tempfile.mkdtemp(prefix="fuzz-decode-")
    path = os.path.join(folder, NAME)
    while True:
        try:
            data, options, as_path = connection.recv()
        except EOFError:
            return
        if as_path:
            with open(path, "wb") as stream:
                stream.write(data)
        try:
            decoded = decode_audio(path if as_path else data, options, name=NAME)
            outcome: tuple = ("decoded", decoded.samples.shape, decoded.samples.dtype.str, decoded.sample_rate)
            outcome += (decoded.samples.flags.c_contiguous, decoded.samples.nbytes)
        except AudioRejected as rejected:
            outcome = ("rejected", rejected.reason, rejected.message)
        except BaseException as error:  # the finding: anything else escaping decode_audio
            outcome = ("raised", type(error).__name__, str(error)[:500])
        connection.send(outcome)


class DecodeWorker:
    """decode_audio in a spawned child with a deadline per input; restarted after a crash or a hang."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self._connection, child = self._context.Pipe()
        self._process = self._context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        child.close()

    def close(self) -> None:
        self._connection.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()

    def decode(self, data: bytes, options: AudioOptions, as_path: bool) -> tuple:
        """The outcome tuple from the child.

        Raises:
            AssertionError: the child died (a crash in native code) or gave no answer in time (a hang).
        """
        what = f"{len(data)} bytes starting {data[:48]!r}, {options}, as_path={as_path}"
        self._connection.send((data, options, as_path))
        if not self._connection.poll(DECODE_DEADLINE_SECONDS):
            self._process.kill()
            self._process.join()
            self._start()
            raise AssertionError(f"decode hung (no answer in {DECODE_DEADLINE_SECONDS:.0f} s): {what}")
        try:
            return self._connection.recv()
        except EOFError:
            self._process.join()
            code = self._process.exitcode
            self._start()
            raise AssertionError(f"decode crashed the worker process (exit code {code}): {what}") from None


TRIED: Counter = Counter()


@pytest.fixture(scope="module")
def worker() -> Iterator[DecodeWorker]:
    decode_worker = DecodeWorker()
    yield decode_worker
    decode_worker.close()
    total = sum(count for key, count in TRIED.items() if key[0] == "input")
    outcomes = {key[1]: count for key, count in sorted(TRIED.items()) if key[0] == "outcome"}
    print(f"\nfuzz: {total} inputs decoded in a worker process; outcomes {outcomes}")


def check_outcome(outcome: tuple, options: AudioOptions, source: str) -> None:
    """What any input may become: valid samples in the requested layout, or a rejection with a reason."""
    TRIED["input", source] += 1
    kind = outcome[0]
    TRIED["outcome", outcome[1] if kind == "rejected" else kind] += 1
    assert kind != "raised", f"decode_audio raised {outcome[1]}: {outcome[2]}"
    if kind == "rejected":
        _, reason, message = outcome
        assert reason in REJECT_REASONS, f"unknown reason {reason!r}: {message}"
        assert message.startswith(NAME), f"the message must name the file: {message!r}"
        return
    _, shape, dtype, rate, contiguous, nbytes = outcome
    assert len(shape) == 2 and shape[0] > 0 and shape[1] > 0 and contiguous
    assert dtype == ("<i2" if options.sample_format == "int16" else "<f4")
    if options.mono:
        assert shape[1] == 1
    if options.sample_rate is not None:
        assert rate == options.sample_rate
    assert options.max_decoded_bytes is None or nbytes <= options.max_decoded_bytes


# --- strategies ---------------------------------------------------------------------------------

options_strategy = st.builds(
    AudioOptions,
    sample_format=st.sampled_from(["int16", "float32"]),
    sample_rate=st.sampled_from([None, None, 8000, 16000, 44100]),
    mono=st.booleans(),
    max_duration=st.sampled_from([1200.0, None, 0.02]),
    max_decoded_bytes=st.sampled_from([DEFAULT_MAX_DECODED_BYTES, 4096]),
)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A real file with 1-6 edits, half of them aimed at the first 128 bytes where the headers are.

    Byte flips and sets are the most common edits: they leave the file's length alone, so more inputs
    get past the container parsers into the codecs (a cut file mostly stops at "truncated").
    """
    files = seeds()
    data = bytearray(files[draw(st.sampled_from(sorted(files)))])
    for _ in range(draw(st.integers(1, 6))):
        size = len(data)
        position = draw(st.one_of(st.integers(0, min(size, 128)), st.integers(0, size)))
        at = min(position, max(size - 1, 0))
        edit = draw(st.sampled_from([*["flip", "set"] * 3, "insert", "delete", "truncate", "extreme", "splice"]))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=32))
        elif edit == "delete":
            del data[position : position + draw(st.integers(1, 256))]
        elif edit == "truncate":
            del data[position:]
        elif edit == "extreme" and size >= 4:
            start = min(position, size - 4)
            data[start : start + 4] = draw(st.sampled_from(EXTREME_INTS))
        elif edit == "splice":
            other = files[draw(st.sampled_from(sorted(files)))]
            start = draw(st.integers(0, len(other)))
            data[position:position] = other[start : start + draw(st.integers(1, 512))]
    return bytes(data)


random_files = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda magic, tail: magic + tail, st.sampled_from(MAGIC), st.binary(max_size=2048)),
)

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(FUZZ, max_examples=3000)
@given(data=mutated_files(), options=options_strategy, as_path=st.booleans())
def test_mutated_real_files_never_crash_or_hang(worker, data, options, as_path):
    check_outcome(worker.decode(data, options, as_path), options, "mutated")


@settings(FUZZ, max_examples=2000)
@given(data=random_files, options=options_strategy, as_path=st.booleans())
def test_random_bytes_never_crash_or_hang(worker, data, options, as_path):
    check_outcome(worker.decode(data, options, as_path), options, "random")


def test_unmutated_seeds_decode(worker):
    """The seeds themselves are valid, so the mutations start from files that reach the decoders."""
    options = AudioOptions()
    for name, data in seeds().items():
        outcome = worker.decode(data, options, as_path=False)
        check_outcome(outcome, options, "seed")
        assert outcome[0] == "decoded", f"{name}: {outcome}"


# --- the whole pipeline on a hostile manifest -----------------------------------------------------

TRAVERSALS = [
    "../outside.wav",
    "a/../../outside.wav",
    "%2e%2e/outside.wav",
    "%252e%252e/outside.wav",
    "..\\outside.wav",
    "/etc/passwd",
    "file:///etc/passwd",
    "gs://other-bucket/a.wav",
    "a\x00.wav",
]
labels_strategy = st.one_of(
    st.sampled_from(["0", "1", "2", "-7", "", " 1 ", "9223372036854775808", "1.5", "cat"]), st.text(max_size=8)
)
cells = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)  # any text UTF-8 can carry


@st.composite
def hostile_rows(draw: st.DrawFn) -> list[list[str]]:
    """Rows whose blob is a real file, a mutated file (by its index), a traversal or any text; rows
    with too few or too many fields; duplicates."""
    rows: list[list[str]] = []
    for _ in range(draw(st.integers(10, 40))):
        kind = draw(st.sampled_from(["good", "good", "mutated", "mutated", "traversal", "text", "short", "long"]))
        label = draw(labels_strategy)
        if kind == "good":
            blob = f"good/{draw(st.integers(0, 3))}.wav"
        elif kind == "mutated":
            blob = f"mutated/{draw(st.integers(0, 11))}.bin"
        elif kind == "traversal":
            blob = draw(st.sampled_from(TRAVERSALS))
        else:
            blob = draw(cells)
        row = [label, blob]
        if kind == "short":
            row = [label]
        elif kind == "long":
            row = [label, blob, draw(cells), draw(cells)]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory) -> Path:
    """Four good WAVs and twelve mutated files (fixed, so the pipeline run sees real broken audio)."""
    root = tmp_path_factory.mktemp("hostile")
    audio = root / "audio"
    (audio / "good").mkdir(parents=True)
    (audio / "mutated").mkdir()
    for index in range(4):
        sf.write(audio / "good" / f"{index}.wav", tone(16000, 0.05, 1 + index % 2, seed=index), 16000)
    rng = np.random.default_rng(11)
    files = list(seeds().values())
    for index in range(12):
        data = bytearray(files[index % len(files)])
        for _ in range(3):
            data[int(rng.integers(0, min(len(data), 96)))] = int(rng.integers(0, 256))
        (audio / "mutated" / f"{index}.bin").write_bytes(bytes(data[: int(rng.integers(8, len(data) + 1))]))
    (root / "outside.wav").write_bytes((audio / "good" / "0.wav").read_bytes())
    return root


# A pipeline run per example: few examples, and no shrinking (minutes of reruns); a failure prints its rows.
@settings(
    max_examples=3,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=hostile_rows(), crlf=st.booleans())
def test_hostile_manifest_every_row_is_written_or_rejected_with_a_reason(hostile_root, tmp_path, rows, crlf):
    from audioflow.beam.job.launch import run_ingest  # here, not above: the decode worker imports this module

    manifest = tmp_path / f"m-{os.urandom(4).hex()}.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["Label", "Blob Name"])
    writer.writerows(rows)
    manifest.write_text(buffer.getvalue(), encoding="utf-8")
    output = tmp_path / f"out-{manifest.stem}"
    info = run_ingest(
        build_ingest_options(
            manifest=str(manifest),
            audio_root=str(hostile_root / "audio"),
            output=str(output),
            splits="train=0.5,test=0.5",
            max_rejected_fraction=1.0,
            label_type="int",
        ),
        [],
    )
    with manifest.open("rb") as stream:
        parsed = list(iter_manifest_rows(stream))
    # JSON Lines are split on "\n" only: a blob may hold U+2028 or U+0085, which str.splitlines() splits on.
    rejected = [json.loads(line) for line in (output / "rejected.jsonl").read_text().split("\n") if line]
    written: Counter = Counter()
    for path in output.iterdir():
        if parse_shard_name(path.name):
            with path.open("rb") as stream:
                written.update(decode_example(record).blob for record in iter_records(stream, path.name))
    rejected_lines = Counter(r["line"] for r in rejected)
    assert max(rejected_lines.values(), default=1) == 1, "a row was rejected twice"
    assert set(rejected_lines) <= {row.line for row in parsed}
    kept = Counter(row.blob for row in parsed if row.line not in rejected_lines)
    assert written == kept, "every row not rejected is written exactly once"
    for rejection in rejected:
        assert rejection["reason"] in REJECT_REASONS
        assert f"line {rejection['line']}" in rejection["message"]
    assert info.manifest["num_rows"] == len(parsed)
    assert info.num_examples + info.rejected["num_rows"] == len(parsed)
    assert not any("outside" in blob or "passwd" in blob for blob in written), "nothing from outside the root"
