"""Gradient estimators for discrete samples (Chapter 02, eqs. 2.5-2.13).

A sample from a categorical distribution is a step function of its parameters, so autograd sees no
path from the sample back to them. Two families of estimators get around that:

* **score functions** keep the sample discrete and differentiate its log-probability instead:
  REINFORCE (Williams 1992), NVIL (Mnih & Gregor 2014) and VIMCO (Mnih & Rezende 2016);
* **relaxations** replace the sample by a differentiable one: Gumbel-softmax / Concrete
  (Jang et al. 2017; Maddison et al. 2017), and its straight-through variant.

Each score-function estimator returns a *surrogate cost*: a tensor equal in value to the cost being
estimated, whose gradient is the estimator. It is built with :func:`gradient_only`, which is zero in
value and carries a tensor's gradient, so a surrogate can be logged as the loss it stands for.
Costs are minimised: ``f`` is a negative ELBO term, not a reward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gradient_only(t: torch.Tensor) -> torch.Tensor:
    """``t - sg[t]``: zero in value, with ``t``'s gradient (``sg`` is stop-gradient)."""
    return t - t.detach()


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape (one value per sample), got {tuple(a.shape)} and {tuple(b.shape)}")


def score_function(f: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """REINFORCE, eq. (2.5): a surrogate equal to ``f`` whose gradient adds ``f * grad log q(z)``.

    ``f: (B,)`` is the cost of each sample ``z`` (it may carry its own pathwise gradient, e.g. to a
    decoder); ``log_q: (B,)`` is ``log q_phi(z)`` of that sample, differentiable in ``phi``.
    Averaged over samples, the gradient is unbiased for ``grad E_q[f(z)]``.
    """
    _check_same_shape(f, log_q, "f and log_q")
    return f + f.detach() * gradient_only(log_q)


def nvil(f: torch.Tensor, log_q: torch.Tensor, baseline: torch.Tensor, scale: float | torch.Tensor = 1.0) -> torch.Tensor:
    """NVIL, eqs. (2.6)-(2.7): REINFORCE with the signal ``(f - b) / scale`` in place of ``f``.

    ``baseline: (B,)`` is ``b(x)``, which may depend on the input but not on the sample ``z``; its
    own gradient is ignored here (train it separately, by regression of ``f`` on ``x``). Any such
    ``b`` leaves the estimator unbiased (eq. 2.6). ``scale > 0`` is NVIL's variance normalisation,
    ``max(1, sigma)``: it rescales the gradient, so the estimate is unbiased for
    ``grad E_q[f] / scale``. With ``b = 0`` and ``scale = 1`` this is :func:`score_function`.
    """
    _check_same_shape(f, log_q, "f and log_q")
    _check_same_shape(f, baseline, "f and baseline")
    if torch.any(torch.as_tensor(scale) <= 0):
        raise ValueError(f"scale must be positive (NVIL uses max(1, sigma)), got {scale}")
    signal = ((f - baseline) / scale).detach()
    return f + signal * gradient_only(log_q)


def log_mean_exp(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(mean(exp(t)))`` along ``dim``, computed stably."""
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def vimco(log_w: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """VIMCO, eqs. (2.8)-(2.9): the multi-sample bound with leave-one-out baselines.

    ``log_w: (B, S)`` holds ``log w_s = log p(x, z_s) - log q(z_s | x)`` for ``S >= 2`` independent
    samples per input (with its pathwise gradient); ``log_q: (B, S)`` holds ``log q(z_s | x)``.
    Returns ``(B,)``: equal in value to ``-L_S = -log (1/S) sum_s w_s`` (eq. 2.8), with gradient the
    VIMCO estimator of ``-grad L_S``. Sample ``s`` gets the learning signal ``L_S - L_S(s | -s)``,
    where ``L_S(s | -s)`` replaces ``log w_s`` by the mean of the other ``S - 1`` log-weights.
    """
    _check_same_shape(log_w, log_q, "log_w and log_q")
    if log_w.dim() != 2 or log_w.shape[1] < 2:
        raise ValueError(f"expected log_w of shape (B, S) with S >= 2 samples per input, got {tuple(log_w.shape)}")
    num_samples = log_w.shape[1]
    bound = log_mean_exp(log_w, dim=1)
    lw = log_w.detach()
    others_mean = (lw.sum(1, keepdim=True) - lw) / (num_samples - 1)  # (B, S): mean of the other log w
    eye = torch.eye(num_samples, dtype=torch.bool, device=lw.device)
    # row s of the (B, S, S) tensor is log_w with its s-th entry replaced by others_mean[:, s]
    leave_one_out = torch.where(eye, others_mean.unsqueeze(2), lw.unsqueeze(1))
    signal = bound.detach().unsqueeze(1) - log_mean_exp(leave_one_out, dim=2)
    return -(bound + (signal * gradient_only(log_q)).sum(1))


def gumbel_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Gumbel noise ``G = -log(-log U)``, ``U ~ Uniform(0, 1)``, shaped like ``like``.

    At least fp32 (fp64 stays fp64): half-precision noise under autocast would coarsen the sample.
    """
    dtype = torch.promote_types(like.dtype, torch.float32)
    u = torch.rand(like.shape, generator=generator, dtype=dtype, device=like.device)
    tiny = torch.finfo(dtype).tiny
    exponential = -torch.log(u.clamp(min=tiny))  # E ~ Exp(1); clamps keep log away from 0
    return -torch.log(exponential.clamp(min=tiny))


def gumbel_max(logits: torch.Tensor, gumbels: torch.Tensor | None = None) -> torch.Tensor:
    """The Gumbel-max trick, eq. (2.10): ``one_hot(argmax(logits + G))`` is a sample of
    ``Categorical(softmax(logits))`` over the last dimension. Pass ``gumbels`` to fix the noise."""
    gumbels = gumbel_noise(logits) if gumbels is None else gumbels
    _check_same_shape(logits, gumbels, "logits and gumbels")
    index = (logits + gumbels).argmax(-1)
    return F.one_hot(index, logits.shape[-1]).to(logits.dtype)


def gumbel_softmax(
    logits: torch.Tensor, tau: float, hard: bool = False, gumbels: torch.Tensor | None = None
) -> torch.Tensor:
    """Gumbel-softmax / Concrete sample ``softmax((logits + G) / tau)`` over the last dim, eq. (2.11).

    ``hard=True`` is the straight-through variant, eq. (2.12): the forward value is the one-hot
    Gumbel-max sample (eq. 2.10, same noise), the gradient is that of the relaxed sample.
    Both are biased for the gradient of the discrete model. The relaxed sample's bias vanishes as
    ``tau -> 0`` (its variance grows like ``1 / tau``); the straight-through one's does not in general: in
    the limit it replaces ``f(e_j) - f(e_k)`` by the trapezoid rule, exact only for costs quadratic
    along the edges between one-hot vectors (Solutions 02, Exercise 4).
    """
    if not tau > 0:
        raise ValueError(f"the temperature tau must be positive, got {tau}")
    gumbels = gumbel_noise(logits) if gumbels is None else gumbels
    _check_same_shape(logits, gumbels, "logits and gumbels")
    y = torch.softmax((logits + gumbels) / tau, dim=-1)
    if not hard:
        return y
    one_hot = F.one_hot(y.argmax(-1), logits.shape[-1]).to(y.dtype)
    return one_hot + gradient_only(y)


def temperature(step: int, tau0: float = 1.0, tau_min: float = 0.5, rate: float = 1e-5) -> float:
    """Annealed temperature ``max(tau_min, tau0 * exp(-rate * step))``, eq. (2.13) (Jang et al. 2017)."""
    if not 0 < tau_min <= tau0 or rate < 0 or step < 0:
        raise ValueError(f"need 0 < tau_min <= tau0, rate >= 0 and step >= 0, got {tau_min=}, {tau0=}, {rate=}, {step=}")
    return max(tau_min, tau0 * math.exp(-rate * step))
