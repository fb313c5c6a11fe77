"""The rotation trick (Fifty et al. 2025, Sec. 4) as the ``gradient="rotation"`` option of the quantisers."""

import pytest
import torch

from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA
from vqvae_lib.quantizers.residual import ResidualVectorQuantizer
from vqvae_lib.quantizers.rotation import rotate_to


def rotation_matrix(z, e):
    """The explicit D x D matrix ``R = I - 2 r r^T + 2 q u^T`` and ``lambda`` for one pair of vectors."""
    u, q = z / z.norm(), e / e.norm()
    r = (u + q) / (u + q).norm()
    eye = torch.eye(len(z), dtype=z.dtype)
    return eye - 2 * torch.outer(r, r) + 2 * torch.outer(q, u), e.norm() / z.norm()


def rows_as_grid(rows):
    """(N, D) -> (1, D, 1, N): each row one latent position."""
    return rows.t().reshape(1, rows.shape[1], 1, -1)


def pair(n=6, d=5, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=generator, dtype=dtype)
    return z.requires_grad_(), torch.randn(n, d, generator=generator, dtype=dtype)


def make(cls, gradient, seed=0):
    torch.manual_seed(seed)
    vq = cls(16, 8, gradient=gradient)
    with torch.no_grad():
        vq.codebook.normal_()
    return vq, torch.randn(2, 8, 3, 5, requires_grad=True)


def test_R_is_a_rotation_that_maps_u_to_q_and_the_efficient_form_applies_it():
    z, e = pair()
    z_q = rotate_to(z, e)
    for i in range(len(z)):
        R, scale = rotation_matrix(z[i].detach(), e[i])
        assert torch.allclose(R.T @ R, torch.eye(5, dtype=R.dtype), atol=1e-12)
        assert torch.linalg.det(R).item() == pytest.approx(1.0)
        assert torch.allclose(R @ (z[i] / z[i].norm()), e[i] / e[i].norm(), atol=1e-12)
        assert torch.allclose(scale * R @ z[i], z_q[i], atol=1e-12)  # lambda R z_e = e


def test_the_value_is_exactly_the_code_and_no_gradient_reaches_the_code():
    z, e = pair(dtype=torch.float32)
    e.requires_grad_()
    z_q = rotate_to(z, e)
    assert torch.equal(z_q, e.detach())
    z_q.sum().backward()
    assert e.grad is None


def test_the_gradient_is_lambda_R_transpose_times_the_incoming_one():
    z, e = pair()
    upstream = torch.randn_like(z)
    (rotate_to(z, e) * upstream).sum().backward()
    for i in range(len(z)):
        R, scale = rotation_matrix(z[i].detach(), e[i])
        assert torch.allclose(z.grad[i], scale * R.T @ upstream[i], atol=1e-12)


def test_the_gradient_is_the_identity_only_when_z_e_already_is_its_code():
    z, e = pair()
    upstream = torch.randn_like(z)
    same = e.clone().requires_grad_()
    (rotate_to(same, e) * upstream).sum().backward()
    assert torch.allclose(same.grad, upstream, atol=1e-12)
    (rotate_to(z, e) * upstream).sum().backward()
    assert (z.grad - upstream).abs().max() > 0.1


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_quantiser_with_rotation_gives_the_nearest_code_and_the_rotated_gradient(cls):
    vq, z_e = make(cls, "rotation")
    out = vq.eval()(z_e)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 8)
    codes = vq.codebook.detach()[torch.cdist(flat, vq.codebook.detach()).argmin(1)]
    assert torch.equal(out.z_q.permute(0, 2, 3, 1).reshape(-1, 8), codes)
    upstream = torch.randn_like(z_e)
    (out.z_q * upstream).sum().backward()
    up_flat = upstream.permute(0, 2, 3, 1).reshape(-1, 8)
    expected = torch.stack([s * R.T @ g for (R, s), g in zip(map(rotation_matrix, flat, codes), up_flat)])
    assert torch.allclose(z_e.grad.permute(0, 2, 3, 1).reshape(-1, 8), expected, atol=1e-5)


def test_the_reconstruction_gradient_never_reaches_the_codebook_with_rotation():
    vq, z_e = make(VectorQuantizer, "rotation")
    vq(z_e).z_q.pow(2).sum().backward()
    assert vq.codebook.grad is None or torch.count_nonzero(vq.codebook.grad) == 0
    assert torch.count_nonzero(z_e.grad) > 0


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_the_option_changes_neither_the_loss_nor_its_gradients_nor_the_ema_step(cls):
    results = []
    for gradient in ("straight_through", "rotation"):
        vq, z_e = make(cls, gradient)
        out = vq(z_e)  # training mode: the EMA quantiser also takes a step
        out.loss.backward()
        codebook_grad = vq.codebook.grad if vq.codebook.requires_grad else torch.zeros(())
        results.append((out.loss.detach(), z_e.grad, codebook_grad, vq.codebook.detach().clone(), out.indices))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_the_default_path_is_the_straight_through_copy_bit_for_bit():
    vq, z_e = make(VectorQuantizer, "straight_through")
    out = vq(z_e)
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 8)
    e = vq.codebook.index_select(0, out.indices.flatten())
    assert torch.equal(out.z_q.permute(0, 2, 3, 1).reshape(-1, 8), flat + (e - flat).detach())
    upstream = torch.randn_like(z_e)
    (out.z_q * upstream).sum().backward()
    assert torch.equal(z_e.grad, upstream)
    assert VectorQuantizer(4, 2).gradient == VectorQuantizerEMA(4, 2).gradient == "straight_through"


def test_degenerate_rows_give_the_code_and_a_finite_gradient():
    e = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 0.0]])
    z = torch.tensor([[0.0, 0.0], [-2.0, 0.0], [1.0, 1.0]], requires_grad=True)  # z_e = 0, u = -q, e = 0
    z_q = rotate_to(z, e)
    upstream = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    (z_q * upstream).sum().backward()
    assert torch.equal(z_q, e) and torch.isfinite(z.grad).all()
    assert torch.equal(z.grad[0], upstream[0])  # no direction to rotate: straight-through
    # u = -q: R = I - 2 u u^T, lambda = 1/2: (1/2) * (-3, 4)
    assert torch.allclose(z.grad[1], torch.tensor([-1.5, 2.0]))
    assert torch.equal(z.grad[2], torch.zeros(2))  # lambda = 0


def test_the_quantiser_stays_finite_for_a_zero_encoder_output():
    vq, _ = make(VectorQuantizer, "rotation")
    z_e = torch.zeros(1, 8, 2, 2, requires_grad=True)
    out = vq(z_e)
    (out.loss + out.z_q.sum()).backward()
    assert torch.isfinite(out.z_q).all() and torch.isfinite(z_e.grad).all()
    assert torch.isfinite(vq.codebook.grad).all()


@pytest.mark.parametrize("build", [lambda g: VectorQuantizer(8, 4, gradient=g),
                                   lambda g: VectorQuantizerEMA(8, 4, gradient=g),
                                   lambda g: ResidualVectorQuantizer(2, 8, 4, gradient=g)])
def test_an_unknown_gradient_is_refused_with_the_choices(build):
    with pytest.raises(ValueError, match=r"unknown gradient 'rotate'.*straight_through.*rotation"):
        build("rotate")


def test_rotation_works_in_float64_and_under_autocast():
    vq, z_e = make(VectorQuantizer, "rotation")
    vq.double()
    out = vq(z_e.detach().double().requires_grad_())
    assert out.z_q.dtype == torch.float64
    z, e = pair(n=3, d=4, seed=1, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_q = rotate_to(z.bfloat16(), e)
    assert z_q.dtype == torch.float32 and torch.equal(z_q, e)
