"""GPU readiness: the library's paths that only a CUDA device exercises (AMP, device generators,
codebook maintenance on the device). Skipped where there is no GPU; run ``pytest tests/test_cuda.py``
on one (Colab, or the device tool) before trusting a change to these paths."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

from vqvae_lib.discrete import ESTIMATORS, CategoricalVAE, CategoricalVAEConfig  # noqa: E402
from vqvae_lib.prior import GatedPixelCNN, PriorConfig  # noqa: E402
from vqvae_lib.train import fit  # noqa: E402
from vqvae_lib.vae import GaussianVAE, VAEConfig  # noqa: E402
from vqvae_lib.vqvae import VQVAE, VQVAEConfig  # noqa: E402

CUDA = torch.device("cuda")
SMALL = dict(hidden=16, res_hidden=8)


def images(n=32):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(0)) / 255.0


def chapter_models():
    yield GaussianVAE(VAEConfig(latent_channels=2, **SMALL))
    for estimator in ESTIMATORS:
        yield CategoricalVAE(CategoricalVAEConfig(estimator, num_classes=8, **SMALL))
    yield VQVAE(VQVAEConfig(num_codes=16, code_dim=8, **SMALL))
    yield VQVAE(VQVAEConfig(num_codes=16, code_dim=8, quantizer="ema", restart_after=1, kmeans_init=True, **SMALL))


@pytest.mark.parametrize("model", list(chapter_models()), ids=lambda m: type(m).__name__)
def test_each_chapter_model_runs_forward_and_backward_on_the_gpu(model):
    torch.manual_seed(0)
    model = model.to(CUDA)
    out = model.loss(images(16).to(CUDA))
    out["loss"].backward()
    assert all(v.device.type == "cuda" for v in out.values())
    assert torch.isfinite(out["loss"])


def test_fit_with_amp_lowers_the_loss_and_keeps_the_codebook_fp32():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, quantizer="ema", restart_after=2, kmeans_init=True,
                              **SMALL)).to(CUDA)
    loader = DataLoader(TensorDataset(images(64), torch.zeros(64)), batch_size=16)
    history = fit(model, loader, epochs=3, lr=3e-3)
    assert history.train[-1]["loss"] < history.train[0]["loss"]
    assert model.quantizer.codebook.dtype == torch.float32 and bool(model.quantizer.initialised)
    assert torch.isfinite(model.quantizer.codebook).all()


def test_prior_samples_on_the_gpu_with_a_device_generator():
    model = GatedPixelCNN(PriorConfig(num_codes=6, channels=8, num_layers=3, num_classes=2)).to(CUDA)
    draw = lambda: model.sample(4, (3, 3), labels=torch.tensor([0, 1, 0, 1]),
                                generator=torch.Generator(device=CUDA).manual_seed(0))
    first, second = draw(), draw()
    assert first.device.type == "cuda" and torch.equal(first, second)


def test_kmeans_plus_plus_draws_on_the_data_device():
    from vqvae_lib.quantizers.kmeans import kmeans

    x = torch.randn(256, 4, device=CUDA)
    codebook, indices, errors = kmeans(x, 8, iters=3, generator=torch.Generator(device=CUDA).manual_seed(0))
    assert codebook.device.type == "cuda" and errors[-1] <= errors[0]


def test_a_cached_checkpoint_loads_on_the_gpu_and_restores_the_rng_state(tmp_path, monkeypatch):
    """A cache hit sets the saved RNG states, which torch accepts only as CPU byte tensors (issue 23)."""
    from vqvae_lib.checkpoint import load_or_fit

    monkeypatch.setenv("VQVAE_CHECKPOINTS", str(tmp_path))
    data = DataLoader(TensorDataset(images(32), torch.zeros(32)), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))
    draws = []
    for _ in range(2):  # a miss, then a hit
        torch.manual_seed(0)
        model = VQVAE(VQVAEConfig(num_codes=16, code_dim=8, **SMALL)).to(CUDA)
        load_or_fit(model, "gpu", data, epochs=1, lr=1e-3)
        draws.append((torch.rand(3, device=CUDA).cpu(), torch.rand(3)))
    assert all(torch.equal(a, b) for a, b in zip(*draws))
