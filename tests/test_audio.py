import pytest
import torch
import torchaudio.transforms as T

from vqvae_lib.audio import fsdd
from vqvae_lib.audio import spectrogram


@pytest.fixture(scope="module")
def clips():
    """Four real one-second clips (two speakers, two digits) from the repository copy."""
    folder = fsdd.REPOSITORY_COPY / "recordings"
    names = ["3_theo_7.wav", "8_george_12.wav", "0_jackson_30.wav", "6_yweweler_41.wav"]
    return fsdd.fix_length([fsdd.read_wav(folder / n) for n in names])


def test_a_second_of_audio_is_64_mels_by_100_frames_in_about_unit_range(clips):
    features = spectrogram.log_mel(clips)
    assert features.shape == (4, spectrogram.N_MELS, 100) and features.dtype == torch.float32
    assert spectrogram.log_mel(clips[0]).shape == (spectrogram.N_MELS, 100)
    assert -2 < features.mean() < 1 and 0.5 < features.std() < 2
    silence = (torch.log(torch.tensor(spectrogram.FLOOR)) - spectrogram.CENTER) / spectrogram.SCALE
    assert torch.allclose(spectrogram.log_mel(torch.zeros(800)), silence.expand(spectrogram.N_MELS, 10))


def test_log_mel_is_torchaudios_mel_spectrogram_logged_and_normalised(clips):
    mel = T.MelSpectrogram(8000, n_fft=256, hop_length=80, n_mels=64, power=2.0)(clips[1])[:, :100]
    assert torch.allclose(spectrogram.log_mel(clips[1]), (mel.clamp(min=1e-5).log() + 6.0) / 4.0, atol=1e-5)


def test_the_round_trip_gives_a_clip_of_the_same_length_whose_log_mels_are_close(clips):
    features = spectrogram.log_mel(clips)
    back = spectrogram.inverse_log_mel(features)
    assert back.shape == clips.shape and back.abs().max() <= 1
    error = (spectrogram.log_mel(back) - features).abs().mean(dim=(1, 2))
    between_clips = (features - features.roll(1, dims=0)).abs().mean(dim=(1, 2))
    # measured 0.017-0.032, against 0.17-1.03 between different clips
    assert (error < 0.08).all() and (error < between_clips / 5).all(), (error, between_clips)
    assert torch.equal(spectrogram.inverse_log_mel(features[:1])[0], spectrogram.inverse_log_mel(features[0]))  # deterministic


def test_the_gelsd_inverse_mel_is_needed_because_the_filterbank_is_rank_deficient(clips):
    power = spectrogram._mel(torch.device("cpu"), torch.float32)(clips[0])
    with pytest.raises(RuntimeError, match="full rank"):
        T.InverseMelScale(129, 64, 8000)(power)  # the default driver "gels"
    assert spectrogram._inverse_mel()(power).shape == (129, power.shape[-1])


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 1, 800), r"shape \(L,\) or \(B, L\)"),
    (torch.zeros(800, dtype=torch.int16), r"float waveform"),
    (torch.zeros(100), r"at least 256 samples"),
])
def test_bad_waveforms_are_rejected_with_what_was_expected(bad, message):
    with pytest.raises(ValueError, match=message):
        spectrogram.log_mel(bad)


def test_bad_features_are_rejected_with_what_was_expected():
    with pytest.raises(ValueError, match=r"\(64, T\) or \(B, 64, T\)"):
        spectrogram.inverse_log_mel(torch.zeros(2, 40, 10))
    with pytest.raises(ValueError, match=r"\(64, T\)"):
        spectrogram.inverse_log_mel(torch.zeros(64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_features_and_inverse_follow_the_device(clips):
    x = clips[:2].cuda()
    features = spectrogram.log_mel(x)
    assert features.device == x.device
    assert torch.allclose(features.cpu(), spectrogram.log_mel(clips[:2]), atol=1e-3)
    assert spectrogram.inverse_log_mel(features).device == x.device
