"""Shared fixtures: a tiny fake Fashion-MNIST in Debian's layout (gzip'd idx files)."""

import gzip
import struct

import numpy as np
import pytest


def write_idx_gz(path, array):
    """Write ``array`` (uint8) as a gzip'd idx file, the format of (Fashion-)MNIST."""
    magic = 0x0800 + array.ndim  # 0x08: unsigned byte
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_debian_dir(tmp_path):
    """A folder shaped like /usr/share/datasets/fashion-mnist with 40 train and 10 test images."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "debian"
    folder.mkdir()
    for prefix, n in (("train", 40), ("t10k", 10)):
        write_idx_gz(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx_gz(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder
