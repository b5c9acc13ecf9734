"""Content hashes and signal checks on real files: what is equal, what is flagged, what the gates reject."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audioflow.beam.format.quality import flags_of
from audioflow.beam.prep.audio import AudioOptions, AudioRejected, decode_audio
from audioflow.beam.prep.quality import QualityChecks

from quality_corpus import recording, write_signal_corpus


def quality(path, **options):
    decoded = decode_audio(str(path), AudioOptions(**options), name=path.name)
    return decoded.quality, decoded


def flags(path, **options) -> list[str]:
    measured, decoded = quality(path, **options)
    return flags_of({**measured.to_json_dict(), "source_sample_rate": decoded.source_sample_rate})


@pytest.fixture(scope="module")
def signals(tmp_path_factory):
    return write_signal_corpus(tmp_path_factory.mktemp("signals"))


@pytest.mark.parametrize("sample_format", ["int16", "float32"])
def test_one_recording_as_wav_and_flac_hashes_equal(tmp_path, sample_format):
    samples = recording(1)
    sf.write(tmp_path / "a.wav", samples, 16000, subtype="PCM_16")
    sf.write(tmp_path / "a.flac", samples, 16000, subtype="PCM_16")
    sf.write(tmp_path / "other.wav", recording(2), 16000, subtype="PCM_16")
    wav, flac, other = (quality(tmp_path / n, sample_format=sample_format)[0] for n in ("a.wav", "a.flac", "other.wav"))
    assert wav.content_hash == flac.content_hash != other.content_hash
    assert len(wav.content_hash) == 32 and int(wav.content_hash, 16) >= 0


def test_the_hash_is_of_the_samples_before_resampling_and_downmixing(tmp_path):
    stereo = np.concatenate([recording(3), recording(4)], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 16000, subtype="PCM_16")
    plain, _ = quality(tmp_path / "s.wav")
    converted, decoded = quality(tmp_path / "s.wav", sample_rate=8000, mono=True)
    assert decoded.samples.shape[1] == 1 and decoded.sample_rate == 8000
    assert converted == plain  # every statistic, too: they describe the file, not the record


def test_the_hash_depends_on_rate_channels_and_sample_format(tmp_path):
    samples = recording(5)
    sf.write(tmp_path / "16k.wav", samples, 16000, subtype="PCM_16")
    sf.write(tmp_path / "22k.wav", samples, 22050, subtype="PCM_16")
    sf.write(tmp_path / "2ch.wav", samples.reshape(-1, 2), 16000, subtype="PCM_16")  # the same bytes, interleaved
    hashes = {quality(tmp_path / name)[0].content_hash for name in ("16k.wav", "22k.wav", "2ch.wav")}
    hashes.add(quality(tmp_path / "16k.wav", sample_format="float32")[0].content_hash)
    assert len(hashes) == 4


def test_without_resampling_the_hash_is_of_the_stored_samples(tmp_path):
    """A float WAV in an int16 dataset is quantised like the record: hashing the record's samples gives the same."""
    float_samples = recording(6).astype(np.float32) / 32768
    sf.write(tmp_path / "f.wav", float_samples, 16000, subtype="FLOAT")
    measured, decoded = quality(tmp_path / "f.wav")
    sf.write(tmp_path / "as-stored.wav", decoded.samples, 16000, subtype="PCM_16")
    assert quality(tmp_path / "as-stored.wav")[0].content_hash == measured.content_hash


def test_defects_are_measured_and_flagged_as_documented(signals):
    clean = quality(signals["clean"])[0]
    assert -21 < clean.rms_dbfs < -19 and clean.clipped_fraction == 0 and clean.bandwidth_hz > 20000
    assert flags(signals["clean"]) == []

    silent = quality(signals["silent"])[0]
    assert (silent.peak_dbfs, silent.rms_dbfs, silent.silence_fraction) == (-150.0, -150.0, 1.0)
    assert flags(signals["silent"]) == ["silent"]
    dithered = quality(signals["dithered_silence"])[0]
    assert dithered.peak_dbfs == pytest.approx(-90.31) and 0.2 < dithered.silence_fraction < 0.5
    assert flags(signals["dithered_silence"]) == ["silent"]

    clipped = quality(signals["clipped"])[0]
    assert clipped.peak_dbfs == 0.0 and 0.3 < clipped.clipped_fraction < 0.5
    assert "clipped" in flags(signals["clipped"])

    shifted = quality(signals["dc_shifted"])[0]
    assert shifted.dc_offset == pytest.approx(0.25, abs=0.005)
    assert flags(signals["dc_shifted"]) == ["dc_offset"]

    upsampled, decoded = quality(signals["upsampled"])
    assert decoded.source_sample_rate == 44100 and 3500 < upsampled.bandwidth_hz < 4500
    assert flags(signals["upsampled"]) == ["band_limited"]


def test_a_dc_offset_does_not_hide_the_bandwidth(tmp_path, signals):
    upsampled, _ = sf.read(signals["upsampled"], dtype="float32")
    sf.write(tmp_path / "shifted-upsampled.wav", upsampled + 0.3, 44100, subtype="PCM_16")
    assert flags(tmp_path / "shifted-upsampled.wav") == ["dc_offset", "band_limited"]


@pytest.mark.parametrize(
    ("name", "checks", "reason"),
    [
        ("silent", QualityChecks(reject_silent=True), "silent"),
        ("dithered_silence", QualityChecks(reject_silent=True), "silent"),
        ("clipped", QualityChecks(max_clipped_fraction=0.01), "clipped"),
        ("quiet", QualityChecks(min_rms_dbfs=-60), "too_quiet"),
    ],
)
def test_gates_reject_with_stable_reasons(signals, name, checks, reason):
    with pytest.raises(AudioRejected) as raised:
        decode_audio(str(signals[name]), AudioOptions(checks=checks), name=f"{name}.wav")
    assert raised.value.reason == reason and raised.value.message.startswith(f"{name}.wav: ")


def test_gates_let_the_others_through(signals):
    strict = QualityChecks(reject_silent=True, max_clipped_fraction=0.01, min_rms_dbfs=-60)
    for name in ("clean", "dc_shifted", "upsampled"):
        assert decode_audio(str(signals[name]), AudioOptions(checks=strict)).quality is not None


def test_checks_can_be_turned_off_only_without_gates():
    QualityChecks(enabled=False)
    with pytest.raises(ValueError, match="quality gates need the signal checks"):
        QualityChecks(enabled=False, reject_silent=True)
    with pytest.raises(ValueError, match="between 0 and 1"):
        QualityChecks(max_clipped_fraction=1.5)
    with pytest.raises(ValueError, match="at most 0 dBFS"):
        QualityChecks(min_rms_dbfs=3)


def test_without_checks_nothing_is_measured(signals):
    assert decode_audio(str(signals["clean"]), AudioOptions(checks=QualityChecks(enabled=False))).quality is None


def test_float_sources_far_beyond_full_scale_stay_finite(tmp_path):
    sf.write(tmp_path / "loud.wav", np.full(1000, 1e30, np.float32), 16000, subtype="FLOAT")
    measured, _ = quality(tmp_path / "loud.wav", sample_format="float32")
    assert measured.rms_dbfs == pytest.approx(600.0) and measured.clipped_fraction == 1.0
