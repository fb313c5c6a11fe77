"""Bits per dimension: the book's one yardstick for comparing likelihood models (Chapter 07).

Every model in the book is scored by a two-part code length: ``-log p(x | z)`` for the pixels given
the latents, plus the cost of the latents themselves (a KL term, ``N log K`` for a uniform prior over
K codes, or a learned prior's cross-entropy). Both parts are averaged over test images and divided by
the M pixel values of an image.
"""

from __future__ import annotations

import math


def bits_per_dim(nats: float, num_dims: int = 1) -> float:
    """``nats / (num_dims * ln 2)``: a negative log-likelihood in nats as bits per dimension.

    With ``num_dims=1`` it converts a per-dimension value in nats (what the models' ``loss``
    returns) to bits. A uniform model of 8-bit pixels scores exactly 8 bits/dim.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    return float(nats) / (num_dims * math.log(2.0))


def uniform_prior_nats(num_latents: int, num_codes: int) -> float:
    """Chapter 04 eq. (4.6): ``N ln K`` nats per image for N latents under a uniform prior over K codes."""
    if num_latents <= 0 or num_codes < 1:
        raise ValueError(f"need num_latents > 0 and num_codes >= 1, got {num_latents} and {num_codes}")
    return num_latents * math.log(num_codes)


def two_part_bits_per_dim(recon_nats_per_dim: float, latent_nats_per_image: float, num_dims: int) -> float:
    """Chapter 07 eq. (7.1): ``(E[-log p(x|z)] + latent cost) / (M ln 2)`` in bits per dimension.

    ``recon_nats_per_dim`` is the reconstruction term already divided by M (as the models report it);
    ``latent_nats_per_image`` is the KL term, ``N ln K``, or N times a prior's cross-entropy per latent.
    """
    if latent_nats_per_image < 0:
        raise ValueError(f"a code length cannot be negative, got latent cost {latent_nats_per_image}")
    return bits_per_dim(recon_nats_per_dim) + bits_per_dim(latent_nats_per_image, num_dims)
