"""What every quantiser of the book is: the interface, its output, and the checks and counts they share.

A quantiser maps encoder outputs ``z_e: (B, D, H, W)`` to codes ``z_q`` of the same shape, each one of
``num_codes`` points named by an integer index. Chapter 04's VectorQuantizer is the first; Chapter 10's
FSQ, LFQ and residual VQ have the same interface, so a VQ-VAE, a prior and the metrics take any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class QuantizerOutput:
    """What a quantiser returns for ``z_e: (B, D, H, W)``.

    - ``z_q: (B, D, H, W)``: the codes forward; backward, the quantiser's gradient to z_e (identity
      for straight-through, rotated for the rotation trick, ``f'(z)/floor(L/2)`` for FSQ);
    - ``loss``: a scalar, the quantiser's own terms: codebook + beta * commitment (VQ), beta *
      commitment (EMA), their sum over stages (residual VQ), commitment + entropy penalty (LFQ), 0 (FSQ);
    - ``indices``: int64 ``(B, H, W)``, or ``(B, S, H, W)`` for residual VQ's S stages;
    - ``perplexity``: a scalar, exp(entropy of the batch's code usage) (residual VQ: the stages' mean).
    """

    z_q: torch.Tensor
    loss: torch.Tensor
    indices: torch.Tensor
    perplexity: torch.Tensor


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """``exp(-sum_k p_k log p_k)`` for the code frequencies ``p_k`` in ``indices``.

    It is the number of equally used codes that would give the same entropy: 1 when every vector
    takes the same code, ``num_codes`` when all are used equally. Only the codes that occur are
    counted (unused codes add 0 log 0 = 0), so memory does not grow with ``num_codes``. An empty
    ``indices`` has no code frequencies, so it raises a ValueError rather than return NaN.
    """
    if indices.numel() == 0:
        raise ValueError("perplexity needs at least one code index; got an empty tensor")
    return perplexity_of_counts(torch.unique(indices, return_counts=True)[1])


def perplexity_of_counts(counts: torch.Tensor) -> torch.Tensor:
    """``exp(-sum_k p_k log p_k)`` with ``p_k = counts_k / sum(counts)``; zero counts contribute nothing."""
    p = counts.float() / counts.sum()
    return torch.exp(-torch.sum(p * torch.log(p.clamp(min=1e-12))))


def check_z_e(z_e: torch.Tensor, code_dim: int) -> None:
    """Raise a ValueError a student can act on unless ``z_e`` is a float (B, code_dim, H, W) tensor."""
    if not torch.is_tensor(z_e) or not z_e.is_floating_point():
        kind = z_e.dtype if torch.is_tensor(z_e) else type(z_e).__name__
        raise ValueError(f"expected z_e to be a floating-point tensor of shape (B, {code_dim}, H, W), got {kind}")
    if z_e.dim() != 4 or z_e.shape[1] != code_dim:
        raise ValueError(f"expected z_e of shape (B, {code_dim}, H, W) with code_dim={code_dim} channels, "
                         f"got {tuple(z_e.shape)}")
    if z_e.numel() == 0:
        raise ValueError(f"expected at least one encoder vector, got z_e of shape {tuple(z_e.shape)} (an empty batch)")


def check_no_nan(z_e: torch.Tensor, quantizer: str) -> None:
    """Raise a ValueError if ``z_e`` holds a NaN, which ``quantizer`` cannot map to any code."""
    if torch.isnan(z_e).any():
        raise ValueError(f"z_e holds {int(torch.isnan(z_e).sum())} NaN values, which {quantizer} cannot quantise: "
                         "the encoder's output is broken (a diverged run, or an fp16 overflow: try bf16 or fp32)")


def check_indices(indices: torch.Tensor, num_codes: int, where: str = "") -> None:
    """Raise a ValueError unless ``indices`` is an int64 ``(B, H, W)`` grid of codes in ``0..num_codes - 1``;
    ``where`` says where ``num_codes`` comes from (shown in the message)."""
    if not torch.is_tensor(indices) or indices.dtype != torch.int64 or indices.dim() != 3:
        kind = f"{indices.dtype} {tuple(indices.shape)}" if torch.is_tensor(indices) else type(indices).__name__
        raise ValueError(f"expected int64 indices of shape (B, H, W), got {kind}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= num_codes):
        raise ValueError(f"indices must lie in 0..{num_codes - 1}{where}")


def codes_used(indices: torch.Tensor) -> torch.Tensor:
    """How many distinct codes occur in ``indices``, as a 0-d tensor on their device: counted after a
    sort, so it needs no host sync (``unique()`` needs one) and no count per code."""
    ordered = indices.flatten().sort().values
    return 1 + (ordered[1:] != ordered[:-1]).sum()


class Quantizer(nn.Module):
    """The interface every quantiser of the book has.

    - ``num_codes`` (K, the number of distinct indices per latent) and ``code_dim`` (D);
    - ``bits``: bits per latent position, ``log2 K`` (residual VQ: ``S log2 K``);
    - ``forward(z_e) -> QuantizerOutput``: in training mode it may update its state (EMA, restarts);
    - ``encode_indices(z_e)``: the forward's indices, changing no state;
    - ``lookup(indices)``: the codes ``z_q`` of given indices, to decode a prior's samples;
    - ``dead_codes(idle_for)``: codes no training batch chose in the last ``idle_for`` batches, as a
      0-d tensor (always 0 for a quantiser that keeps no usage counts, like FSQ and LFQ).
    """

    num_codes: int
    code_dim: int

    @property
    def bits(self) -> float:
        """Bits per latent position: log2 of the number of distinct indices, ``log2 K``."""
        return math.log2(self.num_codes)

    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dead_codes(self, idle_for: int = 100) -> torch.Tensor:
        return torch.zeros((), dtype=torch.int64)
