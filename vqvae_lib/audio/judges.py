"""Judges of converted speech (Chapter 08): does a converted clip sound like the target speaker, and
is it still the right digit?

:class:`LogMelClassifier` is a small convolutional classifier of log-mels, trained on *real* training
clips only, once for the speaker and once for the digit; it then scores converted clips.

**Speech only.** Clips are padded with silence to one second, and a judge that pools over the padding
can tell a clip's length, which differs between speakers and between digits, from the share of
silence. Given each clip's number of speech frames (:func:`vqvae_lib.audio.spectrogram.speech_frames`),
the judge pools over the speech only. For training with the book's loop, whose batches carry one
label tensor, :func:`labels_with_frames` packs the class and the frames into rows ``(label, frames)``.
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


def labels_with_frames(labels: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Class labels ``(N,)`` and speech frames ``(N,)`` -> int64 rows ``(N, 2)``: ``(label, frames)``,
    the target :meth:`LogMelClassifier.loss` takes to train on speech frames only."""
    if not (torch.is_tensor(labels) and torch.is_tensor(frames)) or labels.dim() != 1 or labels.shape != frames.shape:
        raise ValueError(f"expected labels and frames of one shape (N,), got {getattr(labels, 'shape', labels)} "
                         f"and {getattr(frames, 'shape', frames)}")
    return torch.stack([labels.long(), frames.long()], dim=1)


class LogMelClassifier(nn.Module):
    """Log-mels ``(B, n_mels, T)`` -> class logits: two 5-wide convolutions (the second strided),
    then the mean and the max over time (over the first ``frames`` frames of each clip, when given),
    then a linear layer. ``conditional = True``: :func:`vqvae_lib.train.fit` passes the labels, so
    ``loss(x, y)`` trains it like any other model."""

    conditional = True

    def __init__(self, config: ClassifierConfig | None = None):
        super().__init__()
        self.config = c = config or ClassifierConfig()
        self.net = nn.Sequential(nn.Conv1d(c.n_mels, c.hidden, 5, padding=2), nn.ReLU(),
                                 nn.Conv1d(c.hidden, c.hidden, 5, stride=2, padding=2), nn.ReLU())
        self.head = nn.Linear(2 * c.hidden, c.num_classes)

    def forward(self, x: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_classes)``; with ``frames: (B,)``, pooled over each clip's first ``frames`` frames."""
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 3 or x.shape[1] != self.config.n_mels:
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected float log-mels of shape (B, {self.config.n_mels}, T), got {got}")
        h = self.net(x)  # (B, hidden, ceil(T / 2)): position j is centred on frame 2j
        if frames is None:
            return self.head(torch.cat([h.mean(-1), h.amax(-1)], dim=1))
        if not torch.is_tensor(frames) or frames.dtype != torch.long or tuple(frames.shape) != (len(x),) \
                or (frames < 1).any():
            got = f"{frames.dtype} {tuple(frames.shape)}" if torch.is_tensor(frames) else type(frames).__name__
            raise ValueError(f"expected positive int64 speech frames of shape ({len(x)},), got {got}")
        keep = torch.arange(h.shape[-1], device=h.device) < (-(-frames.to(h.device) // 2))[:, None]  # 2j < frames
        keep = keep[:, None, :]
        mean = (h * keep).sum(-1) / keep.sum(-1)
        peak = h.masked_fill(~keep, float("-inf")).amax(-1)
        return self.head(torch.cat([mean, peak], dim=1))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy (nats) and, for logging, the batch accuracy. ``y`` is the labels ``(B,)``, or
        rows ``(label, frames)`` ``(B, 2)`` (:func:`labels_with_frames`) to pool over speech only."""
        labels, frames = (y[:, 0], y[:, 1]) if y.dim() == 2 else (y, None)
        logits = self(x, frames)
        return {"loss": F.cross_entropy(logits, labels), "accuracy": logits.argmax(1).eq(labels).float().mean()}

    @torch.no_grad()
    def predict(self, x: torch.Tensor, frames: torch.Tensor | None = None, batch_size: int = 256) -> torch.Tensor:
        """The most likely class ``(B,)`` of each clip, in eval mode, in batches; pooled over each
        clip's first ``frames`` frames when given."""
        chunks = range(0, len(x), batch_size)
        with eval_mode(self):
            return torch.cat([self(x[i: i + batch_size], None if frames is None else frames[i: i + batch_size]).argmax(1)
                              for i in chunks])
