"""The report's pictures and sounds: a calibrated spectrogram, clips the page can play, and images
that come out the same byte for byte (so two reports of one dataset are identical files)."""

from __future__ import annotations

import base64
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from audioflow.beam.tools.report import Clip
from audioflow.beam.tools.report.plots import (
    CLIP_MAX_RATE,
    duration_overview_plot,
    example_plot,
    format_plot,
    label_balance_plot,
    mel_spectrogram_db,
    shard_size_plot,
    wav_data_uri,
)


def _sine(frequency: float, rate: int, seconds: float, amplitude: float = 1.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _png(uri: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix) :])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_mel_spectrogram_is_in_dbfs_with_the_tone_in_its_band():
    full = mel_spectrogram_db(_sine(1000, 16000, 1.0), 16000)
    half = mel_spectrogram_db(_sine(1000, 16000, 1.0, amplitude=0.5), 16000)
    assert full.shape[0] == 48
    assert abs(full.max()) < 1.5  # a full-scale sine is 0 dBFS, not "0 dB relative to its own peak"
    assert full.max() - half.max() == pytest.approx(6.02, abs=0.1)
    band = int(np.argmax(full.max(axis=1)))
    assert band == int(np.argmax(half.max(axis=1)))
    assert np.median(full[band]) > -3 and np.median(np.delete(full, [band - 1, band, band + 1], axis=0)) < -60
    assert mel_spectrogram_db(np.zeros(16000, np.float32), 16000).max() == pytest.approx(-120.0)
    assert mel_spectrogram_db(np.zeros(10, np.float32), 16000).shape == (48, 1)  # shorter than one FFT: padded


@pytest.mark.parametrize(("rate", "played_at"), [(8000, 8000), (16000, 16000), (44100, CLIP_MAX_RATE)])
def test_clips_play_as_16_bit_mono_wav_at_most_at_the_cap(rate, played_at):
    samples = _sine(440, rate, 0.5, amplitude=1.5)  # out of range: clipped, not wrapped
    uri = wav_data_uri(samples, rate)
    assert uri.startswith("data:audio/wav;base64,")
    wav = base64.b64decode(uri.split(",", 1)[1])
    audio, decoded_rate = sf.read(io.BytesIO(wav), dtype="float32")
    info = sf.info(io.BytesIO(wav))
    assert (decoded_rate, info.channels, info.subtype) == (played_at, 1, "PCM_16")
    assert audio.shape == (played_at // 2,)
    assert audio.max() <= 1.0 and audio.max() > 0.99


def test_example_picture_is_300_by_150_and_deterministic():
    clip = Clip("hum", "train", "hum.wav", 16000, 1, 0.5, _sine(220, 16000, 0.5, amplitude=0.5))
    first, second = _png(example_plot(clip)), _png(example_plot(clip))
    assert first == second
    assert struct.unpack(">II", first[16:24]) == (300, 150)
    short = Clip("blip", "train", "blip.wav", 16000, 1, 0.001, _sine(220, 16000, 0.001))  # fewer samples than pixels
    assert struct.unpack(">II", _png(example_plot(short))[16:24]) == (300, 150)


def test_figures_are_deterministic_and_carry_no_software_tag(dataset):
    _, info = dataset
    labels = list(info.label_names)
    figures = {
        "balance": lambda: label_balance_plot(info, labels),
        "shards": lambda: shard_size_plot(info),
        "formats": lambda: format_plot(info.stats),
        "durations": lambda: duration_overview_plot(info.stats["duration_seconds_histogram"]),
    }
    for name, draw in figures.items():
        first = _png(draw())
        assert first == _png(draw()), name
        assert b"Software" not in first and b"matplotlib" not in first, name
