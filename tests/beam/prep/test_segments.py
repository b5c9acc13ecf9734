"""Segments and windows on real long files with tone bursts at known offsets, in WAV, FLAC, OGG and MP3.

WAV, FLAC and OGG segments are bit-exact with `soundfile.read(start=, stop=)`. MP3 is compared with a
decode from the start (soundfile's own seek gives wrong first frames) and must be within one int16
step; window counts follow lhotse's rule for every --last-window mode.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from audioflow.beam.prep.audio import AudioOptions, AudioRejected
from audioflow.beam.prep.segments import (
    MP3_PREROLL_FRAMES,
    Span,
    SpanError,
    WindowSpec,
    decode_span,
    expected_window_count,
    iter_windows,
    parse_span,
)

from audio_files import LONG_FORMATS, dominant_hz, write_audio, write_bursts

RATE = 16000
SECONDS = 40.0
BURSTS = [(2.0, 3.0, 440.0), (11.5, 12.25, 1000.0), (25.0, 27.5, 2000.0), (38.0, 39.0, 3000.0)]
OPTIONS = AudioOptions(max_duration=None)


@pytest.fixture(scope="module")
def long_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("long")
    return {
        ext: write_bursts(folder / f"bursts.{ext}", RATE, SECONDS, BURSTS, subtype) for ext, subtype in LONG_FORMATS
    }


def reference(path: Path, start: int, stop: int) -> np.ndarray:
    """What a segment must hold: soundfile's own read of [start, stop), or for MP3 a decode from the start."""
    if path.suffix == ".mp3":
        return sf.read(path, dtype="int16", always_2d=True)[0][start:stop]
    return sf.read(path, start=start, stop=stop, dtype="int16", always_2d=True)[0]


def test_spans_parse_exactly_and_refuse_what_is_not_a_span():
    assert parse_span(None, None) is None and parse_span("", " ") is None  # whole file
    span = parse_span("1.50", "2.25")
    assert span == Span(Fraction(3, 2), Fraction(9, 4)) and span.key() == parse_span("1.5", "2.250").key()
    assert span.frames(44100) == (66150, 99225)
    assert parse_span("0.1", "0.3").frames(16000) == (1600, 4800)  # decimal text, no float drift
    for start, end, message in [
        ("abc", "2", "start 'abc' is not a number"),
        ("1", "nan", "end 'nan' is not a number"),
        ("-1", "2", "start '-1' is negative"),
        ("3", "3", "end '3' is not after start '3'"),
        ("3", "1", "is not after"),
        ("1", "", "end '' is not a number"),
    ]:
        with pytest.raises(SpanError, match=message):
            parse_span(start, end)


@pytest.mark.parametrize(("extension", "subtype"), LONG_FORMATS)
def test_segments_hold_exactly_their_span(long_files, extension, subtype):
    path = long_files[extension]
    for start_s, end_s, hz in BURSTS:
        decoded = decode_span(str(path), OPTIONS, parse_span(str(start_s), str(end_s)), name=path.name)
        assert (decoded.start, decoded.end) == (round(start_s * RATE), round(end_s * RATE))
        assert decoded.audio.source_sample_rate == RATE and not decoded.clipped
        expected = reference(path, decoded.start, decoded.end)
        difference = np.abs(decoded.audio.samples.astype(int) - expected.astype(int)).max()
        if extension == "mp3":
            assert difference <= 1, f"MP3 segment {start_s}-{end_s} s differs by {difference}"
        else:
            assert difference == 0
        assert abs(dominant_hz(decoded.audio.samples, RATE) - hz) < 10  # the burst placed there


def test_mp3_needs_its_pre_roll(long_files):
    """Without the pre-roll, libsndfile's seek gives wrong first frames; the documented tolerance needs it."""
    path = long_files["mp3"]
    start = round(11.5 * RATE)
    with sf.SoundFile(path) as audio_file:
        audio_file.seek(start)
        naive = audio_file.read(4000, dtype="int16", always_2d=True)
    full = sf.read(path, dtype="int16", always_2d=True)[0][start : start + 4000]
    assert np.abs(naive.astype(int) - full.astype(int)).max() > 100
    assert MP3_PREROLL_FRAMES >= 2 * 1152


def test_an_end_past_the_file_ends_with_the_file_and_a_start_past_it_is_refused(long_files):
    decoded = decode_span(str(long_files["flac"]), OPTIONS, parse_span("39", "45"))
    assert decoded.clipped and (decoded.start, decoded.end) == (39 * RATE, 40 * RATE)
    assert decoded.audio.num_frames == RATE
    for start in ("40", "41"):
        with pytest.raises(AudioRejected, match="at or past the end of the file") as raised:
            decode_span(str(long_files["flac"]), OPTIONS, parse_span(start, "50"))
        assert raised.value.reason == "bad_segment"


def test_segment_limits_are_the_examples_and_the_sources(long_files):
    path = str(long_files["wav"])
    with pytest.raises(AudioRejected, match="over --max-duration 1 s") as raised:
        decode_span(path, AudioOptions(max_duration=1.0), parse_span("10", "12"))
    assert raised.value.reason == "too_long"
    decoded = decode_span(path, AudioOptions(max_duration=1.0), parse_span("10", "11"))  # the file is 40 s
    assert decoded.audio.num_frames == RATE
    with pytest.raises(AudioRejected, match="over --max-source-duration 30 s"):
        decode_span(path, OPTIONS, parse_span("1", "2"), max_source_duration=30)


def test_segments_resample_and_downmix_like_whole_files(tmp_path):
    path = write_audio(tmp_path / "stereo.flac", rate=44100, seconds=3.0, channels=2)
    options = AudioOptions(sample_rate=16000, mono=True, max_duration=None)
    decoded = decode_span(str(path), options, parse_span("1", "2"))
    assert decoded.audio.samples.shape == (16000, 1) and decoded.audio.sample_rate == 16000
    assert (decoded.start, decoded.end, decoded.audio.source_sample_rate) == (44100, 88200, 44100)


def window_count(num_frames: int, window: int, hop: int, last: str) -> int:
    """lhotse's rule, written independently of the code under test: full windows every hop while they
    fit; then one shorter window at the next hop unless the last full one reached the end."""
    full = 0
    while full * hop + window <= num_frames:
        full += 1
    reached = (full - 1) * hop + window if full else 0
    partial = last != "drop" and full * hop < num_frames and reached < num_frames
    return full + partial


def test_the_lhotse_example():
    """5.9 s, 3 s windows, 1 s hop: windows at 0, 1, 2 s and a last partial one at 3 s unless dropped."""
    for last, count in (("keep", 4), ("pad", 4), ("drop", 3)):
        assert window_count(59, 30, 10, last) == count
        assert expected_window_count(59, WindowSpec(3.0, 1.0, last), 10) == count


@settings(max_examples=60, deadline=None)
@given(
    num_frames=st.integers(1, 3000),
    window=st.integers(1, 700),
    hop=st.integers(1, 900),
    last=st.sampled_from(["pad", "drop", "keep"]),
)
def test_window_counts_match_the_formula(tmp_path_factory, num_frames, window, hop, last):
    path = tmp_path_factory.getbasetemp() / f"w{num_frames}.wav"
    if not path.exists():
        sf.write(path, np.random.default_rng(num_frames).uniform(-0.5, 0.5, num_frames), 1000, subtype="PCM_16")
    spec = WindowSpec(window / 1000, hop / 1000, last)
    expected = window_count(num_frames, window, hop, last)
    assert expected_window_count(num_frames, spec, 1000) == expected
    try:
        windows = list(iter_windows(str(path), OPTIONS, spec))
    except AudioRejected as error:
        assert error.reason == "shorter_than_window" and expected == 0
        return
    assert len(windows) == expected
    source = sf.read(path, dtype="int16", always_2d=True)[0]
    for index, got in enumerate(windows):
        assert got.offset == got.start == index * hop
        assert np.array_equal(got.samples[: got.end - got.start], source[got.start : got.end])
        if last == "pad" or got.end - got.start == window:
            assert got.samples.shape[0] == window
            assert not got.samples[got.end - got.start :].any()  # zero padding
        else:
            assert last == "keep" and got.samples.shape[0] == got.end - got.start < window


@pytest.mark.parametrize(("extension", "subtype"), LONG_FORMATS)
def test_windows_of_a_segment_stream_the_right_samples(long_files, extension, subtype):
    path = long_files[extension]
    span = parse_span("11", "13.3")
    windows = list(iter_windows(str(path), OPTIONS, WindowSpec(1.0, 0.5, "keep"), span=span))
    assert [w.offset for w in windows] == [0, 8000, 16000, 24000]  # ceil((2.3 - 1) / 0.5) + 1
    assert [w.end - w.start for w in windows] == [16000] * 3 + [12800]
    full = sf.read(path, dtype="int16", always_2d=True)[0]
    for window in windows:
        assert window.start == 11 * RATE + window.offset
        difference = np.abs(window.samples.astype(int) - full[window.start : window.end].astype(int)).max()
        assert difference <= (1 if extension == "mp3" else 0)
    assert abs(dominant_hz(windows[1].samples, RATE) - 1000) < 10  # 11.5-12.5 s holds the 1 kHz burst


def test_a_file_truncated_part_way_fails_after_some_windows(tmp_path):
    path = write_audio(tmp_path / "long.wav", rate=8000, seconds=60.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still promises 60 s
    windows = iter_windows(str(path), OPTIONS, WindowSpec(1.0))
    with pytest.raises(AudioRejected, match="truncated") as raised:
        list(windows)
    assert raised.value.reason == "unreadable"


def test_drop_refuses_a_source_shorter_than_one_window(tmp_path):
    path = write_audio(tmp_path / "short.wav", rate=8000, seconds=0.5)
    with pytest.raises(AudioRejected, match="shorter than one 1 s window") as raised:
        list(iter_windows(str(path), OPTIONS, WindowSpec(1.0, last="drop")))
    assert raised.value.reason == "shorter_than_window"
    [padded] = iter_windows(str(path), OPTIONS, WindowSpec(1.0, last="pad"))
    assert padded.samples.shape == (8000, 1) and (padded.start, padded.end) == (0, 4000)


def test_resampled_windows_all_have_the_window_length(tmp_path):
    path = write_audio(tmp_path / "cd.flac", rate=44100, seconds=3.3, channels=2)
    options = AudioOptions(sample_rate=16000, mono=True, max_duration=None)
    windows = list(iter_windows(str(path), options, WindowSpec(1.0, last="pad")))
    assert [w.samples.shape for w in windows] == [(16000, 1)] * 4
    assert [(w.start, w.end) for w in windows][-1] == (3 * 44100, round(3.3 * 44100))
