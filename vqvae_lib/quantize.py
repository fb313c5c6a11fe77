"""The vector quantiser of VQ-VAE (van den Oord et al. 2017, Sec. 3.1-3.2; Chapter 04)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .nearest import nearest_code


@dataclass
class QuantizerOutput:
    """What a quantiser returns. Shapes for ``z_e: (B, D, H, W)``."""

    z_q: torch.Tensor  # (B, D, H, W): nearest codes forward, identity gradient to z_e backward
    loss: torch.Tensor  # scalar: codebook term + beta * commitment term
    indices: torch.Tensor  # (B, H, W) int64
    perplexity: torch.Tensor  # scalar: exp(entropy of the batch's code usage)


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """``exp(-sum_k p_k log p_k)`` for the code frequencies ``p_k`` in ``indices``.

    It is the number of equally used codes that would give the same entropy: 1 when every vector
    takes the same code, ``num_codes`` when all are used equally.
    """
    p = torch.bincount(indices.flatten(), minlength=num_codes).float() / indices.numel()
    return torch.exp(-torch.sum(p * torch.log(p.clamp(min=1e-12))))


def check_z_e(z_e: torch.Tensor, code_dim: int) -> None:
    """Raise a ValueError a student can act on unless ``z_e`` is a float (B, code_dim, H, W) tensor."""
    if not torch.is_tensor(z_e) or not z_e.is_floating_point():
        kind = z_e.dtype if torch.is_tensor(z_e) else type(z_e).__name__
        raise ValueError(f"expected z_e to be a floating-point tensor of shape (B, {code_dim}, H, W), got {kind}")
    if z_e.dim() != 4 or z_e.shape[1] != code_dim:
        raise ValueError(f"expected z_e of shape (B, {code_dim}, H, W) with code_dim={code_dim} channels, "
                         f"got {tuple(z_e.shape)}")


class VectorQuantizer(nn.Module):
    """Replace each encoder vector z_e by its nearest codebook entry (paper eq. 1-2).

    The forward value is the selected code; the gradient passes straight through to z_e (eq. 3's
    estimator, Chapter 04 eq. 4.3). ``loss`` is the codebook term plus ``beta`` times the
    commitment term, each a mean over all elements as in Sonnet:
    ``mean((e - sg[z_e])^2) + beta * mean((z_e - sg[e])^2)`` (paper eq. 3, Chapter 04 eq. 4.4).
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25):
        super().__init__()
        if num_codes < 1 or code_dim < 1 or beta < 0:
            raise ValueError(f"need num_codes >= 1, code_dim >= 1, beta >= 0; got {num_codes}, {code_dim}, {beta}")
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        # Sonnet's "uniform unit scaling": codes of about unit norm. The tiny +-1/K init of many
        # PyTorch ports collapses to a few codes at our budgets (Chapter 05 compares the two).
        limit = (3.0 / code_dim) ** 0.5
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-limit, limit))

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        check_z_e(z_e, self.code_dim)
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (N, D), N = B*H*W
        indices = nearest_code(flat, self.codebook)
        e = self.codebook.index_select(0, indices)  # its backward is the codebook's index_add
        codebook_loss = F.mse_loss(e, flat.detach())
        commitment_loss = F.mse_loss(flat, e.detach())
        z_q = flat + (e - flat).detach()  # straight-through: value e, gradient identity to z_e
        return QuantizerOutput(
            z_q=z_q.view(b, h, w, d).permute(0, 3, 1, 2),
            loss=codebook_loss + self.beta * commitment_loss,
            indices=indices.view(b, h, w),
            perplexity=perplexity(indices, self.num_codes),
        )

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices: (B, H, W)`` as ``z_q: (B, D, H, W)`` (to decode a prior's samples)."""
        if indices.dtype != torch.int64 or indices.dim() != 3:
            raise ValueError(f"expected int64 indices of shape (B, H, W), got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise ValueError(f"indices must lie in 0..{self.num_codes - 1}")
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)
