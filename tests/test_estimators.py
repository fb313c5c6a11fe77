"""The estimators' claims, on a toy problem small enough to enumerate exactly.

Three categorical variables with K = 3 classes (27 configurations), q(z) = prod_i Cat(softmax(phi_i)),
and a fixed cost f(z) = (sum_i a_i . z_i - t)^2 that also accepts relaxed (soft) z. The exact
gradient of E_q[f] is a sum over the 27 configurations. Each estimator is averaged over N samples
with its own copy of phi per sample, so one backward pass gives every per-sample gradient.

Tolerance: "unbiased" means every component of the mean is within 4.5 standard errors of the exact
gradient (seeded, so the test is deterministic); "biased" means some component is more than 10 away.
"""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.estimators import (
    gradient_only,
    gumbel_max,
    gumbel_noise,
    gumbel_softmax,
    log_mean_exp,
    nvil,
    score_function,
    temperature,
    vimco,
)

N_VARS, K, N = 3, 3, 20_000
PHI = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, -0.5], [-1.0, 0.3, 0.2]], dtype=torch.float64)
A = torch.tensor([[0.0, 1.0, 2.0], [0.0, 2.0, -1.0], [1.0, -1.0, 0.5]], dtype=torch.float64)
ALL_Z = F.one_hot(torch.tensor(list(itertools.product(range(K), repeat=N_VARS))), K).double()  # (27, 3, 3)


def cost(z):
    """f(z) for one-hot or relaxed z: (..., N_VARS, K) -> (...)."""
    return ((z * A).sum((-1, -2)) - 1.5) ** 2


def log_q(z, phi):
    return (z * torch.log_softmax(phi, -1)).sum((-1, -2))


def exact_gradient():
    phi = PHI.clone().requires_grad_(True)
    (log_q(ALL_Z, phi).exp() * cost(ALL_Z)).sum().backward()
    return phi.grad


def exact_mean_cost():
    return (log_q(ALL_Z, PHI).exp() * cost(ALL_Z)).sum()


def per_sample_gradients(surrogate_of, seed=0):
    """``(N, 3, 3)`` gradients of ``surrogate_of(phi)`` where ``phi: (N, 3, 3)`` holds one copy per sample."""
    torch.manual_seed(seed)
    phi = PHI.expand(N, N_VARS, K).clone().requires_grad_(True)
    surrogate_of(phi).sum().backward()
    return phi.grad


def z_scores(grads, exact):
    return ((grads.mean(0) - exact) / (grads.std(0) / math.sqrt(N))).abs()


def reinforce_surrogate(phi):
    z = gumbel_max(phi.detach())
    return score_function(cost(z), log_q(z, phi))


def nvil_surrogate(phi, b):
    z = gumbel_max(phi.detach())
    f = cost(z)
    return nvil(f, log_q(z, phi), torch.full_like(f, float(b)))


def test_gumbel_max_samples_the_categorical():
    torch.manual_seed(0)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    counts = gumbel_max(logits.expand(100_000, 4)).sum(0)
    assert torch.allclose(counts / 100_000, torch.softmax(logits, 0), atol=0.006)


def test_score_function_is_unbiased():
    assert z_scores(per_sample_gradients(reinforce_surrogate), exact_gradient()).max() < 4.5


def test_nvil_is_unbiased_with_lower_variance():
    exact, reinforce = exact_gradient(), per_sample_gradients(reinforce_surrogate)
    for b in (exact_mean_cost(), 10.0):  # the value a trained baseline reaches, and a poor constant
        grads = per_sample_gradients(lambda phi: nvil_surrogate(phi, b))
        assert z_scores(grads, exact).max() < 4.5, b
    assert grads.var(0).sum() > reinforce.var(0).sum()  # a poor baseline can add variance
    good = per_sample_gradients(lambda phi: nvil_surrogate(phi, exact_mean_cost()))
    assert good.var(0).sum() < 0.7 * reinforce.var(0).sum()


def test_nvil_scale_divides_the_gradient_and_zero_baseline_is_reinforce():
    b0 = lambda phi, s: (lambda z: nvil(cost(z), log_q(z, phi), torch.zeros(z.shape[:1], dtype=z.dtype), s))(
        gumbel_max(phi.detach())
    )
    assert torch.allclose(per_sample_gradients(lambda phi: b0(phi, 1.0)), per_sample_gradients(reinforce_surrogate))
    assert torch.allclose(per_sample_gradients(lambda phi: b0(phi, 4.0)), per_sample_gradients(reinforce_surrogate) / 4)


def multi_sample_log_w(phi, num_samples):
    """log w_s = -f(z_s) + log p(z_s) - log q(z_s) with a uniform prior: a toy latent-variable model."""
    expanded = phi.unsqueeze(-3).expand(*phi.shape[:-2], num_samples, N_VARS, K)
    z = gumbel_max(expanded.detach())
    lq = log_q(z, expanded)
    return -cost(z) - N_VARS * math.log(K) - lq, lq


def test_vimco_is_unbiased_for_the_multi_sample_bound():
    s = 3
    phi = PHI.clone().requires_grad_(True)  # exact: enumerate all 27^3 triples of configurations
    triples = ALL_Z[torch.tensor(list(itertools.product(range(len(ALL_Z)), repeat=s)))]
    lq = log_q(triples, phi)
    bound = (lq.sum(1).exp() * log_mean_exp(-cost(triples) - N_VARS * math.log(K) - lq, 1)).sum()
    bound.backward()
    exact = -phi.grad  # vimco returns a cost, -L_S
    vimco_grads = per_sample_gradients(lambda p: vimco(*multi_sample_log_w(p, s)))
    assert z_scores(vimco_grads, exact).max() < 4.5

    def naive(p):  # the multi-sample score function without baselines: same target, more variance
        log_w, lq = multi_sample_log_w(p, s)
        value = log_mean_exp(log_w, 1)
        return -(value + value.detach() * gradient_only(lq).sum(1))

    naive_grads = per_sample_gradients(naive)
    assert z_scores(naive_grads, exact).max() < 4.5
    assert vimco_grads.var(0).sum() < 0.5 * naive_grads.var(0).sum()


def test_vimco_value_is_the_negative_bound_and_signals_leave_one_out():
    log_w = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    log_q_ = torch.zeros(1, 2, requires_grad=True)
    out = vimco(log_w, log_q_)
    assert torch.allclose(out, -torch.tensor([math.log(2.0)]))  # -log((1 + 3) / 2)
    out.sum().backward()
    # with S = 2 the leave-one-out estimate of sample 1 is log w_2: signals log 2 - log 3 and log 2 - 0
    assert torch.allclose(log_q_.grad, -torch.tensor([[math.log(2 / 3), math.log(2.0)]]))
    assert torch.allclose(log_w.grad, -torch.tensor([[0.25, 0.75]]))  # normalised weights


def gumbel_grads(tau, hard=False):
    return per_sample_gradients(lambda phi: cost(gumbel_softmax(phi, tau, hard=hard)))


def test_gumbel_softmax_is_biased_and_the_bias_shrinks_with_temperature_while_variance_grows():
    exact = exact_gradient()
    hot, cold = gumbel_grads(1.0), gumbel_grads(0.1)
    assert z_scores(hot, exact).max() > 10  # clearly biased at tau = 1
    bias_hot, bias_cold = (hot.mean(0) - exact).norm(), (cold.mean(0) - exact).norm()
    assert bias_cold < 0.5 * bias_hot
    assert cold.var(0).sum() > 5 * hot.var(0).sum()


def test_straight_through_forward_is_gumbel_max_and_backward_is_relaxed():
    logits = torch.randn(5, 4, requires_grad=True)
    gumbels = gumbel_noise(logits, torch.Generator().manual_seed(0))
    hard = gumbel_softmax(logits, 0.5, hard=True, gumbels=gumbels)
    assert torch.equal(hard, gumbel_max(logits, gumbels))
    weights = torch.randn(5, 4)
    (g_hard,) = torch.autograd.grad((hard * weights).sum(), logits)
    (g_soft,) = torch.autograd.grad((gumbel_softmax(logits, 0.5, gumbels=gumbels) * weights).sum(), logits)
    assert torch.allclose(g_hard, g_soft)
    assert z_scores(gumbel_grads(1.0, hard=True), exact_gradient()).max() > 10  # biased too


def test_surrogates_equal_their_cost_in_value():
    f, lq = torch.tensor([1.0, 2.0]), torch.tensor([-0.3, -1.2], requires_grad=True)
    assert torch.equal(score_function(f, lq), f)
    assert torch.equal(nvil(f, lq, torch.tensor([5.0, 5.0]), 3.0), f)
    assert torch.equal(gradient_only(lq), torch.zeros(2))


def test_temperature_anneals_from_tau0_to_its_floor():
    assert temperature(0, 1.0, 0.5, 1e-3) == 1.0
    assert temperature(100, 1.0, 0.5, 1e-3) == pytest.approx(math.exp(-0.1))
    assert temperature(10_000, 1.0, 0.5, 1e-3) == 0.5


def test_gumbel_noise_is_standard_gumbel_and_finite():
    g = gumbel_noise(torch.empty(200_000), torch.Generator().manual_seed(0))
    assert torch.isfinite(g).all()
    assert abs(g.mean().item() - 0.5772) < 0.01 and abs(g.var().item() - math.pi**2 / 6) < 0.03


def test_bad_inputs_are_rejected_with_a_message():
    f = torch.zeros(3)
    with pytest.raises(ValueError, match="one value per sample"):
        score_function(f, torch.zeros(4))
    with pytest.raises(ValueError, match="f and baseline"):
        nvil(f, f, torch.zeros(1))
    with pytest.raises(ValueError, match="scale must be positive"):
        nvil(f, f, f, 0.0)
    with pytest.raises(ValueError, match="S >= 2"):
        vimco(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="tau must be positive"):
        gumbel_softmax(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match="logits and gumbels"):
        gumbel_max(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="tau_min <= tau0"):
        temperature(0, 0.5, 1.0)


def test_gumbel_noise_is_at_least_fp32_and_follows_the_device():
    half = torch.zeros(3, 4, dtype=torch.float16)
    assert gumbel_noise(half).dtype == torch.float32
    assert gumbel_noise(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    # the meta device stores no values but keeps devices: noise drawn anywhere else would fail here
    meta = torch.zeros(3, 4, device="meta")
    assert gumbel_noise(meta).device.type == "meta" and gumbel_max(meta).device.type == "meta"
    assert gumbel_max(half).dtype == torch.float16 and gumbel_max(half).sum() == 3
