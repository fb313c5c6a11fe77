"""Quantisers without a codebook to protect refuse NaN input by name; perplexity needs no count per code."""

import pytest
import torch

from vqvae_lib.quantizers.fsq import FiniteScalarQuantizer
from vqvae_lib.quantizers.lfq import LookupFreeQuantizer
from vqvae_lib.quantizers.base import perplexity


@pytest.mark.parametrize("make", [lambda: FiniteScalarQuantizer((8, 5, 5, 5)), lambda: LookupFreeQuantizer(4)],
                         ids=["fsq", "lfq"])
@pytest.mark.parametrize("call", ["forward", "encode_indices"])
def test_nan_input_is_refused_by_name(make, call):
    quantizer = make()
    z_e = torch.randn(2, 4, 3, 3)
    z_e[1, 2, 0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN values.*(FSQ|LFQ)"):
        getattr(quantizer, call)(z_e)


def test_fsq_perplexity_of_a_huge_implicit_codebook_allocates_no_count_per_code(monkeypatch):
    """(1000,)*3 is a billion codes: a bincount over all of them would take 8 GB."""
    real_bincount = torch.bincount

    def bincount(input, weights=None, minlength=0):
        assert minlength <= 10**6, f"a count for each of {minlength} codes"
        return real_bincount(input, weights, minlength)

    monkeypatch.setattr(torch, "bincount", bincount)
    fsq = FiniteScalarQuantizer((1000, 1000, 1000))
    out = fsq(torch.randn(2, 3, 4, 4))
    assert 1 <= out.perplexity <= 32 + 1e-4


def test_perplexity_counts_only_the_codes_that_occur():
    indices = torch.tensor([[[0, 0], [5, 7]]])
    assert torch.isclose(perplexity(indices, 10**12), torch.tensor(2 ** 1.5))
