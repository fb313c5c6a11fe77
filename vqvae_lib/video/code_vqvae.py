"""The paper's 27-bit second stage: a VQ-VAE over a frame's code grid, with a PixelCNN decoder (Chapter 09).

The paper's Sec. 4.2 trains "a second VQ-VAE with a PixelCNN decoder on top of the 21x21x1 latent
space" of DeepMind Lab frames, with "only three latent variables (each with K=512 and their own
embedding space)", "compressing the image onto 3 x 9 bits", and reports that "the latents are
meaningfully used" although the decoder is autoregressive, the setting in which a VAE's latents
usually collapse (Chapter 06).

Here the input is the first stage's code grid ``(B, H, W)`` (K1 codes). The encoder embeds the
codes, halves the grid twice with strided convolutions, and maps it to ``num_latents`` vectors of
``code_dim``, each quantised with one EMA codebook of ``num_codes`` codes (one codebook shared by
the three latents is our simplification of the paper's "their own embedding space"). The decoder
is the book's Gated PixelCNN over the K1 codes of the grid, conditioned on a map made from the
three codes: ``p(z | c) = prod_i p(z_i | z_<i, c)``. Its cross-entropy is an exact code length, so
how much the three codes are used can be measured: shuffle them across frames and see how many
bits the decoder loses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import check_sizes
from ..precision import at_least_fp32
from ..prior import GatedPixelCNN, PriorConfig
from ..quantizers.base import check_indices
from ..quantizers.vq import VectorQuantizerEMA


@dataclass(frozen=True)
class CodeVQVAEConfig:
    """Everything that defines a :class:`CodeVQVAE` (the checkpoint cache keys on it).

    ``grid_codes`` (K1) and ``grid_size`` describe what it compresses; ``num_latents`` codes of
    ``num_codes`` each (3 and 512 in the paper) are its bottleneck, ``code_dim`` their size;
    ``beta``, ``decay`` and ``restart_after`` set the EMA quantiser (Chapters 04-05); ``embed_dim``
    and ``hidden`` size the encoder; ``channels``, ``num_layers``, ``kernel_size`` and
    ``cond_channels`` the PixelCNN decoder.
    """

    grid_codes: int = 512
    grid_size: int = 16
    num_latents: int = 3
    num_codes: int = 512
    code_dim: int = 64
    beta: float = 0.25
    decay: float = 0.99
    restart_after: int | None = 100
    embed_dim: int = 32
    hidden: int = 64
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    cond_channels: int = 32

    def __post_init__(self):
        check_sizes(self, "grid_codes", "num_latents", "num_codes", "code_dim", "embed_dim", "hidden", "channels",
                    "num_layers", "cond_channels")
        if self.grid_size < 4 or self.grid_size % 4:
            raise ValueError(f"grid_size must be a multiple of 4 (the encoder halves it twice), got {self.grid_size}")


class CodeVQVAE(nn.Module):
    """Frame code grid -> ``num_latents`` codes -> PixelCNN over the grid (the paper's Sec. 4.2, 3 x 9 bits)."""

    def __init__(self, config: CodeVQVAEConfig):
        super().__init__()
        self.config = c = config
        small = c.grid_size // 4
        self.embedding = nn.Embedding(c.grid_codes, c.embed_dim)
        self.encoder = nn.Sequential(
            nn.Conv2d(c.embed_dim, c.hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c.hidden, c.hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c.hidden * small * small, c.num_latents * c.code_dim),
        )
        self.quantizer = VectorQuantizerEMA(c.num_codes, c.code_dim, c.beta, c.decay, restart_after=c.restart_after)
        self.to_map = nn.Sequential(
            nn.Linear(c.num_latents * c.code_dim, c.hidden * small * small), nn.Unflatten(1, (c.hidden, small, small)),
            nn.ReLU(), nn.ConvTranspose2d(c.hidden, c.hidden, 4, stride=2, padding=1),
            nn.ReLU(), nn.ConvTranspose2d(c.hidden, c.cond_channels, 4, stride=2, padding=1),
        )
        self.decoder = GatedPixelCNN(PriorConfig(num_codes=c.grid_codes, channels=c.channels, num_layers=c.num_layers,
                                                 kernel_size=c.kernel_size, cond_channels=c.cond_channels))

    @property
    def bits(self) -> float:
        """The bottleneck's size: ``num_latents * log2(num_codes)`` bits per frame (27 in the paper)."""
        return self.config.num_latents * math.log2(self.config.num_codes)

    def _check(self, grid: torch.Tensor) -> None:
        c = self.config
        if grid.dim() != 3 or grid.shape[1:] != (c.grid_size, c.grid_size) or grid.dtype != torch.long:
            raise ValueError(f"expected int64 code grids of shape (B, {c.grid_size}, {c.grid_size}) (the first stage's "
                             f"VQVAE.encode(x)), got {tuple(grid.shape)} {grid.dtype}")
        check_indices(grid, c.grid_codes, " (grid_codes, the first stage's K)")

    def z_e(self, grid: torch.Tensor) -> torch.Tensor:
        """The encoder's output ``(B, code_dim, 1, num_latents)``: one vector per latent."""
        self._check(grid)
        flat = self.encoder(self.embedding(grid).permute(0, 3, 1, 2))
        return flat.view(len(grid), self.config.num_latents, self.config.code_dim).transpose(1, 2).unsqueeze(2)

    def condition(self, z_q: torch.Tensor) -> torch.Tensor:
        """The map ``(B, cond_channels, H, W)`` that carries the latents into every gate of the decoder."""
        return self.to_map(z_q.flatten(1))

    def loss(self, grid: torch.Tensor) -> dict[str, torch.Tensor]:
        """The decoder's cross-entropy in nats per grid code, plus the quantiser's commitment term."""
        q = self.quantizer(self.z_e(grid))
        logits = self.decoder(grid, cond=self.condition(q.z_q))
        nll = F.cross_entropy(at_least_fp32(logits), grid)
        return {"loss": nll + q.loss, "bits": nll.detach() / math.log(2.0), "perplexity": q.perplexity.detach()}

    @torch.no_grad()
    def encode(self, grid: torch.Tensor) -> torch.Tensor:
        """The ``num_latents`` codes of each grid, ``(B, num_latents)`` int64; changes no codebook."""
        return self.quantizer.encode_indices(self.z_e(grid)).view(len(grid), -1)

    def _cond_of(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.dim() != 2 or codes.shape[1] != self.config.num_latents:
            raise ValueError(f"expected (B, {self.config.num_latents}) codes, got {tuple(codes.shape)}")
        return self.condition(self.quantizer.lookup(codes.unsqueeze(1)))

    @torch.no_grad()
    def nll_bits(self, grid: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``-log2 p(grid | codes)`` in bits per grid ``(B,)``, for any codes: the frame's own or another's."""
        self._check(grid)
        logits = self.decoder(grid, cond=self._cond_of(codes))
        return F.cross_entropy(logits.float(), grid, reduction="none").flatten(1).sum(1) / math.log(2.0)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw a code grid ``(B, H, W)`` from the decoder given ``codes (B, num_latents)``."""
        size = self.config.grid_size
        return self.decoder.sample(len(codes), (size, size), temperature, generator=generator, cond=self._cond_of(codes))
