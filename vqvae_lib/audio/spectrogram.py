"""Log-mel spectrograms of 8 kHz speech, and the way back to a waveform (Chapter 08).

The models of Chapter 08 never see raw samples. They see a *log-mel spectrogram*: the clip is cut
into overlapping windows (``N_FFT`` = 256 samples = 32 ms, one every ``HOP`` = 80 samples = 10 ms),
the power of each window's spectrum is pooled by ``N_MELS`` = 64 triangular filters spaced evenly on
the mel scale (finer at low frequencies, as hearing is), and the log is taken with a floor, so that
silence does not become minus infinity. Finally a fixed affine map, ``(log_mel - CENTER) / SCALE``,
brings the values to about unit range. All these numbers are our choices for 8 kHz digits, not the
paper's (its audio model, Sec. 4.3, works on raw waveforms with a WaveNet decoder).

A one-second clip (8,000 samples) becomes ``(64, 100)``: 100 frames per second. Frame ``t`` is
centred on sample ``t * HOP``; we drop the frame centred on the very last sample, so that a clip of
``L`` samples has exactly ``L // HOP`` frames.

**Speech and padding.** Clips are padded with silence to one length so that they batch together
(:func:`vqvae_lib.audio.fsdd.fix_length`). The padding is not speech, and a measure that counts it
says more about the clip's length than about the model, so Chapter 08 measures over the frames that
hold the recording only: :func:`speech_frames` counts them (the frames whose centre lies inside the
recording) and :func:`time_mask` turns counts into a ``(N, T)`` mask, for frames or for codes.

The way back (:func:`inverse_log_mel`) loses the phase, so it has to guess it: undo the affine map
and the log, spread each mel band back over its frequencies by least squares (``InverseMelScale``;
64 bands over 129 frequencies is rank-deficient at 8 kHz, so it needs the SVD-based ``gelsd``
driver), then Griffin-Lim (Griffin and Lim, 1984) finds a waveform whose spectrogram magnitudes
match, by alternating projections. It sounds metallic but intelligible, which is all the chapter
needs to let the reader hear each result.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torchaudio.functional as AF
import torchaudio.transforms as T

SAMPLE_RATE = 8000
N_FFT = 256  # 32 ms windows: 129 frequencies from 0 to 4 kHz
HOP = 80  # 10 ms between frames: 100 frames per second
N_MELS = 64
FLOOR = 1e-5  # power floor before the log (silence: log(1e-5) = -11.5)
CENTER, SCALE = -6.0, 4.0  # about the mean and sd of log-mel values over the training clips (rounded)
GRIFFIN_LIM_ITERS = 32


@lru_cache(maxsize=None)
def _mel(device: torch.device, dtype: torch.dtype) -> T.MelSpectrogram:
    return T.MelSpectrogram(SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, power=2.0).to(device, dtype)


@lru_cache(maxsize=None)
def _inverse_mel() -> T.InverseMelScale:
    return T.InverseMelScale(N_FFT // 2 + 1, N_MELS, SAMPLE_RATE, driver="gelsd")


def _check_waveform(waveform: torch.Tensor) -> None:
    if not torch.is_tensor(waveform) or not waveform.is_floating_point() or waveform.dim() not in (1, 2):
        got = f"{waveform.dtype} {tuple(waveform.shape)}" if torch.is_tensor(waveform) else type(waveform).__name__
        raise ValueError(f"expected a float waveform of shape (L,) or (B, L) at {SAMPLE_RATE} Hz, got {got}")
    if waveform.shape[-1] < N_FFT:
        raise ValueError(f"expected at least {N_FFT} samples (one {N_FFT}-sample window), got {waveform.shape[-1]}")


def speech_frames(samples: torch.Tensor) -> torch.Tensor:
    """Recording lengths in samples ``(N,)`` (int64) -> how many frames of their log-mels hold the
    recording: those whose centre ``t * HOP`` lies inside it, ``ceil(L / HOP)``."""
    if not torch.is_tensor(samples) or samples.dtype != torch.long or samples.dim() != 1 or (samples < 1).any():
        got = f"{samples.dtype} {tuple(samples.shape)}" if torch.is_tensor(samples) else type(samples).__name__
        raise ValueError(f"expected positive int64 lengths in samples of shape (N,), got {got}")
    return -(-samples // HOP)


def time_mask(lengths: torch.Tensor, steps: int, per_step: int = 1) -> torch.Tensor:
    """``(N, steps)`` bool, true where ``t < ceil(lengths / per_step)``: the steps that hold the clip.

    ``lengths`` are frames (:func:`speech_frames`); ``per_step = 1`` masks frames, ``per_step = 4``
    masks codes of 4 frames each (a code counts as speech if any of its frames is).
    """
    if not torch.is_tensor(lengths) or lengths.dtype != torch.long or lengths.dim() != 1 or (lengths < 1).any():
        got = f"{lengths.dtype} {tuple(lengths.shape)}" if torch.is_tensor(lengths) else type(lengths).__name__
        raise ValueError(f"expected positive int64 lengths of shape (N,), got {got}")
    if steps < 1 or per_step < 1:
        raise ValueError(f"need steps >= 1 and per_step >= 1, got {steps} and {per_step}")
    return torch.arange(steps, device=lengths.device) < (-(-lengths // per_step)).clamp(max=steps)[:, None]


def log_mel(waveform: torch.Tensor) -> torch.Tensor:
    """``(L,)`` or ``(B, L)`` samples in [-1, 1] -> normalised log-mels ``(N_MELS, L // HOP)`` or
    ``(B, N_MELS, L // HOP)``, on the waveform's device: ``(log(max(mel power, FLOOR)) - CENTER) / SCALE``."""
    _check_waveform(waveform)
    mel = _mel(waveform.device, waveform.dtype)(waveform)[..., : waveform.shape[-1] // HOP]
    return (torch.log(mel.clamp(min=FLOOR)) - CENTER) / SCALE


def inverse_log_mel(features: torch.Tensor, n_iter: int = GRIFFIN_LIM_ITERS) -> torch.Tensor:
    """Normalised log-mels ``(N_MELS, T)`` or ``(B, N_MELS, T)`` -> a waveform ``(T * HOP,)`` or
    ``(B, T * HOP)`` in [-1, 1], on the features' device.

    Griffin-Lim starts from zero phase (``rand_init=False``), so the result is deterministic.
    """
    if not torch.is_tensor(features) or not features.is_floating_point() or features.dim() not in (2, 3) \
            or features.shape[-2] != N_MELS or features.shape[-1] < 2:
        got = f"{features.dtype} {tuple(features.shape)}" if torch.is_tensor(features) else type(features).__name__
        raise ValueError(f"expected float log-mels of shape ({N_MELS}, T) or (B, {N_MELS}, T) with T >= 2, got {got}")
    frames = features.shape[-1]
    power = torch.exp(features.float() * SCALE + CENTER)
    power = torch.cat([power, power[..., -1:]], dim=-1)  # the dropped last frame, repeated
    # On the CPU: torch.linalg.lstsq offers "gelsd" there only (CUDA has "gels", which needs full rank).
    linear = _inverse_mel()(power.cpu()).to(features.device)
    window = torch.hann_window(N_FFT, device=features.device)
    wave = AF.griffinlim(linear, window, N_FFT, HOP, N_FFT, power=2.0, n_iter=n_iter, momentum=0.99,
                         length=frames * HOP, rand_init=False)
    return wave.clamp(-1.0, 1.0).to(features.dtype)
