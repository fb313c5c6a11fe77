"""The paper's second stage for every discrete model: a learned prior over its codes (Chapter 07).

The paper fits an autoregressive prior over the VQ-VAE's codes after training (its section 3.3). To
compare discrete models on equal terms, Chapter 07 gives the categorical VAEs of Chapter 02 the same
second stage. With a learned prior ``p_prior`` the bound (7.1) becomes, for one image,

    -log p(x) <= E_{z ~ q(z|x)} [ -log p(x | z) + log q(z | x) - log p_prior(z) ]        (eq. 7.5)

For the VQ-VAE ``q`` is one-hot: its "sample" is the encoder's nearest codes and ``log q = 0``, so
(7.5) is (7.4). For a categorical VAE the codes are one sample of ``q``, and ``log q(z | x)`` is what
the sample cost the encoder. Codes are laid out on the grid the prior models, ``(B, h, w * L)``: the
``L`` codes of one position side by side, as ``VQVAE`` lays out ``codes_per_position``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .discrete import CategoricalVAE, categorical_log_prob
from .estimators import gumbel_max, gumbel_noise
from .likelihood import discretized_logistic_nll
from .vqvae import VQVAE


@torch.no_grad()
def posterior_sample(model, x: torch.Tensor, generator: torch.Generator | None = None):
    """One ``z ~ q(z | x)`` per image: ``codes (B, h, w*L)`` int64, ``log_q (B,)`` and ``recon (B,)``.

    ``recon`` is ``-log p(x | z)`` in nats per image for that ``z``. For a :class:`VQVAE` the codes are
    ``model.encode(x)`` and ``log_q`` is zero; for a :class:`CategoricalVAE` they are drawn with the
    Gumbel-max trick from ``generator`` (on ``x``'s device), else from the global RNG.
    """
    if isinstance(model, VQVAE):
        codes = model.encode(x)
        mean, log_scale = model.decoder(model._from_codes(model.quantizer.lookup(codes))).chunk(2, dim=1)
        return codes, torch.zeros(len(x), device=x.device), discretized_logistic_nll(x, mean, log_scale)
    if isinstance(model, CategoricalVAE):
        logits = model.encode(x)  # (B, L, h, w, K)
        z = gumbel_max(logits, gumbel_noise(logits, generator))
        log_q = categorical_log_prob(z, logits).flatten(1).sum(1)
        b, l, h, w, _ = logits.shape
        codes = z.argmax(-1).permute(0, 2, 3, 1).reshape(b, h, w * l)
        return codes, log_q, model._recon(x, z)
    raise TypeError(f"posterior_sample needs a VQVAE or a CategoricalVAE, got {type(model).__name__}")


@torch.no_grad()
def prior_nll(prior, codes: torch.Tensor) -> torch.Tensor:
    """``-log p_prior(codes)`` of each grid in nats, ``(B,)``: eq. (6.2) summed over the latents."""
    return F.cross_entropy(prior(codes).float(), codes, reduction="none").flatten(1).sum(1)


@torch.no_grad()
def learned_prior_bound(model, prior, loader, generator: torch.Generator | None = None) -> dict[str, float]:
    """Eq. (7.5) averaged over ``loader``'s images, one posterior sample each, in nats per dimension.

    Returns ``recon`` (the reconstruction term), ``latents`` (``log q - log p_prior``, the KL to the
    learned prior, estimated by the same sample) and ``nelbo``, their sum. Both models must be in
    eval mode and on one device.
    """
    device = next(model.parameters()).device
    totals, count, dims = {"recon": 0.0, "latents": 0.0}, 0, None
    for batch in loader:
        x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
        codes, log_q, recon = posterior_sample(model, x, generator)
        totals["recon"] += recon.sum().item()
        totals["latents"] += (log_q + prior_nll(prior, codes)).sum().item()
        count, dims = count + len(x), x[0].numel()
    if not count:
        raise ValueError("the loader is empty")
    out = {key: value / (count * dims) for key, value in totals.items()}
    return {**out, "nelbo": out["recon"] + out["latents"]}
