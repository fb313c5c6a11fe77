import math

import pytest
import torch

from vqvae_lib.vqvae import VQVAE, VQVAEConfig


def small(**kwargs):
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(num_codes=32, code_dim=8, hidden=16, res_hidden=8, **kwargs))


@pytest.fixture
def model():
    return small()


def test_encode_never_updates_a_stateful_codebook_while_a_training_forward_does():
    model = small(quantizer="ema", restart_after=1)  # every training forward moves the codebook
    x = torch.randint(0, 256, (3, 1, 28, 28)) / 255.0
    before = model.quantizer.codebook.clone()
    indices = model.encode(x)  # training mode: encode must still leave the codebook alone
    assert indices.shape == (3, 7, 7) and indices.dtype == torch.int64
    assert 0 <= indices.min() and indices.max() < 32
    assert torch.equal(model.quantizer.codebook, before) and model.quantizer.idle_steps.eq(0).all()
    images = model.decode(indices)
    assert images.shape == x.shape and 0 <= images.min() and images.max() <= 1
    assert torch.equal(model.reconstruct(x), images)
    model.loss(x)  # a training-mode forward does update it, so the check above could have failed
    assert not torch.equal(model.quantizer.codebook, before)


def test_encode_matches_the_quantizer_forward(model):
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(model.encode(x), model.quantizer(model.encoder(x * 2 - 1)).indices)


def test_nelbo_adds_n_log_k_per_pixel_to_the_reconstruction(model):
    out = model.loss(torch.rand(2, 1, 28, 28))
    assert torch.allclose(out["nelbo"], out["recon"] + 49 * math.log(32) / 784)
    # eq. 3 per image over M = 784 pixels: the 49 x 8 latent elements weigh 392 / 784
    assert torch.allclose(out["loss"], out["recon"] + 49 * 8 / 784 * out["vq"])
    assert 1 <= out["used"].item() <= 32 and 1 <= out["perplexity"].item() <= out["used"].item() + 1e-4


def test_every_part_receives_a_gradient(model):
    model.loss(torch.rand(2, 1, 28, 28))["loss"].backward()
    for name in ("encoder", "decoder", "quantizer"):
        part = getattr(model, name)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), name


def test_the_config_builds_the_quantizer_it_names():
    from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA

    ema = small(quantizer="ema", decay=0.9, restart_after=5, beta=0.5).quantizer
    assert isinstance(ema, VectorQuantizerEMA) and (ema.decay, ema.restart_after, ema.beta) == (0.9, 5, 0.5)
    vq = small(init_scale=1 / 32).quantizer
    assert isinstance(vq, VectorQuantizer) and vq.codebook.abs().max() <= 1 / 32
    with pytest.raises(ValueError, match="unknown quantizer"):
        VQVAEConfig(quantizer="pq")


def test_bad_images_are_rejected(model):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model.loss(torch.rand(2, 3, 28, 28))


def test_several_codes_per_position_quantise_each_slice_and_round_trip():
    from vqvae_lib.quantizers.nearest import nearest_code

    model = small(codes_per_position=3)
    x = torch.rand(2, 1, 28, 28)
    indices = model.encode(x)
    assert indices.shape == (2, 7, 21)  # 7 x 7 positions, 3 codes each, side by side
    z_e = model.encoder(x * 2 - 1)  # (2, 3 * 8, 7, 7)
    for c in range(3):  # code c of position (i, j) quantises channels c*D .. (c+1)*D
        flat = z_e[:, 8 * c: 8 * (c + 1)].permute(0, 2, 3, 1).reshape(-1, 8)
        expected = nearest_code(flat, model.quantizer.codebook).view(2, 7, 7)
        assert torch.equal(indices[:, :, c::3], expected)
    t = torch.randn(2, 24, 7, 7)
    assert torch.equal(model._from_codes(model._to_codes(t)), t)
    assert model.decode(indices).shape == x.shape
    out = model.loss(x)
    assert torch.allclose(out["nelbo"], out["recon"] + 147 * math.log(32) / 784)
    assert torch.allclose(out["loss"], out["recon"] + 147 * 8 / 784 * out["vq"])
    with pytest.raises(ValueError, match="multiple of codes_per_position=3"):
        model.decode(indices[:, :, :20])


def test_averaging_the_vq_terms_over_latents_divides_their_weight_by_n():
    out = small(vq_terms="mean").loss(torch.rand(2, 1, 28, 28))
    assert torch.allclose(out["loss"], out["recon"] + 8 / 784 * out["vq"])
    with pytest.raises(ValueError, match="unknown vq_terms"):
        VQVAEConfig(vq_terms="median")


def test_z_e_norm_is_the_mean_length_of_the_encoder_vectors(model):
    x = torch.rand(2, 1, 28, 28)
    out = model.loss(x)
    z_e = model.encoder(x * 2 - 1)
    assert torch.allclose(out["z_e_norm"], z_e.norm(dim=1).mean())
