"""A causal prior over sequences of audio codes, WaveNet-style, conditioned on the speaker (Chapter 08).

The paper fits an autoregressive prior over the latents after training the VQ-VAE (Sec. 3.3), and
its speech experiments sample codes from a prior to generate audio (Sec. 4.3). Over a 1-D sequence
``z_1 .. z_T'`` the prior is ``p(z | s) = prod_t p(z_t | z_<t, s)`` for speaker ``s``.

The network is a small WaveNet (van den Oord et al. 2016, *WaveNet*): causal convolutions of width
``kernel_size`` whose dilation doubles layer by layer, so the receptive field grows exponentially;
gated activations ``tanh(a) * sigmoid(b)`` (as in Chapter 06's Gated PixelCNN, eq. 6.4) with the
speaker's learned bias added inside both halves of every gate (WaveNet's global conditioning);
residual connections. Causality is the same idea as Chapter 06's shifted convolutions: pad only on
the left, never look right, and shift the *input* one step right once, at the start, so that the
logits at ``t`` see codes ``< t`` but not ``z_t`` itself. Sizes are our choices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import at_least_fp32
from ..runtime import eval_mode


@dataclass(frozen=True)
class Prior1DConfig:
    """Everything that defines the 1-D prior before training (the checkpoint cache keys on it).

    Layer ``i`` has dilation ``2 ** (i % dilation_cycle)``; the receptive field is
    ``1 + (kernel_size - 1) * sum of dilations`` codes. ``num_speakers=0`` makes it unconditional.
    """

    num_codes: int = 64  # K
    channels: int = 64
    num_layers: int = 6
    kernel_size: int = 2
    dilation_cycle: int = 5
    num_speakers: int = 6

    def __post_init__(self):
        if self.num_codes < 2 or self.num_layers < 1 or self.kernel_size < 2 or self.dilation_cycle < 1:
            raise ValueError(f"need num_codes >= 2, num_layers >= 1, kernel_size >= 2, dilation_cycle >= 1; got {self}")
        if self.num_speakers < 0:
            raise ValueError(f"num_speakers must be >= 0 (0: unconditional), got {self.num_speakers}")


class CausalGatedLayer(nn.Module):
    """``h + conv1(gate(causal_dilated_conv(h) + speaker bias))``: output at ``t`` sees inputs ``<= t``."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, num_speakers: int):
        super().__init__()
        self.left = (kernel_size - 1) * dilation  # pad the past only
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.speaker_bias = nn.Embedding(num_speakers, 2 * channels) if num_speakers else None
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        pre = self.conv(F.pad(h, (self.left, 0)))
        if self.speaker_bias is not None:
            pre = pre + self.speaker_bias(speaker).unsqueeze(-1)
        a, b = pre.chunk(2, dim=1)
        return h + self.out(torch.tanh(a) * torch.sigmoid(b))


class WaveNetPrior(nn.Module):
    """``p(z_t | z_<t, speaker)`` for code sequences ``(B, T')``, built from a :class:`Prior1DConfig`.

    ``forward(codes, speaker)`` gives logits ``(B, num_codes, T')`` in one pass; ``loss`` is the
    cross-entropy in nats per code (and bits); ``sample`` draws sequences ancestrally. With
    ``num_speakers > 0``, ``conditional = True``: :func:`vqvae_lib.train.fit` passes the labels.
    """

    def __init__(self, config: Prior1DConfig | None = None):
        super().__init__()
        self.config = c = config or Prior1DConfig()
        self.num_codes, self.num_speakers = c.num_codes, c.num_speakers
        self.embedding = nn.Embedding(c.num_codes, c.channels)
        self.layers = nn.ModuleList(
            CausalGatedLayer(c.channels, c.kernel_size, 2 ** (i % c.dilation_cycle), c.num_speakers)
            for i in range(c.num_layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(c.channels, c.channels, 1), nn.ReLU(),
                                  nn.Conv1d(c.channels, c.num_codes, 1))

    @property
    def conditional(self) -> bool:
        return self.num_speakers > 0

    @property
    def receptive_field(self) -> int:
        """How many codes back the logits at ``t`` can see (``z_t-1`` .. ``z_t-R``)."""
        return 1 + sum(layer.left for layer in self.layers)

    def _check(self, codes: torch.Tensor, speaker: torch.Tensor | None) -> None:
        if not torch.is_tensor(codes) or codes.dtype != torch.long or codes.dim() != 2:
            got = f"{codes.dtype} {tuple(codes.shape)}" if torch.is_tensor(codes) else type(codes).__name__
            raise ValueError(f"expected code sequences of shape (B, T') and dtype int64, got {got}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.num_codes):
            raise ValueError(f"codes must lie in [0, {self.num_codes}), got {int(codes.min())}..{int(codes.max())}")
        if not self.conditional:
            if speaker is not None:
                raise ValueError("this prior is unconditional: build it with num_speakers=... to pass speakers")
            return
        if not torch.is_tensor(speaker) or speaker.dtype != torch.long or tuple(speaker.shape) != (len(codes),):
            got = f"{speaker.dtype} {tuple(speaker.shape)}" if torch.is_tensor(speaker) else str(speaker).lower()
            raise ValueError(f"this prior is speaker-conditional: expected int64 speaker ids of shape "
                             f"({len(codes)},), got {got}")
        if len(speaker) and (speaker.min() < 0 or speaker.max() >= self.num_speakers):
            raise ValueError(f"speaker ids must lie in 0..{self.num_speakers - 1}")

    def logits_from_embedded(self, e: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        """The network after the lookup: embedded codes ``(B, channels, T')`` -> logits ``(B, K, T')``.
        Separate so that a test can take gradients with respect to each input position."""
        h = F.pad(e, (1, 0))[..., : e.shape[-1]]  # shift right by one: position t sees z_<t only
        for layer in self.layers:
            h = layer(h, speaker)
        return self.head(h)

    def forward(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, num_codes, T')`` of ``p(z_t | z_<t, speaker)`` at every ``t``."""
        self._check(codes, speaker)
        return self.logits_from_embedded(self.embedding(codes).transpose(1, 2), speaker)

    def loss(self, codes: torch.Tensor, speaker: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``-log p(z | speaker)`` averaged over codes, in nats (``loss``) and bits."""
        nll = F.cross_entropy(at_least_fp32(self(codes, speaker)), codes)
        return {"loss": nll, "bits": nll.detach() / math.log(2.0)}

    @torch.no_grad()
    def sample(self, n: int, length: int, speaker: torch.Tensor | int | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` sequences of ``length`` codes, ``z_1, z_2, ...`` each given those before.

        ``speaker`` is an int64 tensor ``(n,)`` or one int for all. Returns ``(n, length)`` int64 on
        the model's device; a ``generator`` must live there (the package's one rule).
        """
        if temperature <= 0 or n < 1 or length < 1:
            raise ValueError(f"need temperature > 0, n >= 1, length >= 1; got {temperature}, {n}, {length}")
        device = self.embedding.weight.device
        if isinstance(speaker, int):
            speaker = torch.full((n,), speaker, dtype=torch.long)
        if speaker is not None:
            speaker = speaker.to(device)
        codes = torch.zeros(n, length, dtype=torch.long, device=device)
        self._check(codes, speaker)  # once: the loop below feeds the network only codes it drew itself
        with eval_mode(self):
            for t in range(length):
                embedded = self.embedding(codes[:, : t + 1]).transpose(1, 2)
                logits = at_least_fp32(self.logits_from_embedded(embedded, speaker)[:, :, t])
                probs = torch.softmax(logits / temperature, dim=1)
                codes[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        return codes
