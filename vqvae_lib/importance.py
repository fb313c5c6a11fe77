"""The importance-weighted bound of Burda et al. (2016) for the Gaussian VAE (Chapter 07, eq. 7.6).

    -log p(x) <= -log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),    z_i ~ q(z | x),

in expectation. k = 1 is the ELBO; the bound tightens as k grows and reaches -log p(x) as k -> inf.
It needs densities, not only a KL, so it is written for models with ``encode(x) -> (mu, logvar)`` and
``decode(z) -> (mean, log_scale)`` of the discretised logistic: ``vqvae_lib.vae.GaussianVAE``.
"""

from __future__ import annotations

import math

import torch

from .likelihood import discretized_logistic_nll

_LOG_2PI = math.log(2.0 * math.pi)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``log N(z; mu, exp(logvar))`` summed over every dimension but the first."""
    return (-0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp())).flatten(1).sum(1)


@torch.no_grad()
def importance_weighted_nll(
    model, x: torch.Tensor, k: int, chunk: int = 10, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. (7.6): the k-sample bound on ``-log p(x)`` of each image, in nats, shape ``(B,)``.

    Samples are drawn ``chunk`` at a time to bound memory, from ``generator`` (on ``x``'s device)
    or else the global RNG.
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"need k >= 1 and chunk >= 1, got k={k}, chunk={chunk}")
    mu, logvar = (t.float() for t in model.encode(x))
    log_weights = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        z = mu + torch.exp(0.5 * logvar) * torch.randn((n, *mu.shape), device=mu.device, generator=generator)
        z = z.flatten(0, 1)
        mean, log_scale = model.decode(z)
        log_px = -discretized_logistic_nll(x.repeat(n, 1, 1, 1), mean, log_scale)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = _log_normal(z, mu.repeat(n, 1, 1, 1), logvar.repeat(n, 1, 1, 1))
        log_weights.append((log_px + log_pz - log_qz).view(n, len(x)))
    log_weights = torch.cat(log_weights)
    return -(torch.logsumexp(log_weights, dim=0) - math.log(k))
