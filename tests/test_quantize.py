import pytest
import torch

from vqvae_lib.quantizers.kmeans import kmeans
from vqvae_lib.quantizers.nearest import nearest_code, squared_distances
from vqvae_lib.quantizers.base import perplexity
from vqvae_lib.quantizers.vq import VectorQuantizer


def naive_distances(x, codebook):
    return ((x[:, None, :] - codebook[None, :, :]) ** 2).sum(-1)


def make(num_codes=16, code_dim=8, beta=0.25, seed=0):
    torch.manual_seed(seed)
    vq = VectorQuantizer(num_codes, code_dim, beta)
    with torch.no_grad():
        vq.codebook.normal_()
    z_e = torch.randn(2, code_dim, 3, 5, requires_grad=True)
    return vq, z_e


def test_one_matmul_distances_equal_broadcasting():
    torch.manual_seed(0)
    x, codebook = torch.randn(50, 8), torch.randn(16, 8)
    assert torch.allclose(squared_distances(x, codebook), naive_distances(x, codebook), atol=1e-4)
    assert torch.equal(nearest_code(x, codebook), naive_distances(x, codebook).argmin(1))


def test_nearest_code_builds_no_graph_and_returns_int64():
    codebook = torch.randn(4, 3, requires_grad=True)
    indices = nearest_code(torch.randn(5, 3, requires_grad=True), codebook)
    assert indices.dtype == torch.int64 and indices.grad_fn is None and not indices.requires_grad


def test_distances_stay_fp32_under_autocast():
    torch.manual_seed(0)
    x, codebook = torch.randn(64, 16), torch.randn(32, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        d = squared_distances(x.bfloat16(), codebook)
        i = nearest_code(x, codebook)
    assert d.dtype == torch.float32
    assert torch.equal(i, naive_distances(x, codebook).argmin(1))


def test_forward_gives_nearest_codes_with_the_documented_shapes():
    vq, z_e = make()
    out = vq(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 8)
    expected = naive_distances(flat, vq.codebook.detach()).argmin(1)
    assert out.indices.shape == (2, 3, 5) and out.indices.dtype == torch.int64
    assert torch.equal(out.indices.flatten(), expected)
    assert out.z_q.shape == z_e.shape
    assert torch.allclose(out.z_q.permute(0, 2, 3, 1).reshape(-1, 8), vq.codebook[expected])
    assert vq.codebook.shape == (16, 8) and isinstance(vq.codebook, torch.nn.Parameter)


def test_straight_through_gradient_is_the_identity_to_z_e():
    vq, z_e = make()
    upstream = torch.randn_like(z_e)
    (vq(z_e).z_q * upstream).sum().backward()
    assert torch.allclose(z_e.grad, upstream)


def test_reconstruction_gradient_never_reaches_the_codebook():
    vq, z_e = make()
    vq(z_e).z_q.pow(2).sum().backward()
    assert vq.codebook.grad is None or torch.count_nonzero(vq.codebook.grad) == 0


def test_loss_is_codebook_term_plus_beta_commitment():
    vq, z_e = make(beta=0.25)
    out = vq(z_e)
    e = vq.codebook[out.indices.flatten()].detach()
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 8)
    mse = (e - flat).pow(2).mean()
    assert torch.allclose(out.loss, (1 + 0.25) * mse)


def test_codebook_term_moves_only_the_codebook():
    vq, z_e = make(beta=0.0)
    vq(z_e).loss.backward()
    assert torch.count_nonzero(z_e.grad) == 0
    assert torch.count_nonzero(vq.codebook.grad) > 0


def test_commitment_gradient_reaches_only_the_encoder_scaled_by_beta():
    grads = {}
    for beta in (0.0, 1.0, 2.0):
        vq, z_e = make(beta=beta)
        vq(z_e).loss.backward()
        grads[beta] = (z_e.grad.clone(), vq.codebook.grad.clone())
    assert torch.allclose(grads[2.0][0], 2 * grads[1.0][0])  # encoder: beta * commitment only
    assert torch.count_nonzero(grads[1.0][0]) > 0
    assert torch.allclose(grads[0.0][1], grads[2.0][1])  # codebook: independent of beta


def test_perplexity_counts_equally_used_codes():
    assert perplexity(torch.zeros(10, dtype=torch.int64), 8).item() == pytest.approx(1.0)
    assert perplexity(torch.arange(8).repeat(3), 8).item() == pytest.approx(8.0)
    assert perplexity(torch.tensor([0, 0, 1, 1]), 512).item() == pytest.approx(2.0)
    vq, z_e = make()
    out = vq(z_e)
    assert out.perplexity.item() == pytest.approx(perplexity(out.indices, 16).item())


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(2, 3, 4, 4), r"expected z_e of shape \(B, 8, H, W\).*got \(2, 3, 4, 4\)"),
        (torch.zeros(2, 8, 4), r"expected z_e of shape \(B, 8, H, W\)"),
        (torch.zeros(2, 8, 4, 4, dtype=torch.int64), r"floating-point tensor of shape \(B, 8, H, W\)"),
    ],
)
def test_bad_input_names_the_expected_shape(bad, message):
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(16, 8)(bad)


def test_lookup_inverts_indices_and_rejects_bad_ones():
    vq, z_e = make()
    out = vq(z_e)
    assert torch.allclose(vq.lookup(out.indices), out.z_q)
    with pytest.raises(ValueError, match="0..15"):
        vq.lookup(torch.full((1, 2, 2), 16))
    with pytest.raises(ValueError, match="int64 indices of shape"):
        vq.lookup(torch.zeros(2, 2))


def test_kmeans_error_never_increases_and_finds_separated_clusters():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(100, 2, generator=generator) for c in centres])
    codebook, indices, errors = kmeans(x, 3, iters=10, generator=generator)
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:]))
    assert torch.cdist(codebook, centres).min(0).values.max() < 0.1
    assert len(set(indices.tolist())) == 3


def test_kmeans_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        kmeans(torch.zeros(10), 2)
    with pytest.raises(ValueError, match="num_codes must be in 1..10"):
        kmeans(torch.zeros(10, 2), 11)


def test_bits_is_log2_of_the_number_of_codes():
    from vqvae_lib.quantizers.vq import VectorQuantizerEMA

    assert VectorQuantizer(512, 8).bits == 9.0 and VectorQuantizerEMA(16, 8).bits == 4.0
    assert VectorQuantizer(10, 8).bits == pytest.approx(3.321928)


@pytest.mark.parametrize("ema", [False, True])
def test_encode_indices_are_the_forward_indices_and_change_no_state_even_in_training(ema):
    from vqvae_lib.quantizers.vq import VectorQuantizerEMA

    torch.manual_seed(0)
    cls = VectorQuantizerEMA if ema else VectorQuantizer
    vq = cls(16, 8, kmeans_init=True, restart_after=1)
    z_e = torch.randn(2, 8, 4, 4)
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    indices = vq.train().encode_indices(z_e)
    assert all(torch.equal(v, vq.state_dict()[k]) for k, v in before.items())
    assert indices.shape == (2, 4, 4) and indices.dtype == torch.int64
    assert torch.equal(indices, vq.eval()(z_e).indices)
    with pytest.raises(ValueError, match=r"expected z_e of shape \(B, 8, H, W\)"):
        vq.encode_indices(torch.zeros(2, 3, 4, 4))


def test_codes_used_counts_distinct_indices_without_a_count_per_code():
    from vqvae_lib.quantizers import codes_used

    indices = torch.randint(0, 50, (4, 7, 7), generator=torch.Generator().manual_seed(0))
    assert int(codes_used(indices)) == len(indices.unique())
    assert int(codes_used(torch.full((2, 3, 3), 10**15))) == 1


def test_every_quantiser_has_the_one_interface_and_reports_dead_codes_as_a_tensor():
    from vqvae_lib.quantizers import (FiniteScalarQuantizer, LookupFreeQuantizer, Quantizer, ResidualVectorQuantizer,
                                      VectorQuantizer, VectorQuantizerEMA)

    for q in (VectorQuantizer(8, 4), VectorQuantizerEMA(8, 4), ResidualVectorQuantizer(2, 8, 4),
              FiniteScalarQuantizer((3, 3, 2, 2)), LookupFreeQuantizer(4)):
        assert isinstance(q, Quantizer) and q.code_dim == 4 and q.bits > 0
        dead = q.dead_codes()
        assert torch.is_tensor(dead) and dead.dim() == 0
        z_e = torch.randn(2, 4, 3, 3)
        assert torch.equal(q.encode_indices(z_e), q(z_e).indices)
