"""A two-level VQ-VAE in the manner of VQ-VAE-2 (Razavi, van den Oord and Vinyals 2019, Sec. 3.1, Fig. 2).

For 256 x 256 images the paper downsamples by 4 to a 64 x 64 bottom latent map, then by a further 2
to a 32 x 32 top map; the top codes are decoded and given to the bottom level, so that the bottom
codes need only add what the top ones miss, and the decoder reads both maps. Ours
keeps the two factors and the wiring, at the book's sizes (our choices): a 28 x 28 image gives a 7 x 7
bottom grid and a 4 x 4 top grid,

    h     = E_bottom(x)                                  (B, hidden, 7, 7)   the book's Encoder
    z_top = E_top(h)                                     (B, D, 4, 4)        3x3 stride-2 conv, 2 res blocks
    e_top = Quantize_top(z_top);  u = D_top(e_top)       (B, D, 7, 7)        2 res blocks, 3x3 stride-2 deconv
    e_bot = Quantize_bottom(conv1x1([h, u]))             (B, D, 7, 7)
    p(x | e_top, e_bot) = Decoder([e_bot, u])            (B, 2C, 28, 28)     the book's Decoder

The one decoded top map ``u`` serves both the bottom quantiser and the decoder (our choice). As in
:mod:`vqvae_lib.vqvae`, the likelihood is the discretised logistic rather than the paper's squared
error, so with a uniform prior over each level's codes the negative ELBO in nats per pixel value is
``recon + (N_top ln K_top + N_bottom ln K_bottom) / M`` (Chapter 04, eq. 4.6, once per level).
Any image whose sides are multiples of 4 works; the top grid is the bottom grid halved, rounded up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .blocks import Decoder, Encoder, ResidualBlock, check_image
from .likelihood import discretized_logistic_mean, discretized_logistic_nll, to_model_range
from .metrics import uniform_prior_nats
from .quantizers.base import codes_used
from .quantizers.vq import VectorQuantizer, VectorQuantizerEMA

QUANTIZERS = ("vq", "ema")


@dataclass(frozen=True)
class VQVAE2Config:
    """Everything that defines a two-level VQ-VAE before training (the checkpoint cache keys on it).

    ``quantizer`` names both levels' quantisers: ``"vq"`` (codebook learned by the loss) or ``"ema"``
    (VQ-VAE App. A.1, what VQ-VAE-2 uses); ``decay`` and ``eps`` apply to ``"ema"``; ``kmeans_init`` and
    ``restart_after`` are Chapter 05's training aids, applied to each level.
    """

    in_channels: int = 1
    num_codes_top: int = 512  # K_top
    num_codes_bottom: int = 512  # K_bottom
    code_dim: int = 64  # D, both levels
    hidden: int = 64
    res_hidden: int = 32
    beta: float = 0.25
    quantizer: str = "vq"
    decay: float = 0.99
    eps: float = 1e-5
    kmeans_init: bool = False
    restart_after: int | None = None

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; expected one of {QUANTIZERS}")
        sizes = dict(in_channels=self.in_channels, num_codes_top=self.num_codes_top, code_dim=self.code_dim,
                     num_codes_bottom=self.num_codes_bottom, hidden=self.hidden, res_hidden=self.res_hidden)
        if min(sizes.values()) < 1 or self.hidden < 2:
            raise ValueError(f"every size must be positive and hidden at least 2, got {sizes}")


def _build_quantizer(config: VQVAE2Config, num_codes: int) -> nn.Module:
    training_aids = dict(kmeans_init=config.kmeans_init, restart_after=config.restart_after)
    if config.quantizer == "ema":
        return VectorQuantizerEMA(num_codes, config.code_dim, config.beta, config.decay, config.eps, **training_aids)
    return VectorQuantizer(num_codes, config.code_dim, config.beta, **training_aids)


def top_grid(height: int, width: int) -> tuple[int, int]:
    """The top grid of a ``height x width`` bottom grid: each side halved, rounded up (7 x 7 -> 4 x 4)."""
    return (height + 1) // 2, (width + 1) // 2


class VQVAE2(nn.Module):
    """The two-level VQ-VAE of the module docstring, built from a :class:`VQVAE2Config`.

    ``loss(x)`` returns the training objective, VQ-VAE's eq. 3 per image for each level, divided by the M
    pixel values: ``recon + (D/M) (N_top vq_top + N_bottom vq)``, where ``vq`` and ``vq_top`` are the
    quantisers' element-mean losses; for logging, ``nelbo``, ``mse`` in pixel space, and each level's
    ``perplexity`` and ``used`` (distinct codes in the batch); unsuffixed keys are the bottom level's.
    """

    conditional = False

    def __init__(self, config: VQVAE2Config | None = None):
        super().__init__()
        self.config = c = config or VQVAE2Config()
        self.in_channels = c.in_channels
        self.encoder = Encoder(c.in_channels, c.hidden, c.hidden, c.res_hidden)  # E_bottom: x -> h
        self.top_encoder = nn.Sequential(
            nn.Conv2d(c.hidden, c.hidden, kernel_size=3, stride=2, padding=1),  # 7 -> 4
            ResidualBlock(c.hidden, c.res_hidden),
            ResidualBlock(c.hidden, c.res_hidden),
            nn.ReLU(),
            nn.Conv2d(c.hidden, c.code_dim, kernel_size=1),
        )
        self.top_quantizer = _build_quantizer(c, c.num_codes_top)
        self.top_decoder = nn.Sequential(
            nn.Conv2d(c.code_dim, c.hidden, kernel_size=3, padding=1),
            ResidualBlock(c.hidden, c.res_hidden),
            ResidualBlock(c.hidden, c.res_hidden),
            nn.ReLU(),
        )
        self.top_upsample = nn.ConvTranspose2d(c.hidden, c.code_dim, kernel_size=3, stride=2, padding=1)  # 4 -> 7
        self.bottom_in = nn.Conv2d(c.hidden + c.code_dim, c.code_dim, kernel_size=1)
        self.bottom_quantizer = _build_quantizer(c, c.num_codes_bottom)
        self.decoder = Decoder(2 * c.code_dim, 2 * c.in_channels, c.hidden, c.res_hidden)

    def _decode_top(self, e_top: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """``e_top: (B, D, ht, wt) -> u: (B, D, *size)``; ``output_size`` picks 7 (not 8) from 4."""
        return self.top_upsample(self.top_decoder(e_top), output_size=size)

    def _likelihood(self, e_bottom: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The discretised logistic's mean and log-scale, each ``(B, C, H, W)``, from both levels."""
        return self.decoder(torch.cat([e_bottom, u], dim=1)).chunk(2, dim=1)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The objective in nats per pixel value (see the class docstring), plus what a chapter plots."""
        check_image(x, self.in_channels)
        h = self.encoder(to_model_range(x))
        q_top = self.top_quantizer(self.top_encoder(h))
        u = self._decode_top(q_top.z_q, h.shape[-2:])
        q_bottom = self.bottom_quantizer(self.bottom_in(torch.cat([h, u], dim=1)))
        mean, log_scale = self._likelihood(q_bottom.z_q, u)
        dims = x[0].numel()
        recon = discretized_logistic_nll(x, mean, log_scale).mean() / dims
        n_top, n_bottom = q_top.indices[0].numel(), q_bottom.indices[0].numel()
        # Each level's VQ terms summed over its latents' N*D elements, per pixel value (VQVAEConfig.vq_terms="sum").
        vq_terms = self.config.code_dim * (n_top * q_top.loss + n_bottom * q_bottom.loss) / dims
        with torch.no_grad():
            prior = uniform_prior_nats(n_top, self.config.num_codes_top) + \
                uniform_prior_nats(n_bottom, self.config.num_codes_bottom)
            nelbo = recon + prior / dims
            mse = (discretized_logistic_mean(mean) - x).pow(2).mean()
            used, used_top = codes_used(q_bottom.indices).float(), codes_used(q_top.indices).float()
        return {"loss": recon + vq_terms, "recon": recon, "vq": q_bottom.loss, "vq_top": q_top.loss,
                "nelbo": nelbo, "mse": mse, "perplexity": q_bottom.perplexity,
                "perplexity_top": q_top.perplexity, "used": used, "used_top": used_top}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``(B, C, H, W)`` in [0, 1] -> ``(top (B, ht, wt), bottom (B, H/4, W/4))`` int64 indices
        (28 x 28: 4 x 4 and 7 x 7)."""
        check_image(x, self.in_channels)
        h = self.encoder(to_model_range(x))
        # Not the quantisers' forward: encoding must never update a codebook.
        top = self.top_quantizer.encode_indices(self.top_encoder(h))
        u = self._decode_top(self.top_quantizer.lookup(top), h.shape[-2:])
        return top, self.bottom_quantizer.encode_indices(self.bottom_in(torch.cat([h, u], dim=1)))

    @torch.no_grad()
    def decode(self, top: torch.Tensor, bottom: torch.Tensor) -> torch.Tensor:
        """Indices ``top: (B, ht, wt)`` and ``bottom: (B, h, w)`` -> the mean image ``(B, C, 4h, 4w)`` in [0, 1]."""
        if top.dim() == 3 and bottom.dim() == 3 and (len(top) != len(bottom) or
                                                      tuple(top.shape[1:]) != top_grid(*bottom.shape[1:])):
            raise ValueError(f"a bottom grid of shape {tuple(bottom.shape)} needs a top grid of shape "
                             f"{(len(bottom), *top_grid(*bottom.shape[1:]))}, got {tuple(top.shape)}")
        e_top, e_bottom = self.top_quantizer.lookup(top), self.bottom_quantizer.lookup(bottom)
        mean, _ = self._likelihood(e_bottom, self._decode_top(e_top, bottom.shape[-2:]))
        return discretized_logistic_mean(mean)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(*encode(x))``."""
        return self.decode(*self.encode(x))

    def bits_per_image(self, height: int = 28, width: int = 28) -> float:
        """``N_top log2 K_top + N_bottom log2 K_bottom``: the latents' code length under uniform priors
        (28 x 28 with the defaults: 16 x 9 + 49 x 9 = 585 bits)."""
        if height < 4 or width < 4 or height % 4 or width % 4:
            raise ValueError(f"image height and width must be positive multiples of 4, got {(height, width)}")
        n_bottom = (height // 4) * (width // 4)
        n_top = math.prod(top_grid(height // 4, width // 4))
        return n_top * math.log2(self.config.num_codes_top) + n_bottom * math.log2(self.config.num_codes_bottom)
