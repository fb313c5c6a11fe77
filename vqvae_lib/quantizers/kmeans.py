"""Lloyd's k-means: the codebook that minimises the mean squared quantisation error (Chapter 03)."""

from __future__ import annotations

import torch

from ..precision import at_least_fp32
from .nearest import nearest_code


@torch.no_grad()
def kmeans_plus_plus(x: torch.Tensor, num_codes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre is a row of ``x`` drawn with
    probability proportional to its squared distance from the nearest centre chosen so far.

    Spreading the seeds this way avoids the classic failure of uniform seeding, two centres in one
    cluster and none in another. Returns ``(num_codes, D)`` rows of ``x``. The draws happen on
    ``x``'s device, so a ``generator`` must live there too (the package's one rule).
    """
    x = at_least_fp32(x)
    chosen = [int(torch.randint(len(x), (1,), generator=generator, device=x.device))]
    d2 = (x - x[chosen[0]]).pow(2).sum(1)
    for _ in range(1, num_codes):
        total = d2.sum()
        probs = d2 / total if total > 0 else torch.ones_like(d2)
        chosen.append(int(torch.multinomial(probs, 1, generator=generator)))
        d2 = torch.minimum(d2, (x - x[chosen[-1]]).pow(2).sum(1))
    return x[chosen].clone()


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    num_codes: int,
    iters: int = 20,
    generator: torch.Generator | None = None,
    init: torch.Tensor | None = None,
):
    """Fit ``num_codes`` centroids to ``x: (N, D)`` with Lloyd's algorithm (Lloyd 1982; eq. 3.1).

    Starts from ``init: (K, D)`` if given, else from k-means++ seeds (:func:`kmeans_plus_plus`);
    alternates the assignment step (nearest centroid) and the update step (mean of the assigned
    rows). A centroid that loses all its rows keeps its place. Returns ``(codebook: (K, D), indices: (N,), errors)`` where ``errors``
    lists the mean squared quantisation error after each assignment step (it never increases).
    """
    if x.dim() != 2:
        raise ValueError(f"expected x of shape (N, D), got {tuple(x.shape)}")
    if not 0 < num_codes <= len(x):
        raise ValueError(f"num_codes must be in 1..{len(x)} (the number of rows of x), got {num_codes}")
    x = at_least_fp32(x)
    if init is not None and init.shape != (num_codes, x.shape[1]):
        raise ValueError(f"expected init of shape ({num_codes}, {x.shape[1]}), got {tuple(init.shape)}")
    codebook = init.to(x.dtype).clone() if init is not None else kmeans_plus_plus(x, num_codes, generator)
    errors = []
    for _ in range(iters):
        indices = nearest_code(x, codebook)
        errors.append((x - codebook[indices]).pow(2).sum(1).mean().item())
        counts = torch.bincount(indices, minlength=num_codes)
        sums = torch.zeros_like(codebook).index_add_(0, indices, x)
        used = counts > 0
        codebook[used] = sums[used] / counts[used].unsqueeze(1)
    indices = nearest_code(x, codebook)
    return codebook, indices, errors
