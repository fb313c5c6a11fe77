"""One bad batch must not ruin a codebook: non-finite encoder outputs."""

import pytest
import torch

from vqvae_lib.quantizers.vq import VectorQuantizer, VectorQuantizerEMA
from test_quantize_ema import as_grid


def test_one_nan_batch_leaves_the_ema_codebook_finite_and_in_use():
    torch.manual_seed(0)
    vq = VectorQuantizerEMA(16, 4, decay=0.9)
    poisoned = torch.randn(64, 4)
    poisoned[3] = float("nan")
    poisoned[7, 2] = float("inf")
    vq(as_grid(poisoned))
    for _ in range(20):
        out = vq(as_grid(torch.randn(64, 4)))
    assert torch.isfinite(vq.codebook).all() and torch.isfinite(vq.code_sum).all()
    assert torch.isfinite(vq.cluster_size).all()
    assert out.perplexity > 4, "after 20 clean batches many codes are in use again"
    assert int(vq.skipped_rows) == 2


def test_finite_batches_update_the_ema_codebook_exactly_as_before():
    """The guard changes nothing when every row is finite (the book's stored runs depend on it)."""
    torch.manual_seed(0)
    a, b = VectorQuantizerEMA(8, 3), VectorQuantizerEMA(8, 3)
    b.load_state_dict(a.state_dict())
    z = torch.randn(50, 3)
    a(as_grid(z))
    idx = torch.cdist(z, b.codebook).argmin(1)
    n = torch.bincount(idx, minlength=8).float()
    sums = torch.zeros(8, 3).index_add_(0, idx, z)
    cluster = b.cluster_size * 0.99 + 0.01 * n
    code_sum = b.code_sum * 0.99 + 0.01 * sums
    smoothed = (cluster + 1e-5) / (cluster.sum() + 8e-5) * cluster.sum()
    expected = torch.where((n > 0).unsqueeze(1), code_sum / smoothed.unsqueeze(1), b.codebook)
    assert torch.allclose(a.codebook, expected, atol=1e-6) and int(a.skipped_rows) == 0


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_restarts_and_kmeans_never_seed_a_code_from_a_nan(cls):
    torch.manual_seed(0)
    vq = cls(8, 2, restart_after=1, kmeans_init=True)
    z = torch.randn(40, 2)
    z[::3] = float("nan")
    vq.train()
    vq(as_grid(z))  # k-means initialisation from the finite rows
    vq(as_grid(z))  # restarts from the finite rows
    assert torch.isfinite(vq.codebook).all()
