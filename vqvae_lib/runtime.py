"""Seed, device and profile: the three facts that every chapter fixes in its first cell; and the
mode a model runs in (:func:`eval_mode`)."""

from __future__ import annotations

import os
import random
import sys
from contextlib import contextmanager

import numpy as np
import torch

PROFILES = ("full", "fast")


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (every CUDA device too), so that a chapter re-runs identically."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.cuda.manual_seed_all(seed)


def get_device() -> torch.device:
    """The best available device: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def get_profile() -> str:
    """``"fast"`` when the environment sets ``VQVAE_FAST=1``, otherwise ``"full"``.

    The fast profile runs the same code on little data and few steps (used by CI);
    the full profile is what a reader runs and what produced the stored outputs.
    """
    value = os.environ.get("VQVAE_FAST", "").strip().lower()
    if value in ("", "0", "false", "no"):
        return "full"
    if value in ("1", "true", "yes"):
        return "fast"
    raise ValueError(f"VQVAE_FAST must be 1 (fast profile) or 0/unset (full profile), got {value!r}")


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules


def setup(seed: int = 0) -> tuple[torch.device, str]:
    """Seed everything, pick the device, read the profile, and print them on one line."""
    set_seed(seed)
    device, profile = get_device(), get_profile()
    print(f"device={device.type} profile={profile} seed={seed}")
    return device, profile


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Run the block with ``model`` in eval mode, then restore its mode, even if the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
