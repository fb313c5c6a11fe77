import math

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.pixel_decoder import PixelDecoder, PixelDecoderConfig, PixelVAE, PixelVQVAE, pixel_levels

SMALL = PixelDecoderConfig(channels=8, num_layers=3, cond_channels=4, hidden=8, res_hidden=4, latent_channels=2,
                           num_codes=6, code_dim=3)


def small_decoder(latent_width=2):
    torch.manual_seed(0)
    return PixelDecoder(latent_width, SMALL).eval()


def images(n=1, size=8, seed=0):
    levels = torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed))
    return levels.float() / 255


def test_pixel_levels_are_the_8bit_values():
    x = torch.arange(256).float().view(1, 1, 16, 16) / 255
    assert torch.equal(pixel_levels(x), torch.arange(256).view(1, 16, 16))
    # in fp16 (as under autocast) k/255 is off by up to half a level: k must be rounded, not truncated
    assert torch.equal(pixel_levels(x.half()), torch.arange(256).view(1, 16, 16))


def test_logits_at_a_pixel_ignore_that_pixel_and_every_later_one():
    model = small_decoder()
    x = images()
    z = torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    base = model(x, z)
    for p in range(64):
        changed = x.clone()
        changed[0, 0, p // 8, p % 8] = (pixel_levels(x)[0, p // 8, p % 8] + 1) % 256 / 255
        diff = (model(changed, z) - base).abs().amax(dim=1).flatten()
        assert diff[: p + 1].max() == 0, f"changing pixel {p} moved a logit at or before it"
        if (p + 1) % 8:  # the next pixel on the same row
            assert diff[p + 1] > 0, f"pixel {p + 1} does not see its left neighbour {p}"


def test_the_latents_move_the_logits_of_every_pixel():
    model = small_decoder()
    x = images()
    z = torch.randn(1, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    diff = (model(x, z + 1.0) - model(x, z)).abs().amax(dim=1)
    assert diff.min() > 1e-5, "some pixel's logits do not depend on the latents"


def test_nll_is_the_256_way_cross_entropy_summed_over_pixels():
    model = small_decoder()
    x, z = images(2), torch.randn(2, 2, 2, 2)
    expected = F.cross_entropy(model(x, z), pixel_levels(x), reduction="none").sum(dim=(1, 2))
    assert torch.allclose(model.nll(x, z), expected)
    with torch.no_grad():  # uniform logits: exactly log 256 nats per pixel
        model.pixelcnn.head[-1].weight.zero_()
        model.pixelcnn.head[-1].bias.zero_()
    assert torch.allclose(model.nll(x, z), torch.full((2,), 64 * math.log(256)))


def test_vae_loss_is_recon_plus_gaussian_kl_per_pixel():
    torch.manual_seed(0)
    model = PixelVAE(SMALL)
    x = images(3)
    with torch.no_grad():  # a posterior equal to the prior has KL 0; mu = 1 costs 1/2 nat per latent number
        last = model.encoder.net[-1]
        last.weight.zero_()
        last.bias.zero_()
    assert model.loss(x)["kl"].item() == 0.0
    with torch.no_grad():
        last.bias[:2] = 1.0
    out = model.loss(x)
    assert math.isclose(out["kl"].item(), 0.5 * 2 * 2 * 2 / 64, rel_tol=1e-6)  # 8 latent numbers, 64 pixels
    assert torch.allclose(out["loss"], out["recon"] + out["kl"])


def test_vqvae_loss_logs_perplexity_and_the_constant_kl_of_a_uniform_prior():
    torch.manual_seed(0)
    model = PixelVQVAE(SMALL)
    x = images(4)
    out = model.loss(x)
    assert math.isclose(out["nelbo"].item() - out["recon"].item(), 4 * math.log(6) / 64, rel_tol=1e-5)
    assert torch.allclose(out["loss"], out["recon"] + 4 * 3 / 64 * out["vq"])
    assert 1.0 <= out["perplexity"].item() <= 6.0 and 1 <= out["used"].item() <= 6
    codes = model.encode(x)
    assert codes.shape == (4, 2, 2) and codes.dtype == torch.long
    assert torch.equal(model.latents(x), model.quantizer.lookup(codes))


def test_the_reconstruction_term_trains_the_encoder_and_both_parts_of_the_decoder():
    for cls in (PixelVAE, PixelVQVAE):
        torch.manual_seed(0)
        model = cls(SMALL)
        model.loss(images(2))["recon"].backward()  # -log p(x|z) alone: the VAE's KL reaches the encoder too
        for part in (model.encoder, model.decoder.condition, model.decoder.pixelcnn):
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), (cls, part)


def test_sampling_gives_8bit_images_and_follows_the_generator():
    model = small_decoder()
    z = torch.randn(2, 2, 1, 1)
    a = model.sample(z, generator=torch.Generator().manual_seed(0))
    b = model.sample(z, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 1, 4, 4) and torch.equal(a, b)
    assert torch.equal(a * 255, (a * 255).round()) and 0 <= a.min() and a.max() <= 1
    torch.manual_seed(0)
    vae = PixelVAE(SMALL)
    draw = lambda seed: vae.latents(images(2), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))


def test_float64_works():
    torch.manual_seed(0)
    model = PixelVAE(SMALL).double()
    out = model.loss(images(2).double())
    assert out["recon"].dtype == out["kl"].dtype == torch.float64 and torch.isfinite(out["loss"])
    z = model.prior_latents(1, images(1).double())
    assert z.dtype == torch.float64 and model.decoder.sample(z).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: no module may hard-code one")
def test_both_models_train_and_sample_on_the_gpu():
    cuda = torch.device("cuda")
    x = images(2).to(cuda)
    for cls in (PixelVAE, PixelVQVAE):
        torch.manual_seed(0)
        model = cls(SMALL).to(cuda)
        out = model.loss(x)
        out["loss"].backward()
        assert all(v.device.type == "cuda" for v in out.values()) and torch.isfinite(out["loss"])
        z = model.latents(x)
        assert z.device.type == "cuda"
        sample = model.decoder.sample(z, generator=torch.Generator(device=cuda).manual_seed(0))
        assert sample.device.type == "cuda" and sample.shape == x.shape
    assert PixelVAE(SMALL).to(cuda).prior_latents(3, x).device.type == "cuda"


def test_bad_inputs_are_rejected_with_a_clear_message():
    model = small_decoder()
    with pytest.raises(ValueError, match=r"images x of shape \(B, 1, H, W\), got \(1, 3, 8, 8\)"):
        model(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"latents z of shape \(B, 2, H, W\), got \(1, 5, 2, 2\)"):
        model(images(), torch.zeros(1, 5, 2, 2))
    with pytest.raises(ValueError, match=r"latents z of shape \(1, 2, 2, 2\) for images \(1, 1, 8, 8\)"):
        model(images(), torch.zeros(1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"images x of shape \(B, 1, H, W\)"):
        PixelVAE(SMALL).loss(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="at least 1"):
        PixelDecoderConfig(num_layers=0)
