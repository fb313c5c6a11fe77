"""A powerful autoregressive decoder over pixels, for a Gaussian VAE and a VQ-VAE alike (Chapter 06).

The paper claims that the VQ-VAE "circumvents" posterior collapse, where the latents are ignored when
they are paired with a powerful autoregressive decoder (abstract, Sec. 4.2). To test the claim, both
kinds of latent variable get the *same* decoder here:

- a conditioning network, the paper's decoder trunk (:class:`vqvae_lib.blocks.Decoder`), maps the latent
  grid ``(B, C, H/4, W/4)`` to a map ``(B, cond_channels, H, W)``;
- a Gated PixelCNN (:class:`vqvae_lib.prior.GatedPixelCNN`, the prior's network, with
  ``num_codes=256``) models the 256 levels ``k`` of each 8-bit pixel ``x = k/255`` in raster order,
  with that map added inside every gate. ``p(x | z) = prod_i p(x_i | x_<i, z)``, a 256-way softmax
  per pixel, so ``-log p(x | z)`` is an exact code length in nats.

:class:`PixelVAE` puts a Gaussian latent in front of it (Chapter 01's encoder, prior ``N(0, I)``),
:class:`PixelVQVAE` the vector quantiser of Chapter 04. Both are built from one
:class:`PixelDecoderConfig`, so the decoder's settings are shared by construction. Images have one
channel (Fashion-MNIST).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Decoder, Encoder, check_image
from .likelihood import to_model_range
from .precision import at_least_fp32
from .prior import GatedPixelCNN, PriorConfig
from .quantizers.base import codes_used
from .quantizers.vq import VectorQuantizer
from .vae import gaussian_kl, reparameterize

LEVELS = 256  # the values k of an 8-bit pixel x = k/255


@dataclass(frozen=True)
class PixelDecoderConfig:
    """Everything that defines a :class:`PixelVAE` or :class:`PixelVQVAE` (the checkpoint cache keys on it).

    The decoder: ``channels``, ``num_layers`` and ``kernel_size`` of the Gated PixelCNN over pixels,
    and ``cond_channels``, the width of the map that carries the latents into its gates. The latents:
    ``latent_channels`` Gaussian channels per position for the VAE; ``num_codes`` (K), ``code_dim``
    (D) and ``beta`` for the VQ-VAE. ``hidden`` and ``res_hidden`` size the encoder and the
    conditioning network, as in Chapters 01 and 04.
    """

    channels: int = 32
    num_layers: int = 5
    kernel_size: int = 3
    cond_channels: int = 16
    hidden: int = 64
    res_hidden: int = 32
    latent_channels: int = 4
    num_codes: int = 512
    code_dim: int = 64
    beta: float = 0.25

    def __post_init__(self):
        if min(self.channels, self.num_layers, self.cond_channels, self.latent_channels, self.code_dim) < 1:
            raise ValueError(f"every size must be at least 1, got {self}")


def pixel_levels(x: torch.Tensor) -> torch.Tensor:
    """Pixels ``x = k/255`` in [0, 1], ``(B, 1, H, W)`` -> their levels ``k``, ``(B, H, W)`` int64."""
    return torch.round(x[:, 0].float() * (LEVELS - 1)).long().clamp(0, LEVELS - 1)


class PixelDecoder(nn.Module):
    """``p(x | z)``: the conditioning network and the Gated PixelCNN over pixel levels.

    ``forward(x, z)`` maps images ``x: (B, 1, H, W)`` and latents ``z: (B, latent_width, H/4, W/4)``
    to logits ``(B, 256, H, W)``; those at pixel ``(i, j)`` depend on ``z`` and on the pixels before
    ``(i, j)`` in raster order only (teacher forcing). ``nll(x, z)`` is ``-log p(x | z)`` per image in
    nats, ``(B,)``; ``sample(z)`` draws images pixel by pixel.
    """

    def __init__(self, latent_width: int, config: PixelDecoderConfig):
        super().__init__()
        self.latent_width = latent_width
        self.condition = Decoder(latent_width, config.cond_channels, config.hidden, config.res_hidden)
        self.pixelcnn = GatedPixelCNN(PriorConfig(num_codes=LEVELS, channels=config.channels,
                                                  num_layers=config.num_layers, kernel_size=config.kernel_size,
                                                  cond_channels=config.cond_channels))

    def _check(self, x: torch.Tensor, z: torch.Tensor) -> None:
        check_image(x, 1, "images x")
        check_image(z, self.latent_width, "latents z")
        if z.shape[0] != x.shape[0] or tuple(z.shape[-2:]) != (x.shape[-2] // 4, x.shape[-1] // 4):
            raise ValueError(f"expected latents z of shape ({x.shape[0]}, {self.latent_width}, "
                             f"{x.shape[-2] // 4}, {x.shape[-1] // 4}) for images {tuple(x.shape)}, got {tuple(z.shape)}")

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        self._check(x, z)
        return self.pixelcnn(pixel_levels(x), cond=self.condition(z))

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``-log p(x | z)`` per image in nats, ``(B,)``: the 256-way cross-entropy summed over pixels."""
        logits = at_least_fp32(self(x, z))  # fp16 logits would round the 256-way softmax
        return F.cross_entropy(logits, pixel_levels(x), reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None):
        """Images ``(B, 1, 4h, 4w)`` in [0, 1] drawn from ``p(x | z)`` for ``z: (B, latent_width, h, w)``:
        ``4h * 4w`` sequential steps (784 for Fashion-MNIST), so keep ``B`` and the image small."""
        check_image(z, self.latent_width, "latents z")
        cond = self.condition(z)
        levels = self.pixelcnn.sample(len(z), tuple(cond.shape[-2:]), temperature, generator=generator, cond=cond)
        return levels[:, None].to(z.dtype) / (LEVELS - 1)


class PixelVAE(nn.Module):
    """A Gaussian VAE whose decoder is the :class:`PixelDecoder` (Chapter 06, Sec. 6.8).

    ``loss(x)`` is the negative ELBO ``-log p(x|z) + KL(q(z|x) || N(0, I))`` with one sample of ``z``,
    in nats per pixel, with ``recon`` and ``kl`` logged separately (both per pixel).
    """

    def __init__(self, config: PixelDecoderConfig | None = None):
        super().__init__()
        self.config = config = config or PixelDecoderConfig()
        self.encoder = Encoder(1, 2 * config.latent_channels, config.hidden, config.res_hidden)
        self.decoder = PixelDecoder(config.latent_channels, config)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, 1, H, W)`` in [0, 1] -> ``mu, logvar: (B, latent_channels, H/4, W/4)``."""
        return self.encoder(to_model_range(x)).chunk(2, dim=1)

    def latents(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ``z ~ q(z|x)``: what the decoder is given for ``x``."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def prior_latents(self, n: int, like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``z ~ N(0, I)`` shaped like the latents of the images ``like``, on their device."""
        check_image(like, 1, "images like")
        shape = (n, self.config.latent_channels, like.shape[-2] // 4, like.shape[-1] // 4)
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(x, 1, "images x")
        mu, logvar = self.encode(x)
        dims = x[0].numel()
        recon = self.decoder.nll(x, reparameterize(mu, logvar)).mean() / dims
        kl = gaussian_kl(at_least_fp32(mu), at_least_fp32(logvar)).flatten(1).sum(1).mean() / dims
        return {"loss": recon + kl, "recon": recon, "kl": kl}


class PixelVQVAE(nn.Module):
    """A VQ-VAE whose decoder is the :class:`PixelDecoder` (Chapter 06, Sec. 6.8).

    ``loss(x)`` is ``recon + (N*D/M) * vq`` in nats per pixel (the book's reading of paper eq. 3, as in
    :class:`vqvae_lib.vqvae.VQVAE`), and logs ``nelbo`` (``recon`` plus the constant ``N ln K / M``
    of the uniform prior), ``perplexity`` and ``used`` (distinct codes in the batch).
    """

    def __init__(self, config: PixelDecoderConfig | None = None):
        super().__init__()
        self.config = config = config or PixelDecoderConfig()
        self.encoder = Encoder(1, config.code_dim, config.hidden, config.res_hidden)
        self.quantizer = VectorQuantizer(config.num_codes, config.code_dim, config.beta)
        self.decoder = PixelDecoder(config.code_dim, config)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 1, H, W)`` -> code indices ``(B, H/4, W/4)`` (int64), without updating anything."""
        check_image(x, 1, "images x")
        return self.quantizer.encode_indices(self.encoder(to_model_range(x)))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` -> ``z_q: (B, D, h, w)``, the decoder's input."""
        return self.quantizer.lookup(indices)

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """``z_q(x)``: what the decoder is given for ``x``."""
        return self.lookup(self.encode(x))

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image(x, 1, "images x")
        z_e = self.encoder(to_model_range(x))
        q = self.quantizer(z_e)
        dims = x[0].numel()
        recon = self.decoder.nll(x, q.z_q).mean() / dims
        latents = q.indices[0].numel()
        with torch.no_grad():
            nelbo = recon + latents * math.log(self.quantizer.num_codes) / dims  # KL = N log K (Sec. 3.1)
            used = codes_used(q.indices).float()
        return {"loss": recon + latents * z_e.shape[1] / dims * q.loss, "recon": recon, "vq": q.loss,
                "nelbo": nelbo, "perplexity": q.perplexity, "used": used}

