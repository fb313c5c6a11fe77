"""An action-conditioned prior over a video's code grids: imagining the future in latent space (Chapter 09).

The paper's Sec. 4.4 trains "a generative model conditioned on a given action sequence" on DeepMind
Lab's frames, and generates "purely in the latent space z_t without the need to generate the actual
images themselves"; it does not describe the model. Ours (the design is our choice) factorises

    p(z_t | z_<t, a_t) = prod_i p(z_{t,i} | z_{t,<i}, z_{t-C..t-1}, a_t)                    (eq. 9.1)

over the ``H x W`` codes of frame ``t`` in raster order, given the ``C`` frames before it and the
action ``a_t`` that leads into it:

- a **transition network** (a residual conv stack over the embedded codes of the ``C`` context
  frames, with the action added in every block) makes a map ``(B, hidden, H, W)``;
- that map conditions the book's Gated PixelCNN (:class:`vqvae_lib.prior.GatedPixelCNN`, its
  ``cond_channels``) inside every gate, and the action is its class label as well;
- an **auxiliary head** on the map predicts every code of frame ``t`` at once, without the codes of
  frame ``t`` to the left and above. Its cross-entropy is added to the loss (weight ``aux_weight``).
  Why: with teacher forcing, the PixelCNN can read the action off the first codes of the frame it is
  predicting, so the action is worth at most log2 3 bits per frame to it and is easily ignored. The
  auxiliary head cannot do that; it has to use the action, and the map it trains carries the action's
  effect into the PixelCNN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import check_sizes
from ..precision import at_least_fp32
from ..prior import GatedPixelCNN, PriorConfig
from ..runtime import eval_mode


@dataclass(frozen=True)
class ActionPriorConfig:
    """Everything that defines an :class:`ActionPrior` before training (the checkpoint cache keys on it).

    ``num_codes`` (K) and ``num_actions`` size the inputs; ``context`` is C, the frames it sees;
    ``embed_dim`` embeds each context code; ``hidden`` and ``blocks`` size the transition network
    (dilations 1, 2, 4, 1, 2, 4, ... so its view spans the grid); ``channels``, ``num_layers``,
    ``kernel_size`` size the PixelCNN; ``aux_weight`` weighs the auxiliary head's cross-entropy.
    """

    num_codes: int = 512
    num_actions: int = 3
    context: int = 2
    embed_dim: int = 32
    hidden: int = 64
    blocks: int = 4
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 3
    aux_weight: float = 1.0

    def __post_init__(self):
        check_sizes(self, "num_actions", "context", "embed_dim", "hidden", "blocks", "channels", "num_layers")
        if self.num_codes < 2:
            raise ValueError(f"need num_codes >= 2, got {self.num_codes}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {self.aux_weight}")


class _ActionBlock(nn.Module):
    """``h + conv(relu(conv(relu(h) + b_a)))``: a residual block with a learned bias per action inside."""

    def __init__(self, hidden: int, num_actions: int, dilation: int):
        super().__init__()
        self.action_bias = nn.Embedding(num_actions, hidden)
        self.conv1 = nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(hidden, hidden, 1)

    def forward(self, h: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        x = F.relu(h) + self.action_bias(actions)[:, :, None, None]
        return h + self.conv2(F.relu(self.conv1(x)))


class ActionPrior(nn.Module):
    """``p(z_t | z_{t-C..t-1}, a_t)`` over code grids (eq. 9.1), trained with teacher forcing.

    ``loss(codes, actions)`` takes ``codes (B, C+1, H, W)`` int64, the C context frames then the
    target frame, and ``actions (B,)``, the action into the target. ``rollout`` imagines the frames
    that follow a context under a sequence of actions, one frame at a time, in latent space only.
    """

    conditional = True  # train.fit passes (codes, actions) batches through loss(codes, actions)

    def __init__(self, config: ActionPriorConfig):
        super().__init__()
        self.config = c = config
        self.embedding = nn.Embedding(c.num_codes, c.embed_dim)
        self.inp = nn.Conv2d(c.context * c.embed_dim, c.hidden, 3, padding=1)
        self.blocks = nn.ModuleList(_ActionBlock(c.hidden, c.num_actions, (1, 2, 4)[i % 3]) for i in range(c.blocks))
        self.aux_head = nn.Sequential(nn.ReLU(), nn.Conv2d(c.hidden, c.num_codes, 1))
        self.pixelcnn = GatedPixelCNN(PriorConfig(num_codes=c.num_codes, channels=c.channels, num_layers=c.num_layers,
                                                  kernel_size=c.kernel_size, num_classes=c.num_actions,
                                                  cond_channels=c.hidden))

    def _check(self, context: torch.Tensor, actions: torch.Tensor) -> None:
        c = self.config
        if context.dim() != 4 or context.shape[1] != c.context or context.dtype != torch.long:
            raise ValueError(f"expected int64 context codes of shape (B, {c.context}, H, W) (the {c.context} frames "
                             f"before the one predicted), got {tuple(context.shape)} {context.dtype}")
        if context.numel() and (context.min() < 0 or context.max() >= c.num_codes):
            raise ValueError(f"codes must lie in [0, {c.num_codes}), got [{context.min()}, {context.max()}]")
        if actions.shape != context.shape[:1] or actions.dtype != torch.long:
            raise ValueError(f"expected int64 actions of shape ({len(context)},), got {tuple(actions.shape)} {actions.dtype}")
        if actions.numel() and (actions.min() < 0 or actions.max() >= c.num_actions):
            raise ValueError(f"actions must lie in [0, {c.num_actions}), got [{actions.min()}, {actions.max()}]")

    def transition(self, context: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map ``(B, hidden, H, W)`` that conditions the PixelCNN, and the auxiliary head's logits
        ``(B, K, H, W)`` for every code of the next frame at once."""
        self._check(context, actions)
        b, c, h, w = context.shape
        x = self.embedding(context).permute(0, 1, 4, 2, 3).reshape(b, c * self.config.embed_dim, h, w)
        hidden = self.inp(x)
        for block in self.blocks:
            hidden = block(hidden, actions)
        return hidden, self.aux_head(hidden)

    def forward(self, codes: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits of the target frame ``codes[:, -1]``: the PixelCNN's and the auxiliary head's."""
        if codes.dim() != 4 or codes.shape[1] != self.config.context + 1:
            raise ValueError(f"expected codes of shape (B, {self.config.context + 1}, H, W): {self.config.context} "
                             f"context frames then the target, got {tuple(codes.shape)}")
        cond, aux = self.transition(codes[:, :-1], actions)
        return self.pixelcnn(codes[:, -1], labels=actions, cond=cond), aux

    def loss(self, codes: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eq. (9.1)'s cross-entropy in nats per latent, plus ``aux_weight`` times the auxiliary head's."""
        logits, aux = self(codes, actions)
        target = codes[:, -1]
        nll = F.cross_entropy(at_least_fp32(logits), target)
        aux_nll = F.cross_entropy(at_least_fp32(aux), target)
        return {"loss": nll + self.config.aux_weight * aux_nll, "bits": nll.detach() / math.log(2.0),
                "aux_bits": aux_nll.detach() / math.log(2.0)}

    @torch.no_grad()
    def nll_bits(self, codes: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``-log2 p(z_t | z_<t, a_t)`` of each target frame, in bits per frame ``(B,)``."""
        logits, _ = self(codes, actions)
        nats = F.cross_entropy(logits.float(), codes[:, -1], reduction="none").flatten(1).sum(1)
        return nats / math.log(2.0)

    @torch.no_grad()
    def rollout(self, context: torch.Tensor, actions: torch.Tensor, temperature: float = 1.0,
                generator: torch.Generator | None = None, sampler: str = "sample") -> torch.Tensor:
        """Imagine ``T`` frames after ``context (B, n, H, W)``, n >= C, under ``actions (B, T)``: ``(B, T, H, W)`` codes.

        Frame ``t`` is drawn from eq. (9.1) given the last C frames (real or imagined) and
        ``actions[:, t]`` only: no later action is seen. A ``generator`` lives on the model's device.
        ``sampler="sample"`` draws each frame from eq. (9.1) in raster order (``temperature``
        divides the logits); ``sampler="mode"`` takes, at every position at once, the auxiliary head's
        most likely code: no randomness, one network pass per frame.
        """
        if sampler not in ("sample", "mode"):
            raise ValueError(f"sampler is 'sample' or 'mode', got {sampler!r}")
        if context.dim() != 4 or context.shape[1] < self.config.context:
            raise ValueError(f"expected context codes (B, n, H, W) with n >= {self.config.context} frames, "
                             f"got {tuple(context.shape)}")
        if actions.dim() != 2 or len(actions) != len(context):
            raise ValueError(f"expected actions of shape ({len(context)}, T), got {tuple(actions.shape)}")
        frames, height, width = list(context.unbind(1)), context.shape[-2], context.shape[-1]
        with eval_mode(self):
            for t in range(actions.shape[1]):
                window = torch.stack(frames[-self.config.context:], 1)
                cond, aux = self.transition(window, actions[:, t])
                if sampler == "mode":
                    frames.append(aux.argmax(1))
                else:
                    frames.append(self.pixelcnn.sample(len(context), (height, width), temperature,
                                                       labels=actions[:, t], generator=generator, cond=cond))
        return torch.stack(frames[context.shape[1]:], 1)
