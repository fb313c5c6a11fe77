"""The book's models from the command line, in one process or many (``python -m vqvae_lib.train``).

    vqvae-train vqvae --set quantizer=ema --set restart_after=20 --epochs 1
    torchrun --nproc_per_node=2 -m vqvae_lib.train vqvae --set quantizer=ema --epochs 1

``MODEL`` is ``vae``, ``vqvae`` or ``prior``; ``--set field=value`` sets a field of its config
dataclass (``VAEConfig``, ``VQVAEConfig``, ``PriorConfig``). The prior trains on a code file that a
VQ-VAE run wrote with ``--export-codes``. Under torchrun each of the N processes trains a DDP
replica on 1/N of every batch (``--batch-size`` is the global batch), with NCCL on CUDA and gloo on
the CPU; the quantisers keep their codebooks equal across ranks themselves (distributed.py).
Only rank 0 shows the bar, prints, and writes ``<checkpoint-dir>/<name>.pt`` (atomically, after
every epoch); ``--resume`` continues from that file. :func:`load_trained` loads it into a model.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import sys
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DATASETS, load_dataset
from .distributed import backend_for, ddp_options, launched_by_torchrun, rank, world_size
from .prior import GatedPixelCNN, PriorConfig, encode_dataset
from .runtime import get_device, set_seed
from .train import History, fit
from .vae import GaussianVAE, VAEConfig
from .vqvae import VQVAE, VQVAEConfig

MODELS = {"vae": (VAEConfig, GaussianVAE), "vqvae": (VQVAEConfig, VQVAE), "prior": (PriorConfig, GatedPixelCNN)}


class DistributedLoss(nn.Module):
    """A model behind DDP, with the ``loss(x)`` interface that :func:`vqvae_lib.train.fit` calls.

    DDP synchronises gradients only through its own ``forward``, so training-mode losses go through
    it; evaluation (eval mode or no grad) calls the model directly and so never communicates.
    """

    class _LossForward(nn.Module):
        def __init__(self, model: nn.Module):
            super().__init__()
            self.model = model

        def forward(self, *args):
            return self.model.loss(*args)

    def __init__(self, model: nn.Module, device: torch.device):
        super().__init__()
        from torch.nn.parallel import DistributedDataParallel

        self.model = model
        ids = [device.index] if device.type == "cuda" else None
        # A 1x1 convolution's weight gradient can come back with other strides on its size-1 dims
        # than DDP's bucket: the same memory layout, so the reducer's warning about it says nothing.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        self.ddp = DistributedDataParallel(self._LossForward(model), device_ids=ids, **ddp_options())

    @property
    def conditional(self) -> bool:
        return getattr(self.model, "conditional", False)

    def loss(self, *args):
        if self.training and torch.is_grad_enabled():
            return self.ddp(*args)
        return self.model.loss(*args)


class Float64Inputs(nn.Module):
    """``model`` in float64: its floating-point inputs are cast, integer ones (codes, labels) kept."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.double()

    @property
    def conditional(self) -> bool:
        return getattr(self.model, "conditional", False)

    def loss(self, *args):
        return self.model.loss(*(a.double() if a.is_floating_point() else a for a in args))


class _FirstSamples(torch.utils.data.Sampler):
    """The first ``n`` indices of each epoch of ``sampler`` (for ``--steps``), keeping ``set_epoch``."""

    def __init__(self, sampler: DistributedSampler, n: int):
        self.sampler, self.n = sampler, n

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return (i for _, i in zip(range(self.n), self.sampler))

    def __len__(self) -> int:
        return self.n


def parse_settings(config_cls, settings: list[str]):
    """``["num_codes=512", "quantizer=ema"]`` -> ``config_cls(num_codes=512, quantizer="ema")``.

    Values are Python literals (``512``, ``0.25``, ``None``, ``(8, 5, 5, 5)``), else strings.
    """
    names = {f.name for f in fields(config_cls)}
    values = {}
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or name not in names:
            raise SystemExit(f"--set expects FIELD=VALUE with FIELD one of {sorted(names)} "
                             f"({config_cls.__name__}); got {item!r}")
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return config_cls(**values)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vqvae-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(MODELS), help="which of the book's models to train")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a config field (repeatable)")
    p.add_argument("--dataset", default="fashion_mnist", choices=sorted(DATASETS), help="images (vae, vqvae)")
    p.add_argument("--codes", type=Path, help="prior: the code file a VQ-VAE run wrote with --export-codes")
    p.add_argument("--train-size", type=int, help="train on the first N examples only (a quick run)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="passes over the data (default 1)")
    budget.add_argument("--steps", type=int, default=None, help="Adam steps, rounded up to whole equal epochs")
    p.add_argument("--batch-size", type=int, default=128, help="the global batch, split over the processes")
    p.add_argument("--lr", type=float, default=2e-4, help="Adam's learning rate (the paper's 2e-4)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="fp16 mixed precision (default: on with CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true",
                   help="train in double precision: slow, for checking numerics (DDP against one process)")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    p.add_argument("--name", help="checkpoint file name without .pt (default: the model)")
    p.add_argument("--resume", action="store_true", help="continue from <checkpoint-dir>/<name>.pt")
    p.add_argument("--export-codes", type=Path, help="vqvae: afterwards, write the train set's codes here")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes per rank")
    return p


def _train_dataset(args, config):
    if args.model == "prior":
        if args.codes is None:
            raise SystemExit("the prior trains on codes: pass --codes FILE, written by a vqvae run with --export-codes")
        saved = torch.load(args.codes, weights_only=True)
        if saved["num_codes"] != config.num_codes:
            raise SystemExit(f"{args.codes} holds codes of a {saved['num_codes']}-code VQ-VAE, but the prior's "
                             f"num_codes is {config.num_codes}: add --set num_codes={saved['num_codes']}")
        tensors = (saved["codes"], saved["labels"]) if config.num_classes else (saved["codes"],)
        dataset = TensorDataset(*tensors)
    else:
        dataset = load_dataset(args.dataset, "train")
        image = dataset[0][0]
        for name, value in (("in_channels", image.shape[0]), ("image_size", image.shape[-1])):
            if getattr(config, name, value) != value:
                raise SystemExit(f"{args.dataset} has {name} = {value}, the config {getattr(config, name)}: "
                                 f"add --set {name}={value}")
    if args.train_size is not None:
        if not 0 < args.train_size <= len(dataset):
            raise SystemExit(f"--train-size must be in 1..{len(dataset)}, got {args.train_size}")
        dataset = Subset(dataset, range(args.train_size))
    return dataset


def _loader(dataset, args) -> DataLoader:
    world = world_size()
    if args.batch_size % world:
        raise SystemExit(f"--batch-size {args.batch_size} must be a multiple of the {world} processes")
    per_rank = args.batch_size // world
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank(), shuffle=True, seed=args.seed, drop_last=True)
    batches = len(sampler) // per_rank
    if batches == 0:
        raise SystemExit(f"{len(dataset)} examples make no batch of {args.batch_size}")
    if args.steps is not None:
        epochs = math.ceil(args.steps / batches)
        batches = math.ceil(args.steps / epochs)
        sampler = _FirstSamples(sampler, batches * per_rank)
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=args.num_workers)


def _epochs(args, loader) -> int:
    if args.steps is not None:
        return math.ceil(args.steps / len(loader))
    return args.epochs or 1


def _state(args, config, optimizer, scaler) -> dict:
    return {"kind": args.model, "config": asdict(config), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "args": {k: str(v) for k, v in vars(args).items()}}


def load_trained(path: str | Path, device: torch.device | str | None = None) -> tuple[nn.Module, History]:
    """The model a CLI run saved at ``path``, rebuilt from its config, in eval mode, and its history."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("kind") not in MODELS:
        raise ValueError(f"{path} is not a checkpoint written by vqvae-train (no model kind in it)")
    config_cls, model_cls = MODELS[state["kind"]]
    config = state["config"]
    if "levels" in config and config["levels"] is not None:
        config["levels"] = tuple(config["levels"])
    model = model_cls(config_cls(**config)).to(device or get_device())
    history, _ = load_checkpoint(path, model)
    return model.eval(), history


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config_cls, model_cls = MODELS[args.model]
    config = parse_settings(config_cls, args.set)
    device = get_device()
    if launched_by_torchrun():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device))
    try:
        _run(args, config, model_cls, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run(args, config, model_cls, device: torch.device) -> None:
    if args.export_codes is not None and args.model != "vqvae":
        raise SystemExit("--export-codes applies to the vqvae model")
    main_rank = rank() == 0
    path = args.checkpoint_dir / f"{args.name or args.model}.pt"
    set_seed(args.seed)  # the same initial weights on every rank
    model = model_cls(config).to(device)
    trained = Float64Inputs(model) if args.float64 else model
    loader = _loader(_train_dataset(args, config), args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    amp = device.type == "cuda" if args.amp is None else args.amp
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    history = None
    if args.resume:
        if not path.is_file():
            raise SystemExit(f"--resume: no checkpoint at {path}; run without --resume first")
        saved = torch.load(path, map_location=device, weights_only=True)
        if saved.get("config") != asdict(config):
            raise SystemExit(f"--resume: {path} was trained with a different config: {saved.get('config')}")
        history, rng = load_checkpoint(path, model)
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], device)
    if world_size() > 1:
        trained = DistributedLoss(trained, device)

    def save(epoch: int, hist: History) -> None:
        if main_rank:
            rng = {"cpu": torch.get_rng_state()}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(device)
            save_checkpoint(path, model, hist, rng=rng, extra=_state(args, config, optimizer, scaler))

    epochs = _epochs(args, loader)
    if main_rank:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {world_size()} process(es) "
              f"on {device.type}, {epochs} epoch(s) of {len(loader)} steps, global batch {args.batch_size}")
    history = fit(trained, loader, epochs=epochs, optimizer=optimizer, desc=args.model, amp=amp, scaler=scaler,
                  history=history, after_epoch=save)
    if main_rank:
        print(f"saved {path} ({len(history.train)} steps, {history.seconds:.0f} s)")
    if args.export_codes is not None and main_rank:
        images = DataLoader(_train_dataset(args, config), batch_size=512)
        codes = encode_dataset(model.eval().encode, images, device)
        args.export_codes.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"codes": codes.tensors[0], "labels": codes.tensors[1], "num_codes": model.num_codes},
                   args.export_codes)
        print(f"wrote {len(codes)} code grids of shape {tuple(codes.tensors[0].shape[1:])} to {args.export_codes}")


if __name__ == "__main__":
    sys.exit(main())
