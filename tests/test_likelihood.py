import math

import pytest
import torch

from vqvae_lib.likelihood import discretized_logistic_log_prob, discretized_logistic_mean, discretized_logistic_sample

ALL_PIXELS = torch.arange(256, dtype=torch.float32) / 255.0


def test_probabilities_of_all_256_values_sum_to_one():
    for mean, log_scale in [(0.0, -2.0), (0.9, -4.0), (-1.0, 0.5), (0.3, -7.0)]:
        logp = discretized_logistic_log_prob(ALL_PIXELS, torch.full((256,), mean), torch.full((256,), log_scale))
        assert abs(logp.exp().sum().item() - 1.0) < 1e-4, (mean, log_scale)


def test_mid_bin_equals_the_difference_of_logistic_cdfs():
    k, mean, s = 100, 0.1, 0.05
    x = 2 * k / 255 - 1
    cdf = lambda v: 1 / (1 + math.exp(-(v - mean) / s))
    expected = math.log(cdf(x + 1 / 255) - cdf(x - 1 / 255))
    got = discretized_logistic_log_prob(torch.tensor([k / 255]), torch.tensor([mean]), torch.tensor([math.log(s)]))
    assert abs(got.item() - expected) < 1e-5


def test_end_bins_absorb_the_tails():
    far = torch.tensor([-5.0, 5.0])
    logp = discretized_logistic_log_prob(torch.tensor([0.0, 1.0]), far, torch.tensor([-1.0, -1.0]))
    assert torch.all(logp > -1e-3)


def test_result_is_fp32_even_for_half_inputs():
    logp = discretized_logistic_log_prob(ALL_PIXELS.half(), torch.zeros(256).half(), torch.full((256,), -3.0).half())
    assert logp.dtype == torch.float32


def test_sharp_logistic_on_the_pixel_costs_almost_nothing():
    k = torch.tensor([0.0, 37.0, 128.0, 255.0]) / 255.0
    logp = discretized_logistic_log_prob(k, k * 2 - 1, torch.full((4,), -7.0))
    assert torch.all(logp > math.log(0.95))


def test_samples_are_8bit_values_near_the_mean():
    torch.manual_seed(0)
    x = discretized_logistic_sample(torch.full((10000,), 0.2), torch.full((10000,), -3.0))
    assert torch.allclose(x * 255, (x * 255).round(), atol=1e-4)
    assert abs(x.mean().item() - discretized_logistic_mean(torch.tensor(0.2)).item()) < 0.01


def test_far_tail_bins_keep_their_exact_mass():
    """In the tails a naive difference of sigmoids cancels; the log-space form matches 50-digit arithmetic."""
    mpmath = __import__("pytest").importorskip("mpmath")
    mpmath.mp.dps = 50
    mean, log_scale = -0.5, -3.0
    logp = discretized_logistic_log_prob(ALL_PIXELS, torch.full((256,), mean), torch.full((256,), log_scale))
    s = mpmath.exp(log_scale)
    sig = lambda v: 1 / (1 + mpmath.exp(-v))
    for k in (0, 3, 60, 200, 253, 254, 255):
        y = mpmath.mpf(2 * k) / 255 - 1
        upper = sig((y + mpmath.mpf(1) / 255 - mean) / s) if k < 255 else 1
        lower = sig((y - mpmath.mpf(1) / 255 - mean) / s) if k > 0 else 0
        exact = float(mpmath.log(upper - lower))
        assert abs(logp[k].item() - exact) <= 1e-5 * abs(exact) + 1e-6, (k, logp[k].item(), exact)


def test_gradients_are_finite_even_for_sharp_logistics():
    mean = torch.zeros(256, requires_grad=True)
    log_scale = torch.full((256,), -7.0, requires_grad=True)
    discretized_logistic_log_prob(ALL_PIXELS, mean, log_scale).sum().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()


def test_nll_is_minus_the_log_probability_summed_per_image():
    from vqvae_lib.likelihood import discretized_logistic_nll

    torch.manual_seed(0)
    x = torch.randint(0, 256, (3, 1, 4, 4)) / 255.0
    mean, log_scale = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4) - 2
    expected = -discretized_logistic_log_prob(x, mean, log_scale).sum((1, 2, 3))
    assert torch.allclose(discretized_logistic_nll(x, mean, log_scale), expected)


def test_wide_logistics_match_high_precision_arithmetic():
    """At log_scale 12-15 a bin holds about 1e-5..1e-7 of the mass; subtracting two nearly equal
    sigmoids (or their logs) in fp32 loses every digit of it. 50-digit arithmetic is the judge."""
    import mpmath

    mpmath.mp.dps = 50

    def exact(k, mean, log_scale):
        s, y = mpmath.exp(log_scale), mpmath.mpf(2 * k) / 255 - 1
        cdf = lambda v: 1 / (1 + mpmath.exp(-(v - mean) / s))
        return float(mpmath.log(cdf(y + mpmath.mpf(1) / 255) - cdf(y - mpmath.mpf(1) / 255)))

    for log_scale in (12.0, 13.5, 15.0):
        for k, mean in ((100, 0.1), (3, -0.9), (250, 0.95)):
            got = discretized_logistic_log_prob(torch.tensor([k / 255]), torch.tensor([mean]), torch.tensor([log_scale]))
            want = exact(k, mpmath.mpf(mean), mpmath.mpf(log_scale))
            assert abs(got.item() - want) < 1e-4 * abs(want), (log_scale, k, got.item(), want)


def _log_bin_mass_reference(k, mean, log_scale):
    """float64 ``log P(k)`` through another identity than the library's:
    ``sigmoid(a) - sigmoid(b) = sinh(w/2) / (2 cosh(a/2) cosh(b/2))`` with ``w = a - b`` (from tanh)."""
    log_sigmoid = lambda v: -(max(-v, 0.0) + math.log1p(math.exp(-abs(v))))
    log_cosh = lambda v: abs(v) + math.log1p(math.exp(-2 * abs(v))) - math.log(2.0)
    y, inv_s = 2 * k / 255 - 1, math.exp(-log_scale)
    a, b = inv_s * (y + 1 / 255 - mean), inv_s * (y - 1 / 255 - mean)
    if k == 0:
        return log_sigmoid(a)
    if k == 255:
        return log_sigmoid(-b)
    log_half_width = math.log(1 / 255) - log_scale
    log_sinh = log_half_width if log_half_width < -20 else math.log(math.sinh(math.exp(log_half_width)))
    return log_sinh - math.log(2.0) - log_cosh(a / 2) - log_cosh(b / 2)


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 5e-5), (torch.float64, 1e-13)])
def test_accurate_from_the_sharpest_to_extremely_wide_logistics(dtype, tolerance):
    """The supported range is every log_scale >= LOG_SCALE_MIN: above ~64 a bin's width (2/255)/s drops
    below 1e-30 and, in fp32, underflows; its log must then come from log_scale itself. fp32's
    tolerance allows for its 24-bit inputs, amplified by 1/s <= e^7."""
    rows = [(k, mean, log_scale) for log_scale in (-7.0, -2.0, 0.0, 10.0, 40.0, 64.0, 65.0, 80.0, 100.0, 1000.0)
            for mean in (-1.0, -0.375, 0.5, 0.875) for k in range(256)]
    k, mean, log_scale = (torch.tensor(column, dtype=dtype) for column in zip(*rows))
    got = discretized_logistic_log_prob(k / 255, mean, log_scale)
    want = torch.tensor([_log_bin_mass_reference(*row) for row in rows], dtype=torch.float64)
    assert got.dtype == dtype
    error = ((got.double() - want).abs() / want.abs().clamp(min=1.0)).max().item()
    assert error < tolerance, error
