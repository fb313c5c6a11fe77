import math

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
