"""A 1-D VQ-VAE over time for log-mel spectrograms, with a speaker-conditioned decoder (Chapter 08).

The paper's speech model (van den Oord et al. 2017, Sec. 4.3) encodes raw audio with strided 1-D
convolutions into a sequence of discrete codes and decodes them with a WaveNet that is also told
the speaker's identity. Because the decoder gets the speaker for free, the codes need not carry it,
and decoding one speaker's codes with another speaker's id converts the voice.

Ours is a miniature of that idea, not of its sizes (our choices throughout): the input is a
normalised log-mel spectrogram ``x: (B, n_mels, T)`` (:mod:`vqvae_lib.audio`), not samples; the
encoder halves time ``downsample`` times with 4-wide stride-2 convolutions, ``T' = T / 2**downsample``;
each of the ``T'`` vectors ``z_e`` is replaced by its nearest code by the book's
:class:`~vqvae_lib.quantizers.VectorQuantizer` (the sequence is quantised as a ``(B, D, 1, T')`` grid);
the decoder mirrors the encoder with transposed convolutions, and a learned speaker embedding is
added to its hidden activation at every time step of every resolution. The decoder is a plain
convolutional regressor, not a WaveNet, and the reconstruction term is the mean squared error of the
normalised log-mels.

Two switches give Chapter 08's comparisons with the same trunk: ``speaker_conditioning=False`` (the
decoder is not told the speaker: the ablation) and ``quantize=False`` (no quantiser: a continuous
autoencoder of the same size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..quantizers.base import codes_used
from ..quantizers.vq import VectorQuantizer, VectorQuantizerEMA


@dataclass(frozen=True)
class VQVAE1DConfig:
    """Everything that defines a 1-D VQ-VAE before training (the checkpoint cache keys on it).

    ``quantizer`` is ``"vq"`` (codebook learned by the loss, paper eq. 3) or ``"ema"`` (App. A.1);
    ``restart_after`` is Chapter 05's dead-code restart. ``num_speakers`` fixes the range of speaker
    ids, also when ``speaker_conditioning`` is off (the ids are then checked and ignored).
    """

    n_mels: int = 64
    num_codes: int = 64  # K
    code_dim: int = 32  # D
    hidden: int = 64
    downsample: int = 2  # T' = T / 2**downsample
    num_speakers: int = 6
    speaker_dim: int = 16
    speaker_conditioning: bool = True
    quantize: bool = True
    beta: float = 0.25
    quantizer: str = "vq"
    restart_after: int | None = None

    def __post_init__(self):
        if min(self.n_mels, self.num_codes, self.code_dim, self.hidden, self.num_speakers, self.speaker_dim) < 1:
            raise ValueError(f"every size of a VQVAE1DConfig must be positive, got {self}")
        if self.downsample < 0:
            raise ValueError(f"downsample must be >= 0 halvings of time, got {self.downsample}")
        if self.quantizer not in ("vq", "ema"):
            raise ValueError(f"unknown quantizer {self.quantizer!r}; expected 'vq' or 'ema'")


class ResidualBlock1d(nn.Module):
    """``x + conv1(relu(conv3(relu(x))))``: the paper's residual block (Sec. 4.1), along time."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels // 2, 3, padding=1), nn.ReLU(),
                                   nn.Conv1d(channels // 2, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class SpeakerDecoder(nn.Module):
    """``z: (B, D, T') -> (B, n_mels, T' * 2**downsample)``; with ``speaker: (B,)`` given, the
    speaker's embedding, projected to each stage's width, is added at every time step of every stage."""

    def __init__(self, c: VQVAE1DConfig):
        super().__init__()
        self.inp = nn.Conv1d(c.code_dim, c.hidden, 3, padding=1)
        self.res = nn.Sequential(ResidualBlock1d(c.hidden), ResidualBlock1d(c.hidden), nn.ReLU())
        self.ups = nn.ModuleList(nn.ConvTranspose1d(c.hidden, c.hidden, 4, stride=2, padding=1)
                                 for _ in range(c.downsample))
        self.out = nn.Conv1d(c.hidden, c.n_mels, 3, padding=1)
        self.embedding = nn.Embedding(c.num_speakers, c.speaker_dim) if c.speaker_conditioning else None
        self.to_bias = nn.ModuleList(nn.Linear(c.speaker_dim, c.hidden) for _ in range(c.downsample + 1)) \
            if c.speaker_conditioning else None

    def _add_speaker(self, h: torch.Tensor, stage: int, s: torch.Tensor | None) -> torch.Tensor:
        return h if s is None else h + self.to_bias[stage](s).unsqueeze(-1)  # the same bias at every step

    def forward(self, z: torch.Tensor, speaker: torch.Tensor | None) -> torch.Tensor:
        s = self.embedding(speaker) if self.embedding is not None else None
        h = self.res(self._add_speaker(self.inp(z), 0, s))
        for stage, up in enumerate(self.ups, start=1):
            h = F.relu(self._add_speaker(up(h), stage, s))
        return self.out(h)


class VQVAE1D(nn.Module):
    """``x -> z_e = encoder(x) -> z_q (nearest codes) -> x_hat = decoder(z_q, speaker)``.

    ``loss(x, speaker)`` returns ``mse(x_hat, x) + quantizer.loss`` (both means over elements, the
    weighting of Sonnet's VQ-VAE example: our choice) and, for logging, ``recon``, ``vq``,
    ``perplexity`` and ``used`` (distinct codes in the batch). ``conditional = True``, so
    :func:`vqvae_lib.train.fit` passes each batch's labels, the speaker ids, as ``speaker``.
    """

    conditional = True

    def __init__(self, config: VQVAE1DConfig | None = None):
        super().__init__()
        self.config = c = config or VQVAE1DConfig()
        self.factor = 2 ** c.downsample
        halve_time = [(nn.ReLU(), nn.Conv1d(c.hidden, c.hidden, 4, stride=2, padding=1)) for _ in range(c.downsample)]
        self.encoder = nn.Sequential(
            nn.Conv1d(c.n_mels, c.hidden, 3, padding=1),
            *[m for pair in halve_time for m in pair],
            ResidualBlock1d(c.hidden), ResidualBlock1d(c.hidden), nn.ReLU(),
            nn.Conv1d(c.hidden, c.code_dim, 1),
        )
        self.quantizer = None
        if c.quantize:
            q = VectorQuantizerEMA if c.quantizer == "ema" else VectorQuantizer
            self.quantizer = q(c.num_codes, c.code_dim, c.beta, restart_after=c.restart_after)
        self.decoder = SpeakerDecoder(c)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def _check_x(self, x: torch.Tensor) -> None:
        c = self.config
        if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 3 or x.shape[1] != c.n_mels:
            got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"expected float log-mels x of shape (B, {c.n_mels}, T), got {got}")
        if x.shape[-1] == 0 or x.shape[-1] % self.factor:
            raise ValueError(f"expected a number of frames T that is a positive multiple of "
                             f"2**downsample = {self.factor}, got T = {x.shape[-1]}")

    def _check_speaker(self, speaker: torch.Tensor | None, batch: int) -> None:
        c = self.config
        if speaker is None:
            if c.speaker_conditioning:
                raise ValueError(f"this decoder is speaker-conditioned: pass speaker ids of shape ({batch},)")
            return
        if not torch.is_tensor(speaker) or speaker.dtype != torch.long or tuple(speaker.shape) != (batch,):
            got = f"{speaker.dtype} {tuple(speaker.shape)}" if torch.is_tensor(speaker) else type(speaker).__name__
            raise ValueError(f"expected int64 speaker ids of shape ({batch},), got {got}")
        if batch and (speaker.min() < 0 or speaker.max() >= c.num_speakers):
            raise ValueError(f"speaker ids must lie in 0..{c.num_speakers - 1}, "
                             f"got {int(speaker.min())}..{int(speaker.max())}")

    def _speaker(self, speaker: torch.Tensor | None) -> torch.Tensor | None:
        return speaker if self.config.speaker_conditioning else None  # the ablation ignores the ids

    def encode_z_e(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mels ``(B, n_mels, T)`` -> the encoder's continuous output ``z_e: (B, D, T')``."""
        self._check_x(x)
        return self.encoder(x)

    def loss(self, x: torch.Tensor, speaker: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The training objective and what Chapter 08 logs (see the class docstring)."""
        self._check_x(x)
        self._check_speaker(speaker, len(x))
        z_e = self.encoder(x)
        if self.quantizer is None:
            x_hat = self.decoder(z_e, self._speaker(speaker))
            recon = F.mse_loss(x_hat, x)
            return {"loss": recon, "recon": recon}
        q = self.quantizer(z_e.unsqueeze(2))  # the sequence as a (B, D, 1, T') grid
        x_hat = self.decoder(q.z_q.squeeze(2), self._speaker(speaker))
        recon = F.mse_loss(x_hat, x)
        used = codes_used(q.indices).float()
        return {"loss": recon + q.loss, "recon": recon, "vq": q.loss, "perplexity": q.perplexity, "used": used}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mels ``(B, n_mels, T)`` -> code indices ``(B, T')`` (int64). Never updates a codebook."""
        if self.quantizer is None:
            raise ValueError("a continuous autoencoder (quantize=False) has no codes: use encode_z_e")
        return self.quantizer.encode_indices(self.encode_z_e(x).unsqueeze(2)).squeeze(1)

    @torch.no_grad()
    def decode(self, indices: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Code indices ``(B, T')`` and speaker ids ``(B,)`` -> log-mels ``(B, n_mels, T' * 2**downsample)``."""
        if self.quantizer is None:
            raise ValueError("a continuous autoencoder (quantize=False) has no codes: use decode_z")
        if not torch.is_tensor(indices) or indices.dtype != torch.long or indices.dim() != 2:
            got = f"{indices.dtype} {tuple(indices.shape)}" if torch.is_tensor(indices) else type(indices).__name__
            raise ValueError(f"expected int64 code indices of shape (B, T'), got {got}")
        self._check_speaker(speaker, len(indices))
        z_q = self.quantizer.lookup(indices.unsqueeze(1)).squeeze(2)
        return self.decoder(z_q, self._speaker(speaker))

    @torch.no_grad()
    def decode_z(self, z: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Latents ``(B, D, T')`` (``z_e`` or ``z_q``) and speaker ids -> log-mels ``(B, n_mels, T)``."""
        if not torch.is_tensor(z) or z.dim() != 3 or z.shape[1] != self.config.code_dim:
            got = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"expected latents of shape (B, {self.config.code_dim}, T'), got {got}")
        self._check_speaker(speaker, len(z))
        return self.decoder(z, self._speaker(speaker))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """``decode(encode(x), speaker)``, or through ``z_e`` for the continuous autoencoder."""
        return self.convert(x, speaker)

    @torch.no_grad()
    def convert(self, x: torch.Tensor, target_speaker: torch.Tensor | None = None) -> torch.Tensor:
        """Voice conversion: encode ``x`` and decode its codes with ``target_speaker: (B,)``."""
        if self.quantizer is None:
            return self.decode_z(self.encode_z_e(x), target_speaker)
        return self.decode(self.encode(x), target_speaker)
