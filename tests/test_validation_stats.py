"""vqvae_lib.validation.holdout, vqvae_lib.stats.welch and prediction_interval (Chapter 07's learning-rate
choice and intervals; the worked solutions' one-seed comparisons)."""

import math
import statistics

import pytest
import torch
from torch.utils.data import TensorDataset

from vqvae_lib.stats import prediction_interval, welch
from vqvae_lib.validation import holdout


def test_holdout_is_a_seeded_disjoint_cover():
    data = TensorDataset(torch.arange(100))
    rest, held = holdout(data, 10, seed=3)
    assert len(held) == 10 and len(rest) == 90
    assert sorted(rest.indices + held.indices) == list(range(100))
    assert held.indices == holdout(data, 10, seed=3)[1].indices
    assert held.indices != holdout(data, 10, seed=4)[1].indices
    assert held.indices != list(range(10)), "a random part, not the first items"


@pytest.mark.parametrize("size", [0, 100, 5.5])
def test_holdout_names_a_bad_size(size):
    with pytest.raises(ValueError, match="held-out size"):
        holdout(TensorDataset(torch.arange(100)), size)


def test_welch_matches_the_formula_by_hand():
    better, worse = [3.96, 3.94, 3.97], [4.01, 3.99, 3.98, 4.02]
    va, vb = statistics.variance(better) / 3, statistics.variance(worse) / 4
    gap = statistics.mean(worse) - statistics.mean(better)
    t = gap / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 3)  # Welch-Satterthwaite
    result = welch(better, worse)
    assert result["gap"] == pytest.approx(gap) and result["df"] == pytest.approx(df)
    from scipy.stats import t as student
    half = student.ppf(0.975, df) * math.sqrt(va + vb)
    assert (result["low"], result["high"]) == pytest.approx((gap - half, gap + half))
    assert result["p"] == pytest.approx(2 * student.sf(t, df))


def test_welch_tables():
    # equal variances and sizes: Welch's df is 2(n - 1) and t = gap / sqrt(2 s^2 / n). Here s = 1, n = 3,
    # gap = 3.3: t = 4.0415 at df = 4, two-sided p = 0.0156 (t-table: t_0.975,4 = 2.776, t_0.99,4 = 3.747).
    result = welch([-1.0, 0.0, 1.0], [2.3, 3.3, 4.3])
    assert result["df"] == pytest.approx(4.0)
    assert result["p"] == pytest.approx(0.0156, abs=5e-4)
    assert result["low"] == pytest.approx(3.3 - 2.776 * math.sqrt(2 / 3), abs=1e-3)
    assert welch([2.3, 3.3, 4.3], [-1.0, 0.0, 1.0])["gap"] == pytest.approx(-3.3), "a negative gap: `better` is higher"


def test_welch_needs_two_seeds_per_row():
    with pytest.raises(ValueError, match="at least 2 values"):
        welch([1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="confidence"):
        welch([1.0, 2.0], [2.0, 3.0], confidence=95)


def test_prediction_interval_by_hand_and_its_coverage():
    low, high = prediction_interval([0.0, 1.0, 2.0])  # mean 1, sd 1, t(2 df, 0.975) = 4.3027
    assert math.isclose(high - 1, 4.302653 * math.sqrt(4 / 3), rel_tol=1e-5) and math.isclose(low + high, 2)
    g = torch.Generator().manual_seed(0)
    draws = torch.randn(20_000, 4, generator=g).double()  # three seeds and one more, 20,000 times
    hits = [low <= new <= high for (low, high), new in
            ((prediction_interval(row[:3].tolist()), row[3].item()) for row in draws)]
    assert 0.94 < sum(hits) / len(hits) < 0.96  # the interval covers one more draw 95 % of the time
    outside_range = ((draws[:, 3] > draws[:, :3].max(1).values) | (draws[:, 3] < draws[:, :3].min(1).values))
    assert 0.48 < outside_range.double().mean() < 0.52  # ... where the plain range of three misses half the time


@pytest.mark.parametrize("values, confidence", [([1.0], 0.95), ([1.0, 2.0], 1.0)])
def test_prediction_interval_names_bad_input(values, confidence):
    with pytest.raises(ValueError, match="prediction interval|confidence"):
        prediction_interval(values, confidence)
