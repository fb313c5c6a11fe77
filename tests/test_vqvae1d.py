import pytest
import torch

from vqvae_lib.quantizers.vq import VectorQuantizer
from vqvae_lib.audio.vqvae1d import VQVAE1D, VQVAE1DConfig


def tiny(**kwargs):
    torch.manual_seed(0)
    config = dict(n_mels=8, num_codes=16, code_dim=4, hidden=16, downsample=2, num_speakers=3, speaker_dim=4)
    return VQVAE1D(VQVAE1DConfig(**{**config, **kwargs}))


def batch(b=4, t=12):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 8, t, generator=g), torch.arange(b) % 3


def test_time_is_downsampled_into_one_code_per_four_frames_and_decoded_back():
    model = tiny()
    x, s = batch()
    codes = model.encode(x)
    assert codes.shape == (4, 3) and codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 16
    assert model.encode_z_e(x).shape == (4, 4, 3)
    assert model.decode(codes, s).shape == x.shape and model.convert(x, s).shape == x.shape
    assert tiny(downsample=3).encode(torch.randn(2, 8, 16)).shape == (2, 2)


def test_the_quantiser_is_the_books_vector_quantizer_and_the_loss_adds_its_terms():
    model = tiny()
    assert type(model.quantizer) is VectorQuantizer
    x, s = batch()
    out = model.loss(x, s)
    assert {"loss", "recon", "vq", "perplexity", "used"} <= set(out)
    assert torch.allclose(out["loss"], out["recon"] + out["vq"])
    z_q = model.quantizer.lookup(model.encode(x).unsqueeze(1)).squeeze(2)
    assert torch.allclose(out["recon"], (model.decoder(z_q, s) - x).pow(2).mean(), atol=1e-6)


def test_a_different_speaker_id_changes_every_frame_of_the_decode():
    model = tiny()
    x, _ = batch()
    codes = model.encode(x)
    a, b = model.decode(codes, torch.zeros(4, dtype=torch.long)), model.decode(codes, torch.ones(4, dtype=torch.long))
    assert (a - b).abs().amax(dim=1).min() > 1e-4  # every frame of every clip moves
    mixed = model.decode(codes, torch.tensor([0, 1, 0, 1]))
    assert torch.allclose(mixed[0], a[0]) and torch.allclose(mixed[1], b[1])


def test_the_ablation_ignores_the_speaker_and_needs_none():
    model = tiny(speaker_conditioning=False)
    x, s = batch()
    codes = model.encode(x)
    assert torch.equal(model.decode(codes, s), model.decode(codes, (s + 1) % 3))
    assert torch.equal(model.decode(codes), model.decode(codes, s))
    model.loss(x)
    with pytest.raises(ValueError, match=r"speaker ids must lie in 0\.\.2"):
        model.loss(x, torch.full((4,), 3))


def test_the_continuous_autoencoder_has_the_same_trunk_and_no_codes():
    vq, ae = tiny(), tiny(quantize=False)
    assert ae.quantizer is None
    assert sum(p.numel() for p in vq.parameters()) - sum(p.numel() for p in ae.parameters()) == 16 * 4  # the codebook
    x, s = batch()
    out = ae.loss(x, s)
    assert torch.equal(out["loss"], out["recon"]) and ae.convert(x, s).shape == x.shape
    with pytest.raises(ValueError, match="no codes"):
        ae.encode(x)


def test_the_reconstruction_gradient_reaches_the_encoder_straight_through():
    model = tiny(beta=0.0)  # no commitment term: only the reconstruction can move the encoder
    x, s = batch()
    model.loss(x, s)["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.decoder.embedding.weight.grad[:3].abs().sum() > 0
    assert model.quantizer.codebook.grad.abs().sum() > 0  # the codebook term


@pytest.mark.parametrize("x, s, message", [
    (torch.randn(4, 8), torch.arange(4) % 3, r"shape \(B, 8, T\)"),
    (torch.randn(4, 5, 12), torch.arange(4) % 3, r"shape \(B, 8, T\)"),
    (torch.randn(4, 8, 10), torch.arange(4) % 3, r"multiple of 2\*\*downsample = 4, got T = 10"),
    (torch.randn(4, 8, 12), torch.tensor([0, 1, 2, 3]), r"speaker ids must lie in 0\.\.2, got 0\.\.3"),
    (torch.randn(4, 8, 12), torch.tensor([0, 1]), r"speaker ids of shape \(4,\)"),
    (torch.randn(4, 8, 12), torch.zeros(4), r"int64 speaker ids"),
    (torch.randn(4, 8, 12), None, "speaker-conditioned"),
])
def test_bad_input_is_rejected_with_what_was_expected(x, s, message):
    with pytest.raises(ValueError, match=message):
        tiny().loss(x, s)


def test_bad_codes_are_rejected():
    model = tiny()
    s = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"int64 code indices of shape \(B, T'\)"):
        model.decode(torch.zeros(2, 1, 3, dtype=torch.long), s)
    with pytest.raises(ValueError, match=r"0\.\.15"):
        model.decode(torch.full((2, 3), 16), s)


def test_encoding_never_moves_an_ema_codebook():
    model = tiny(quantizer="ema")
    before = model.quantizer.codebook.clone()
    model.encode(batch()[0])
    assert torch.equal(model.quantizer.codebook, before)
    model.loss(*batch())
    assert not torch.equal(model.quantizer.codebook, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_model_follows_its_device():
    model = tiny().cuda()
    x, s = batch()
    out = model.loss(x.cuda(), s.cuda())
    assert out["loss"].device.type == "cuda"
    assert model.convert(x.cuda(), s.cuda()).device.type == "cuda"


def test_the_books_loop_trains_it_with_speaker_ids_from_the_loader_and_the_cache_keys_it(tmp_path, monkeypatch):
    from torch.utils.data import DataLoader, TensorDataset

    from vqvae_lib.checkpoint import load_or_fit, run_key

    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(tmp_path))
    x, s = batch(8)
    loader = DataLoader(TensorDataset(x, s), batch_size=4)
    model = tiny()
    seen = []
    loss = model.loss
    model.loss = lambda x, speaker: seen.append(speaker) or loss(x, speaker)
    history = load_or_fit(model, "vq1d", loader, epochs=1, lr=1e-3)
    assert len(history.train) == 2 and torch.equal(torch.cat(seen), s)
    assert "vqvae_lib.quantizers.vq" in run_key(tiny(), loader, epochs=1, lr=1e-3)["code"]
    assert run_key(tiny(), loader, epochs=1, lr=1e-3) != run_key(tiny(speaker_conditioning=False), loader, epochs=1, lr=1e-3)
