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


def test_speech_frames_are_those_centred_inside_the_recording_and_the_rest_is_silence():
    g = torch.Generator().manual_seed(0)
    clips = [torch.rand(n, generator=g) - 0.5 for n in (1000, 2399, 2400, 8000, 9000)]
    kept = fsdd.kept_samples(clips)
    frames = spectrogram.speech_frames(kept)
    assert frames.tolist() == [13, 30, 30, 100, 100]  # ceil(L / 80), at most one second's 100
    features = spectrogram.log_mel(fsdd.fix_length(clips))
    silence = (torch.log(torch.tensor(spectrogram.FLOOR)) - spectrogram.CENTER) / spectrogram.SCALE
    for x, f in zip(features, frames):
        assert (x[:, f + 2:] == silence).all()  # a window 2 frames past the recording holds only padding
        assert (x[:, f - 1] > silence).any()  # the last speech frame holds some of the recording
    with pytest.raises(ValueError, match="positive int64 lengths"):
        spectrogram.speech_frames(torch.tensor([0, 5]))


def test_time_mask_marks_frames_or_codes_that_hold_speech():
    lengths = torch.tensor([1, 4, 5, 12])
    assert spectrogram.time_mask(lengths, 6).sum(1).tolist() == [1, 4, 5, 6]  # capped at the steps
    codes = spectrogram.time_mask(lengths, 3, per_step=4)  # a code of 4 frames is speech if one frame is
    assert codes.tolist() == [[True, False, False], [True, False, False], [True, True, False], [True, True, True]]
    with pytest.raises(ValueError, match="positive int64 lengths"):
        spectrogram.time_mask(torch.tensor([1.0]), 3)
    with pytest.raises(ValueError, match="steps >= 1"):
        spectrogram.time_mask(lengths, 0)


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
