"""Image datasets for the book, through ``torchvision.datasets``.

Fashion-MNIST is the running dataset; MNIST and CIFAR-10 (the paper's setting) are there for
readers with a network.

**Pixel range.** Every image tensor is in ``[0, 1]`` and equals ``k / 255`` for its 8-bit value
``k`` (``torchvision.transforms.ToTensor``). We keep exactly that range, not a standardised one,
because every likelihood in this book is a distribution over the 256 discrete pixel values, and
``k = round(255 * x)`` recovers them without loss. That is what makes bits/dim honest.
Models rescale to ``[-1, 1]`` inside themselves.

**Where the data lives.** ``$VQVAE_DATA`` if set, else ``~/.cache/vqvae_lib/data``. With Debian's
package ``dataset-fashion-mnist`` installed, Fashion-MNIST is unpacked from
``/usr/share/datasets/fashion-mnist/*.gz`` into ``<root>/FashionMNIST/raw/`` (Debian rewrote the
gzip headers, so torchvision's md5 check of the ``.gz`` files fails; the unpacked files pass).
Otherwise torchvision downloads, if the network answers within seconds. With neither, loading
raises :class:`DataUnavailableError` saying how to get the data; it never substitutes other data.
An MNIST or Fashion-MNIST file that is there but truncated or damaged raises
:class:`DataCorruptError`, naming the file and how to get it again.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
import socket
import struct
import zlib
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from torchvision import datasets, transforms

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
DATASETS = {
    "fashion_mnist": datasets.FashionMNIST,
    "mnist": datasets.MNIST,
    "cifar10": datasets.CIFAR10,
}
IDX_DATASETS = ("fashion_mnist", "mnist")
NETWORK_TIMEOUT_S = 3.0


class DataUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable from here."""


class DataCorruptError(ValueError):
    """A data file or folder is there but truncated, damaged or empty: the message names it and the fix."""


def data_root() -> Path:
    """The data folder: ``$VQVAE_DATA``, else ``~/.cache/vqvae_lib/data``."""
    return Path(os.environ.get("VQVAE_DATA") or Path.home() / ".cache" / "vqvae_lib" / "data")


def unpack_debian_fashion_mnist(root: Path, source: Path = DEBIAN_FASHION_MNIST) -> bool:
    """Unpack Debian's ``*.gz`` files (``gunzip -c``) into ``<root>/FashionMNIST/raw/``.

    Returns True when all four files are in place afterwards, False when ``source`` lacks them.
    Each file is written under a temporary name and renamed, so an interrupted unpack never
    leaves a truncated file that would pass for data.
    """
    source = Path(source)
    if not all((source / f"{name}.gz").is_file() for name in FASHION_MNIST_FILES):
        return False
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_FILES:
        target = raw / name
        if target.is_file():
            continue
        packed, partial = source / f"{name}.gz", raw / f"{name}.partial"
        try:
            with gzip.open(packed, "rb") as src, open(partial, "wb") as dst:
                shutil.copyfileobj(src, dst)
            problem = idx_problem(partial)
        except (OSError, EOFError, zlib.error) as err:
            problem = f"it cannot be unpacked ({err})"
        if problem:
            partial.unlink(missing_ok=True)
            raise DataCorruptError(
                f"{packed} is damaged: {problem}. Expected a gzip'd idx file of Fashion-MNIST. Reinstall "
                "Debian's copy with `sudo apt-get install --reinstall dataset-fashion-mnist`."
            )
        partial.replace(target)
    return True


def idx_problem(path: Path) -> str | None:
    """What is wrong with the idx file (the format of MNIST and Fashion-MNIST) at ``path``, or None.

    An idx file of N-D unsigned bytes (N = 3 for images, 1 for labels, the ``idxN`` of its name) is
    the magic ``00 00 08 N``, N big-endian uint32 sizes, then their product in bytes: nothing more.
    """
    ndim = 3 if "idx3" in Path(path).name else 1
    with open(path, "rb") as f:
        header = f.read(4 * (ndim + 1))
    if len(header) < 4 * (ndim + 1) or header[:4] != bytes([0, 0, 8, ndim]):
        return f"it does not start with the header of an idx file of {ndim}-D unsigned bytes (00 00 08 0{ndim})"
    sizes = struct.unpack(f">{ndim}I", header[4:])
    expected, actual = len(header) + math.prod(sizes), Path(path).stat().st_size
    if actual != expected:
        shape = " x ".join(map(str, sizes))
        return f"its header promises {shape} values, {expected} bytes in all, but it holds {actual} bytes"
    return None


def _idx_files(name: str, root: Path) -> list[Path]:
    """The unpacked files torchvision reads for MNIST or Fashion-MNIST: ``<root>/<Class>/raw/*-ubyte``."""
    dataset_cls = DATASETS[name]
    raw = root / dataset_cls.__name__ / "raw"
    return [raw / Path(resource).name.removesuffix(".gz") for resource, _ in dataset_cls.resources]


def _corrupt_message(name: str, path: Path, problem: str, debian_dir: Path) -> str:
    if name == "fashion_mnist":
        again = (f"unpacked again from {Path(debian_dir) / path.name}.gz if Debian's dataset-fashion-mnist is "
                 "installed (if that copy is damaged too: `sudo apt-get install --reinstall dataset-fashion-mnist`), "
                 "else downloaded again")
    else:
        again = "downloaded again by torchvision"
    return f"{path} is damaged: {problem}.\nDelete it; the next load gets it {again} (a download needs the network)."


def _download_host(dataset_cls) -> str:
    url = dataset_cls.mirrors[0] if hasattr(dataset_cls, "mirrors") else dataset_cls.url
    return urlparse(url).hostname


def network_available(host: str, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether ``host:443`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _missing_message(name: str, root: Path, host: str) -> str:
    lines = [f"The {name} dataset is not in {root} and {host} cannot be reached to download it."]
    if name == "fashion_mnist":
        lines.append(
            "Offline: install Debian's real copy with "
            "`sudo apt-get install dataset-fashion-mnist`; vqvae_lib unpacks it from "
            f"{DEBIAN_FASHION_MNIST} automatically."
        )
    lines.append(
        "Or connect to the network so torchvision can download it, or point the VQVAE_DATA "
        "environment variable at a folder that already holds it "
        f"(expected layout: $VQVAE_DATA/{DATASETS[name].__name__}/...)."
    )
    return "\n".join(lines)


def load_dataset(
    name: str = "fashion_mnist",
    split: str = "train",
    root: str | Path | None = None,
    debian_dir: str | Path | None = None,
) -> Dataset:
    """One split of a torchvision image dataset, as ``(image, label)`` with images in ``[0, 1]``.

    ``name`` is one of ``fashion_mnist``, ``mnist``, ``cifar10``; ``split`` is ``train`` or ``test``.
    ``debian_dir`` defaults to :data:`DEBIAN_FASHION_MNIST`. Raises :class:`DataUnavailableError`
    (within seconds) when the data is neither on disk nor downloadable, and :class:`DataCorruptError`
    when an MNIST or Fashion-MNIST file on disk is truncated or damaged.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else data_root()
    dataset_cls = DATASETS[name]
    kwargs = dict(root=str(root), train=split == "train", transform=transforms.ToTensor())
    debian_dir = DEBIAN_FASHION_MNIST if debian_dir is None else debian_dir
    if name in IDX_DATASETS:
        files = _idx_files(name, root)
        if name == "fashion_mnist" and not all(f.is_file() for f in files):
            unpack_debian_fashion_mnist(root, debian_dir)
        for f in files:
            problem = idx_problem(f) if f.is_file() else None
            if problem:
                raise DataCorruptError(_corrupt_message(name, f, problem, debian_dir))
        if all(f.is_file() for f in files):
            return dataset_cls(download=False, **kwargs)
    else:
        try:
            return dataset_cls(download=False, **kwargs)
        except RuntimeError:
            pass  # not on disk yet, or failing torchvision's md5 check: downloaded again below
    host = _download_host(dataset_cls)
    if not network_available(host):
        raise DataUnavailableError(_missing_message(name, root, host))
    return dataset_cls(download=True, **kwargs)


def make_loaders(
    name: str = "fashion_mnist",
    batch_size: int = 128,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders; ``train_size``/``test_size`` take a seeded random subset (fast profile).

    The train loader reshuffles every epoch from its own seeded generator, so two runs with the
    same seed see the same batches in the same order.
    """
    loaders = []
    for split, size in (("train", train_size), ("test", test_size)):
        dataset = load_dataset(name, split, root)
        if size is not None:
            if not 0 < size <= len(dataset):
                raise ValueError(f"{split}_size must be in 1..{len(dataset)}, got {size}")
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
            dataset = Subset(dataset, order[:size].tolist())
        is_train = split == "train"
        loaders.append(
            DataLoader(
                dataset,
                batch_size=batch_size,
                shuffle=is_train,
                drop_last=is_train,
                num_workers=num_workers,
                generator=torch.Generator().manual_seed(seed) if is_train else None,
            )
        )
    return loaders[0], loaders[1]


@torch.no_grad()
def encode_dataset(encode, loader, device: torch.device | str) -> TensorDataset:
    """The paper's second stage starts here: run ``encode`` (images -> codes) once over ``loader``.

    Returns a ``TensorDataset`` of ``(codes (n, H, W) int64, labels (n,))`` on the CPU, in the loader's
    order, so the prior trains on indices and never runs the encoder again.
    """
    codes, labels = [], []
    for batch in loader:
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError("encode_dataset needs a loader of (images, labels) batches")
        codes.append(encode(batch[0].to(device)).cpu())
        labels.append(batch[1])
    if not codes:
        raise ValueError("the loader is empty")
    return TensorDataset(torch.cat(codes), torch.cat(labels))
