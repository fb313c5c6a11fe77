"""Judges of converted speech (Chapter 08): does a converted clip sound like the target speaker, and
is it still the right digit?

:class:`LogMelClassifier` is a small convolutional classifier of log-mels, trained on *real* training
clips only, once for the speaker and once for the digit; it then scores converted clips.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import eval_mode


@dataclass(frozen=True)
class ClassifierConfig:
    """A :class:`LogMelClassifier` before training (the checkpoint cache keys on it)."""

    n_mels: int = 64
    num_classes: int = 6
    hidden: int = 64


class LogMelClassifier(nn.Module):
    """Log-mels ``(B, n_mels, T)`` -> class logits: two 5-wide convolutions (the second strided),
    then the mean and the max over time, then a linear layer. ``conditional = True``:
    :func:`vqvae_lib.train.fit` passes the labels, so ``loss(x, y)`` trains it like any other model."""

    conditional = True

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = c = config or ClassifierConfig()
        self.net = nn.Sequential(nn.Conv1d(c.n_mels, c.hidden, 5, padding=2), nn.ReLU(),
                                 nn.Conv1d(c.hidden, c.hidden, 5, stride=2, padding=2), nn.ReLU())
        self.head = nn.Linear(2 * c.hidden, c.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 3 or x.shape[1] != self.config.n_mels:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected float log-mels of shape (B, {self.config.n_mels}, T), got {got}")
        h = self.net(x)
        return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy (nats) and, for logging, the batch accuracy."""
        logits = self(x)
        return {"loss": F.cross_entropy(logits, y), "accuracy": logits.argmax(1).eq(y).float().mean()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The most likely class ``(B,)`` of each clip, in eval mode, in batches."""
        with eval_mode(self):
            return torch.cat([self(x[i: i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
