"""A Gated PixelCNN prior over the VQ-VAE's grid of codes (Chapter 06).

The paper fits ``p(z)`` after the VQ-VAE is trained, as an autoregressive model over the latent grid in
raster order (its section 3.3). This is the Gated PixelCNN of van den Oord et al. (2016, *Conditional
Image Generation with PixelCNN Decoders*): a vertical stack that sees every row above, a horizontal
stack that sees the row to the left, gated activations ``tanh(W_f * x) * sigmoid(W_g * x)`` (their
eq. 2, Chapter 06 eq. 6.4), optional class conditioning (their eq. 4), optional conditioning on a
spatial map (their conditional form with a map of the image's size: a 1 x 1 convolution of the map
added inside every gate), and no blind spot.
The same network over the 256 levels of 8-bit pixels, conditioned on a map made from the latents, is
the pixel decoder of :mod:`vqvae_lib.pixel_decoder`.

The masks are realised as *shifted* convolutions: a kernel that only covers the allowed rows or
columns, with padding on the top or left. Chapter 06 derives why that equals a masked ``k x k``
kernel and checks it. The inputs are code indices, embedded by a lookup table, so nothing is ever
one-hot encoded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import check_sizes
from .precision import at_least_fp32
from .runtime import eval_mode


def _gate(x: torch.Tensor) -> torch.Tensor:
    """Chapter 06 eq. (6.4): ``tanh(a) * sigmoid(b)`` for the two halves of the channels."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer with a vertical and a horizontal stack (Chapter 06 eqs. 6.4-6.6).

    ``v`` at row ``i`` depends on rows ``<= i``; it reaches the horizontal stack shifted down one row,
    so the horizontal stack at ``(i, j)`` sees rows ``< i`` through ``v`` and columns ``< j`` of row
    ``i`` (``<= j`` of its own input from layer 2 on, which already excludes position ``(i, j)``).
    ``first=True`` is the mask-A layer: its horizontal input is shifted right by one so the current
    position is excluded, and it has no residual connection. ``num_classes`` adds a learned bias per
    class inside both gates; ``cond_channels`` adds a 1 x 1 convolution of a conditioning map
    ``cond: (B, cond_channels, H, W)`` inside both gates, position by position: the map is given, not
    modelled, so its value at ``(i, j)`` may already summarise the whole image.
    """

    def __init__(self, channels: int, kernel_size: int, first: bool = False, num_classes: int | None = None,
                 cond_channels: int | None = None):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {kernel_size}")
        self.first, self.pad = first, kernel_size // 2
        self.v_conv = nn.Conv2d(channels, 2 * channels, (self.pad + 1, kernel_size))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, self.pad + 1))
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.class_bias = nn.Embedding(num_classes, 4 * channels) if num_classes else None
        self.cond_proj = nn.Conv2d(cond_channels, 4 * channels, 1) if cond_channels else None

    def forward(self, v: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None = None,
                cond: torch.Tensor | None = None):
        height, width = v.shape[-2:]
        p = self.pad
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :height]
        h_in = F.pad(h, (1, 0))[..., :width] if self.first else h
        h_pre = self.h_conv(F.pad(h_in, (p, 0))) + self.v_to_h(v_down)
        if self.class_bias is not None:
            v_bias, h_bias = self.class_bias(labels)[:, :, None, None].chunk(2, dim=1)
            v_pre, h_pre = v_pre + v_bias, h_pre + h_bias
        if self.cond_proj is not None:
            v_cond, h_cond = self.cond_proj(cond).chunk(2, dim=1)
            v_pre, h_pre = v_pre + v_cond, h_pre + h_cond
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), h_new if self.first else h + h_new


@dataclass(frozen=True)
class PriorConfig:
    """Everything that defines a Gated PixelCNN prior before training (the checkpoint cache keys on it).

    ``num_classes`` makes the prior class-conditional (None: unconditional); ``cond_channels`` makes
    every call take a conditioning map ``cond: (B, cond_channels, H, W)`` (None: no map).
    """

    num_codes: int = 512  # K, the codes it models
    channels: int = 64
    num_layers: int = 8
    kernel_size: int = 3
    num_classes: int | None = None
    cond_channels: int | None = None

    def __post_init__(self):
        check_sizes(self, "channels", "kernel_size")
        if self.num_codes < 2 or self.num_layers < 1:
            raise ValueError(f"need num_codes >= 2 and num_layers >= 1, got {self.num_codes} and {self.num_layers}")


class GatedPixelCNN(nn.Module):
    """An autoregressive prior ``p(z) = prod_i p(z_i | z_<i)`` over a grid of codes (eq. 6.1).

    ``forward(indices)`` maps ``(B, H, W)`` int64 codes to logits ``(B, num_codes, H, W)``; the logits
    at a position depend only on the codes before it in raster order. ``loss(indices)`` is the
    cross-entropy in nats per latent; ``sample`` draws new grids ancestrally. Built from a
    :class:`PriorConfig`; with ``num_classes`` set the model is class-conditional and every call
    takes ``labels`` ``(B,)``; with ``cond_channels`` set every call takes a conditioning map ``cond``
    ``(B, cond_channels, H, W)``, the same height and width as the grid.
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        self.config = c = config
        self.num_codes, self.num_classes, self.cond_channels = c.num_codes, c.num_classes, c.cond_channels
        self.embedding = nn.Embedding(c.num_codes, c.channels)
        self.layers = nn.ModuleList(
            GatedLayer(c.channels, c.kernel_size, first=(i == 0), num_classes=c.num_classes, cond_channels=c.cond_channels)
            for i in range(c.num_layers)
        )
        self.head = nn.Sequential(
            nn.ReLU(), nn.Conv2d(c.channels, c.channels, 1), nn.ReLU(), nn.Conv2d(c.channels, c.num_codes, 1)
        )

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def _check(self, indices: torch.Tensor, labels: torch.Tensor | None, cond: torch.Tensor | None) -> None:
        if indices.dim() != 3 or indices.dtype != torch.long:
            raise ValueError(
                f"expected code indices of shape (B, H, W) and dtype int64, got {tuple(indices.shape)} "
                f"{indices.dtype}; VQVAE.encode(x) returns them in that form"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.num_codes):
            raise ValueError(f"code indices must lie in [0, {self.num_codes}), got [{indices.min()}, {indices.max()}]")
        if self.conditional and labels is None:
            raise ValueError(f"this prior is class-conditional ({self.num_classes} classes): pass labels of shape (B,)")
        if not self.conditional and labels is not None:
            raise ValueError("this prior is unconditional: build it with num_classes=... to use labels")
        if labels is not None and (labels.shape != indices.shape[:1] or labels.dtype != torch.long):
            raise ValueError(f"expected int64 labels of shape ({len(indices)},), got {tuple(labels.shape)} {labels.dtype}")
        if self.cond_channels is None and cond is not None:
            raise ValueError("this prior takes no conditioning map: build it with cond_channels=... to use cond")
        if self.cond_channels is not None:
            expected = (len(indices), self.cond_channels, *indices.shape[1:])
            if cond is None or tuple(cond.shape) != expected:
                got = "none" if cond is None else tuple(cond.shape)
                raise ValueError(f"expected a conditioning map cond of shape {expected} (B, cond_channels, H, W), got {got}")

    def forward(self, indices: torch.Tensor, labels: torch.Tensor | None = None,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_codes, H, W)`` of ``p(z_i | z_<i)`` at every position, in one pass."""
        self._check(indices, labels, cond)
        return self._logits(indices, labels, cond)

    def _logits(self, indices: torch.Tensor, labels: torch.Tensor | None, cond: torch.Tensor | None) -> torch.Tensor:
        """``forward`` without the checks, for the sampling loop, whose inputs were checked once."""
        x = self.embedding(indices).permute(0, 3, 1, 2)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h, labels, cond)
        return self.head(h)

    def loss(self, indices: torch.Tensor, labels: torch.Tensor | None = None,
             cond: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Eq. (6.2): the cross-entropy ``-log p(z)`` averaged over latents, in nats (and bits)."""
        nll = F.cross_entropy(at_least_fp32(self(indices, labels, cond)), indices)
        return {"loss": nll, "bits": nll.detach() / math.log(2.0)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, int],
        temperature: float = 1.0,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        cond: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Ancestral sampling (eq. 6.3): draw ``z_1, z_2, ...`` in raster order, each given those before.

        Returns ``(n, H, W)`` int64 codes on the model's device. At row ``i`` only rows ``<= i`` are
        run through the network: the stacks never look down, so the rows below cannot matter.
        ``temperature`` divides the logits (below 1 sharpens). A ``generator`` must live on the
        model's device, where the codes are drawn (the package's one rule); without one, the global
        seed decides. A conditioning map ``cond`` ``(n, cond_channels, H, W)`` is cropped to the same rows.
        """
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        height, width = shape
        device = self.embedding.weight.device
        if labels is not None:
            labels = labels.to(device)
        if cond is not None:
            cond = cond.to(device)
        codes = torch.zeros(n, height, width, dtype=torch.long, device=device)
        self._check(codes, labels, cond)
        with eval_mode(self):
            for i in range(height):
                for j in range(width):
                    rows = None if cond is None else cond[:, :, : i + 1]
                    logits = at_least_fp32(self._logits(codes[:, : i + 1], labels, rows)[:, :, i, j])
                    probs = torch.softmax(logits / temperature, dim=1)
                    codes[:, i, j] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return codes
