"""The discretised logistic: a likelihood over 8-bit pixels (Salimans et al. 2017, eq. 2).

A continuous density on pixel values gives "bits/dim" that can go below zero and mean nothing.
Integrating a logistic over each of the 256 bins gives a true probability mass P(k) for every
8-bit value k, so ``-log2 P(x) / D`` is an honest code length in bits per dimension.

Pixels arrive in [0, 1] as k/255 (see ``vqvae_lib.data``); here they are mapped to [-1, 1],
where the bins have width 2/255, and the two end bins absorb the tails.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .precision import at_least_fp32

LOG_SCALE_MIN = -7.0
LN2 = math.log(2.0)
LOG_BIN_WIDTH = math.log(2.0 / 255.0)
TINY_WIDTH = 1e-30  # below it log(1 - exp(-w)) = log(w) - w/2 + ... is log(w) to every digit


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """Pixels ``k/255`` in [0, 1] -> ``2x - 1`` in [-1, 1], the scale every model of the book works on.

    The one place this map is written: encoders read images on this scale, and the discretised
    logistic's bins (width 2/255) are centred on it.
    """
    return x * 2.0 - 1.0


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(d))`` for ``d < 0``, accurate at both ends (Maechler 2012).

    Each branch gets an input clamped to its own domain, so the branch that ``where`` discards
    never produces an inf whose gradient would turn into NaN.
    """
    near_zero = d > -LN2
    return torch.where(
        near_zero,
        torch.log(-torch.expm1(d.clamp(min=-LN2, max=-1e-30))),
        torch.log1p(-torch.exp(d.clamp(max=-LN2))),
    )


def _log_sigmoid_difference(a: torch.Tensor, b: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``log(sigmoid(a) - sigmoid(b))`` for ``a = b + width``, ``width > 0``, without cancellation.

    ``sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(-(a - b)))``, so the log is
    ``logsigmoid(a) + logsigmoid(-b) + log(1 - exp(-width))``. Each term is accurate on its own; the
    bin width enters directly, never as the difference of two nearly equal numbers. (Subtracting the
    two sigmoids, or their logs, loses every digit once the logistic is much wider than a bin.)
    """
    return F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(-width)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log P(x)`` in nats, for pixels ``x`` in [0, 1] (values k/255): Chapter 01, eq. (1.8).

    ``P(x) = sigmoid((y + 1/255 - mean)/s) - sigmoid((y - 1/255 - mean)/s)`` with ``y = 2x - 1``
    and ``s = exp(log_scale)``; the bin of k = 0 extends to -inf and that of k = 255 to +inf.
    Computed in fp32 whatever the autocast dtype (fp64 if any input is fp64), and in log space, so
    that bins far in a tail keep their exact (tiny) mass instead of a density approximation.

    Supported range: every finite ``log_scale`` (values below ``LOG_SCALE_MIN`` are clamped to it),
    to the rounding of the working dtype, also where a bin's mass underflows and only its log is left.
    """
    dtype = torch.float64 if torch.float64 in (x.dtype, mean.dtype, log_scale.dtype) else torch.float32
    x, mean, log_scale = x.to(dtype), mean.to(dtype), log_scale.to(dtype).clamp(min=LOG_SCALE_MIN)
    centered = to_model_range(x) - mean
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (centered + 1.0 / 255.0)
    minus = inv_s * (centered - 1.0 / 255.0)
    width = inv_s * (2.0 / 255.0)
    inner = torch.where(
        width < TINY_WIDTH,  # log(1 - exp(-width)) = log(width), taken from log_scale: width itself underflows
        F.logsigmoid(plus) + F.logsigmoid(-minus) + (LOG_BIN_WIDTH - log_scale),
        _log_sigmoid_difference(plus, minus, width),
    )
    k = torch.round(x * 255.0)
    return torch.where(
        k <= 0,
        F.logsigmoid(plus),  # log sigmoid(plus): everything below the first bin's upper edge
        torch.where(k >= 255, F.logsigmoid(-minus), inner),
    )


def discretized_logistic_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """``-log P(x)`` per image in nats, ``(B,)``: eq. (1.8) summed over every pixel value of each image."""
    return -discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)


def discretized_logistic_mean(mean: torch.Tensor) -> torch.Tensor:
    """The logistic's centre mapped back to pixels in [0, 1] (for showing reconstructions)."""
    return ((at_least_fp32(mean) + 1.0) / 2.0).clamp(0.0, 1.0)


def discretized_logistic_sample(
    mean: torch.Tensor, log_scale: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw pixels k/255 from the discretised logistic by inverting its CDF."""
    mean, log_scale = at_least_fp32(mean), at_least_fp32(log_scale).clamp(min=LOG_SCALE_MIN)
    u = torch.rand(mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1.0 - 1e-5)
    y = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return (torch.round((y.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0) / 255.0)
