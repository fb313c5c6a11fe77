import itertools
import math

import pytest
import torch

from vqvae_lib.quantizers.fsq import FiniteScalarQuantizer, RECOMMENDED_LEVELS
from vqvae_lib.quantizers.base import perplexity

LEVELS = (8, 5, 2, 3)  # even and odd levels, and the smallest one
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def reference_bound(z, L, eps=1e-3):
    """The bound of the paper's reference code for one channel with L levels, written out again."""
    half_l = (L - 1) * (1 + eps) / 2
    offset = 0.5 if L % 2 == 0 else 0.0
    return torch.tanh(z + math.atanh(offset / half_l)) * half_l - offset


def inverse_bound(n, L, eps=1e-3):
    """A z with reference_bound(z, L) == n, for an integer n that the channel can take."""
    half_l = (L - 1) * (1 + eps) / 2
    offset = 0.5 if L % 2 == 0 else 0.0
    return math.atanh((n + offset) / half_l) - math.atanh(offset / half_l)


def make(levels=LEVELS, seed=0, scale=2.0):
    torch.manual_seed(seed)
    return FiniteScalarQuantizer(levels), (scale * torch.randn(2, len(levels), 3, 5)).requires_grad_()


@pytest.mark.parametrize("L", range(2, 9))
def test_each_channel_takes_exactly_L_values_evenly_spaced_in_minus_one_to_one(L):
    z = torch.cat([torch.randn(4000) * s for s in (0.3, 1.0, 3.0, 30.0)] + [torch.tensor([0.0, -1e4, 1e4])])
    fsq = FiniteScalarQuantizer([L])
    out = fsq(z.view(-1, 1, 1, 1))
    half = L // 2
    expected = [(k - half) / half for k in range(L)]  # {-1, 0} for L = 2, {-1, .., 0.5} for L = 4
    assert torch.allclose(out.z_q.unique(), torch.tensor(expected))
    assert torch.equal(out.indices.unique(), torch.arange(L))


def test_forward_value_is_the_rounded_bound_and_equals_the_lookup_of_its_index():
    fsq, z_e = make()
    out = fsq(z_e)
    assert out.z_q.shape == z_e.shape and out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.int64
    assert 0 <= out.indices.min() and out.indices.max() < fsq.num_codes == 8 * 5 * 2 * 3
    for d, L in enumerate(LEVELS):
        expected = torch.round(reference_bound(z_e[:, d].detach(), L)) / (L // 2)
        assert torch.allclose(out.z_q[:, d], expected)
    assert torch.equal(fsq.lookup(out.indices), out.z_q)


def test_gradient_is_the_derivative_of_the_bound_straight_through_the_rounding():
    fsq, z_e = make()
    fsq, z_e = fsq.double(), z_e.detach().double().requires_grad_()  # float64: compare to 1e-8
    upstream = torch.randn_like(z_e)
    (fsq(z_e).z_q * upstream).sum().backward()
    z = z_e.detach().clone().requires_grad_()
    bounded = torch.stack([reference_bound(z[:, d], L) / (L // 2) for d, L in enumerate(LEVELS)], dim=1)
    (bounded * upstream).sum().backward()
    assert torch.allclose(z_e.grad, z.grad)
    assert torch.count_nonzero(z_e.grad) == z_e.numel()  # round alone would give zero gradient


@pytest.mark.parametrize("levels", [LEVELS, RECOMMENDED_LEVELS[8], (27, 26)])  # (n / 13) * 13 != n in fp32
def test_indices_and_codes_are_a_bijection_in_mixed_radix_order_over_all_codes(levels):
    fsq = FiniteScalarQuantizer(levels)
    codebook = fsq.implicit_codebook
    assert codebook.shape == (fsq.num_codes, len(levels)) == (math.prod(levels), len(levels))
    assert len(codebook.unique(dim=0)) == fsq.num_codes and codebook.abs().max() <= 1
    assert torch.equal(fsq.codes_to_indices(codebook), torch.arange(fsq.num_codes))
    assert torch.equal(fsq.indices_to_codes(fsq.codes_to_indices(codebook)), codebook)
    for k in itertools.product(*(range(L) for L in levels)):  # level indices k_d, channel 0 fastest
        index = sum(k_d * math.prod(levels[:d]) for d, k_d in enumerate(k))
        code = torch.tensor([(k_d - L // 2) / (L // 2) for k_d, L in zip(k, levels)])
        assert torch.allclose(codebook[index], code)


def test_every_code_is_reachable_and_all_used_once_gives_perplexity_num_codes():
    fsq = FiniteScalarQuantizer(LEVELS)
    level_index = fsq.implicit_codebook * torch.tensor([L // 2 for L in LEVELS])  # integers round(f) takes
    z_e = torch.tensor([[inverse_bound(n, L) for n, L in zip(row.tolist(), LEVELS)] for row in level_index])
    out = fsq(z_e.view(-1, len(LEVELS), 1, 1))
    assert torch.equal(out.indices.flatten(), torch.arange(fsq.num_codes))
    assert out.perplexity.item() == pytest.approx(fsq.num_codes, rel=1e-5)
    fsq, z_e = make()
    out = fsq(z_e)
    assert out.perplexity.item() == pytest.approx(perplexity(out.indices, fsq.num_codes).item())


def test_loss_is_a_zero_scalar_that_depends_on_nothing():
    fsq, z_e = make()
    loss = fsq(z_e).loss
    assert loss.shape == () and loss.item() == 0.0 and loss.dtype == z_e.dtype and not loss.requires_grad


def test_encode_indices_equals_forward_indices_and_builds_no_graph():
    fsq, z_e = make(scale=5.0)
    indices = fsq.encode_indices(z_e)
    assert torch.equal(indices, fsq(z_e).indices) and not indices.requires_grad


@pytest.mark.parametrize("bits", sorted(RECOMMENDED_LEVELS))
def test_recommended_levels_give_about_the_advertised_bits(bits):
    fsq = FiniteScalarQuantizer(RECOMMENDED_LEVELS[bits])
    assert abs(fsq.bits - bits) < 0.1 and fsq.code_dim == len(RECOMMENDED_LEVELS[bits])
    assert fsq.bits == math.log2(fsq.num_codes)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 5, 4, 4), r"expected z_e with 4 channels \(one per FSQ level.*got 5"),
        (torch.zeros(2, 4, 4), r"expected z_e of shape \(B, 4, H, W\)"),
        (torch.zeros(2, 4, 4, 4, dtype=torch.int64), r"floating-point tensor of shape \(B, 4, H, W\)"),
    ],
)
def test_bad_input_names_the_expected_channels_and_shape(bad, message):
    fsq = FiniteScalarQuantizer(LEVELS)
    with pytest.raises(ValueError, match=message):
        fsq(bad)
    with pytest.raises(ValueError, match=message):
        fsq.encode_indices(bad)


@pytest.mark.parametrize("levels", [[], [1, 5], [8, 2.5], 8, [1001]])
def test_bad_levels_are_refused_with_an_example(levels):
    with pytest.raises(ValueError, match=r"levels must be a non-empty sequence of integers in 2..1000.*for example"):
        FiniteScalarQuantizer(levels)


def test_lookup_rejects_out_of_range_or_badly_shaped_indices():
    fsq = FiniteScalarQuantizer(LEVELS)
    with pytest.raises(ValueError, match=r"0\.\.239"):
        fsq.lookup(torch.full((1, 2, 2), 240))
    with pytest.raises(ValueError, match=r"0\.\.239"):
        fsq.lookup(torch.full((1, 2, 2), -1))
    with pytest.raises(ValueError, match="int64 indices of shape"):
        fsq.lookup(torch.zeros(2, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="int64 indices of shape"):
        fsq.lookup(torch.zeros(1, 2, 2))


def test_float64_forward_backward_and_lookup_stay_float64():
    fsq, z_e = make()
    fsq, z_e = fsq.double(), z_e.detach().double().requires_grad_()
    out = fsq(z_e)
    out.z_q.sum().backward()
    assert out.z_q.dtype == z_e.grad.dtype == fsq.lookup(out.indices).dtype == torch.float64
    assert torch.equal(fsq.lookup(out.indices), out.z_q)


def test_under_bf16_autocast_the_codes_are_computed_in_fp32():
    fsq = FiniteScalarQuantizer(LEVELS)
    z_bf16 = (3 * torch.randn(16, len(LEVELS), 16, 16, generator=torch.Generator().manual_seed(0))).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fsq(z_bf16)
    assert out.z_q.dtype == torch.float32
    assert torch.equal(out.indices, fsq(z_bf16.float()).indices)


@pytest.mark.parametrize("device", DEVICES)
def test_every_output_follows_the_input_device(device):
    fsq, z_e = make()
    fsq, z_e = fsq.to(device), z_e.detach().to(device).requires_grad_()
    out = fsq(z_e)
    out.z_q.sum().backward()
    tensors = [out.z_q, out.loss, out.indices, out.perplexity, z_e.grad, fsq.lookup(out.indices),
               fsq.encode_indices(z_e), fsq.implicit_codebook]
    assert all(t.device.type == device for t in tensors)
