"""The action judge (Chapter 09): which action leads from one frame to the next?

:class:`ActionJudge` is a small convolutional classifier of frame pairs, trained on *real* pairs from
the simulator only; it then names the action between consecutive *imagined* frames. If a model that
imagines the future uses the action it is given, the judge recovers that action from its frames well
above chance (1/3 for three actions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import eval_mode


@dataclass(frozen=True)
class JudgeConfig:
    """An :class:`ActionJudge` before training (the checkpoint cache keys on it)."""

    num_actions: int = 3
    hidden: int = 32


def frame_pairs(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``(B, T+1, 3, H, W)`` -> the T pairs of each, ``(B*T, 6, H, W)``: frame t and frame t+1
    stacked on the channels. The dtype is kept: uint8 frames give uint8 pairs (a quarter of the memory
    of floats), which :class:`ActionJudge` scales to [0, 1] itself."""
    if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[1] < 2:
        raise ValueError(f"expected frames of shape (B, T+1, 3, H, W) with T >= 1, got {tuple(frames.shape)}")
    return torch.cat([frames[:, :-1], frames[:, 1:]], dim=2).flatten(0, 1)


class ActionJudge(nn.Module):
    """A frame pair ``(B, 6, H, W)``, uint8 or float in [0, 1] -> action logits ``(B, num_actions)``: four strided convolutions,
    a spatial mean, a linear layer. ``conditional = True``: ``fit`` passes the actions as labels."""

    conditional = True

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__()
        self.config = c = config or JudgeConfig()
        layers, width = [], 6
        for _ in range(4):
            layers += [nn.Conv2d(width, c.hidden, 4, stride=2, padding=1), nn.ReLU()]
            width = c.hidden
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(c.hidden, c.num_actions)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """Pairs: uint8 in 0..255 or float in [0, 1]."""
        ok = torch.is_tensor(pairs) and (pairs.is_floating_point() or pairs.dtype == torch.uint8)
        if not ok or pairs.dim() != 4 or pairs.shape[1] != 6:
            got = f"{tuple(pairs.shape)} {pairs.dtype}" if torch.is_tensor(pairs) else type(pairs).__name__
            raise ValueError(f"expected frame pairs of shape (B, 6, H, W), uint8 or float in [0, 1] (see frame_pairs), "
                             f"got {got}")
        if pairs.dtype == torch.uint8:
            pairs = pairs.float() / 255.0
        return self.head(self.net(pairs).mean((2, 3)))

    def loss(self, pairs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy (nats) and, for logging, the batch accuracy."""
        logits = self(pairs)
        return {"loss": F.cross_entropy(logits, actions), "accuracy": logits.argmax(1).eq(actions).float().mean()}

    @torch.no_grad()
    def predict(self, pairs: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """The most likely action ``(B,)`` of each pair, in eval mode, in batches."""
        with eval_mode(self):
            return torch.cat([self(pairs[i: i + batch_size]).argmax(1) for i in range(0, len(pairs), batch_size)])
