"""The learned-prior bound (7.5) for the VQ-VAE and the categorical VAEs: vqvae_lib.second_stage."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vqvae_lib.discrete import CategoricalVAE, CategoricalVAEConfig, categorical_log_prob
from vqvae_lib.prior import GatedPixelCNN, PriorConfig
from vqvae_lib.second_stage import learned_prior_bound, posterior_sample, prior_nll
from vqvae_lib.vqvae import VQVAE, VQVAEConfig

SMALL = dict(hidden=16, res_hidden=8)


def images(n=6, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)) / 255


class UniformPrior(nn.Module):
    """Equal logits everywhere: -log p(z) = N log K for every grid."""

    def __init__(self, num_codes):
        super().__init__()
        self.num_codes = num_codes
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device

    def forward(self, codes):
        return torch.zeros(codes.shape[0], self.num_codes, *codes.shape[1:], device=codes.device)


def test_vqvae_sample_is_its_codes_with_log_q_zero_and_its_own_reconstruction_term():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=4, **SMALL)).eval()
    x = images()
    codes, log_q, recon = posterior_sample(model, x)
    assert torch.equal(codes, model.encode(x)) and codes.shape == (6, 7, 7)
    assert torch.equal(log_q, torch.zeros(6))
    assert recon.mean().item() / 784 == pytest.approx(model.loss(x)["recon"].item(), rel=1e-5)


def test_categorical_sample_is_drawn_from_q_and_costs_its_log_probability():
    torch.manual_seed(0)
    model = CategoricalVAE(CategoricalVAEConfig(num_classes=8, latent_channels=2, **SMALL)).eval()
    x = images()
    codes, log_q, recon = posterior_sample(model, x, torch.Generator().manual_seed(1))
    again = posterior_sample(model, x, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip((codes, log_q, recon), again)), "a generator fixes the sample"
    assert codes.shape == (6, 7, 14) and codes.dtype == torch.long  # two codes per position, side by side
    logits = model.encode(x)  # (B, L, h, w, K)
    z = torch.nn.functional.one_hot(codes.view(6, 7, 7, 2).permute(0, 3, 1, 2), 8).float()
    assert torch.allclose(log_q, categorical_log_prob(z, logits).flatten(1).sum(1), atol=1e-5)
    assert torch.allclose(recon, model._recon(x, z), rtol=1e-5)
    # over many samples, the codes' frequencies follow q
    draws = posterior_sample(model, x[:1].repeat(2000, 1, 1, 1), torch.Generator().manual_seed(2))[0][:, 0, 0]
    frequencies = torch.bincount(draws, minlength=8).float() / 2000
    assert torch.allclose(frequencies, logits[0, 0, 0, 0].softmax(-1), atol=0.04)


def test_bound_with_a_uniform_prior_is_the_uniform_prior_elbo():
    torch.manual_seed(0)
    model = CategoricalVAE(CategoricalVAEConfig(num_classes=8, **SMALL)).eval()
    with torch.no_grad():  # sharper posteriors, so that the KL is far from zero
        model.encoder.net[-1].weight.mul_(30)
    loader = DataLoader(TensorDataset(images(64), torch.zeros(64)), batch_size=16)
    bound = learned_prior_bound(model, UniformPrior(8), loader, torch.Generator().manual_seed(0))
    # (7.5) with p_prior uniform: KL estimated by one sample, log q + N log K; its mean is the exact KL (2.2)
    exact_kl = sum(model.loss(x)["kl"].item() * len(x) for x, _ in loader) / 64
    assert bound["latents"] == pytest.approx(exact_kl, rel=0.05)
    assert bound["nelbo"] == pytest.approx(bound["recon"] + bound["latents"])
    vq = VQVAE(VQVAEConfig(num_codes=16, code_dim=4, **SMALL)).eval()
    vq_bound = learned_prior_bound(vq, UniformPrior(16), loader)
    assert vq_bound["latents"] == pytest.approx(49 * math.log(16) / 784, rel=1e-6), "one-hot q: N log K exactly (7.3)"


def test_prior_nll_is_the_prior_loss_summed_over_latents():
    torch.manual_seed(0)
    prior = GatedPixelCNN(PriorConfig(num_codes=16, channels=8, num_layers=2)).eval()
    codes = torch.randint(0, 16, (5, 7, 7))
    assert prior_nll(prior, codes).mean().item() == pytest.approx(prior.loss(codes)["loss"].item() * 49, rel=1e-5)


def test_other_models_and_empty_loaders_are_refused_by_name():
    with pytest.raises(TypeError, match="VQVAE or a CategoricalVAE, got Linear"):
        posterior_sample(nn.Linear(2, 2), images(1))
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=4, **SMALL)).eval()
    with pytest.raises(ValueError, match="empty"):
        learned_prior_bound(model, UniformPrior(16), DataLoader(TensorDataset(torch.zeros(0, 1, 28, 28))))


def test_float64_models_work():
    torch.manual_seed(0)
    model = CategoricalVAE(CategoricalVAEConfig(num_classes=8, **SMALL)).double().eval()
    codes, log_q, recon = posterior_sample(model, images().double())
    assert log_q.dtype == torch.float64 and torch.isfinite(recon).all()
