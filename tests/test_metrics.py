import math

import pytest

from vqvae_lib.metrics import bits_per_dim, two_part_bits_per_dim, uniform_prior_nats


def test_uniform_8bit_pixels_cost_8_bits_per_dim():
    assert bits_per_dim(784 * math.log(256), 784) == pytest.approx(8.0)


def test_per_dim_nats_convert_to_bits():
    assert bits_per_dim(math.log(2)) == pytest.approx(1.0)
    assert bits_per_dim(1.0) == pytest.approx(1.4426950408889634)


def test_nonpositive_dims_are_rejected():
    with pytest.raises(ValueError, match="num_dims must be positive"):
        bits_per_dim(1.0, 0)


def test_uniform_prior_costs_n_log_k():
    assert uniform_prior_nats(49, 512) == pytest.approx(49 * 9 * math.log(2))
    assert uniform_prior_nats(64, 1) == 0.0
    with pytest.raises(ValueError, match="num_latents"):
        uniform_prior_nats(0, 512)


def test_two_part_code_lengths_on_hand_made_numbers():
    recon = 3 * math.log(2)  # 3 bits per pixel
    # VQ-VAE, uniform prior, Fashion-MNIST: 49 codes of 9 bits over 784 pixels add 0.5625 bits/dim.
    assert two_part_bits_per_dim(recon, uniform_prior_nats(49, 512), 784) == pytest.approx(3.5625)
    # VQ-VAE with a learned prior of 4 bits per latent: 49 * 4 / 784 = 0.25.
    assert two_part_bits_per_dim(recon, 49 * 4 * math.log(2), 784) == pytest.approx(3.25)
    # Gaussian VAE: a KL of 196 bits per image on 784 pixels adds 0.25.
    assert two_part_bits_per_dim(recon, 196 * math.log(2), 784) == pytest.approx(3.25)
    # CIFAR-10 shapes: 8 x 8 codes of 9 bits over 3072 values add 0.1875.
    assert two_part_bits_per_dim(recon, uniform_prior_nats(64, 512), 3 * 32 * 32) == pytest.approx(3.1875)
    with pytest.raises(ValueError, match="cannot be negative"):
        two_part_bits_per_dim(recon, -1.0, 784)
