"""The Gaussian VAE (Kingma & Welling 2014; Rezende et al. 2014) on the paper's conv backbone.

The latent is a grid ``z: (B, latent_channels, H/4, W/4)`` with prior ``N(0, I)``, the encoder gives
``q(z|x) = N(mu, diag(exp(logvar)))``, and the decoder a discretised logistic per pixel, so the
negative ELBO is a code length for 8-bit images (Chapter 01, eq. 1.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import Decoder, Encoder, check_image, check_sizes
from .likelihood import discretized_logistic_mean, discretized_logistic_nll, discretized_logistic_sample, to_model_range
from .precision import at_least_fp32


@dataclass(frozen=True)
class VAEConfig:
    """Everything that defines a Gaussian VAE before training (the checkpoint cache keys on it)."""

    in_channels: int = 1
    image_size: int = 28
    latent_channels: int = 4
    hidden: int = 64
    res_hidden: int = 32

    def __post_init__(self):
        check_sizes(self, "in_channels", "image_size", "latent_channels", "hidden", "res_hidden")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, 1))`` elementwise, in nats (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``z = mu + sigma * eps`` with ``eps ~ N(0, I)``: the reparameterisation trick (eq. 1.5)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class GaussianVAE(nn.Module):
    """Encoder -> Gaussian latent grid -> decoder -> discretised logistic over pixels.

    Built from a :class:`VAEConfig`. ``loss(x)`` returns the negative ELBO (eq. 1.4) and its two
    terms, each in nats per pixel dimension; divide by ln 2 for bits/dim.
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config = config or VAEConfig()
        self.in_channels, self.image_size = config.in_channels, config.image_size
        self.latent_channels = config.latent_channels
        self.encoder = Encoder(config.in_channels, 2 * config.latent_channels, config.hidden, config.res_hidden)
        self.decoder = Decoder(config.latent_channels, 2 * config.in_channels, config.hidden, config.res_hidden)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.image_size // 4, self.image_size // 4)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: (B, C, H, W)`` in [0, 1] -> ``mu, logvar: (B, latent_channels, H/4, W/4)``."""
        mu, logvar = self.encoder(to_model_range(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z`` -> the likelihood's ``mean, log_scale: (B, C, H, W)`` on the [-1, 1] scale."""
        mean, log_scale = self.decoder(z).chunk(2, dim=1)
        return mean, log_scale

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative ELBO of eq. (1.4), per pixel dimension, averaged over the batch.

        ``recon = -E_q[log p(x|z)]`` (one sample of z) and ``kl = KL(q(z|x) || p(z))`` (closed form).
        """
        check_image(x, self.in_channels)
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        mean, log_scale = self.decode(z)
        dims = x[0].numel()
        recon = discretized_logistic_nll(x, mean, log_scale).mean() / dims
        kl = gaussian_kl(at_least_fp32(mu), at_least_fp32(logvar)).flatten(1).sum(1).mean() / dims
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image for the posterior mean ``z = mu`` (pixels in [0, 1])."""
        mu, _ = self.encode(x)
        return discretized_logistic_mean(self.decode(mu)[0])

    @torch.no_grad()
    def sample(
        self, n: int, z: torch.Tensor | None = None, mean_only: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Images decoded from ``z ~ N(0, I)`` (or from a given ``z``), pixels in [0, 1]."""
        if z is None:
            device = next(self.parameters()).device
            z = torch.randn(n, *self.latent_shape, device=device, generator=generator)
        mean, log_scale = self.decode(z)
        if mean_only:
            return discretized_logistic_mean(mean)
        return discretized_logistic_sample(mean, log_scale, generator)
