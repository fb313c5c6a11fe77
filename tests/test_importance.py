import math

import pytest
import torch

from vqvae_lib.importance import importance_weighted_nll
from vqvae_lib.likelihood import discretized_logistic_nll
from vqvae_lib.vae import GaussianVAE, VAEConfig, gaussian_kl


class IgnoresZ:
    """A model whose decoder ignores z, so the true posterior is the prior N(0, 1) and -log p(x) is exact."""

    def __init__(self, mu=0.0, logvar=0.0):
        self.mu, self.logvar = mu, logvar
        self.mean = torch.tensor([-0.5, 0.0, 0.3, 0.9]).view(1, 1, 2, 2)
        self.log_scale = torch.full((1, 1, 2, 2), -2.0)

    def encode(self, x):
        shape = (len(x), 1, 1, 1)
        return torch.full(shape, self.mu), torch.full(shape, self.logvar)

    def decode(self, z):
        return self.mean.expand(len(z), -1, -1, -1), self.log_scale.expand(len(z), -1, -1, -1)

    def exact(self, x):
        return discretized_logistic_nll(x, self.mean.expand(len(x), -1, -1, -1), self.log_scale.expand(len(x), -1, -1, -1))


X = torch.tensor([[0.2, 0.5], [0.6, 1.0]]).view(1, 1, 2, 2).repeat(3, 1, 1, 1)


def test_exact_posterior_gives_the_exact_likelihood_for_every_k():
    model = IgnoresZ()
    for k in (1, 7, 25):
        torch.manual_seed(k)
        assert torch.allclose(importance_weighted_nll(model, X, k, chunk=4), model.exact(X), atol=1e-5)


def test_wrong_posterior_costs_its_kl_at_k1_and_the_gap_closes_with_k():
    model = IgnoresZ(mu=0.3, logvar=2 * math.log(1.2))  # wider than the prior: bounded weights
    kl = gaussian_kl(torch.tensor(0.3), torch.tensor(2 * math.log(1.2))).item()
    torch.manual_seed(0)
    many = X[:1].repeat(20_000, 1, 1, 1)
    k1 = importance_weighted_nll(model, many, 1).mean()  # standard error about 0.004
    assert abs((k1 - model.exact(X[:1])).item() - kl) < 0.015
    torch.manual_seed(0)
    gap = (importance_weighted_nll(model, X, 5000, chunk=1000) - model.exact(X)).abs().max().item()
    assert gap < 0.2 * kl  # noise of the estimate is about 0.005 at this k; its bias is far smaller


def test_on_a_vae_k1_is_the_elbo_and_more_samples_tighten_it():
    torch.manual_seed(0)
    vae = GaussianVAE(VAEConfig(latent_channels=2, hidden=8, res_hidden=4)).eval()
    x = torch.randint(0, 256, (16, 1, 28, 28)) / 255
    with torch.no_grad():
        elbo = torch.stack([vae.loss(x)["loss"] for _ in range(200)]).mean().item() * 784
    torch.manual_seed(1)
    means = {k: torch.stack([importance_weighted_nll(vae, x, k) for _ in range(200 // k)]).mean().item() for k in (1, 10)}
    assert means[1] == pytest.approx(elbo, rel=2e-3)
    assert means[10] < means[1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="k >= 1"):
        importance_weighted_nll(IgnoresZ(), X, 0)
