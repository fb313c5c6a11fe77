"""The precision of the book's numerics: what must not run in fp16 or bf16, whatever autocast says.

Distances to codes, the likelihood of a pixel and the KL cancel badly in half precision: these
helpers keep such computations in fp32, or in fp64 when a model runs in fp64.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

_AUTOCAST_DEVICES = ("cuda", "cpu")  # where torch >= 2.4 has autocast for certain


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in fp32, or in fp64 if it already is: the precision of every codebook computation."""
    return t if t.dtype == torch.float64 else t.float()


def autocast_off(device: torch.device):
    """A context that switches autocast off on ``device`` (a no-op where torch has no autocast)."""
    if device.type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type=device.type, enabled=False)
    return nullcontext()
