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

LOG_SCALE_MIN = -7.0
LN2 = math.log(2.0)


def _to_unit_interval(x: torch.Tensor) -> torch.Tensor:
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


def _log_sigmoid_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``log(sigmoid(a) - sigmoid(b))`` for ``a > b``, without cancellation.

    In the right tail both sigmoids are close to 1 and their difference cancels; by symmetry,
    ``sigmoid(a) - sigmoid(b) = sigmoid(-b) - sigmoid(-a)`` moves the pair to the left tail,
    where the difference is taken in log space.
    """
    flip = (a + b) > 0
    hi, lo = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi, log_lo = F.logsigmoid(hi), F.logsigmoid(lo)
    return log_hi + _log1mexp(log_lo - log_hi)


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log P(x)`` in nats, for pixels ``x`` in [0, 1] (values k/255): Chapter 01, eq. (1.8).

    ``P(x) = sigmoid((y + 1/255 - mean)/s) - sigmoid((y - 1/255 - mean)/s)`` with ``y = 2x - 1``
    and ``s = exp(log_scale)``; the bin of k = 0 extends to -inf and that of k = 255 to +inf.
    Computed in fp32 whatever the autocast dtype, and in log space, so that bins far in a tail
    keep their exact (tiny) mass instead of a density approximation.
    """
    x, mean, log_scale = x.float(), mean.float(), log_scale.float().clamp(min=LOG_SCALE_MIN)
    centered = _to_unit_interval(x) - mean
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (centered + 1.0 / 255.0)
    minus = inv_s * (centered - 1.0 / 255.0)
    k = torch.round(x * 255.0)
    return torch.where(
        k <= 0,
        F.logsigmoid(plus),  # log sigmoid(plus): everything below the first bin's upper edge
        torch.where(k >= 255, F.logsigmoid(-minus), _log_sigmoid_difference(plus, minus)),
    )


def discretized_logistic_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """``-log P(x)`` per image in nats, ``(B,)``: eq. (1.8) summed over every pixel value of each image."""
    return -discretized_logistic_log_prob(x, mean, log_scale).flatten(1).sum(1)


def discretized_logistic_mean(mean: torch.Tensor) -> torch.Tensor:
    """The logistic's centre mapped back to pixels in [0, 1] (for showing reconstructions)."""
    return ((mean.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def discretized_logistic_sample(mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Draw pixels k/255 from the discretised logistic by inverting its CDF."""
    mean, log_scale = mean.float(), log_scale.float().clamp(min=LOG_SCALE_MIN)
    u = torch.rand_like(mean).clamp(1e-5, 1.0 - 1e-5)
    y = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return (torch.round((y.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0) / 255.0)
