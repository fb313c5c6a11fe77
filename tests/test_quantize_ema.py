"""The EMA codebook (paper App. A.1), dead-code restarts and k-means initialisation."""

import pytest
import torch

from vqvae_lib.quantizers.nearest import squared_distances
from vqvae_lib.quantizers.base import perplexity
from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA


def as_grid(vectors):
    """(N, D) -> z_e of shape (1, D, 1, N)."""
    return vectors.t().reshape(1, vectors.shape[1], 1, -1)


def test_ema_update_equals_the_formulas_on_a_hand_example():
    vq = VectorQuantizerEMA(2, 1, decay=0.5, eps=1e-5)
    vq.codebook.copy_(torch.tensor([[0.0], [10.0]]))
    vq.code_sum.copy_(vq.codebook)  # N_i = 1, m_i = e_i
    vq(as_grid(torch.tensor([[1.0], [2.0], [9.0]])))  # two vectors pick code 0, one picks code 1
    # N = 0.5 * [1, 1] + 0.5 * [2, 1] = [1.5, 1.0];  m = 0.5 * [0, 10] + 0.5 * [3, 9] = [1.5, 9.5]
    assert torch.allclose(vq.cluster_size, torch.tensor([1.5, 1.0]))
    assert torch.allclose(vq.code_sum.flatten(), torch.tensor([1.5, 9.5]))
    n, k, eps = 2.5, 2, 1e-5
    smoothed = (torch.tensor([1.5, 1.0]) + eps) / (n + k * eps) * n
    assert torch.allclose(vq.codebook.flatten(), torch.tensor([1.5, 9.5]) / smoothed)


def test_laplace_smoothing_prevents_division_by_zero():
    vq = VectorQuantizerEMA(4, 2, decay=0.0)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 9.0], [-9.0, 9.0]]))
    vq(as_grid(torch.zeros(8, 2)))  # decay 0: unused codes get N_i = 0 exactly
    assert vq.cluster_size[1:].eq(0).all()
    assert torch.isfinite(vq.codebook).all()


def test_eval_mode_freezes_the_codebook():
    torch.manual_seed(0)
    for vq in (VectorQuantizerEMA(8, 4, restart_after=1), VectorQuantizer(8, 4, restart_after=1)):
        vq.eval()
        before = vq.codebook.detach().clone()
        vq(torch.randn(2, 4, 3, 3))
        assert torch.equal(vq.codebook.detach(), before)


def test_the_ema_codebook_gets_no_gradient():
    vq = VectorQuantizerEMA(8, 4)
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z_e)
    (out.loss + out.z_q.sum()).backward()
    assert not vq.codebook.requires_grad and list(vq.parameters()) == []
    assert z_e.grad is not None


def test_ema_loss_is_beta_times_commitment_only():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(8, 4, beta=0.5).eval()
    z_e = torch.randn(2, 4, 3, 3)
    out = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.allclose(out.loss, 0.5 * (flat - vq.codebook[out.indices.flatten()]).pow(2).mean())


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_restarts_revive_dead_codes(cls):
    torch.manual_seed(0)
    vq = cls(4, 2, restart_after=2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [0.1, 0.0], [100.0, 100.0], [-100.0, 100.0]]))
        if isinstance(vq, VectorQuantizerEMA):
            vq.code_sum.copy_(vq.codebook)  # m_i = N_i e_i with N_i = 1
    batch = torch.randn(16, 2)
    vq(as_grid(batch))
    assert vq.idle_steps[2:].eq(1).all()
    vq(as_grid(batch))  # second idle batch: codes 2 and 3 are re-seeded from this batch
    revived = vq.codebook.detach()[2:]
    assert torch.cdist(revived, batch).min(1).values.max() < 1e-5
    assert vq.idle_steps[2:].eq(0).all()


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_kmeans_init_lowers_the_initial_quantisation_error(cls):
    torch.manual_seed(0)
    z_e = 3.0 + torch.randn(4, 8, 8, 8)  # 256 vectors far from the default initial codes
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    plain, seeded = cls(32, 8), cls(32, 8, kmeans_init=True)
    error = lambda vq: squared_distances(flat, vq.codebook.detach()).min(1).values.mean().item()
    before = error(seeded)
    seeded(z_e)
    assert error(seeded) < 0.2 * before
    assert error(seeded) < error(plain)
    assert bool(seeded.initialised)


def test_kmeans_init_needs_enough_vectors():
    with pytest.raises(ValueError, match="at least num_codes=64"):
        VectorQuantizer(64, 4, kmeans_init=True)(torch.randn(1, 4, 3, 3))


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="0 <= decay < 1"):
        VectorQuantizerEMA(8, 4, decay=1.0)
    with pytest.raises(ValueError, match="restart_after"):
        VectorQuantizer(8, 4, restart_after=0)


def test_ema_works_in_a_vqvae_and_stays_fp32_under_autocast():
    from vqvae_lib.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, hidden=16, res_hidden=8, quantizer="ema"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.loss(torch.rand(2, 1, 28, 28))
    out["loss"].backward()
    assert model.quantizer.codebook.dtype == torch.float32 and model.quantizer.cluster_size.dtype == torch.float32
    assert torch.isfinite(model.quantizer.codebook).all()


def test_idle_steps_count_batches_since_each_code_was_chosen():
    vq = VectorQuantizer(3, 1)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0], [5.0], [50.0]]))
    for _ in range(3):
        vq(as_grid(torch.tensor([[0.1], [4.9]])))
    assert vq.idle_steps.tolist() == [0, 0, 3]
    assert vq.dead_codes(idle_for=3) == 1 and vq.dead_codes(idle_for=4) == 0


@pytest.mark.parametrize("decay", [0.99, 0.0])
def test_a_code_no_vector_chooses_stays_exactly_where_it_is_for_2000_steps(decay):
    # Without the freeze, Laplace smoothing pulls it to e_0 * gamma^t / (gamma^t + eps): to the origin
    # after about 1,150 steps at gamma = 0.99, and at once at gamma = 0.
    vq = VectorQuantizerEMA(3, 2, decay=decay)
    vq.codebook.copy_(torch.tensor([[0.0, 0.0], [4.0, 4.0], [50.0, -50.0]]))
    vq.code_sum.copy_(vq.codebook)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2000):
        batch = torch.cat([torch.randn(8, 2, generator=generator), 4 + torch.randn(8, 2, generator=generator)])
        vq(as_grid(batch))
    assert torch.equal(vq.codebook[2], torch.tensor([50.0, -50.0]))
    assert vq.cluster_size[2] < 1e-8  # its statistics decayed all the same
    assert vq.codebook[:2].sub(torch.tensor([[0.0, 0.0], [4.0, 4.0]])).abs().max() < 2.0


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
@pytest.mark.parametrize("repeats", [1, 2], ids=["16 distinct vectors", "16 distinct vectors twice each"])
def test_restart_donors_are_drawn_without_replacement(cls, repeats):
    torch.manual_seed(0)
    vq = cls(64, 2, restart_after=1)
    with torch.no_grad():
        vq.codebook.copy_(torch.cat([torch.zeros(1, 2), 1000 + torch.arange(126.0).view(63, 2)]))
        if isinstance(vq, VectorQuantizerEMA):
            vq.code_sum.copy_(vq.codebook)
    batch = (torch.randn(16, 2) * 0.01).repeat(repeats, 1)  # all choose code 0; codes 1..63 are dead after one batch
    vq(as_grid(batch))
    restarted = vq.codebook.detach()[1:]
    revived = restarted[restarted.abs().max(1).values < 1]
    assert len(revived) == 16, "16 donors can revive 16 codes"
    assert len(torch.unique(revived, dim=0)) == 16, "no two codes restarted on the same vector"
    assert (vq.idle_steps[1:] == 0).sum() == 16  # the other 47 wait for the next batch


def test_ema_statistics_stay_consistent_after_kmeans_init_and_restarts():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(16, 4, restart_after=1, kmeans_init=True)
    vq(torch.randn(2, 4, 4, 4) + 3.0)  # k-means init
    assert torch.allclose(vq.code_sum, vq.codebook * vq.cluster_size.unsqueeze(1))
    before = vq.codebook.clone()
    vq(torch.randn(2, 4, 4, 4) - 30.0)  # far away: one code takes everything, the rest restart
    # a restart sets N_i = 1 and m_i = e_i; this batch's EMA step then decays both by gamma
    restarted = (vq.codebook != before).any(1) & torch.isclose(vq.cluster_size, torch.tensor(0.99))
    assert restarted.sum() >= 10  # all but the one or two codes the far batch chose
    assert torch.allclose(vq.code_sum[restarted], vq.codebook[restarted] * 0.99)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_a_vqvae_trains_in_float64(quantizer):
    from vqvae_lib.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=4, hidden=8, res_hidden=4, quantizer=quantizer,
                              restart_after=1, kmeans_init=True)).double()
    for _ in range(2):
        out = model.loss(torch.rand(4, 1, 28, 28, dtype=torch.float64))
        out["loss"].backward()
    assert model.quantizer.codebook.dtype == torch.float64 and torch.isfinite(out["loss"])


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_an_empty_batch_is_refused_with_a_message(cls):
    with pytest.raises(ValueError, match="empty batch"):
        cls(8, 4)(torch.zeros(0, 4, 3, 3))
    with pytest.raises(ValueError, match="empty"):
        perplexity(torch.zeros(0, dtype=torch.long), 8)
