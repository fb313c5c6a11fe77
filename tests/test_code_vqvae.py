import pytest
import torch

from vqvae_lib.train import fit
from vqvae_lib.video.code_vqvae import CodeVQVAE, CodeVQVAEConfig


def small_model(**kwargs):
    torch.manual_seed(0)
    config = dict(grid_codes=8, grid_size=8, num_latents=3, num_codes=16, code_dim=8, embed_dim=8, hidden=16,
                  channels=16, num_layers=3, cond_channels=8, restart_after=20)
    return CodeVQVAE(CodeVQVAEConfig(**{**config, **kwargs}))


def test_the_papers_bottleneck_is_27_bits_and_every_output_has_its_shape():
    assert CodeVQVAE(CodeVQVAEConfig()).bits == 27.0
    model = small_model().eval()
    grid = torch.randint(0, 8, (5, 8, 8), generator=torch.Generator().manual_seed(1))
    codes = model.encode(grid)
    assert codes.shape == (5, 3) and codes.dtype == torch.long and codes.max() < 16
    assert model.nll_bits(grid, codes).shape == (5,)
    sample = model.decode(codes, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (5, 8, 8) and sample.max() < 8


def test_encoding_never_moves_the_codebook_while_a_training_step_does():
    model = small_model().train()
    grid = torch.randint(0, 8, (16, 8, 8), generator=torch.Generator().manual_seed(2))
    before = model.quantizer.codebook.clone()
    model.encode(grid)
    assert torch.equal(model.quantizer.codebook, before)
    model.loss(grid)
    assert not torch.equal(model.quantizer.codebook, before)


def test_trained_on_grids_made_from_few_patterns_the_codes_are_used():
    """Eight patterns, each a grid of noise-free codes: after training, the decoder given a grid's own
    three codes needs far fewer bits than given another grid's codes (the codes carry the pattern)."""
    patterns = torch.randint(0, 8, (8, 8, 8), generator=torch.Generator().manual_seed(3))
    which = torch.randint(0, 8, (800,), generator=torch.Generator().manual_seed(4))
    grids = patterns[which]
    model = small_model()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(grids), batch_size=50, shuffle=True)
    fit(model, loader, epochs=8, lr=3e-3)
    model.eval()
    own = model.nll_bits(grids[:200], model.encode(grids[:200]))
    other = model.nll_bits(grids[:200], model.encode(grids[:200].roll(1, dims=0)))
    same = which[:200] == which[:200].roll(1)
    assert own.mean() < 10, own.mean()  # 64 codes of 3 bits would be 192 bits without the latents
    # the decoder can still tell the pattern from its first codes (8 patterns: 3 bits), so another
    # grid's codes cost a few codes' worth of surprise, not all 192 bits
    assert other[~same].mean() > own.mean() + 10, (own.mean(), other[~same].mean())


def test_bad_input_is_refused_with_what_was_expected():
    model = small_model()
    with pytest.raises(ValueError, match=r"\(B, 8, 8\)"):
        model.loss(torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="grid_codes"):
        model.loss(torch.full((2, 8, 8), 8))
    with pytest.raises(ValueError, match=r"\(B, 3\) codes"):
        model.decode(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="multiple of 4"):
        CodeVQVAEConfig(grid_size=10)
