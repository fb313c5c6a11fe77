"""The vector quantiser of VQ-VAE (van den Oord et al. 2017, Sec. 3.1-3.2; Chapter 04)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import all_reduce_sum_, broadcast_, gather_rows, is_distributed
from ..precision import at_least_fp32
from .base import Quantizer, QuantizerOutput, check_indices, check_z_e, perplexity_of_counts
from .kmeans import kmeans
from .nearest import nearest_code
from .rotation import check_gradient, rotate_to


class _CodebookQuantizer(Quantizer):
    """What both quantisers share: nearest-code lookup, the output's gradient, perplexity, the
    interface every quantiser of the book has (base.py), and the two optional training aids of
    Chapter 05, off by default:

    - ``kmeans_init``: on the first training batch, replace the codebook by k-means centroids of
      that batch's encoder outputs (needs at least ``num_codes`` vectors in the batch);
    - ``restart_after``: a code unused for that many consecutive training batches is re-seeded
      from a random encoder output of the current batch; the donors are drawn without replacement
      from the batch's distinct, finite vectors, so two dead codes never restart on the same vector
      (with more dead codes than distinct vectors, the rest wait for the next batch).

    ``idle_steps`` counts, for every code, the training batches since it was last chosen.

    ``gradient`` is how the output passes the gradient to z_e: ``"straight_through"`` (paper Sec. 3.1,
    the default) or ``"rotation"`` (the rotation trick, rotation.py). The value and the loss are the same.

    Under ``torch.distributed`` (DDP, distributed.py), while ``sync`` is True (the default), a training
    forward keeps the codebook's state equal on every rank: the code counts n_i are summed over all
    ranks before they drive the perplexity, the idle counts and (EMA) the update, and k-means
    initialisation and restarts draw from all ranks' encoder outputs, with rank 0's result broadcast.
    So 2 ranks with half a batch each train like one process with the whole batch. ``sync = False``
    shows what happens without it: each rank's codebook follows its own data and they drift apart.
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float, kmeans_init: bool, restart_after: int | None,
                 gradient: str = "straight_through"):
        super().__init__()
        check_gradient(gradient)
        if num_codes < 1 or code_dim < 1 or beta < 0:
            raise ValueError(f"need num_codes >= 1, code_dim >= 1, beta >= 0; got {num_codes}, {code_dim}, {beta}")
        if restart_after is not None and restart_after < 1:
            raise ValueError(f"restart_after must be a positive number of batches or None, got {restart_after}")
        self.num_codes, self.code_dim, self.beta = num_codes, code_dim, beta
        self.kmeans_init, self.restart_after, self.gradient = kmeans_init, restart_after, gradient
        self.sync = True
        self.register_buffer("initialised", torch.tensor(not kmeans_init))
        self.register_buffer("idle_steps", torch.zeros(num_codes, dtype=torch.int64))

    def dead_codes(self, idle_for: int = 100) -> torch.Tensor:
        """How many codes no training batch has chosen in the last ``idle_for`` batches (0-d tensor)."""
        return (self.idle_steps >= idle_for).sum()

    def _set_codes(self, which: torch.Tensor, vectors: torch.Tensor) -> None:
        # A loss-trained code keeps its Adam moments: while dead its gradient was zero, so the first
        # moment has decayed (0.9^t) and each later Adam step is still bounded by about lr per
        # coordinate; at lr = 2e-4 that is far below the distances between codes, so we leave it.
        self.codebook.data[which] = vectors.to(self.codebook.dtype)

    def _synced(self) -> bool:
        return self.sync and is_distributed()

    def _global_counts(self, indices: torch.Tensor) -> torch.Tensor:
        """n_i: how many encoder vectors chose each code, over all ranks when synchronised."""
        counts = torch.bincount(indices, minlength=self.num_codes)
        return all_reduce_sum_(counts) if self._synced() else counts

    def _draw_on_all_ranks(self, flat: torch.Tensor, draw) -> torch.Tensor:
        """``draw(pool)`` on the encoder outputs of all ranks (this rank's alone when not
        synchronised); every rank draws, so their random streams stay in step, and rank 0's draw wins."""
        if not self._synced():
            return draw(flat)
        return broadcast_(draw(gather_rows(flat)).contiguous())

    @staticmethod
    def _donor_pool(flat: torch.Tensor) -> torch.Tensor:
        """The distinct, finite rows of ``flat`` in their order of first appearance (all of ``flat``,
        unchanged, when its rows are finite and distinct): a code is never seeded from a NaN or an
        infinity, and two codes restarted in one step never land on the same vector."""
        flat = flat[torch.isfinite(flat).all(1)]
        if len(flat) < 2:
            return flat
        rows, inverse = torch.unique(flat, dim=0, return_inverse=True)
        first = torch.full((len(rows),), len(flat), device=flat.device)
        first.scatter_reduce_(0, inverse, torch.arange(len(flat), device=flat.device), "amin")
        return flat[first.sort().values]

    @torch.no_grad()
    def _initialise_count_and_restart(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor):
        """k-means initialisation, idle counts and dead-code restarts (training mode only); returns
        the indices and their counts, recomputed if the codebook changed."""
        if self.kmeans_init and not self.initialised:  # the flag is read (a host sync) only where it can be False
            def kmeans_codebook(pool):
                pool = pool[torch.isfinite(pool).all(1)]
                if len(pool) < self.num_codes:
                    raise ValueError(f"kmeans_init needs a first batch of at least num_codes={self.num_codes} "
                                     f"finite encoder vectors, got {len(pool)}: use a larger batch")
                return kmeans(at_least_fp32(pool), self.num_codes, iters=10)[0]

            self._set_codes(torch.arange(self.num_codes, device=flat.device), self._draw_on_all_ranks(flat, kmeans_codebook))
            self.initialised.fill_(True)
            indices = nearest_code(flat, self.codebook)
            return indices, self._global_counts(indices)
        self.idle_steps.add_(1).masked_fill_(counts > 0, 0)
        if self.restart_after is None:
            return indices, counts
        dead = (self.idle_steps >= self.restart_after).nonzero().flatten()  # the same on every rank
        if len(dead):
            def donors(pool):  # drawn without replacement: two dead codes never restart on one vector
                pool = self._donor_pool(pool)
                return pool[torch.randperm(len(pool), device=pool.device)[: len(dead)]]

            vectors = self._draw_on_all_ranks(flat, donors)
            dead = dead[: len(vectors)]
            self._set_codes(dead, vectors)
            self.idle_steps[dead] = 0
        return indices, counts

    def _quantize(self, z_e: torch.Tensor):
        check_z_e(z_e, self.code_dim)
        b, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (N, D), N = B*H*W
        indices = nearest_code(flat, self.codebook)
        if self.training:
            indices, counts = self._initialise_count_and_restart(flat.detach(), indices, self._global_counts(indices))
        else:
            counts = torch.bincount(indices, minlength=self.num_codes)
        return flat, indices, counts, (b, d, h, w)

    def _output(self, flat, e, indices, counts, shape, loss) -> QuantizerOutput:
        b, d, h, w = shape
        if self.gradient == "rotation":
            z_q = rotate_to(flat, e)  # value e, gradient lambda R^T to z_e
        else:
            z_q = flat + (e - flat).detach()  # straight-through: value e, gradient identity to z_e
        return QuantizerOutput(
            z_q=z_q.view(b, h, w, d).permute(0, 3, 1, 2),
            loss=loss,
            indices=indices.view(b, h, w),
            perplexity=perplexity_of_counts(counts),
        )

    @torch.no_grad()
    def encode_indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices ``(B, H, W)`` for ``z_e: (B, D, H, W)``. Unlike a training forward it
        changes nothing, in any mode: no EMA step, k-means initialisation, restart or idle count."""
        check_z_e(z_e, self.code_dim)
        b, d, h, w = z_e.shape
        return nearest_code(z_e.permute(0, 2, 3, 1).reshape(-1, d), self.codebook).view(b, h, w)

    @torch.no_grad()
    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for ``indices: (B, H, W)`` as ``z_q: (B, D, H, W)`` (to decode a prior's samples)."""
        check_indices(indices, self.num_codes)
        return F.embedding(indices, self.codebook).permute(0, 3, 1, 2)


class VectorQuantizer(_CodebookQuantizer):
    """Replace each encoder vector z_e by its nearest codebook entry (paper eq. 1-2).

    The forward value is the selected code; the gradient passes straight through to z_e (paper
    Sec. 3.1, Chapter 04 eq. 4.4), or is rotated with ``gradient="rotation"``. ``loss`` is the
    codebook term plus ``beta`` times the commitment term, each a mean over all elements as in Sonnet:
    ``mean((e - sg[z_e])^2) + beta * mean((z_e - sg[e])^2)`` (paper eq. 3, Chapter 04 eq. 4.5).
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25, *, kmeans_init: bool = False,
                 restart_after: int | None = None, init_scale: float | None = None,
                 gradient: str = "straight_through"):
        super().__init__(num_codes, code_dim, beta, kmeans_init, restart_after, gradient)
        # Default: Sonnet's "uniform unit scaling", codes of about unit norm. Many PyTorch ports use
        # init_scale=1/K instead, which collapses to a few codes at our budgets (Chapter 05).
        limit = init_scale if init_scale is not None else (3.0 / code_dim) ** 0.5
        self.codebook = nn.Parameter(torch.empty(num_codes, code_dim).uniform_(-limit, limit))

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat, indices, counts, shape = self._quantize(z_e)
        e = self.codebook.index_select(0, indices)  # its backward is the codebook's index_add
        loss = F.mse_loss(e, flat.detach()) + self.beta * F.mse_loss(flat, e.detach())
        return self._output(flat, e, indices, counts, shape, loss)


class VectorQuantizerEMA(_CodebookQuantizer):
    """The same quantiser with the codebook learned by exponential moving averages (paper App. A.1).

    In training mode every forward applies, for each code i with the n_i encoder vectors z_{i,j}
    assigned to it (Chapter 05, eqs. 5.2-5.4):

        N_i <- gamma N_i + (1 - gamma) n_i
        m_i <- gamma m_i + (1 - gamma) sum_j z_{i,j}
        e_i  = m_i / N_i                      (only for codes with n_i > 0)

    with N_i Laplace-smoothed, ``(N_i + eps) / (n + K eps) * n`` for ``n = sum_i N_i``, so that no
    division by zero occurs. A code that no vector of the batch chose keeps e_i exactly; its N_i and
    m_i still decay. Without that rule (the book's choice; App. A.1 is silent on unused codes) the
    smoothing would pull such a code towards the origin, ``e_i ~ e_0 gamma^t / (gamma^t + eps)``,
    within about ``ln eps / ln gamma`` steps (1,150 at gamma = 0.99, eps = 1e-5). So a code that is
    never chosen stays where it is until a restart moves it. N_i starts at 1 and m_i at e_i, and
    k-means initialisation and restarts keep ``m_i = N_i e_i``.

    ``codebook`` is a buffer that no optimiser sees; ``loss`` is only ``beta`` times the commitment
    term. The averages are kept in fp32 whatever the autocast dtype (fp64 after ``.double()``).
    Encoder vectors with a NaN or an infinity are left out of the averages and counted in
    ``skipped_rows``, so one overflowing batch cannot poison the codebook. In eval mode nothing changes.
    """

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25, decay: float = 0.99, eps: float = 1e-5,
                 *, kmeans_init: bool = False, restart_after: int | None = None, gradient: str = "straight_through"):
        super().__init__(num_codes, code_dim, beta, kmeans_init, restart_after, gradient)
        if not 0.0 <= decay < 1.0 or eps <= 0:
            raise ValueError(f"need 0 <= decay < 1 and eps > 0, got decay={decay}, eps={eps}")
        self.decay, self.eps = decay, eps
        limit = (3.0 / code_dim) ** 0.5
        codebook = torch.empty(num_codes, code_dim).uniform_(-limit, limit)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(num_codes))  # N_i
        self.register_buffer("code_sum", codebook.clone())  # m_i
        self.register_buffer("skipped_rows", torch.zeros((), dtype=torch.int64))  # non-finite z_e left out

    def _set_codes(self, which: torch.Tensor, vectors: torch.Tensor) -> None:
        vectors = vectors.to(self.codebook.dtype)
        self.codebook[which] = vectors
        self.cluster_size[which] = 1.0
        self.code_sum[which] = vectors  # m_i = N_i e_i with N_i = 1

    @torch.no_grad()
    def ema_update(self, flat: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor | None = None) -> None:
        """One step of App. A.1 for encoder vectors ``flat: (N, D)`` assigned to ``indices: (N,)``
        (``counts``, the n_i over all ranks, are computed from ``indices`` unless given). Under DDP the
        sums are taken over all ranks' vectors, so every rank makes the same step."""
        flat = flat.to(self.code_sum.dtype)
        if counts is None:
            counts = self._global_counts(indices)
        # A row with a NaN or an infinity (an fp16 overflow, say) would make its code NaN for good, and a
        # NaN code wins every later nearest-code search; such rows are left out of n_i and sum_j z_ij.
        bad = ~torch.isfinite(flat).all(1)
        flat = flat.masked_fill(bad.unsqueeze(1), 0.0)
        bad_counts = torch.zeros_like(counts).index_add_(0, indices, bad.to(counts.dtype))
        sums = torch.zeros_like(self.code_sum).index_add_(0, indices, flat)  # sum_j z_{i,j}
        if self._synced():
            all_reduce_sum_(sums)
            all_reduce_sum_(bad_counts)
        counts = counts - bad_counts
        self.skipped_rows.add_(bad_counts.sum())
        self.cluster_size.mul_(self.decay).add_(counts.to(self.cluster_size.dtype), alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_codes * self.eps) * total
        chosen = (counts > 0).unsqueeze(1)
        self.codebook.copy_(torch.where(chosen, self.code_sum / smoothed.unsqueeze(1), self.codebook))

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        flat, indices, counts, shape = self._quantize(z_e)
        if self.training:
            self.ema_update(flat.detach(), indices, counts)
        e = self.codebook.index_select(0, indices)
        return self._output(flat, e, indices, counts, shape, self.beta * F.mse_loss(flat, e))
