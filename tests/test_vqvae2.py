import math

import pytest
import torch

from vqvae_lib.vqvae2 import VQVAE2, VQVAE2Config

K_TOP, K_BOTTOM, D = 8, 16, 8  # different K per level, so swapping the levels' costs is caught


def small(**kwargs):
    torch.manual_seed(0)
    return VQVAE2(VQVAE2Config(num_codes_top=K_TOP, num_codes_bottom=K_BOTTOM, code_dim=D, hidden=16,
                               res_hidden=8, **kwargs))


@pytest.fixture
def model():
    return small()


def images(b=2, size=28, dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return (torch.randint(0, 256, (b, 1, size, size), generator=g) / 255.0).to(dtype)


def test_a_28x28_image_gives_a_4x4_top_grid_and_a_7x7_bottom_grid(model):
    x = images(3)
    h = model.encoder(x * 2 - 1)
    z_top = model.top_encoder(h)
    u = model._decode_top(z_top, h.shape[-2:])
    assert (h.shape, z_top.shape, u.shape) == ((3, 16, 7, 7), (3, D, 4, 4), (3, D, 7, 7))
    top, bottom = model.encode(x)
    assert top.shape == (3, 4, 4) and bottom.shape == (3, 7, 7)
    assert top.dtype == bottom.dtype == torch.int64
    assert 0 <= top.min() and top.max() < K_TOP and 0 <= bottom.min() and bottom.max() < K_BOTTOM
    out = model.decode(top, bottom)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1


def test_a_32x32_image_gives_a_4x4_top_grid_and_an_8x8_bottom_grid(model):
    top, bottom = model.encode(images(2, size=32))
    assert top.shape == (2, 4, 4) and bottom.shape == (2, 8, 8)
    assert model.decode(top, bottom).shape == (2, 1, 32, 32)
    assert model.bits_per_image(32, 32) == 16 * 3 + 64 * 4


def test_every_loss_entry_is_a_finite_scalar_and_the_loss_weighs_each_levels_vq_terms(model):
    out = model.loss(images())
    keys = {"loss", "recon", "vq", "vq_top", "nelbo", "mse", "perplexity", "perplexity_top", "used", "used_top"}
    assert set(out) == keys
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    # VQ-VAE's eq. 3 per image for each level: N*D latent elements over the M = 784 pixel values
    assert torch.allclose(out["loss"], out["recon"] + (16 * D * out["vq_top"] + 49 * D * out["vq"]) / 784)
    assert 1 <= out["used"] <= K_BOTTOM and 1 <= out["perplexity"] <= out["used"] + 1e-4
    assert 1 <= out["used_top"] <= K_TOP and 1 <= out["perplexity_top"] <= out["used_top"] + 1e-4


def test_nelbo_adds_both_levels_uniform_prior_cost(model):
    out = model.loss(images())
    prior_nats = 16 * math.log(K_TOP) + 49 * math.log(K_BOTTOM)
    assert torch.allclose(out["nelbo"] - out["recon"], torch.tensor(prior_nats / 784), rtol=0, atol=1e-6)
    assert model.bits_per_image() == pytest.approx(prior_nats / math.log(2)) == 16 * 3 + 49 * 4


def test_every_part_receives_a_gradient_both_codebooks_included(model):
    model.loss(images())["loss"].backward()
    for name in ("encoder", "top_encoder", "top_quantizer", "top_decoder", "top_upsample", "bottom_in",
                 "bottom_quantizer", "decoder"):
        part = getattr(model, name)
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), name


def test_the_top_encoder_learns_from_the_reconstruction_through_the_top_codes(model):
    out = model.loss(images())
    grads = torch.autograd.grad(out["recon"], list(model.top_encoder.parameters()))
    assert any(g.abs().sum() > 0 for g in grads)


def test_the_decoder_reads_both_levels_codes(model):
    top, bottom = model.encode(images())
    base = model.decode(top, bottom)
    assert not torch.allclose(model.decode((top + 1) % K_TOP, bottom), base)
    assert not torch.allclose(model.decode(top, (bottom + 1) % K_BOTTOM), base)


def test_encode_changes_no_state_even_in_training_mode_while_a_training_forward_does():
    model = small(quantizer="ema", restart_after=1)  # every training forward moves both codebooks
    x = images(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.encode(x)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.loss(x)  # a training-mode forward does change them, so the check above could have failed
    for name in ("top_quantizer.codebook", "bottom_quantizer.codebook"):
        assert not torch.equal(model.state_dict()[name], before[name]), name


def test_encode_matches_the_quantisers_forward_and_the_codes_the_loss_uses(model):
    from vqvae_lib.quantizers.base import perplexity

    model.eval()
    x = images()
    top, bottom = model.encode(x)
    out = model.loss(x)  # the same code counts, so the loss quantises as encode does
    assert torch.equal(out["perplexity_top"], perplexity(top, K_TOP))
    assert torch.equal(out["perplexity"], perplexity(bottom, K_BOTTOM))
    h = model.encoder(x * 2 - 1)
    q_top = model.top_quantizer(model.top_encoder(h))
    u = model._decode_top(q_top.z_q, h.shape[-2:])
    assert torch.equal(top, q_top.indices)
    assert torch.equal(bottom, model.bottom_quantizer(model.bottom_in(torch.cat([h, u], 1))).indices)


def test_reconstruct_is_decode_of_encode(model):
    x = images()
    assert torch.equal(model.reconstruct(x), model.decode(*model.encode(x)))


def test_bad_inputs_are_rejected_with_a_message(model):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model.loss(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.loss(torch.rand(2, 1, 30, 30))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.rand(2, 1, 30, 30))
    with pytest.raises(ValueError, match="multiples of 4"):
        model.bits_per_image(30, 28)
    top, bottom = model.encode(images())
    with pytest.raises(ValueError, match=r"needs a top grid of shape \(2, 4, 4\)"):
        model.decode(top[:, :3, :3], bottom)
    with pytest.raises(ValueError, match="indices must lie in"):
        model.decode(top, bottom + K_BOTTOM)
    with pytest.raises(ValueError, match="unknown quantizer"):
        VQVAE2Config(quantizer="fsq")
    with pytest.raises(ValueError, match="must be positive"):
        VQVAE2Config(num_codes_top=0)


def test_the_ema_quantiser_is_built_for_both_levels():
    from vqvae_lib.quantizers.vq import VectorQuantizerEMA

    model = small(quantizer="ema", decay=0.9, beta=0.5)
    for q, k in ((model.top_quantizer, K_TOP), (model.bottom_quantizer, K_BOTTOM)):
        assert isinstance(q, VectorQuantizerEMA) and (q.num_codes, q.decay, q.beta) == (k, 0.9, 0.5)


def test_float64_trains_and_encodes():
    model = small(quantizer="ema").double()
    x = images(dtype=torch.float64)
    out = model.loss(x)  # a training step: the EMA codebooks are updated in float64
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.encoder.net[0].weight.grad.dtype == torch.float64
    assert model.top_quantizer.codebook.dtype == model.bottom_quantizer.codebook.dtype == torch.float64
    assert torch.equal(model.reconstruct(x), model.decode(*model.encode(x)))
    assert model.reconstruct(x).shape == x.shape  # images come back in float32, for display (likelihood.py)


def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch(model):
    x = images(32)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(5):
        loss = model.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05 and all(b < a for a, b in zip(losses, losses[1:])), losses
