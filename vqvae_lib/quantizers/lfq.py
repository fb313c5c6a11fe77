"""Lookup-free quantisation (Yu et al. 2024, MAGVIT-v2, "Language Model Beats Diffusion: Tokenizer
is Key to Visual Generation", Sec. 3.1).

Each of the D channels is quantised to its sign, so the implicit codebook is {-1, 1}^D with 2^D codes
and nothing to look up or learn. The soft assignment of the entropy penalty is
``q(c | z) = softmax_c(-||z - c||^2 / T)`` over all 2^D codes c; since ``||c||^2 = D`` for every
code, this is ``softmax_c(2 z.c / T)``, and it factorises over channels:
``q(c_d = +1 | z) = sigmoid(4 z_d / T)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from ..precision import at_least_fp32, autocast_off
from .base import Quantizer, QuantizerOutput, check_indices, check_no_nan, check_z_e, perplexity_of_counts

MAX_EXACT_CODE_DIM = 12  # the exact batch entropy builds an (N, 2^D) matrix: 4096 codes at most


def index_bits(indices: torch.Tensor, code_dim: int) -> torch.Tensor:
    """Bit d of each index, ``(...) -> (..., code_dim)`` bool, for index = sum_d bit_d 2^d (paper Sec. 3.1)."""
    powers = 2 ** torch.arange(code_dim, device=indices.device)
    return (indices.unsqueeze(-1) & powers) != 0


def entropy_terms(z: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The two entropies of the penalty (paper eq. 5), in nats, for ``z: (N, D)`` with D <= 12:

    - ``E_z[H(q(. | z))]``, the mean per-sample entropy. q(. | z) is a product of D independent
      bits, so this is exactly the sum of the D binary entropies of ``sigmoid(4 z_d / T)``;
    - ``H(E_z[q(. | z)])``, the entropy of the batch's mean assignment over all 2^D codes. A mixture of
      product distributions is not a product, so this does not factorise: we compute it exactly from
      the (N, 2^D) matrix of log q. (``factorised_marginal_entropy`` is the cheap upper bound.)
    """
    if z.dim() != 2 or not 1 <= z.shape[1] <= MAX_EXACT_CODE_DIM or len(z) == 0:
        raise ValueError(f"expected z of shape (N, D) with N >= 1 and 1 <= D <= {MAX_EXACT_CODE_DIM}, "
                         f"got {tuple(z.shape)}")
    logits = 4 * z / temperature  # log-odds of c_d = +1
    p = torch.sigmoid(logits)
    per_sample = -(p * F.logsigmoid(logits) + (1 - p) * F.logsigmoid(-logits)).sum(1).mean()
    codes = index_bits(torch.arange(2 ** z.shape[1], device=z.device), z.shape[1]).to(z.dtype) * 2 - 1
    log_q = torch.log_softmax(2 * z @ codes.t() / temperature, dim=1)  # (N, 2^D), codes in index order
    log_mean_q = torch.logsumexp(log_q, dim=0) - math.log(len(z))  # log E_z[q(c | z)], never log 0
    return per_sample, -(log_mean_q.exp() * log_mean_q).sum()


def factorised_marginal_entropy(z: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``sum_d H(E_z[q(c_d | z)])``: the batch entropy if the D bits were independent. It is never below
    the exact ``H(E_z[q])`` (subadditivity) and is blind to correlated bits: D copies of one bit score
    D bits of diversity while only two codes are used. Not used in the loss; for comparison only."""
    p = torch.sigmoid(4 * z / temperature).mean(0)
    return -(torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)).sum()


class LookupFreeQuantizer(Quantizer):
    """Quantise each channel of ``z_e: (B, D, H, W)`` to its sign (paper Sec. 3.1), straight through.

    ``z_q = sign(z_e)`` in {-1, +1} (0 goes to +1), with the identity gradient to z_e; the index,
    ``indices: (B, H, W)``, is ``sum_d 1[z_d >= 0] 2^d`` in 0..2^D - 1 (paper Sec. 3.1, which writes
    ``z_d > 0``; ``>=`` keeps index and sign in agreement at 0). ``loss`` is

        entropy_weight * (E[H(q(z))] - diversity_gamma * H(E[q(z)]))
        + commitment_weight * mean((z_e - sg[z_q])^2)

    with the paper's entropy penalty (eq. 5; ``diversity_gamma`` = 1 there, the name is that of
    vector-quantize-pytorch) computed exactly by ``entropy_terms`` over the batch's B*H*W vectors,
    and a commitment term as in VQ-VAE. Our choice: the batch entropy is exact rather than the
    factorised upper bound, because that bound rewards each bit being used half the time and cannot
    see bits that copy each other; its price is an (N, 2^D) matrix (100 MB for N = 6272, D = 12), so
    with ``entropy_weight > 0`` code_dim is limited to 12. ``temperature`` T = 1 keeps q soft where the commitment term holds z
    (near +-1); vector-quantize-pytorch's default inv_temperature = 100 is T = 0.01 in our scale.
    """

    def __init__(self, code_dim: int, entropy_weight: float = 0.1, commitment_weight: float = 0.25,
                 diversity_gamma: float = 1.0, *, temperature: float = 1.0):
        super().__init__()
        if not isinstance(code_dim, int) or not 1 <= code_dim <= 62:
            raise ValueError(f"code_dim (bits per latent) must be an integer in 1..62, got {code_dim!r}")
        if min(entropy_weight, commitment_weight, diversity_gamma) < 0 or temperature <= 0:
            raise ValueError(f"need entropy_weight, commitment_weight, diversity_gamma >= 0 and temperature > 0; "
                             f"got {entropy_weight}, {commitment_weight}, {diversity_gamma}, {temperature}")
        if entropy_weight > 0 and code_dim > MAX_EXACT_CODE_DIM:
            raise ValueError(f"the exact entropy penalty builds an (N, 2^code_dim) matrix, so code_dim must be "
                             f"<= {MAX_EXACT_CODE_DIM} when entropy_weight > 0; got code_dim={code_dim} "
                             f"(use fewer channels or entropy_weight=0)")
        self.code_dim, self.num_codes = code_dim, 2 ** code_dim
        self.entropy_weight, self.commitment_weight = entropy_weight, commitment_weight
        self.diversity_gamma, self.temperature = diversity_gamma, temperature
        self.register_buffer("_code_values", torch.tensor([-1.0, 1.0]), persistent=False)  # C_d, follows .double()

    @property
    def bits(self) -> float:
        """Bits per latent, log2(num_codes) = code_dim."""
        return float(self.code_dim)

    def _index(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the code of each ``z: (..., D)``, channels last."""
        powers = 2 ** torch.arange(self.code_dim, device=z.device)
        return ((z >= 0).long() * powers).sum(-1)

    def _check(self, z_e: torch.Tensor) -> None:
        if torch.is_tensor(z_e) and z_e.dim() == 4 and z_e.shape[1] != self.code_dim:
            raise ValueError(f"expected z_e with {self.code_dim} channels (one per bit, code_dim={self.code_dim}), "
                             f"got {z_e.shape[1]}")
        check_z_e(z_e, self.code_dim)
        check_no_nan(z_e, "LFQ")

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """``z_e: (B, D, H, W)`` -> signs ``z_q`` (same shape), indices (B, H, W), the loss above."""
        self._check(z_e)
        b, d, h, w = z_e.shape
        with autocast_off(z_e.device):  # fp32 logs and softmax, also under autocast
            flat = at_least_fp32(z_e).permute(0, 2, 3, 1).reshape(-1, d)  # (N, D), N = B*H*W
            codes = (flat >= 0).to(flat.dtype) * 2 - 1
            z_q = flat + (codes - flat).detach()  # straight-through: value sign(z), gradient identity
            loss = self.commitment_weight * F.mse_loss(flat, codes)
            if self.entropy_weight > 0:
                per_sample, marginal = entropy_terms(flat, self.temperature)
                loss = loss + self.entropy_weight * (per_sample - self.diversity_gamma * marginal)
        indices = self._index(flat.detach())
        # counts of the codes that occur: the same perplexity as bincount over all 2^D codes, without them
        counts = torch.unique(indices, return_counts=True)[1]
        return QuantizerOutput(z_q=z_q.view(b, h, w, d).permute(0, 3, 1, 2), loss=loss,
                               indices=indices.view(b, h, w), perplexity=perplexity_of_counts(counts))

    @torch.no_grad()
    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """The indices forward gives, ``(B, D, H, W) -> (B, H, W)``; LFQ has no state to change."""
        self._check(z_e)
        return self._index(z_e.permute(0, 2, 3, 1))

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices: (B, H, W)`` as ``z_q: (B, D, H, W)`` in {-1, +1} (to decode a prior's samples)."""
        check_indices(indices, self.num_codes, f" (2^code_dim for code_dim={self.code_dim})")
        return self._code_values[index_bits(indices, self.code_dim).long()].movedim(-1, 1)
