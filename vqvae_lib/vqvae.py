"""The VQ-VAE: the paper's encoder, a vector quantiser, the paper's decoder (Chapter 04).

The likelihood is the discretised logistic of Chapter 01, so the reconstruction term is a code
length, and with the paper's uniform prior over K codes the negative ELBO in nats per pixel is
``recon + N ln K / M`` for N latents and M pixel values (Chapter 04, eq. 4.6).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .likelihood import discretized_logistic_nll, discretized_logistic_mean
from .nearest import nearest_code
from .nn import Decoder, Encoder
from .quantize import VectorQuantizer


class VQVAE(nn.Module):
    """``x -> z_e = encoder(x) -> z_q = quantizer(z_e) -> p(x | z_q)``.

    ``loss(x)`` returns the training objective (paper eq. 3 per image, divided by the M pixel values:
    ``recon + (N*D/M) * quantizer.loss``)
    and, for logging, ``nelbo`` (eq. 4.6), ``mse`` in pixel space, ``perplexity``, ``used``
    (distinct codes in the batch) and ``dead`` (codes unchosen for the last 100 training batches).
    Any quantiser with the ``VectorQuantizer`` API may be passed in.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_codes: int = 512,
        code_dim: int = 64,
        hidden: int = 64,
        res_hidden: int = 32,
        beta: float = 0.25,
        quantizer: nn.Module | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.encoder = Encoder(in_channels, code_dim, hidden, res_hidden)
        self.quantizer = quantizer if quantizer is not None else VectorQuantizer(num_codes, code_dim, beta)
        self.decoder = Decoder(code_dim, 2 * in_channels, hidden, res_hidden)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images x of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The paper's objective (eq. 3, Chapter 04 eq. 4.5) in nats per pixel, plus what Chapter 04 plots."""
        self._check(x)
        z_e = self.encoder(x * 2.0 - 1.0)
        q = self.quantizer(z_e)
        mean, log_scale = self.decoder(q.z_q).chunk(2, dim=1)
        dims = x[0].numel()
        recon = discretized_logistic_nll(x, mean, log_scale).mean() / dims
        latents = q.indices[0].numel()
        # Paper eq. 3 sums -log p over the M pixels and the squared errors over the N*D latent
        # elements of an image; per pixel that is recon + (N*D/M) * the quantiser's element mean.
        vq_weight = latents * z_e.shape[1] / dims
        with torch.no_grad():
            nelbo = recon + latents * math.log(self.num_codes) / dims
            mse = (discretized_logistic_mean(mean) - x).pow(2).mean()
            used = torch.tensor(float(q.indices.unique().numel()), device=x.device)
            dead_codes = getattr(self.quantizer, "dead_codes", lambda: 0)
            dead = torch.tensor(float(dead_codes()), device=x.device)
        return {"loss": recon + vq_weight * q.loss, "recon": recon, "vq": q.loss, "nelbo": nelbo, "mse": mse,
                "perplexity": q.perplexity, "used": used, "dead": dead}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> code indices ``(B, H/4, W/4)`` (int64)."""
        self._check(x)
        z_e = self.encoder(x * 2.0 - 1.0)
        b, d, h, w = z_e.shape
        # The nearest code directly, not the quantiser's forward: encoding must never update a codebook.
        return nearest_code(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.quantizer.codebook).view(b, h, w)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w)`` -> the decoder's mean image ``(B, C, 4h, 4w)`` in [0, 1]."""
        mean, _ = self.decoder(self.quantizer.lookup(indices)).chunk(2, dim=1)
        return discretized_logistic_mean(mean)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))
