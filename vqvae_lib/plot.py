"""Figures used more than once: image grids (``torchvision.utils.make_grid``), training curves, and for
Chapter 08 log-mel spectrograms and tables of audio players."""

from __future__ import annotations

import base64
import html
import io
import wave

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None):
    """Show ``images: (B, C, H, W)`` with pixels in [0, 1] as one grid; returns the axes."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(0.6 * min(nrow, len(images)) + 1, 0.6 * ((len(images) - 1) // nrow + 1) + 0.6))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history, keys=("loss",), ax=None, scale: float = 1.0, ylabel: str = "nats / dim"):
    """Training curves (per step) with test points (per epoch) for each key; returns the axes.

    ``scale`` multiplies every value, e.g. ``1 / ln 2`` to plot bits/dim.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for key in keys:
        steps = [row["step"] for row in history.train]
        (line,) = ax.plot(steps, [row[key] * scale for row in history.train], lw=0.8, alpha=0.8, label=f"train {key}")
        if history.test:
            ax.plot(
                [row["step"] for row in history.test],
                [row[key] * scale for row in history.test],
                "o-",
                color=line.get_color(),
                label=f"test {key}",
            )
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def show_log_mel(features: torch.Tensor, ax=None, title: str | None = None, frames_per_second: float = 100.0):
    """Show one log-mel spectrogram ``(n_mels, T)`` as an image, time across, low bands at the bottom."""
    if not torch.is_tensor(features) or features.dim() != 2:
        got = tuple(features.shape) if torch.is_tensor(features) else type(features).__name__
        raise ValueError(f"expected one log-mel spectrogram of shape (n_mels, T), got {got}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 2))
    n_mels, frames = features.shape
    ax.imshow(features.detach().float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma",
              extent=(0, frames / frames_per_second, 0, n_mels), interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def wav_bytes(waveform: torch.Tensor, sample_rate: int) -> bytes:
    """A mono 16-bit WAV file of ``waveform: (L,)``, scaled so that its peak is 0.9 (silence stays silent)."""
    if not torch.is_tensor(waveform) or waveform.dim() != 1 or len(waveform) == 0 or sample_rate < 1:
        got = tuple(waveform.shape) if torch.is_tensor(waveform) else type(waveform).__name__
        raise ValueError(f"expected a non-empty waveform of shape (L,) and a positive sample rate, got {got}, {sample_rate}")
    x = waveform.detach().double().cpu()
    peak = x.abs().max().item()
    x = x * (0.9 / peak) if peak > 0 else x
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes((x * 32767).round().short().numpy().astype("<i2").tobytes())
    return buffer.getvalue()


class Players:
    """A table of audio players, one row per entry of ``rows`` (label -> waveforms, one per column).

    Jupyter shows it through ``_repr_html_``: each cell is an ``<audio>`` element whose WAV file is
    inlined as a ``data:`` URI, so the players work in JupyterLab, in Colab and on the static site,
    and nothing is fetched from anywhere.
    """

    def __init__(self, rows: dict[str, list[torch.Tensor]], columns: list[str], sample_rate: int):
        for label, clips in rows.items():
            if len(clips) != len(columns):
                raise ValueError(f"row {label!r} has {len(clips)} clips for {len(columns)} columns")
        self.rows, self.columns, self.sample_rate = rows, list(columns), sample_rate

    def _player(self, clip: torch.Tensor) -> str:
        data = base64.b64encode(wav_bytes(clip, self.sample_rate)).decode("ascii")
        return f'<audio controls preload="none" style="width: 10em" src="data:audio/wav;base64,{data}"></audio>'

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *self.columns])
        body = "".join(f"<tr><th>{html.escape(label)}</th>" + "".join(f"<td>{self._player(c)}</td>" for c in clips)
                       + "</tr>" for label, clips in self.rows.items())
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
