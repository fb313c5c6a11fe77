"""What do the codes know? Linear probes of codes and encoder outputs (Chapter 08).

**Probes.** A linear probe is a multinomial logistic regression fitted on frozen features of the
training clips and scored by its accuracy on the test clips. If a linear map can read the speaker
off the codes, the codes carry the speaker. The paper probes its speech codes this way for
phonemes (Sec. 4.3); we probe for digit and speaker. The features:

- :func:`bag_of_codes`: how often each code occurs in a clip (a histogram, ``(N, K)``), order lost;
- :func:`per_frame_codes`: the one-hot code of every position, concatenated (``(N, T' * K)``);
- :func:`mean_pooled` and :func:`flattened`: the same two views of a continuous encoder's ``z_e``.

Pooled features average over the clip, and per-utterance averages carry much speaker information
(van Niekerk et al., Interspeech 2021), so the chapter probes both views. (The classifiers that
score converted speech are in judges.py.)

**Padding.** Each feature takes an optional ``mask`` ``(N, T')`` of the positions that hold speech
(:func:`vqvae_lib.audio.spectrogram.time_mask`). Pooled features then average over speech only, so
the share of silence codes, which would tell the probe how long the clip is, is gone; ordered
features are zero at padded positions (where the clip ends is still visible to them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _check_codes(indices: torch.Tensor, num_codes: int) -> None:
    if not torch.is_tensor(indices) or indices.dtype != torch.long or indices.dim() != 2:
        got = f"{indices.dtype} {tuple(indices.shape)}" if torch.is_tensor(indices) else type(indices).__name__
        raise ValueError(f"expected int64 code indices of shape (N, T'), got {got}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= num_codes):
        raise ValueError(f"code indices must lie in [0, {num_codes}), got {int(indices.min())}..{int(indices.max())}")


def _check_mask(mask: torch.Tensor | None, shape: tuple[int, int]) -> None:
    if mask is None:
        return
    if not torch.is_tensor(mask) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        got = f"{mask.dtype} {tuple(mask.shape)}" if torch.is_tensor(mask) else type(mask).__name__
        raise ValueError(f"expected a bool mask of shape {tuple(shape)} (true at speech), got {got}")
    if not mask.any(dim=1).all():
        raise ValueError("every row of the mask needs at least one true position (a clip with no speech has no features)")


def bag_of_codes(indices: torch.Tensor, num_codes: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Codes ``(N, T')`` -> the share of each code in each clip ``(N, K)`` (rows sum to 1), counted
    over the positions where ``mask`` is true (all of them without a mask)."""
    _check_codes(indices, num_codes)
    _check_mask(mask, indices.shape)
    one_hot = F.one_hot(indices, num_codes).float()
    if mask is None:
        return one_hot.mean(dim=1)
    weights = mask.float()
    return (one_hot * weights[..., None]).sum(dim=1) / weights.sum(dim=1, keepdim=True)


def per_frame_codes(indices: torch.Tensor, num_codes: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Codes ``(N, T')`` -> every position's one-hot code, in order, flattened ``(N, T' * K)``; all
    zeros at positions where ``mask`` is false."""
    _check_codes(indices, num_codes)
    _check_mask(mask, indices.shape)
    one_hot = F.one_hot(indices, num_codes).float()
    if mask is not None:
        one_hot = one_hot * mask[..., None].float()
    return one_hot.flatten(1)


def _check_z(z_e: torch.Tensor) -> None:
    if not torch.is_tensor(z_e) or not z_e.is_floating_point() or z_e.dim() != 3:
        got = tuple(z_e.shape) if torch.is_tensor(z_e) else type(z_e).__name__
        raise ValueError(f"expected float encoder outputs z_e of shape (N, D, T'), got {got}")


def mean_pooled(z_e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``z_e: (N, D, T')`` -> its mean over time ``(N, D)``, over the positions where ``mask`` is true."""
    _check_z(z_e)
    _check_mask(mask, (z_e.shape[0], z_e.shape[2]))
    if mask is None:
        return z_e.mean(dim=-1)
    weights = mask[:, None, :].to(z_e.dtype)
    return (z_e * weights).sum(dim=-1) / weights.sum(dim=-1)


def flattened(z_e: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``z_e: (N, D, T')`` -> every position's vector, in order, flattened ``(N, T' * D)``; zeros at
    positions where ``mask`` is false."""
    _check_z(z_e)
    _check_mask(mask, (z_e.shape[0], z_e.shape[2]))
    if mask is not None:
        z_e = z_e * mask[:, None, :].to(z_e.dtype)
    return z_e.transpose(1, 2).flatten(1)


@dataclass
class ProbeResult:
    """Accuracies of one probe; ``chance`` is the share of the test set's most frequent class."""

    train_accuracy: float
    test_accuracy: float
    chance: float


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int | None = None, weight_decay: float = 1e-3, steps: int = 100) -> ProbeResult:
    """Fit ``softmax(W x + b)`` to ``(train_x (N, F), train_y (N,))`` and score it on the test set.

    Features are standardised with the training set's mean and sd. The fit minimises the mean
    cross-entropy plus ``weight_decay * |W|^2`` by full-batch L-BFGS from zero weights, so the
    result is deterministic. The weight decay keeps a probe over many features (``T' * K``) from
    merely memorising the training clips; it is our choice, as is the number of steps.
    """
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.dim() != 2 or y.dim() != 1 or len(x) != len(y) or len(x) == 0:
            raise ValueError(f"expected {name} features (N, F) and labels (N,) with N >= 1, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train and test features differ in width: {train_x.shape[1]} vs {test_x.shape[1]}")
    num_classes = num_classes or int(max(train_y.max(), test_y.max())) + 1
    mean, sd = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    xs, xt = (train_x.float() - mean) / sd, (test_x.float() - mean) / sd
    w = torch.zeros(xs.shape[1], num_classes, device=xs.device, requires_grad=True)
    b = torch.zeros(num_classes, device=xs.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xs @ w + b, train_y) + weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        acc = lambda x, y: (x @ w + b).argmax(1).eq(y).float().mean().item()
        chance = torch.bincount(test_y, minlength=num_classes).max().item() / len(test_y)
        return ProbeResult(acc(xs, train_y), acc(xt, test_y), chance)
