"""The paper's convolutional encoder and decoder (van den Oord et al. 2017, Sec. 4.1).

"The encoder consists of 2 strided convolutional layers with stride 2 and window size 4x4,
followed by two residual 3x3 blocks (implemented as ReLU, 3x3 conv, ReLU, 1x1 conv), all having
256 hidden units. The decoder similarly has two residual 3x3 blocks, followed by two transposed
convolutions with stride 2 and window size 4x4." The book's CPU default is 64 hidden units.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))``: the paper's residual 3x3 block."""

    def __init__(self, channels: int, res_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, res_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(res_channels, channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def check_image(x: torch.Tensor, channels: int, what: str = "images x", size: int | None = None) -> None:
    """The book's one shape check for image-like tensors: ``(B, channels, H, W)``, and ``H = W = size``
    when ``size`` is given. Raises a ValueError that says what was expected and what came."""
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != channels or (size and tuple(x.shape[-2:]) != (size, size)):
        spatial = f"{size}, {size}" if size else "H, W"
        got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"expected {what} of shape (B, {channels}, {spatial}), got {got}")


class Encoder(nn.Module):
    """``x: (B, in_channels, H, W) -> (B, out_channels, H/4, W/4)``.

    Two 4x4 stride-2 convolutions, two residual blocks, then a 1x1 convolution to the latent
    width ``out_channels`` (``code_dim`` for a VQ-VAE, the mean and log-variance for a VAE).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, res_hidden: int = 32):
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden // 2, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, kernel_size=4, stride=2, padding=1),
            ResidualBlock(hidden, res_hidden),
            ResidualBlock(hidden, res_hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, "images x")
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f"image height and width must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.net(x)


class Decoder(nn.Module):
    """``z: (B, in_channels, h, w) -> (B, out_channels, 4h, 4w)``: the encoder mirrored.

    A 3x3 convolution to ``hidden``, two residual blocks, then two 4x4 stride-2 transposed
    convolutions. ``out_channels`` holds the likelihood's parameters per pixel.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64, res_hidden: int = 32):
        super().__init__()
        self.in_channels = in_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1),
            ResidualBlock(hidden, res_hidden),
            ResidualBlock(hidden, res_hidden),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden // 2, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, out_channels, kernel_size=4, stride=2, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_image(z, self.in_channels, "latents z")
        return self.net(z)


def check_sizes(config, *names: str) -> None:
    """Raise a ValueError naming the first of ``config``'s size fields ``names`` that is not a positive integer."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")
