"""The VQ-VAE: the paper's encoder, a vector quantiser, the paper's decoder (Chapter 04).

The likelihood is the discretised logistic of Chapter 01, so the reconstruction term is a code
length, and with the paper's uniform prior over K codes the negative ELBO in nats per pixel is
``recon + N ln K / M`` for N latents and M pixel values (Chapter 04, eq. 4.6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import nn

from .blocks import Decoder, Encoder, check_image, check_sizes
from .likelihood import discretized_logistic_mean, discretized_logistic_nll, to_model_range
from .metrics import uniform_prior_nats
from .quantizers.base import Quantizer, codes_used
from .quantizers.fsq import FiniteScalarQuantizer
from .quantizers.lfq import LookupFreeQuantizer
from .quantizers.residual import ResidualVectorQuantizer
from .quantizers.rotation import check_gradient
from .quantizers.vq import VectorQuantizer, VectorQuantizerEMA

QUANTIZERS = ("vq", "ema", "fsq", "rvq", "lfq")
_AIDS = {"kmeans_init", "restart_after", "gradient", "sync"}  # what every codebook quantiser takes
ACTING_FIELDS = {  # beyond the trunk's fields, which act for every quantiser
    "vq": {"beta", "init_scale"} | _AIDS,
    "ema": {"beta", "decay", "eps"} | _AIDS,
    "rvq": {"beta", "num_stages", "rvq_stage"} | _AIDS,  # plus its stages' fields, see acting_fields()
    "fsq": {"levels"},
    "lfq": {"beta", "entropy_weight"},
}
TRUNK_FIELDS = {"in_channels", "num_codes", "code_dim", "hidden", "res_hidden", "quantizer", "codes_per_position",
                "vq_terms"}
VQ_TERMS = ("sum", "mean")  # the VQ terms summed over an image's N latents (the book's reading), or averaged


@dataclass(frozen=True)
class VQVAEConfig:
    """Everything that defines a VQ-VAE before training (the checkpoint cache keys on it).

    ``quantizer`` is ``"vq"`` (the codebook learned by the loss, paper eq. 3) or ``"ema"`` (paper
    App. A.1); ``decay`` and ``eps`` apply to ``"ema"``, ``init_scale`` to ``"vq"`` (None: Sonnet's
    unit-scale init); ``kmeans_init`` and ``restart_after`` are Chapter 05's training aids, and
    ``gradient`` is ``"straight_through"`` (the paper) or ``"rotation"`` (the rotation trick).
    Chapter 10's later quantisers: ``"fsq"`` (``levels``; then ``code_dim = len(levels)`` and
    ``num_codes = prod(levels)``), ``"rvq"`` (``num_stages`` stages of ``num_codes`` codes, each stage
    a ``"vq"`` quantiser, or ``"ema"`` with ``rvq_stage="ema"``), ``"lfq"`` (``num_codes = 2**code_dim``,
    ``entropy_weight``).
    ``codes_per_position`` keeps that many codes at each grid position (the paper's CIFAR-10 latents
    are 8 x 8 x 10; Chapter 07 reads that as 10 codes per position): the encoder outputs
    ``codes_per_position * code_dim`` channels, each ``code_dim`` slice is quantised with the one
    codebook, and the code grid of an ``h x w`` latent map is ``h x (w * codes_per_position)``.
    ``vq_terms`` weighs the codebook and commitment terms against the reconstruction: ``"sum"`` (the
    book's choice) sums them over the N latents of an image, as eq. 3 is written per image;
    ``"mean"`` averages them over the N latents, the literal reading of the paper's "an average over
    N terms for k-means and commitment loss". Per pixel value the weights are N*D/M and D/M.
    ``sync`` keeps a codebook's counts and draws equal across processes under DDP (distributed.py).

    One rule for every field: it acts for the chosen quantiser (:data:`ACTING_FIELDS`), or it keeps
    its default; a field set for a quantiser that would ignore it is refused. Only the acting
    fields enter the checkpoint key (:meth:`acting_fields`).
    """

    in_channels: int = 1
    num_codes: int = 512  # K
    code_dim: int = 64  # D
    hidden: int = 64
    res_hidden: int = 32
    beta: float = 0.25
    quantizer: str = "vq"
    decay: float = 0.99
    eps: float = 1e-5
    init_scale: float | None = None
    kmeans_init: bool = False
    restart_after: int | None = None
    codes_per_position: int = 1
    vq_terms: str = "sum"
    gradient: str = "straight_through"
    levels: tuple[int, ...] | None = None  # fsq
    num_stages: int = 2  # rvq
    rvq_stage: str = "vq"  # rvq
    entropy_weight: float = 0.1  # lfq
    sync: bool = True  # vq, ema, rvq under DDP

    def __post_init__(self):
        check_sizes(self, "in_channels", "num_codes", "code_dim", "hidden", "res_hidden")
        check_gradient(self.gradient)
        if self.vq_terms not in VQ_TERMS:
            raise ValueError(f"unknown vq_terms {self.vq_terms!r}; expected one of {VQ_TERMS}")
        if self.codes_per_position < 1:
            raise ValueError(f"codes_per_position must be at least 1, got {self.codes_per_position}")
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.quantizer!r}; expected one of {QUANTIZERS}")
        inert = {f.name for f in fields(self)} - self.acting_fields().keys()
        for f in fields(self):
            if f.name in inert and getattr(self, f.name) != f.default:
                users = sorted(q for q in QUANTIZERS if f.name in ACTING_FIELDS[q] | _stage_fields(q, self.rvq_stage))
                raise ValueError(f"{f.name}={getattr(self, f.name)!r} does nothing for quantizer={self.quantizer!r}"
                                 f"{' with rvq_stage=' + repr(self.rvq_stage) if self.quantizer == 'rvq' else ''}; "
                                 f"it applies to {' and '.join(users) or 'no quantizer here'}: leave it out")
        if self.quantizer == "fsq":
            if not self.levels or self.code_dim != len(self.levels) or self.num_codes != math.prod(self.levels):
                raise ValueError(f"an FSQ config needs levels, code_dim = len(levels) and num_codes = prod(levels); "
                                 f"got levels={self.levels}, code_dim={self.code_dim}, num_codes={self.num_codes}")
        elif self.levels is not None:
            raise ValueError(f"levels apply to quantizer='fsq' only, got quantizer={self.quantizer!r}")
        if self.quantizer == "lfq" and self.num_codes != 2**self.code_dim:
            raise ValueError(f"an LFQ config has num_codes = 2**code_dim = {2**self.code_dim}, got {self.num_codes}")
        if self.quantizer == "rvq" and (self.num_stages < 1 or self.rvq_stage not in ("vq", "ema")):
            raise ValueError(f"an RVQ config needs num_stages >= 1 and rvq_stage 'vq' or 'ema', "
                             f"got {self.num_stages}, {self.rvq_stage!r}")


    def acting_fields(self) -> dict:
        """The fields that change what this config builds, by name: the trunk's and the quantiser's."""
        acting = TRUNK_FIELDS | ACTING_FIELDS[self.quantizer] | _stage_fields(self.quantizer, self.rvq_stage)
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in acting}


def _stage_fields(quantizer: str, rvq_stage: str) -> set[str]:
    """Residual VQ's stages are "vq" or "ema" quantisers and take their fields."""
    return ACTING_FIELDS[rvq_stage] - _AIDS - {"beta"} if quantizer == "rvq" else set()


def build_quantizer(config: VQVAEConfig) -> Quantizer:
    """The quantiser that ``config`` names, given every field that acts for it."""
    training_aids = dict(kmeans_init=config.kmeans_init, restart_after=config.restart_after, gradient=config.gradient)
    vq = dict(init_scale=config.init_scale)
    ema = dict(decay=config.decay, eps=config.eps)
    if config.quantizer == "fsq":
        return FiniteScalarQuantizer(config.levels)
    if config.quantizer == "lfq":
        return LookupFreeQuantizer(config.code_dim, entropy_weight=config.entropy_weight, commitment_weight=config.beta)
    if config.quantizer == "rvq":
        quantizer = ResidualVectorQuantizer(config.num_stages, config.num_codes, config.code_dim, config.beta,
                                            quantizer=config.rvq_stage, **training_aids, **(vq if config.rvq_stage == "vq" else ema))
    elif config.quantizer == "ema":
        quantizer = VectorQuantizerEMA(config.num_codes, config.code_dim, config.beta, **ema, **training_aids)
    else:
        quantizer = VectorQuantizer(config.num_codes, config.code_dim, config.beta, **vq, **training_aids)
    quantizer.sync = config.sync
    return quantizer


class VQVAE(nn.Module):
    """``x -> z_e = encoder(x) -> z_q = quantizer(z_e) -> p(x | z_q)``, built from a :class:`VQVAEConfig`.

    ``loss(x)`` returns the training objective (paper eq. 3 per image, divided by the M pixel values:
    ``recon + (N*D/M) * quantizer.loss``, or ``(D/M)`` with ``vq_terms="mean"``)
    and, for logging, ``nelbo`` (eq. 4.6), ``mse`` in pixel space, ``perplexity``, ``used``
    (distinct codes in the batch), ``dead`` (codes unchosen for the last 100 training batches) and
    ``z_e_norm`` (the mean Euclidean length of the encoder's vectors, to watch them drift).
    """

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = config = config or VQVAEConfig()
        self.in_channels, self.codes_per_position = config.in_channels, config.codes_per_position
        width = config.codes_per_position * config.code_dim
        self.encoder = Encoder(config.in_channels, width, config.hidden, config.res_hidden)
        self.quantizer = build_quantizer(config)
        self.decoder = Decoder(width, 2 * config.in_channels, config.hidden, config.res_hidden)

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    def _to_codes(self, z_e: torch.Tensor) -> torch.Tensor:
        """``(B, C*D, h, w) -> (B, D, h, w*C)``: the C vectors of a position side by side on the grid."""
        b, _, h, w = z_e.shape
        c = self.codes_per_position
        return z_e.view(b, c, -1, h, w).permute(0, 2, 3, 4, 1).reshape(b, -1, h, w * c)

    def _from_codes(self, z_q: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_to_codes`: ``(B, D, h, w*C) -> (B, C*D, h, w)``."""
        b, d, h, wc = z_q.shape
        c = self.codes_per_position
        return z_q.view(b, d, h, wc // c, c).permute(0, 4, 1, 2, 3).reshape(b, c * d, h, wc // c)

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The paper's objective (eq. 3, Chapter 04 eq. 4.5) in nats per pixel, plus what Chapter 04 plots."""
        check_image(x, self.in_channels)
        z_e = self._to_codes(self.encoder(to_model_range(x)))
        q = self.quantizer(z_e)
        mean, log_scale = self.decoder(self._from_codes(q.z_q)).chunk(2, dim=1)
        dims = x[0].numel()
        recon = discretized_logistic_nll(x, mean, log_scale).mean() / dims
        latents, positions = q.indices[0].numel(), q.z_q[0, 0].numel()  # they differ for residual VQ: S codes a position
        # Per pixel value, the quantiser's element mean weighs N*D/M when the VQ terms are summed over
        # the N latent vectors of an image, D/M when they are averaged (VQVAEConfig.vq_terms).
        vq_weight = (positions if self.config.vq_terms == "sum" else 1) * z_e.shape[1] / dims
        with torch.no_grad():
            nelbo = recon + uniform_prior_nats(latents, self.num_codes) / dims
            mse = (discretized_logistic_mean(mean) - x).pow(2).mean()
            used = codes_used(q.indices).float()
            dead = self.quantizer.dead_codes().to(x.device, torch.float32)
            z_e_norm = z_e.detach().float().pow(2).sum(1).sqrt().mean()
        return {"loss": recon + vq_weight * q.loss, "recon": recon, "vq": q.loss, "nelbo": nelbo, "mse": mse,
                "perplexity": q.perplexity, "used": used, "dead": dead, "z_e_norm": z_e_norm}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> code indices ``(B, H/4, W/4 * codes_per_position)`` (int64;
        ``(B, S, ...)`` for residual VQ's S stages)."""
        check_image(x, self.in_channels)
        z_e = self._to_codes(self.encoder(to_model_range(x)))
        # Not the quantiser's forward: encoding must never update a codebook.
        return self.quantizer.encode_indices(z_e)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices ``(B, h, w * codes_per_position)`` (``(B, S, ...)`` for residual VQ) -> the
        decoder's mean image ``(B, C, 4h, 4w)`` in [0, 1]."""
        if indices.dim() in (3, 4) and indices.shape[-1] % self.codes_per_position:
            raise ValueError(f"expected a code grid whose width is a multiple of codes_per_position="
                             f"{self.codes_per_position}, got shape {tuple(indices.shape)}")
        mean, _ = self.decoder(self._from_codes(self.quantizer.lookup(indices))).chunk(2, dim=1)
        return discretized_logistic_mean(mean)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))
