import math

import pytest
import torch

from vqvae_lib.discrete import ESTIMATORS, CategoricalVAE, CategoricalVAEConfig, categorical_kl_uniform, categorical_log_prob

SMALL = dict(hidden=16, res_hidden=8, num_classes=8, num_samples=3)


def categorical_vae(estimator="gumbel", **kwargs):
    return CategoricalVAE(CategoricalVAEConfig(estimator, **kwargs))


def images(n=4, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)) / 255.0


def test_kl_to_the_uniform_prior_is_zero_at_uniform_and_log_k_at_one_hot():
    assert torch.allclose(categorical_kl_uniform(torch.zeros(2, 5)), torch.zeros(2), atol=1e-7)
    assert torch.allclose(categorical_kl_uniform(torch.tensor([[50.0, 0, 0, 0, 0]])), torch.tensor([math.log(5)]))


def test_kl_matches_the_expected_log_ratio():
    logits = torch.tensor([[0.3, -1.0, 2.0], [1.0, 1.0, -2.0]])
    q = torch.softmax(logits, -1)
    log_ratio = categorical_log_prob(torch.eye(3).unsqueeze(1), logits) + math.log(3)  # (3 classes, 2 rows)
    assert torch.allclose(categorical_kl_uniform(logits), (q.T * log_ratio).sum(0))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_loss_terms_add_up_and_the_encoder_receives_a_gradient(estimator):
    torch.manual_seed(0)
    model = categorical_vae(estimator, **SMALL)
    out = model.loss(images())
    assert {"loss", "nelbo", "recon", "kl"} <= set(out)
    assert torch.allclose(out["nelbo"], out["recon"] + out["kl"])
    assert out["kl"] >= 0 and out["recon"] > 0
    out["loss"].backward()
    encoder_grad = model.encoder.net[0].weight.grad
    assert encoder_grad is not None and encoder_grad.abs().sum() > 0
    assert model.decoder.net[0].weight.grad.abs().sum() > 0


def test_score_function_loss_is_a_one_sample_negative_elbo_in_value():
    torch.manual_seed(0)
    model = categorical_vae("nvil", **SMALL)
    out = model.loss(images(64))
    # the sampled KL log q - log p and the exact KL agree on average; recon is the same sample
    assert abs((out["loss"] - out["nelbo"]).item()) < 0.01 * out["nelbo"].item()
    st = categorical_vae("st_gumbel", **SMALL).loss(images())
    assert torch.allclose(st["loss"], st["nelbo"])


def test_nvil_statistics_and_temperature_move_only_in_training():
    torch.manual_seed(0)
    nvil_model, gumbel_model = categorical_vae("nvil", **SMALL), categorical_vae("gumbel", anneal_rate=0.1, **SMALL)
    nvil_model.loss(images())
    gumbel_model.loss(images())
    assert nvil_model.signal_mean.item() != 0.0 and gumbel_model.tau == pytest.approx(math.exp(-0.1))
    nvil_model.eval(), gumbel_model.eval()
    before = nvil_model.signal_mean.clone()
    nvil_model.loss(images()), gumbel_model.loss(images())
    assert torch.equal(nvil_model.signal_mean, before) and int(gumbel_model.step) == 1


def test_only_nvil_trains_a_baseline():
    torch.manual_seed(0)
    model = categorical_vae("nvil", **SMALL)
    model.loss(images())["loss"].backward()
    assert model.baseline[1].weight.grad.abs().sum() > 0
    assert not hasattr(categorical_vae("vimco", **SMALL), "baseline")


def test_vimco_loss_is_the_negative_multi_sample_bound_which_is_tighter():
    torch.manual_seed(0)
    model = categorical_vae("vimco", **{**SMALL, "num_samples": 8})
    out = model.loss(images(16))
    assert out["loss"] < out["nelbo"]  # -L_8 <= -ELBO on average; by far more than the noise here


def test_reconstruct_and_sample_shapes():
    model = categorical_vae("gumbel", **SMALL)
    x = images(3)
    assert model.reconstruct(x).shape == x.shape and model.sample(2).shape == (2, 1, 28, 28)
    assert model.encode(x).shape == (3, 1, 7, 7, 8) and model.num_latents == 49


def test_a_few_adam_steps_on_a_constant_image_lower_the_bound():
    torch.manual_seed(0)
    model = categorical_vae("gumbel", **SMALL)
    x = torch.full((4, 1, 28, 28), 0.5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(x)["nelbo"].item()
    for _ in range(15):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    assert model.loss(x)["nelbo"].item() < 0.8 * first


def test_bad_arguments_name_the_choices():
    with pytest.raises(ValueError, match="expected one of"):
        categorical_vae("rebar")
    with pytest.raises(ValueError, match="num_samples >= 2"):
        categorical_vae("vimco", num_samples=1)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        categorical_vae(num_classes=1)
    with pytest.raises(ValueError, match="tau_min <= tau0"):
        categorical_vae(tau0=0.1, tau_min=0.5)
    with pytest.raises(ValueError, match=r"expected images x of shape \(B, 1, 28, 28\)"):
        categorical_vae(**SMALL).loss(torch.zeros(2, 3, 28, 28))
