"""The report's pictures and sounds, each returned as a data URI so the page embeds it.

Plots are matplotlib figures rendered to PNG without a timestamp, so the same dataset gives the same
page byte for byte; example pictures are drawn as pixels because a page holds dozens of them.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import soundfile as sf
import soxr
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.ticker import MaxNLocator

from audioflow.beam.format import DatasetInfo
from audioflow.beam.tools.report.sample import Clip

__all__ = [
    "CLIP_MAX_RATE",
    "duration_overview_plot",
    "example_plot",
    "format_plot",
    "label_balance_plot",
    "label_duration_plot",
    "mel_spectrogram_db",
    "shard_size_plot",
    "wav_data_uri",
]

CLIP_MAX_RATE = 16000  # embedded clips above this rate are resampled to it (keeps the page small)
_SPLIT_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_ACCENT = "#4c72b0"


def _png_data_uri(figure: Figure) -> str:
    """The figure as a PNG data URI, without matplotlib's Software tag, so pages compare equal across versions."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def wav_data_uri(samples: np.ndarray, sample_rate: int) -> str:
    """16-bit mono WAV, resampled down to CLIP_MAX_RATE: about 32 kB per second of audio."""
    rate = sample_rate
    if rate > CLIP_MAX_RATE:
        samples, rate = soxr.resample(samples, rate, CLIP_MAX_RATE), CLIP_MAX_RATE
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plot_text(text: str, limit: int = 28) -> str:
    """Label text for matplotlib: shortened, with '$' escaped so it is never parsed as mathtext."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return short.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="tight")  # "constrained" clips small figures
    figure.set_facecolor("white")
    return figure


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)


def _mel_filters(n_fft: int, sample_rate: int, n_mels: int) -> np.ndarray:
    """Triangular mel filters [n_mels, n_fft // 2 + 1]: low tones (hums, voices) get their share of rows."""

    def mel(hz: np.ndarray | float) -> np.ndarray | float:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(0.0, mel(sample_rate / 2), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lower) / (center - lower), (upper - freqs) / (upper - center)))


def mel_spectrogram_db(samples: np.ndarray, sample_rate: int, n_mels: int = 48) -> np.ndarray:
    """Log-mel power [mel band, time] in dB relative to a full-scale sine (dBFS).

    An absolute scale (not relative to each clip's peak) makes a near-silent clip look dark, so
    examples can be compared with each other. The FFT is long enough (bins of at most ~20 Hz) that
    even the lowest mel bands hold a bin.
    """
    n_fft = 1 << math.ceil(math.log2(max(256, sample_rate / 20)))
    hop = n_fft // 4
    if samples.size < n_fft:
        samples = np.pad(samples, (0, n_fft - samples.size))
    window = np.hanning(n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop]
    power = (2.0 * np.abs(np.fft.rfft(frames * window, axis=1)) / window.sum()) ** 2
    mel_power = power @ _mel_filters(n_fft, sample_rate, n_mels).T
    return 10.0 * np.log10(np.maximum(mel_power, 1e-12)).T


def _waveform_pixels(samples: np.ndarray, width: int, height: int) -> np.ndarray:
    """A min/max waveform as a boolean [height, width] mask: each column spans its share of samples."""
    if samples.size < width:
        samples = np.repeat(samples, math.ceil(width / samples.size))
    starts = np.linspace(0, samples.size, width, endpoint=False).astype(int)
    scale = (height - 1) / 2.0
    top = np.round((1.0 - np.clip(np.maximum.reduceat(samples, starts), -1, 1)) * scale)
    bottom = np.round((1.0 - np.clip(np.minimum.reduceat(samples, starts), -1, 1)) * scale)
    rows = np.arange(height)[:, None]
    return (rows >= top) & (rows <= bottom)


def example_plot(clip: Clip, width: int = 300, wave_height: int = 48, spec_height: int = 100) -> str:
    """Waveform over log-mel spectrogram, 300×150 px: enough to tell a tone from noise or silence.

    Drawn as pixels (a matplotlib colormap, saved with imsave) rather than with axes: a report has
    one per clip shown (up to html.MAX_LABELS × examples_per_label), and axes cost far more to render.
    """
    picture = np.ones((wave_height + 2 + spec_height, width, 3))
    picture[:wave_height][_waveform_pixels(clip.samples, width, wave_height)] = to_rgb(_ACCENT)
    db = mel_spectrogram_db(clip.samples, clip.sample_rate)
    rows = np.linspace(db.shape[0] - 1, 0, spec_height).round().astype(int)  # low frequencies at the bottom
    columns = np.linspace(0, db.shape[1] - 1, width).round().astype(int)
    level = np.clip((db[rows][:, columns] + 100.0) / 100.0, 0.0, 1.0)  # -100 dBFS .. 0 dBFS
    picture[wave_height + 2 :] = colormaps["magma"](level)[..., :3]
    buffer = io.BytesIO()
    imsave(buffer, picture, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def duration_overview_plot(histogram: dict[str, int]) -> str:
    """dataset.json's exact whole-second duration histogram, as bars."""
    figure = _figure(5.0, 1.8)
    ax = figure.subplots()
    seconds = [int(key) for key in histogram]
    ax.bar(seconds, list(histogram.values()), width=0.9, align="edge", color=_ACCENT)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("duration (s, whole-second buckets)", fontsize=8)
    ax.set_ylabel("examples", fontsize=8)
    _style(ax)
    return _png_data_uri(figure)


def label_duration_plot(label: str, durations: list[float], edges: np.ndarray) -> str:
    """One small histogram; fixed margins (no layout pass), since there is one per shown label."""
    figure = Figure(figsize=(2.6, 1.6), dpi=100)
    figure.set_facecolor("white")
    figure.subplots_adjust(left=0.15, right=0.96, top=0.85, bottom=0.24)
    ax = figure.subplots()
    counts, _ = np.histogram(durations, bins=edges)
    ax.stairs(counts, edges, fill=True, color=_ACCENT)  # one artist, not a patch per bin
    ax.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.set_title(_plot_text(label), fontsize=9)
    ax.set_xlabel("seconds", fontsize=7)
    _style(ax)
    return _png_data_uri(figure)


def _split_legend(ax) -> None:
    """One row of split names above the plot, where it cannot hide a bar."""
    handles, names = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(names), fontsize=7, frameon=False)


def label_balance_plot(info: DatasetInfo, labels: list[str]) -> str:
    """Horizontal bars per label, stacked by split: imbalance across labels and splits at a glance."""
    figure = _figure(5.0, 0.9 + 0.22 * len(labels))
    ax = figure.subplots()
    left = np.zeros(len(labels))
    for index, (split, split_info) in enumerate(info.splits.items()):
        counts = np.array([split_info.label_counts.get(label, 0) for label in labels], dtype=float)
        color = _SPLIT_COLORS[index % len(_SPLIT_COLORS)]
        ax.barh(range(len(labels)), counts, left=left, color=color, label=split)
        left += counts
    ax.set_yticks(range(len(labels)), [_plot_text(label) for label in labels])
    ax.invert_yaxis()
    ax.set_xlabel("examples", fontsize=8)
    _style(ax)
    _split_legend(ax)
    return _png_data_uri(figure)


def shard_size_plot(info: DatasetInfo) -> str:
    """Bars per shard (a histogram per split beyond 200 shards), colored by split: shows stragglers."""
    figure = _figure(5.0, 2.0)
    ax = figure.subplots()
    num_shards = sum(len(split.files) for split in info.splits.values())
    position = 0
    for index, (split, split_info) in enumerate(info.splits.items()):
        sizes = [shard.num_bytes / 2**20 for shard in split_info.files]
        color = _SPLIT_COLORS[index % len(_SPLIT_COLORS)]
        if num_shards <= 200:
            ax.bar(range(position, position + len(sizes)), sizes, color=color, label=split)
            position += len(sizes)
        elif sizes:
            ax.hist(sizes, bins=30, histtype="step", color=color, label=split)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("shard (in dataset.json order)" if num_shards <= 200 else "MiB", fontsize=8)
    ax.set_ylabel("MiB" if num_shards <= 200 else "shards", fontsize=8)
    _style(ax)
    _split_legend(ax)
    return _png_data_uri(figure)


def _bars(ax, names: list[str], values: list[int], color: str, title: str) -> None:
    ax.bar(range(len(values)), values, color=color)
    ax.set_xticks(range(len(values)), names)
    ax.set_title(title, fontsize=9)
    _style(ax)


def format_plot(stats: dict) -> str:
    """Sample rates and channel counts side by side (exact, from dataset.json)."""
    figure = _figure(5.0, 1.8)
    rate_ax, channel_ax = figure.subplots(1, 2, width_ratios=[3, 1])
    rates = stats.get("sample_rates", {})
    channels = stats.get("channels", {})
    _bars(rate_ax, [f"{int(rate) / 1000:g} kHz" for rate in rates], list(rates.values()), _ACCENT, "sample rate")
    _bars(channel_ax, list(channels), list(channels.values()), _SPLIT_COLORS[1], "channels")
    rate_ax.set_ylabel("examples", fontsize=8)
    return _png_data_uri(figure)
