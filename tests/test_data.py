import struct
import time

import numpy as np
import pytest
import torch

from vqvae_lib import data


def test_debian_files_are_unpacked_and_loaded_offline(tmp_path, fake_debian_dir, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda *a, **k: pytest.fail("must not touch the network"))
    train = data.load_dataset("fashion_mnist", "train", root=tmp_path / "root", debian_dir=fake_debian_dir)
    test = data.load_dataset("fashion_mnist", "test", root=tmp_path / "root", debian_dir=fake_debian_dir)
    assert (len(train), len(test)) == (40, 10)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(data.FASHION_MNIST_FILES)


def test_pixels_are_exactly_k_over_255(tmp_path, fake_debian_dir):
    image, label = data.load_dataset("fashion_mnist", root=tmp_path, debian_dir=fake_debian_dir)[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    k = image * 255
    assert torch.allclose(k, k.round(), atol=1e-4)
    assert isinstance(label, int)


def test_no_data_and_no_network_fails_fast_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda *a, **k: False)
    start = time.perf_counter()
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_dataset("fashion_mnist", root=tmp_path, debian_dir=tmp_path / "no-debian-files")
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "dataset-fashion-mnist" in message and "VQVAE_DATA" in message
    assert not (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_unreachable_host_is_reported_within_the_timeout():
    start = time.perf_counter()
    assert data.network_available("host.invalid", timeout=1.0) is False
    assert time.perf_counter() - start < 5


def test_root_comes_from_vqvae_data(monkeypatch, tmp_path):
    monkeypatch.setenv("VQVAE_DATA", str(tmp_path))
    assert data.data_root() == tmp_path


def test_bad_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="expected one of"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_dataset("fashion_mnist", split="valid")


def test_loaders_subset_and_order_are_seeded(tmp_path, fake_debian_dir, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", fake_debian_dir)

    def first_batch():
        train, test = data.make_loaders(batch_size=8, train_size=16, test_size=4, seed=1, root=tmp_path)
        return next(iter(train))[0], len(train.dataset), len(test.dataset)

    (a, n_train, n_test), (b, _, _) = first_batch(), first_batch()
    assert (n_train, n_test) == (16, 4)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="train_size must be in 1..40"):
        data.make_loaders(train_size=41, root=tmp_path)


@pytest.mark.skipif(not data.DEBIAN_FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_debian_fashion_mnist_loads_in_full(tmp_path):
    train = data.load_dataset("fashion_mnist", "train", root=tmp_path)
    test = data.load_dataset("fashion_mnist", "test", root=tmp_path)
    assert (len(train), len(test)) == (60000, 10000)
    assert set(train.targets.unique().tolist()) == set(range(10))


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_online_only_datasets_explain_that_they_need_a_network(tmp_path, monkeypatch, name):
    monkeypatch.setattr(data, "network_available", lambda *a, **k: False)
    with pytest.raises(data.DataUnavailableError, match="VQVAE_DATA") as err:
        data.load_dataset(name, root=tmp_path)
    assert "dataset-fashion-mnist" not in str(err.value)


def write_idx(path, array):
    """An unpacked idx file (the (Fashion-)MNIST format) of uint8 ``array``."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("debian", [True, False])
def test_a_truncated_fashion_mnist_file_is_named_not_taken_for_missing(tmp_path, fake_debian_dir, monkeypatch, debian):
    monkeypatch.setenv("VQVAE_DATA", str(tmp_path / "root"))
    monkeypatch.setattr(data, "network_available", lambda *a, **k: pytest.fail("must not touch the network"))
    data.load_dataset("fashion_mnist", "test", debian_dir=fake_debian_dir)  # unpacks all four files
    images = tmp_path / "root" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])
    debian_dir = fake_debian_dir if debian else tmp_path / "no-debian-files"
    with pytest.raises(data.DataCorruptError) as err:
        data.load_dataset("fashion_mnist", "test", debian_dir=debian_dir)
    message = str(err.value)
    assert f"{images} is damaged" in message
    assert "promises 10 x 28 x 28 values, 7856 bytes in all, but it holds 5000" in message
    assert "Delete it" in message and "--reinstall dataset-fashion-mnist" in message
    assert images.stat().st_size == 5000  # nothing replaced behind the reader's back


def test_a_corrupt_mnist_file_is_named_with_the_fix_not_an_assertion(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "network_available", lambda *a, **k: pytest.fail("must not touch the network"))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 4)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    assert len(data.load_dataset("mnist", "test", root=tmp_path)) == 4
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"not an idx file " * 8)
    with pytest.raises(data.DataCorruptError) as err:
        data.load_dataset("mnist", "test", root=tmp_path)
    message = str(err.value)
    assert str(raw / "t10k-labels-idx1-ubyte") in message and "idx file of 1-D unsigned bytes (00 00 08 01)" in message
    assert "Delete it; the next load gets it downloaded again" in message


def test_a_damaged_debian_archive_asks_for_a_reinstall(tmp_path, fake_debian_dir):
    packed = fake_debian_dir / "train-labels-idx1-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:-12])  # cut inside the deflate stream and the gzip trailer
    with pytest.raises(data.DataCorruptError) as err:
        data.load_dataset("fashion_mnist", root=tmp_path, debian_dir=fake_debian_dir)
    message = str(err.value)
    assert f"{packed} is damaged" in message and "apt-get install --reinstall dataset-fashion-mnist" in message
    assert not (tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte").exists()
    assert not list((tmp_path / "FashionMNIST" / "raw").glob("*.partial"))
