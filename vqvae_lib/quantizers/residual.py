"""Residual vector quantisation (Zeghidour et al. 2021, SoundStream, Sec. III-C, Algorithm 1)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..distributed import broadcast_, is_distributed
from .base import Quantizer, QuantizerOutput, check_z_e, perplexity
from .rotation import check_gradient, rotate_to
from .vq import VectorQuantizer, VectorQuantizerEMA

STAGE_QUANTIZERS = {"vq": VectorQuantizer, "ema": VectorQuantizerEMA}


class ResidualVectorQuantizer(Quantizer):
    """S quantisers in a chain: stage 1 quantises z_e, stage s the residual the stages before it left,

        r_1 = z_e,    e_s = Q_s(r_s),    r_{s+1} = r_s - e_s,    z_q = e_1 + ... + e_S    (Algorithm 1)

    so each stage refines the reconstruction of the ones before it, and S codebooks of K codes name
    K^S points: ``bits`` = S log2 K per latent position.

    Each stage, in ``stages``, is a VectorQuantizer (``quantizer="vq"``) or a VectorQuantizerEMA
    (``"ema"``) that takes its residual r_s as its z_e; ``loss`` is the sum of the stages' losses,
    each its codebook term plus ``beta`` times its commitment term on r_s (only the latter with
    "ema"). The residuals subtract the codes under stop-gradient, so stage s's commitment pulls z_e
    towards e_1 + ... + e_s and no codebook is moved by another stage's terms. ``kmeans_init`` and
    ``restart_after`` apply to each stage on its own residuals, and ``stage_options`` go to every
    stage's constructor (``init_scale`` for "vq"; ``decay``, ``eps`` for "ema").

    The output passes the gradient straight through, ``z_q = z_e + sg(sum_s e_s - z_e)``, or with
    ``gradient="rotation"`` by the rotation trick from z_e onto the sum (rotation.py).

    ``dropout`` is quantiser dropout (Sec. III-C): in training, each forward uses only the first n
    stages, n drawn uniformly from 1..S with torch's global RNG, so that one model serves every
    bitrate; ``indices`` then has n planes, and the stages left out take no step (no EMA, idle
    count or k-means initialisation). In eval all S stages are used.

    ``perplexity`` is the mean of the stages' perplexities, each in 1..K like a single quantiser's;
    the perplexity of the joint index would count up to K^S tuples and be capped by the batch size.
    :meth:`stage_perplexities` gives them one by one.
    """

    def __init__(self, num_stages: int, num_codes: int, code_dim: int, beta: float = 0.25, *, quantizer: str = "vq",
                 dropout: bool = False, kmeans_init: bool = False, restart_after: int | None = None,
                 gradient: str = "straight_through", **stage_options):
        super().__init__()
        if not isinstance(num_stages, int) or num_stages < 1:
            raise ValueError(f"num_stages must be a positive integer, got {num_stages!r}")
        if quantizer not in STAGE_QUANTIZERS:
            raise ValueError(f"unknown quantizer {quantizer!r}; expected one of {tuple(STAGE_QUANTIZERS)}")
        check_gradient(gradient)
        stage = STAGE_QUANTIZERS[quantizer]
        self.stages = nn.ModuleList(stage(num_codes, code_dim, beta, kmeans_init=kmeans_init,
                                          restart_after=restart_after, **stage_options) for _ in range(num_stages))
        self.num_stages, self.num_codes, self.code_dim = num_stages, num_codes, code_dim
        self.dropout, self.gradient = dropout, gradient

    @property
    def sync(self) -> bool:
        """Whether the stages keep their codebooks equal across DDP ranks (see vq.py)."""
        return all(stage.sync for stage in self.stages)

    @sync.setter
    def sync(self, value: bool) -> None:
        for stage in self.stages:
            stage.sync = value

    @property
    def bits(self) -> float:
        """Bits per latent position: ``S log2 K``."""
        return self.num_stages * math.log2(self.num_codes)

    def dead_codes(self, idle_for: int = 100) -> torch.Tensor:
        """Codes, summed over the stages, that no training batch has chosen in the last ``idle_for`` batches."""
        return sum(stage.dead_codes(idle_for) for stage in self.stages)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        """``z_e: (B, D, H, W)`` -> z_q (B, D, H, W), loss, indices (B, n, H, W) int64, perplexity."""
        check_z_e(z_e, self.code_dim)
        used = self.num_stages
        if self.dropout and self.training:
            used = torch.randint(1, self.num_stages + 1, (1,))
            if is_distributed():  # every rank must run the same stages, or their collectives wait forever
                used = broadcast_(used.to(z_e.device))
            used = int(used)
        residual, total, loss = z_e, torch.zeros_like(z_e), 0.0
        indices, perplexities = [], []
        for stage in self.stages[:used]:
            out = stage(residual)
            e = stage.lookup(out.indices)  # the codes themselves, without the stage's gradient path
            residual, total, loss = residual - e, total + e, loss + out.loss
            indices.append(out.indices)
            perplexities.append(out.perplexity)
        return QuantizerOutput(z_q=self._output(z_e, total), loss=loss, indices=torch.stack(indices, 1),
                               perplexity=torch.stack(perplexities).mean())

    def _output(self, z_e: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
        if self.gradient == "straight_through":
            return z_e + (total - z_e).detach()
        b, d, h, w = z_e.shape
        flat = lambda t: t.permute(0, 2, 3, 1).reshape(-1, d)
        return rotate_to(flat(z_e), flat(total)).view(b, h, w, d).permute(0, 3, 1, 2)

    @torch.no_grad()
    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """Indices ``(B, S, H, W)`` of all S stages for ``z_e: (B, D, H, W)``, changing no state."""
        check_z_e(z_e, self.code_dim)
        residual, indices = z_e, []
        for stage in self.stages:
            indices.append(stage.encode_indices(residual))
            residual = residual - stage.lookup(indices[-1])
        return torch.stack(indices, 1)

    def _check_indices(self, indices: torch.Tensor) -> None:
        if not torch.is_tensor(indices) or indices.dtype != torch.int64 or indices.dim() != 4 \
                or not 1 <= indices.shape[1] <= self.num_stages:
            got = f"{indices.dtype} {tuple(indices.shape)}" if torch.is_tensor(indices) else type(indices).__name__
            raise ValueError(f"expected int64 indices of shape (B, S, H, W) with 1 <= S <= num_stages="
                             f"{self.num_stages}, got {got}")

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor, stages: int | None = None) -> torch.Tensor:
        """``sum_s e_s`` as ``(B, D, H, W)`` for ``indices: (B, S, H, W)``, over the first ``stages``
        stages (all the planes given by default): fewer stages decode coarser."""
        self._check_indices(indices)
        stages = indices.shape[1] if stages is None else stages
        if not isinstance(stages, int) or not 1 <= stages <= indices.shape[1]:
            raise ValueError(f"stages must be an integer in 1..{indices.shape[1]} (the stages in indices), "
                             f"got {stages!r}")
        return sum(stage.lookup(indices[:, s]) for s, stage in enumerate(self.stages[:stages]))

    def stage_perplexities(self, indices: torch.Tensor) -> torch.Tensor:
        """The perplexity of each stage's codes in ``indices: (B, S, H, W)``, as an (S,) tensor."""
        self._check_indices(indices)
        return torch.stack([perplexity(indices[:, s], self.num_codes) for s in range(indices.shape[1])])
