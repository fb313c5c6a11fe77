import math

import pytest

from vqvae_lib.metrics import bits_per_dim


def test_uniform_8bit_pixels_cost_8_bits_per_dim():
    assert bits_per_dim(784 * math.log(256), 784) == pytest.approx(8.0)


def test_per_dim_nats_convert_to_bits():
    assert bits_per_dim(math.log(2)) == pytest.approx(1.0)
    assert bits_per_dim(1.0) == pytest.approx(1.4426950408889634)


def test_nonpositive_dims_are_rejected():
    with pytest.raises(ValueError, match="num_dims must be positive"):
        bits_per_dim(1.0, 0)
