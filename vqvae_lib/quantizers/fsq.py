"""Finite scalar quantisation (Mentzer et al. 2024, "Finite Scalar Quantization: VQ-VAE Made Simple")."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from ..precision import at_least_fp32, autocast_off
from .base import Quantizer, QuantizerOutput, check_indices, check_no_nan, check_z_e, perplexity

# The paper's level sets for a codebook of about 2^bits codes (Sec. 4.1), keyed by bits.
RECOMMENDED_LEVELS = {8: (8, 6, 5), 10: (8, 5, 5, 5), 12: (7, 5, 5, 5, 5), 14: (8, 8, 8, 6, 5), 16: (8, 8, 8, 5, 5, 5)}

_EPS = 1e-3  # the reference code's widening of the bound: the two outer bins are not half-width


class FiniteScalarQuantizer(Quantizer):
    """Bound each of the D = len(levels) channels to L_d values and round it (FSQ, paper Sec. 3).

    The paper bounds channel d with ``f(z) = floor(L/2) tanh(z)`` and rounds; that gives L values only
    for odd L. For any L we use the bound of the paper's reference code::

        half_l = (L - 1)(1 + eps) / 2,   offset = 1/2 if L is even else 0,   shift = atanh(offset / half_l)
        f(z)   = tanh(z + shift) * half_l - offset,   which lies in (-floor(L/2) - e, floor(L/2) - 2 offset + e)

    with ``e = (L - 1) eps / 2 < 1/2`` (hence L <= 1000), and ``f(0) = 0``. So ``round(f(z))`` takes
    exactly the L integers -floor(L/2) .. floor(L/2) - 2 offset: {-1, 0, 1} for L = 3, {-2, .., 1} for
    L = 4, {-1, 0} for L = 2. Rounding is straight-through, ``f + sg[round(f) - f]``, and the integers
    are divided by ``floor(L/2)`` so that codes lie in [-1, 1]; the gradient of ``z_q`` with respect to
    ``z_e`` is therefore ``f'(z) / floor(L/2)``.

    Shapes: ``z_e, z_q: (B, D, H, W)``, ``indices: (B, H, W)``. There is no codebook to learn and
    ``loss`` is zero. The implicit codebook has ``num_codes = prod(levels)`` codes; the code with level
    indices ``k_d = floor(L_d/2) (code_d + 1)`` in 0..L_d - 1 has the mixed-radix index
    ``sum_d k_d prod_{j<d} L_j``.
    """

    def __init__(self, levels: Sequence[int]):
        super().__init__()
        if not (isinstance(levels, Sequence) and len(levels) > 0
                and all(isinstance(n, numbers.Integral) and 2 <= n <= 1000 for n in levels)):
            raise ValueError(f"levels must be a non-empty sequence of integers in 2..1000 (values per channel), "
                             f"got {levels!r}; for example {RECOMMENDED_LEVELS[10]} (about 2^10 codes)")
        levels = tuple(int(n) for n in levels)
        self.levels, self.code_dim, self.num_codes = levels, len(levels), math.prod(levels)
        basis = [math.prod(levels[:d]) for d in range(len(levels))]  # prod_{j<d} L_j
        self.register_buffer("_levels", torch.tensor(levels), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis), persistent=False)
        # float, so that .double() converts it: lookup returns codes in the module's dtype
        self.register_buffer("_half_width", torch.tensor([n // 2 for n in levels], dtype=torch.float32),
                             persistent=False)

    @property
    def implicit_codebook(self) -> torch.Tensor:
        """All ``num_codes`` codes in index order, as a (num_codes, D) tensor."""
        return self.indices_to_codes(torch.arange(self.num_codes, device=self._levels.device))

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """The bound f of each channel (class docstring) for ``z: (..., D)``, channels last."""
        levels = self._levels.to(z.dtype)
        half_l = (levels - 1) * (1 + _EPS) / 2
        offset = (self._levels % 2 == 0).to(z.dtype) / 2
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _quantize(self, z_e: torch.Tensor) -> torch.Tensor:
        """z_q channels last, (B, H, W, D), in at least fp32: a bf16 bound rounds to the wrong side of
        a bin edge, and encode_indices would then disagree with the fp32 model."""
        if torch.is_tensor(z_e) and z_e.dim() == 4 and z_e.shape[1] != self.code_dim:
            raise ValueError(f"expected z_e with {self.code_dim} channels (one per FSQ level, levels="
                             f"{self.levels}), got {z_e.shape[1]}")
        check_z_e(z_e, self.code_dim)
        check_no_nan(z_e, "FSQ")
        with autocast_off(z_e.device):
            bounded = self.bound(at_least_fp32(z_e).permute(0, 2, 3, 1))
            rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through round
            return rounded / self._half_width.to(rounded.dtype)

    def _index(self, z_q: torch.Tensor) -> torch.Tensor:
        """Mixed-radix index of codes ``z_q: (..., D)``, channels last."""
        half_width = self._half_width.to(z_q.dtype)
        level_index = torch.round(z_q * half_width + half_width).long()  # k_d in 0..L_d - 1
        return (level_index * self._basis).sum(-1)

    def codes_to_indices(self, z_q: torch.Tensor) -> torch.Tensor:
        """Mixed-radix index of each code: ``z_q: (B, D, H, W) -> (B, H, W)`` (also ``(N, D) -> (N,)``)."""
        return self._index(z_q.movedim(1, -1))

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """The code of each index: ``indices: (B, H, W) -> (B, D, H, W)`` (also ``(N,) -> (N, D)``)."""
        level_index = (indices.unsqueeze(-1) // self._basis) % self._levels
        return ((level_index - self._half_width) / self._half_width).movedim(-1, 1)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """``z_e: (B, D, H, W)`` -> codes ``z_q`` (same shape), indices (B, H, W), zero loss."""
        z_q = self._quantize(z_e)
        indices = self._index(z_q.detach())
        return QuantizerOutput(z_q=z_q.permute(0, 3, 1, 2), loss=z_e.new_zeros(()), indices=indices,
                               perplexity=perplexity(indices, self.num_codes))

    @torch.no_grad()
    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """The indices forward gives, ``(B, D, H, W) -> (B, H, W)``; FSQ has no state to change."""
        return self._index(self._quantize(z_e))

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices: (B, H, W)`` as ``z_q: (B, D, H, W)`` (to decode a prior's samples)."""
        check_indices(indices, self.num_codes, f" (prod(levels) for levels={self.levels})")
        return self.indices_to_codes(indices)
