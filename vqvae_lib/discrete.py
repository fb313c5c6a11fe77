"""A VAE with categorical latents on the paper's conv backbone (Chapter 02).

The encoder gives, at each of the ``h x w`` grid positions, ``latent_channels`` categorical
variables with ``num_classes = K`` classes: ``q(z | x) = prod_n Cat(z_n; softmax(l_n(x)))``
(eq. 2.1). The prior is uniform, ``p(z_n = k) = 1/K``. The decoder reads the one-hot grid and gives
a discretised logistic per pixel (Chapter 01, eq. 1.8), so the negative ELBO (eq. 2.3) is a code
length for 8-bit images, comparable with Chapter 01's Gaussian VAE.

A sample of ``z`` has no pathwise gradient, so ``loss`` trains the encoder with one of the
estimators of :mod:`vqvae_lib.estimators`, chosen by ``estimator``:

* ``"reinforce"``: the score function (eq. 2.5); ``"nvil"``: with NVIL's input-dependent baseline
  and variance normalisation (eqs. 2.6-2.7);
* ``"vimco"``: the ``num_samples``-sample bound with leave-one-out baselines (eqs. 2.8-2.9);
* ``"gumbel"`` and ``"st_gumbel"``: the relaxed and straight-through Gumbel-softmax (eqs. 2.11-2.12),
  with the temperature annealed over training steps (eq. 2.13).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Decoder, Encoder, check_image
from .estimators import gradient_only, gumbel_max, gumbel_noise, gumbel_softmax, nvil, score_function, temperature, vimco
from .likelihood import discretized_logistic_mean, discretized_logistic_nll, discretized_logistic_sample, to_model_range

ESTIMATORS = ("reinforce", "nvil", "vimco", "gumbel", "st_gumbel")


@dataclass(frozen=True)
class CategoricalVAEConfig:
    """Everything that defines a categorical VAE before training (the checkpoint cache keys on it).

    ``num_samples`` is VIMCO's S; ``tau0``, ``tau_min`` and ``anneal_rate`` the Gumbel-softmax schedule
    (eq. 2.13); ``baseline_hidden`` and ``momentum`` NVIL's baseline network and running statistics,
    ``normalize`` whether NVIL divides its learning signal by their running deviation.
    """

    estimator: str = "gumbel"
    in_channels: int = 1
    image_size: int = 28
    latent_channels: int = 1
    num_classes: int = 64  # K
    hidden: int = 64
    res_hidden: int = 32
    num_samples: int = 4
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 1e-5
    baseline_hidden: int = 100
    momentum: float = 0.8
    normalize: bool = True  # NVIL's variance normalisation; False to compare raw gradients

    def __post_init__(self):
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; expected one of {ESTIMATORS}")
        if self.num_classes < 2 or self.latent_channels < 1:
            raise ValueError(f"need num_classes >= 2 and latent_channels >= 1, got {self.num_classes} and {self.latent_channels}")
        if self.estimator == "vimco" and self.num_samples < 2:
            raise ValueError(f"VIMCO needs num_samples >= 2 (leave-one-out baselines), got {self.num_samples}")
        temperature(0, self.tau0, self.tau_min, self.anneal_rate)  # validates the schedule


def categorical_log_prob(z: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """``log q(z)`` of one-hot ``z`` under ``Cat(softmax(logits))``, over the last dim (eq. 2.1)."""
    return (z * F.log_softmax(logits, dim=-1)).sum(-1)


def categorical_kl_uniform(logits: torch.Tensor) -> torch.Tensor:
    """``KL(Cat(softmax(logits)) || Uniform(K)) = sum_k q_k log q_k + log K`` over the last dim (eq. 2.2)."""
    log_q = F.log_softmax(logits.float(), dim=-1)
    return (log_q.exp() * log_q).sum(-1) + math.log(logits.shape[-1])


class CategoricalVAE(nn.Module):
    """Encoder -> grid of categorical latents -> decoder -> discretised logistic over pixels.

    ``loss(x)`` returns, in nats per pixel dimension and averaged over the batch:
    ``nelbo``, the negative ELBO of eq. (2.3) with one hard sample and the exact KL (eq. 2.2), and its
    terms ``recon`` and ``kl``; and ``loss``, the surrogate whose gradient is the chosen estimator.
    ``loss`` equals a one-sample negative ELBO in value for ``reinforce``/``nvil``/``st_gumbel``,
    ``-L_S`` for ``vimco`` and the relaxed objective for ``gumbel``.
    """

    def __init__(self, config: CategoricalVAEConfig | None = None):
        super().__init__()
        self.config = c = config or CategoricalVAEConfig()
        self.encoder = Encoder(c.in_channels, c.latent_channels * c.num_classes, c.hidden, c.res_hidden)
        self.decoder = Decoder(c.latent_channels * c.num_classes, 2 * c.in_channels, c.hidden, c.res_hidden)
        if c.estimator == "nvil":  # C_psi(x): an MLP with one hidden layer of tanh units (Mnih & Gregor 2014)
            self.baseline = nn.Sequential(
                nn.Flatten(), nn.Linear(c.in_channels * c.image_size**2, c.baseline_hidden), nn.Tanh(),
                nn.Linear(c.baseline_hidden, 1)
            )
            self.register_buffer("signal_mean", torch.zeros(()))  # c: running mean of f - C_psi(x)
            self.register_buffer("signal_var", torch.ones(()))  # v: running variance of f - C_psi(x) - c
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # training steps, for eq. (2.13)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.image_size // 4, self.image_size // 4)

    @property
    def num_latents(self) -> int:
        """``N``: the number of categorical variables per image."""
        return math.prod(self.latent_shape)

    @property
    def tau(self) -> float:
        """The Gumbel-softmax temperature at the current training step (eq. 2.13)."""
        return temperature(int(self.step), self.tau0, self.tau_min, self.anneal_rate)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (B, C, H, W)`` in [0, 1] -> ``logits: (B, latent_channels, H/4, W/4, K)``."""
        logits = self.encoder(to_model_range(x))
        b, _, h, w = logits.shape
        return logits.view(b, self.latent_channels, self.num_classes, h, w).permute(0, 1, 3, 4, 2)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot (or relaxed) ``z: (B, latent_channels, h, w, K)`` -> ``mean, log_scale: (B, C, H, W)``."""
        b, l, h, w, k = z.shape
        mean, log_scale = self.decoder(z.permute(0, 1, 4, 2, 3).reshape(b, l * k, h, w)).chunk(2, dim=1)
        return mean, log_scale

    def _recon(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``-log p(x | z)`` in nats per image, ``(B,)``."""
        mean, log_scale = self.decode(z)
        return discretized_logistic_nll(x, mean, log_scale)

    def _score_terms(self, x, logits):
        """REINFORCE or NVIL: one sample, learning signal f = -log p(x, z) + log q(z | x)."""
        z = gumbel_max(logits.detach())
        log_q = categorical_log_prob(z, logits).flatten(1).sum(1)
        recon = self._recon(x, z)
        # the direct term grad log q of f has zero mean; NVIL drops it, and so do we (detach)
        f = recon + (log_q + self.num_latents * math.log(self.num_classes)).detach()
        if self.estimator == "reinforce":
            return score_function(f, log_q), recon
        # C_psi(x) predicts per pixel dimension, the scale of every loss in this book, so that a small
        # network reaches a signal of thousands of nats per image
        c_psi = self.baseline(to_model_range(x)).squeeze(1) * x[0].numel()
        centred = f.detach() - c_psi.detach()
        if self.training:  # NVIL's running statistics, momentum 0.8
            m = self.momentum
            self.signal_mean.mul_(m).add_((1 - m) * centred.mean())
            self.signal_var.mul_(m).add_((1 - m) * (centred - self.signal_mean).pow(2).mean())
        scale = self.signal_var.sqrt().clamp(min=1.0) if self.normalize else 1.0
        baseline_loss = ((f.detach() - self.signal_mean - c_psi) / x[0].numel()).pow(2)  # regress f - c on x
        return nvil(f, log_q, self.signal_mean + c_psi.detach(), scale) + gradient_only(baseline_loss), recon

    def _vimco_terms(self, x, logits):
        """VIMCO: S samples per image, log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x)."""
        s = self.num_samples
        expanded = logits.unsqueeze(1).expand(-1, s, *logits.shape[1:])  # (B, S, L, h, w, K)
        z = gumbel_max(expanded.detach())
        log_q = categorical_log_prob(z, expanded).flatten(2).sum(2)  # (B, S)
        recon = self._recon(x.repeat_interleave(s, 0), z.flatten(0, 1)).view(-1, s)
        log_w = -recon - self.num_latents * math.log(self.num_classes) - log_q
        return vimco(log_w, log_q), recon.mean(1)

    def _gumbel_terms(self, x, logits, kl):
        """Gumbel-softmax (relaxed) or straight-through; the KL (eq. 2.2) is differentiated exactly."""
        gumbels = gumbel_noise(logits)
        hard = self.estimator == "st_gumbel"
        y = gumbel_softmax(logits, self.tau, hard=hard, gumbels=gumbels)
        relaxed = self._recon(x, y)
        if hard:
            return relaxed + kl, relaxed
        with torch.no_grad():  # the discrete model's bound, with the sample the relaxation stands for
            recon = self._recon(x, gumbel_max(logits, gumbels))
        return relaxed + kl, recon

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The surrogate ``loss`` and the negative ELBO (eq. 2.3) with its terms, per pixel dimension."""
        check_image(x, self.in_channels, size=self.image_size)
        logits = self.encode(x)
        kl = categorical_kl_uniform(logits).flatten(1).sum(1)
        if self.estimator in ("reinforce", "nvil"):
            surrogate, recon = self._score_terms(x, logits)
        elif self.estimator == "vimco":
            surrogate, recon = self._vimco_terms(x, logits)
        else:
            surrogate, recon = self._gumbel_terms(x, logits, kl)
        out = {"loss": surrogate.mean(), "nelbo": (recon + kl).mean(), "recon": recon.mean(), "kl": kl.mean()}
        out = {key: value / x[0].numel() for key, value in out.items()}
        if self.estimator in ("gumbel", "st_gumbel"):
            out["tau"] = torch.tensor(self.tau, device=x.device)
        if self.training:
            self.step += 1
        return out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's mean image for the most probable code of each latent (pixels in [0, 1])."""
        logits = self.encode(x)
        z = F.one_hot(logits.argmax(-1), self.num_classes).to(logits.dtype)
        return discretized_logistic_mean(self.decode(z)[0])

    @torch.no_grad()
    def sample(self, n: int, mean_only: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images decoded from codes drawn from the uniform prior, pixels in [0, 1]."""
        device = next(self.parameters()).device
        codes = torch.randint(self.num_classes, (n, *self.latent_shape), device=device, generator=generator)
        mean, log_scale = self.decode(F.one_hot(codes, self.num_classes).float())
        if mean_only:
            return discretized_logistic_mean(mean)
        return discretized_logistic_sample(mean, log_scale, generator)


def _config_view(name: str) -> property:
    return property(lambda self: getattr(self.config, name),
                    doc=f"``config.{name}``, read-only: a setting lives in the config alone, so the checkpoint key sees it")


# The model reads its settings through these views; to run it with other settings, give it another
# config (``model.config = dataclasses.replace(model.config, estimator=...)``), never an attribute.
for _name in ("estimator", "num_samples", "momentum", "in_channels", "image_size", "latent_channels", "num_classes",
              "tau0", "tau_min", "anneal_rate", "normalize"):
    setattr(CategoricalVAE, _name, _config_view(_name))
