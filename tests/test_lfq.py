import itertools
import math

import pytest
import torch

from vqvae_lib.quantizers.lfq import LookupFreeQuantizer, entropy_terms, factorised_marginal_entropy
from vqvae_lib.quantizers.base import perplexity

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def all_codes(code_dim):
    """{-1, 1}^D in index order (bit d of the index is channel d), built without the library."""
    return torch.tensor([[1.0 if (k >> d) & 1 else -1.0 for d in range(code_dim)] for k in range(2 ** code_dim)])


def brute_force_entropies(z, temperature):
    """E_z[H(q(.|z))] and H(E_z[q(.|z)]) with q = softmax over all 2^D codes of -||z - c||^2 / T."""
    codes = all_codes(z.shape[1]).to(z.dtype)
    q = torch.softmax(-((z[:, None, :] - codes[None]) ** 2).sum(-1) / temperature, dim=1)
    per_sample = -(q * q.log()).sum(1).mean()
    mean_q = q.mean(0)
    return per_sample, -(mean_q * mean_q.log()).sum()


def make(code_dim=4, seed=0, **kwargs):
    torch.manual_seed(seed)
    return LookupFreeQuantizer(code_dim, **kwargs), torch.randn(2, code_dim, 3, 5, requires_grad=True)


def as_z_e(vectors):
    """(N, D) vectors as a (N, D, 1, 1) batch of latents."""
    return vectors[:, :, None, None]


def test_indices_and_codes_are_a_bijection_with_bit_d_on_channel_d():
    lfq = LookupFreeQuantizer(4)
    indices = torch.arange(16).view(16, 1, 1)
    codes = lfq.lookup(indices)
    assert codes.shape == (16, 4, 1, 1) and torch.equal(codes[:, :, 0, 0], all_codes(4))
    assert torch.equal(lfq.encode_indices(codes), indices)
    assert torch.equal(lfq(codes).indices, indices)
    assert lfq.num_codes == 16 and lfq.bits == 4.0 and LookupFreeQuantizer(12).bits == math.log2(4096)


def test_forward_value_is_the_sign_with_zero_to_plus_one_and_equals_the_lookup():
    lfq, z_e = make()
    with torch.no_grad():
        z_e[0, :, 0, 0] = 0.0
    out = lfq(z_e)
    assert out.z_q.shape == z_e.shape and out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.int64
    assert torch.equal(out.z_q, torch.where(z_e >= 0, 1.0, -1.0))
    assert out.indices[0, 0, 0] == 15  # all-zero vector: all bits +1
    assert torch.equal(lfq.lookup(out.indices), out.z_q)
    assert 0 <= out.indices.min() and out.indices.max() < 16


def test_straight_through_gradient_is_the_identity_to_z_e():
    lfq, z_e = make()
    upstream = torch.randn_like(z_e)
    (lfq(z_e).z_q * upstream).sum().backward()
    assert torch.allclose(z_e.grad, upstream)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_entropy_terms_match_a_brute_force_over_the_full_codebook(temperature):
    z = torch.randn(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    per_sample, marginal = entropy_terms(z, temperature)
    expected_per_sample, expected_marginal = brute_force_entropies(z, temperature)
    assert torch.allclose(per_sample, expected_per_sample) and torch.allclose(marginal, expected_marginal)
    assert 0 < per_sample < marginal <= 4 * math.log(2)


def test_loss_is_the_weighted_entropy_penalty_plus_the_commitment_term():
    lfq, z_e = make(entropy_weight=0.1, commitment_weight=0.25, diversity_gamma=1.5, temperature=0.5)
    out = lfq(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    per_sample, marginal = brute_force_entropies(flat.double(), 0.5)
    commitment = (flat - flat.sign()).pow(2).mean()
    expected = 0.1 * (per_sample - 1.5 * marginal) + 0.25 * commitment
    assert torch.allclose(out.loss.double(), expected, atol=1e-6)


def test_the_penalty_is_lower_for_a_batch_spread_over_all_codes_than_for_a_collapsed_one():
    lfq = LookupFreeQuantizer(4, entropy_weight=1.0, commitment_weight=0.25)
    spread = lfq(as_z_e(0.8 * all_codes(4).repeat(2, 1)))
    collapsed = lfq(as_z_e(0.8 * all_codes(4)[[5]].repeat(32, 1)))  # same |z|: same per-sample entropy
    assert spread.perplexity.item() == pytest.approx(16.0) and collapsed.perplexity.item() == pytest.approx(1.0)
    assert spread.loss < collapsed.loss - 0.5  # the diversity term's difference is about log 16 = 2.8


def test_the_factorised_batch_entropy_is_an_upper_bound_blind_to_copied_bits():
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert factorised_marginal_entropy(z) >= entropy_terms(z)[1]
    copies = torch.tensor([[3.0], [-3.0]]).repeat(16, 4)  # four copies of one fair bit: two codes used
    assert entropy_terms(copies)[1].item() == pytest.approx(math.log(2), abs=0.01)
    assert factorised_marginal_entropy(copies).item() == pytest.approx(4 * math.log(2), abs=0.01)


def test_encode_indices_equals_forward_indices_and_perplexity_is_that_of_the_indices():
    lfq, z_e = make()
    out = lfq(z_e)
    indices = lfq.encode_indices(z_e)
    assert torch.equal(indices, out.indices) and not indices.requires_grad
    assert out.perplexity.item() == pytest.approx(perplexity(out.indices, lfq.num_codes).item())


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 5, 4, 4), r"expected z_e with 4 channels \(one per bit, code_dim=4\), got 5"),
        (torch.zeros(2, 4, 4), r"expected z_e of shape \(B, 4, H, W\)"),
        (torch.zeros(2, 4, 4, 4, dtype=torch.int64), r"floating-point tensor of shape \(B, 4, H, W\)"),
    ],
)
def test_bad_input_names_the_expected_channels_and_shape(bad, message):
    lfq = LookupFreeQuantizer(4)
    with pytest.raises(ValueError, match=message):
        lfq(bad)
    with pytest.raises(ValueError, match=message):
        lfq.encode_indices(bad)


def test_bad_settings_are_refused_and_a_large_code_dim_needs_no_entropy_penalty():
    with pytest.raises(ValueError, match="integer in 1..62"):
        LookupFreeQuantizer(0)
    with pytest.raises(ValueError, match=">= 0"):
        LookupFreeQuantizer(4, diversity_gamma=-1.0)
    with pytest.raises(ValueError, match=r"code_dim must be <= 12 when entropy_weight > 0; got code_dim=13"):
        LookupFreeQuantizer(13)
    lfq = LookupFreeQuantizer(40, entropy_weight=0.0)  # 2^40 codes: nothing may be sized by num_codes
    out = lfq(torch.randn(2, 40, 2, 2))
    assert out.indices.max() < 2 ** 40 and out.perplexity.item() == pytest.approx(8.0)


def test_lookup_rejects_out_of_range_or_badly_shaped_indices():
    lfq = LookupFreeQuantizer(4)
    with pytest.raises(ValueError, match=r"0\.\.15"):
        lfq.lookup(torch.full((1, 2, 2), 16))
    with pytest.raises(ValueError, match=r"0\.\.15"):
        lfq.lookup(torch.full((1, 2, 2), -1))
    with pytest.raises(ValueError, match="int64 indices of shape"):
        lfq.lookup(torch.zeros(1, 2, 2, dtype=torch.int32))


def test_float64_forward_backward_and_lookup_stay_float64():
    lfq, z_e = make()
    lfq, z_e = lfq.double(), z_e.detach().double().requires_grad_()
    out = lfq(z_e)
    (out.z_q.sum() + out.loss).backward()
    assert out.z_q.dtype == out.loss.dtype == z_e.grad.dtype == lfq.lookup(out.indices).dtype == torch.float64
    assert torch.equal(lfq.lookup(out.indices), out.z_q)


def test_under_bf16_autocast_the_loss_is_computed_in_fp32():
    lfq = LookupFreeQuantizer(8)
    z_bf16 = torch.randn(8, 8, 4, 4, generator=torch.Generator().manual_seed(0)).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lfq(z_bf16)
    reference = lfq(z_bf16.float())
    assert out.loss.dtype == out.z_q.dtype == torch.float32
    assert torch.allclose(out.loss, reference.loss, rtol=1e-5) and torch.equal(out.indices, reference.indices)


@pytest.mark.parametrize("device", DEVICES)
def test_the_loss_is_a_finite_scalar_and_every_output_follows_the_input_device(device):
    lfq, z_e = make()
    lfq, z_e = lfq.to(device), z_e.detach().to(device).requires_grad_()
    out = lfq(z_e)
    (out.z_q.sum() + out.loss).backward()
    assert out.loss.shape == () and torch.isfinite(out.loss) and torch.isfinite(z_e.grad).all()
    tensors = [out.z_q, out.loss, out.indices, out.perplexity, z_e.grad, lfq.lookup(out.indices),
               lfq.encode_indices(z_e)]
    assert all(t.device.type == device for t in tensors)
