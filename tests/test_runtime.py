import pytest
import torch

from vqvae_lib import runtime


def test_set_seed_makes_torch_numpy_and_python_repeat():
    import random

    import numpy as np

    runtime.set_seed(3)
    first = (random.random(), np.random.rand(), torch.rand(3))
    runtime.set_seed(3)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    runtime.set_seed(4)
    assert not torch.equal(torch.rand(3), second[2])


@pytest.mark.parametrize("value, profile", [("", "full"), ("0", "full"), ("1", "fast"), ("true", "fast")])
def test_profile_comes_from_vqvae_fast(monkeypatch, value, profile):
    monkeypatch.setenv("VQVAE_FAST", value)
    assert runtime.get_profile() == profile


def test_profile_rejects_unknown_value(monkeypatch):
    monkeypatch.setenv("VQVAE_FAST", "maybe")
    with pytest.raises(ValueError, match="VQVAE_FAST must be 1"):
        runtime.get_profile()


def test_setup_prints_the_one_line(monkeypatch, capsys):
    monkeypatch.setenv("VQVAE_FAST", "1")
    device, profile = runtime.setup(seed=7)
    assert profile == "fast" and device == runtime.get_device()
    assert capsys.readouterr().out == f"device={device.type} profile=fast seed=7\n"


def test_not_in_colab_here():
    assert runtime.in_colab() is False
