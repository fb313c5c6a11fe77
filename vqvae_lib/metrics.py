"""Bits per dimension: the book's one yardstick for comparing likelihood models."""

from __future__ import annotations

import math


def bits_per_dim(nats: float, num_dims: int = 1) -> float:
    """``nats / (num_dims * ln 2)``: a negative log-likelihood in nats as bits per dimension.

    With ``num_dims=1`` it converts a per-dimension value in nats (what the models' ``loss``
    returns) to bits. A uniform model of 8-bit pixels scores exactly 8 bits/dim.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    return float(nats) / (num_dims * math.log(2.0))
