"""Decoding: bit-exact with soundfile for every claimed format; limits from the header; clear reasons."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from audioflow.beam.prep.audio import AudioOptions, AudioRejected, decode_audio

from audio_files import FORMATS, expected_int16, write_audio, write_corrupt_files


@pytest.mark.parametrize(("extension", "subtype"), FORMATS)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sample_format", ["int16", "float32"])
def test_decode_is_bit_exact_with_soundfile(tmp_path, extension, subtype, channels, sample_format):
    path = write_audio(tmp_path / f"a.{extension}", rate=22050, channels=channels, subtype=subtype)
    decoded = decode_audio(str(path), AudioOptions(sample_format=sample_format))
    expected, rate = sf.read(path, dtype=sample_format, always_2d=True)
    if sample_format == "int16":
        expected = expected_int16(path)
        assert np.abs(expected).max() > 10000  # the tone is loud (libsndfile alone gives floats as near silence)
    assert decoded.sample_rate == rate == 22050
    assert decoded.samples.dtype == np.dtype("<i2" if sample_format == "int16" else "<f4")
    assert decoded.samples.tobytes() == expected.tobytes()
    # bytes input (how remote files arrive) decodes identically
    assert (
        decode_audio(path.read_bytes(), AudioOptions(sample_format=sample_format)).samples.tobytes()
        == expected.tobytes()
    )


def test_resample_and_downmix(tmp_path):
    path = write_audio(tmp_path / "a.wav", rate=44100, seconds=1.0, channels=2, subtype="FLOAT")
    decoded = decode_audio(str(path), AudioOptions(sample_format="float32", sample_rate=16000, mono=True))
    source, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = soxr.resample(source.mean(axis=1, keepdims=True), 44100, 16000, quality="HQ")
    assert decoded.sample_rate == 16000 and decoded.source_sample_rate == 44100
    assert decoded.samples.shape == (16000, 1)
    np.testing.assert_allclose(decoded.samples, expected, atol=1e-6)
    as_int = decode_audio(str(path), AudioOptions(sample_rate=16000, mono=True))
    np.testing.assert_array_equal(as_int.samples, np.clip(np.round(expected * 32768), -32768, 32767).astype("<i2"))


def test_mono_option_leaves_mono_files_bit_exact(tmp_path):
    path = write_audio(tmp_path / "a.wav", channels=1)
    assert (
        decode_audio(str(path), AudioOptions(mono=True)).samples.tobytes() == sf.read(path, dtype="int16")[0].tobytes()
    )


def test_too_long_is_decided_from_the_header(tmp_path):
    path = write_audio(tmp_path / "a.wav", seconds=3.0)
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(path), AudioOptions(max_duration=2.0), name="a.wav")
    assert raised.value.reason == "too_long" and "3.0 s" in raised.value.message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated_header", "unreadable"),
        ("truncated_data", "unreadable"),
        ("zero_bytes", "unreadable"),
        ("text_named_wav", "unreadable"),
        ("random_bytes", "unreadable"),
    ],
)
def test_corrupt_files_are_rejected_with_a_reason(tmp_path, name, reason):
    path = write_corrupt_files(tmp_path)[name]
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(path), AudioOptions(), name=path.name)
    assert raised.value.reason == reason
    assert path.name in raised.value.message


def test_empty_and_non_finite_audio(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(tmp_path / "empty.wav"), AudioOptions())
    assert raised.value.reason == "empty_audio"
    sf.write(tmp_path / "nan.wav", np.array([[0.1], [np.nan]], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(tmp_path / "nan.wav"), AudioOptions(sample_format="float32"))
    assert raised.value.reason == "invalid_samples"


@pytest.mark.parametrize(("extension", "subtype"), FORMATS)
def test_heavy_marks_codecs_and_resampling(tmp_path, extension, subtype):
    """WriteShards decodes plain PCM on its own thread and anything heavy on the pool (AudioLoader, job/load.py)."""
    path = write_audio(tmp_path / f"a.{extension}", rate=16000, subtype=subtype)
    plain = extension == "wav"
    assert decode_audio(str(path), AudioOptions()).heavy is not plain
    assert decode_audio(str(path), AudioOptions(mono=True)).heavy is not plain  # downmixing is numpy, not a codec
    assert decode_audio(str(path), AudioOptions(sample_rate=8000)).heavy
