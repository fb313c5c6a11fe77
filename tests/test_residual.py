"""Residual vector quantisation (SoundStream, Sec. III-C, Algorithm 1)."""

import pytest
import torch
import torch.nn.functional as F

from vqvae_lib.quantizers.base import perplexity
from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA
from vqvae_lib.quantizers.residual import ResidualVectorQuantizer
from vqvae_lib.quantizers.rotation import rotate_to


def make(quantizer="vq", num_stages=3, seed=0, **kwargs):
    torch.manual_seed(seed)
    rvq = ResidualVectorQuantizer(num_stages, 8, 4, beta=0.25, quantizer=quantizer, **kwargs)
    return rvq, torch.randn(2, 4, 3, 5, requires_grad=True)


def flat(t):
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def test_stages_are_the_books_quantisers_in_a_module_list():
    assert all(type(s) is VectorQuantizer for s in make("vq")[0].stages)
    assert all(type(s) is VectorQuantizerEMA for s in make("ema")[0].stages)
    assert isinstance(make()[0].stages, torch.nn.ModuleList) and len(make(num_stages=5)[0].stages) == 5


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_z_q_is_the_sum_of_the_stages_codes_and_the_indices_have_one_plane_per_stage(quantizer):
    rvq, z_e = make(quantizer)
    out = rvq.eval()(z_e)
    assert out.indices.shape == (2, 3, 3, 5) and out.indices.dtype == torch.int64
    assert out.indices.min() >= 0 and out.indices.max() < 8
    codes = sum(stage.lookup(out.indices[:, s]) for s, stage in enumerate(rvq.stages))
    assert torch.allclose(out.z_q, codes, atol=1e-6) and torch.allclose(rvq.lookup(out.indices), codes)
    assert torch.allclose(rvq.lookup(out.indices, stages=1), rvq.stages[0].lookup(out.indices[:, 0]))


def test_each_stage_quantises_the_residual_of_the_stages_before_it():
    rvq, z_e = make()
    indices = rvq.eval()(z_e).indices
    residual = z_e.detach()
    for s, stage in enumerate(rvq.stages):
        assert torch.equal(indices[:, s], stage.encode_indices(residual))
        residual = residual - stage.lookup(indices[:, s])


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_the_error_falls_with_every_stage_on_the_data_it_was_fitted_to(quantizer):
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 8, 2, quantizer=quantizer, kmeans_init=True)
    z_e = 2.0 + torch.randn(4, 2, 8, 8)  # 256 vectors
    rvq(z_e)  # training mode: each stage is k-means-initialised on its own residuals
    indices = rvq.eval()(z_e).indices
    errors = [z_e.pow(2).sum(1).mean().item()]
    errors += [(z_e - rvq.lookup(indices, stages=s)).pow(2).sum(1).mean().item() for s in range(1, 5)]
    assert all(b <= a for a, b in zip(errors, errors[1:])), errors
    assert errors[4] < 0.5 * errors[1], errors


def test_the_straight_through_gradient_is_the_identity_to_z_e():
    rvq, z_e = make()
    upstream = torch.randn_like(z_e)
    (rvq(z_e).z_q * upstream).sum().backward()
    assert torch.equal(z_e.grad, upstream)
    assert all(s.codebook.grad is None or torch.count_nonzero(s.codebook.grad) == 0 for s in rvq.stages)


def test_rotation_rotates_z_e_onto_the_sum_of_the_codes():
    rvq, z_e = make(gradient="rotation")
    out = rvq(z_e)
    upstream = torch.randn_like(z_e)
    (out.z_q * upstream).sum().backward()
    z_ref = z_e.detach().clone().requires_grad_()
    (rotate_to(flat(z_ref), flat(out.z_q.detach())) * flat(upstream)).sum().backward()
    assert torch.allclose(z_e.grad, z_ref.grad, atol=1e-6) and not torch.allclose(z_e.grad, upstream)
    assert torch.allclose(out.z_q, rvq.lookup(out.indices), atol=1e-6)


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_the_loss_is_the_sum_of_each_stages_loss_on_its_own_residual(quantizer):
    rvq, z_e = make(quantizer)
    rvq.eval()(z_e).loss.backward()
    grads = [z_e.grad.clone()] + [s.codebook.grad.clone() for s in rvq.stages if s.codebook.requires_grad]
    z_e.grad = None
    for s in rvq.stages:
        s.codebook.grad = None
    indices, before, reference = rvq(z_e).indices, 0, 0
    for s, stage in enumerate(rvq.stages):
        residual = z_e - before
        e = F.embedding(indices[:, s], stage.codebook).permute(0, 3, 1, 2)
        codebook_term = F.mse_loss(e, residual.detach()) if quantizer == "vq" else 0
        reference = reference + codebook_term + 0.25 * F.mse_loss(residual, e.detach())
        before = before + e.detach()
    assert torch.allclose(rvq(z_e).loss, reference)
    reference.backward()
    expected = [z_e.grad] + [s.codebook.grad for s in rvq.stages if s.codebook.requires_grad]
    assert len(expected) == (4 if quantizer == "vq" else 1)
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grads, expected))


def test_dropout_uses_a_random_prefix_of_the_stages_in_training_and_all_in_eval():
    rvq, z_e = make(num_stages=4, dropout=True)
    full = rvq.encode_indices(z_e)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        n = int(torch.randint(1, 5, ()))
        torch.manual_seed(seed)
        idle = rvq.stages[n:].state_dict() if n < 4 else {}
        idle = {k: v.clone() for k, v in idle.items()}
        out = rvq.train()(z_e)
        assert torch.equal(out.indices, full[:, :n])
        assert torch.allclose(out.z_q, rvq.lookup(full, stages=n))
        assert all(torch.equal(v, rvq.stages[n:].state_dict()[k]) for k, v in idle.items())  # unused: untouched
        seen.add(n)
        assert rvq.eval()(z_e).indices.shape[1] == 4
    assert seen == {1, 2, 3, 4}
    assert make(num_stages=4)[0].train()(z_e).indices.shape[1] == 4  # no dropout: all stages in training too


def test_bits_perplexity_and_dead_codes_combine_the_stages():
    rvq, z_e = make(num_stages=3)
    assert rvq.bits == 9.0 and rvq.num_codes == 8 and rvq.num_stages == 3 and rvq.code_dim == 4
    out = rvq(z_e)
    per_stage = rvq.stage_perplexities(out.indices)
    assert per_stage.shape == (3,)
    assert torch.allclose(per_stage, torch.stack([perplexity(out.indices[:, s], 8) for s in range(3)]))
    assert torch.allclose(out.perplexity, per_stage.mean())
    assert rvq.dead_codes(idle_for=1) == sum(s.dead_codes(idle_for=1) for s in rvq.stages) > 0


@pytest.mark.parametrize("quantizer", ["vq", "ema"])
def test_encode_indices_equals_the_forward_indices_and_changes_no_state(quantizer):
    rvq, z_e = make(quantizer, kmeans_init=True, restart_after=1)
    z_e = z_e.detach().repeat(1, 1, 2, 2)  # 120 vectors, enough for k-means with 8 codes
    before = {k: v.clone() for k, v in rvq.state_dict().items()}
    for _ in range(2):
        indices = rvq.train().encode_indices(z_e)
    assert indices.shape == (2, 3, 6, 10)
    assert all(torch.equal(v, rvq.state_dict()[k]) for k, v in before.items())
    assert not any(s.initialised for s in rvq.stages)
    rvq(z_e)
    assert torch.equal(rvq.encode_indices(z_e), rvq.eval()(z_e).indices)


def test_float64_stays_float64():
    rvq, z_e = make()
    rvq.double()
    out = rvq(z_e.detach().double().requires_grad_())
    out.loss.backward()
    assert out.z_q.dtype == torch.float64 and rvq.stages[2].codebook.grad.dtype == torch.float64
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("call, message", [
    (lambda r: r(torch.zeros(2, 3, 4, 4)), r"expected z_e of shape \(B, 4, H, W\)"),
    (lambda r: r.lookup(torch.zeros(2, 4, 3, 3, dtype=torch.int64)), r"1 <= S <= num_stages=3"),
    (lambda r: r.lookup(torch.zeros(2, 3, 3)), r"int64 indices of shape \(B, S, H, W\)"),
    (lambda r: r.lookup(torch.full((1, 3, 2, 2), 8)), r"0\.\.7"),
    (lambda r: r.lookup(torch.zeros(1, 2, 2, 2, dtype=torch.int64), stages=3), r"stages must be an integer in 1\.\.2"),
    (lambda r: r.stage_perplexities(torch.zeros(1, 2, 2)), r"\(B, S, H, W\)"),
])
def test_bad_input_is_refused_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call(make()[0])


def test_bad_hyperparameters_are_refused():
    with pytest.raises(ValueError, match="num_stages must be a positive integer"):
        ResidualVectorQuantizer(0, 8, 4)
    with pytest.raises(ValueError, match=r"unknown quantizer 'gumbel'.*'vq', 'ema'"):
        ResidualVectorQuantizer(2, 8, 4, quantizer="gumbel")
