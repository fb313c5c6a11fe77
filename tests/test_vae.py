import torch

from vqvae_lib.vae import GaussianVAE, VAEConfig, gaussian_kl, reparameterize


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mu, logvar = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-0.5, 0.3, -2.0])
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 3)
    log_q = -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + torch.log(torch.tensor(2 * torch.pi)))
    log_p = -0.5 * (z**2 + torch.log(torch.tensor(2 * torch.pi)))
    mc = (log_q - log_p).mean(0)
    assert torch.allclose(gaussian_kl(mu, logvar), mc, atol=0.02)


def test_kl_is_zero_exactly_at_the_prior():
    assert torch.equal(gaussian_kl(torch.zeros(4), torch.zeros(4)), torch.zeros(4))


def test_reparameterised_sample_carries_gradients_to_mu_and_logvar():
    mu, logvar = torch.zeros(5, requires_grad=True), torch.zeros(5, requires_grad=True)
    reparameterize(mu, logvar).pow(2).sum().backward()
    assert mu.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0


def test_loss_is_negative_elbo_per_dim_and_shapes_hold():
    torch.manual_seed(0)
    vae = GaussianVAE(VAEConfig(latent_channels=3, hidden=16, res_hidden=8))
    x = torch.randint(0, 256, (4, 1, 28, 28)) / 255.0
    out = vae.loss(x)
    assert set(out) == {"loss", "recon", "kl"}
    assert torch.allclose(out["loss"], out["recon"] + out["kl"])
    assert out["kl"] >= 0 and out["recon"] > 0
    assert vae.sample(2).shape == (2, 1, 28, 28)
    assert vae.reconstruct(x).shape == x.shape


def test_a_few_adam_steps_on_a_constant_image_lower_the_loss():
    torch.manual_seed(0)
    vae = GaussianVAE(VAEConfig(latent_channels=2, hidden=16, res_hidden=8))
    x = torch.full((8, 1, 28, 28), 0.5)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    first = vae.loss(x)["loss"].item()
    for _ in range(30):
        loss = vae.loss(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert vae.loss(x)["loss"].item() < 0.8 * first


def test_a_float64_model_keeps_float64_in_the_reconstruction_and_the_kl():
    """`--float64` runs: the negative ELBO equals a float64 one computed by hand, not an fp32 rounding of it."""
    torch.manual_seed(0)
    vae = GaussianVAE(VAEConfig(latent_channels=2, hidden=8, res_hidden=4)).double()
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.float64) / 255.0
    torch.manual_seed(1)
    out = vae.loss(x)
    torch.manual_seed(1)
    mu, logvar = vae.encode(x)
    mean, log_scale = vae.decode(mu + torch.exp(0.5 * logvar) * torch.randn_like(mu))
    cdf = lambda edge: torch.sigmoid((edge - mean) / log_scale.clamp(min=-7.0).exp())
    upper = torch.where(x == 1, 1.0, cdf(2 * x - 1 + 1 / 255))
    lower = torch.where(x == 0, 0.0, cdf(2 * x - 1 - 1 / 255))
    recon = -torch.log(upper - lower).sum() / x.numel()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum() / x.numel()
    assert out["loss"].dtype == torch.float64
    assert abs(out["recon"].item() - recon.item()) < 1e-12 and abs(out["kl"].item() - kl.item()) < 1e-12
