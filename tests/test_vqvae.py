import math

import pytest
import torch

from vqvae_lib.vqvae import VQVAE


@pytest.fixture
def model():
    torch.manual_seed(0)
    return VQVAE(num_codes=32, code_dim=8, hidden=16, res_hidden=8)


def test_encode_decode_round_trip(model):
    x = torch.randint(0, 256, (3, 1, 28, 28)) / 255.0
    indices = model.encode(x)
    assert indices.shape == (3, 7, 7) and indices.dtype == torch.int64
    assert 0 <= indices.min() and indices.max() < 32
    images = model.decode(indices)
    assert images.shape == x.shape and 0 <= images.min() and images.max() <= 1
    assert torch.equal(model.reconstruct(x), images)
    model.loss(x)  # a training-mode forward must not change how images encode
    assert torch.equal(model.encode(x), indices)


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


def test_bad_images_are_rejected(model):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model.loss(torch.rand(2, 3, 28, 28))
