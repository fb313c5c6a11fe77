"""Nearest-neighbour search against a codebook as one matrix product (Chapter 03, eq. 3.2).

``||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2``. The first term is the same for every code, so the
argmin needs only ``||e||^2 - 2 x.e``: one ``addmm`` producing an (N, K) matrix. The naive
``((x[:, None] - e[None]) ** 2).sum(-1)`` builds an (N, K, D) tensor first, D times the memory.
"""

from __future__ import annotations

import torch

from ..precision import at_least_fp32, autocast_off


def _scores(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``||e_k||^2 - 2 x_i.e_k`` as one ``addmm``: eq. (3.2) without the row constant ``||x_i||^2``.

    At least fp32, also under autocast: in fp16 the terms cancel badly and the argmin flips.
    """
    with autocast_off(x.device):
        dtype = torch.promote_types(at_least_fp32(x).dtype, at_least_fp32(codebook).dtype)
        x, codebook = x.to(dtype), codebook.to(dtype)
        return torch.addmm(codebook.pow(2).sum(1), x, codebook.t(), alpha=-2.0)


def squared_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """``||x_i - e_k||^2`` for ``x: (N, D)`` and ``codebook: (K, D)``, as an (N, K) matrix (eq. 3.2),
    in fp32 (fp64 for fp64 inputs)."""
    return _scores(x, codebook) + at_least_fp32(x).pow(2).sum(1, keepdim=True)


@torch.no_grad()
def nearest_code(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``x: (N, D)``; int64 of shape (N,).

    The argmin of eq. (3.2), in at least fp32 and with no autograd graph: the argmin has no gradient to
    give (Chapter 03, Section 3.3).
    """
    return _scores(x, codebook).argmin(dim=1)
