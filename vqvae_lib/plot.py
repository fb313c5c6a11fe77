"""Figures used more than once: image grids (``torchvision.utils.make_grid``) and training curves."""

from __future__ import annotations

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
