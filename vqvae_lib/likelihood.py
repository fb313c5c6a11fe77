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


def _to_unit_interval(x: torch.Tensor) -> torch.Tensor:
    return x * 2.0 - 1.0


def discretized_logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Elementwise ``log P(x)`` in nats, for pixels ``x`` in [0, 1] (values k/255).

    ``P(x) = sigmoid((x + 1/255 - mean)/s) - sigmoid((x - 1/255 - mean)/s)`` on the [-1, 1] scale,
    with ``s = exp(log_scale)``, the lowest bin extended to -inf and the highest to +inf.
    Computed in fp32 whatever the autocast dtype: the difference of two sigmoids cancels badly
    in half precision.
    """
    x, mean, log_scale = x.float(), mean.float(), log_scale.float().clamp(min=LOG_SCALE_MIN)
    centered = _to_unit_interval(x) - mean
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (centered + 1.0 / 255.0)
    minus = inv_s * (centered - 1.0 / 255.0)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the bin of k = 0
    log_one_minus_cdf_minus = -F.softplus(minus)  # log(1 - sigmoid(minus)): the bin of k = 255
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    # For very sharp logistics the difference underflows; the density at the centre times the
    # bin width is then the accurate value.
    mid = inv_s * centered
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid)
    log_mid_bin = torch.where(
        cdf_delta > 1e-5,
        torch.log(cdf_delta.clamp(min=1e-12)),
        log_pdf_mid + math.log(2.0 / 255.0),
    )
    k = torch.round(x * 255.0)
    return torch.where(k <= 0, log_cdf_plus, torch.where(k >= 255, log_one_minus_cdf_minus, log_mid_bin))


def discretized_logistic_mean(mean: torch.Tensor) -> torch.Tensor:
    """The logistic's centre mapped back to pixels in [0, 1] (for showing reconstructions)."""
    return ((mean.float() + 1.0) / 2.0).clamp(0.0, 1.0)


def discretized_logistic_sample(mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Draw pixels k/255 from the discretised logistic by inverting its CDF."""
    mean, log_scale = mean.float(), log_scale.float().clamp(min=LOG_SCALE_MIN)
    u = torch.rand_like(mean).clamp(1e-5, 1.0 - 1e-5)
    y = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return (torch.round((y.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0) / 255.0)
