"""The book's models from the command line, in one process or many (``python -m vqvae_lib``).

    vqvae-train vqvae --set quantizer=ema --set restart_after=20 --epochs 1
    torchrun --nproc_per_node=2 -m vqvae_lib vqvae --set quantizer=ema --epochs 1

``MODEL`` is ``vae``, ``vqvae`` or ``prior``; ``--set field=value`` sets a field of its config
dataclass (``VAEConfig``, ``VQVAEConfig``, ``PriorConfig``), read as the field's type (true/false for
a flag, none for an optional field, (8, 5, 5, 5) for FSQ's levels). The prior trains on a code file
that a VQ-VAE run wrote with ``--export-codes``. Under torchrun each of the N processes trains a DDP
replica on 1/N of every batch (``--batch-size`` is the global batch), with NCCL on CUDA and gloo on
the CPU; the quantisers keep their codebooks equal across ranks themselves (distributed.py).
Only rank 0 shows the bar, prints, and writes ``<checkpoint-dir>/<name>.pt`` (atomically, after
every epoch); ``--resume`` continues from that file. :func:`load_trained` loads it into a model.
Every flag, value and file is checked before training starts: a mistake ends the run with one line,
``vqvae-train: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import ast
import math
import os
import re
import sys
import types
import typing
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset, TensorDataset

from .checkpoint import load_checkpoint, save_checkpoint
from .data import DATASETS, DataUnavailableError, encode_dataset, load_dataset
from .distributed import backend_for, ddp_options, launched_by_torchrun, rank, world_size
from .prior import GatedPixelCNN, PriorConfig
from .runtime import get_device, set_seed
from .train import History, fit
from .vae import GaussianVAE, VAEConfig
from .vqvae import VQVAE, VQVAEConfig

MODELS = {"vae": (VAEConfig, GaussianVAE), "vqvae": (VQVAEConfig, VQVAE), "prior": (PriorConfig, GatedPixelCNN)}
RESUME_MUST_MATCH = ("dataset", "train_size", "batch_size")  # what decides the batches a resumed run sees


class UsageError(Exception):
    """A mistake in the command line or in the files it names; ``main`` prints it in one line."""


# The errors a user's input causes while a run is set up. ValueError is the library's answer to a bad
# config or a corrupt checkpoint; once training starts, every exception is a bug and keeps its traceback.
USER_ERRORS = (UsageError, ValueError, FileNotFoundError, DataUnavailableError)
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


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_value(text: str, kind):
    """``text`` as a value of the type ``kind``: bool (true/false, yes/no, 1/0, any case), int, float, str,
    a tuple or list of ints (a literal such as ``(8, 5, 5, 5)``), or one of these ``| None`` (``none``).

    Raises ValueError when ``text`` is not such a value.
    """
    options = typing.get_args(kind) if typing.get_origin(kind) in (types.UnionType, typing.Union) else (kind,)
    if type(None) in options and text.strip().lower() == "none":
        return None
    (kind,) = [option for option in options if option is not type(None)]
    if kind is bool:
        word = text.strip().lower()
        if word not in _BOOLS:
            raise ValueError(f"not one of {', '.join(_BOOLS)}")
        return _BOOLS[word]
    if kind in (int, float, str):
        return kind(text)
    if typing.get_origin(kind) not in (tuple, list):
        raise TypeError(f"--set cannot read a {kind} yet")  # a new config field's type: a bug, not the user's
    value = ast.literal_eval(text.strip())
    item = typing.get_args(kind)[0]
    if not isinstance(value, (tuple, list)) or not all(type(v) is item for v in value):
        raise ValueError(f"not a sequence of {item.__name__}")
    return typing.get_origin(kind)(value)


def _type_name(kind) -> str:
    return kind.__name__ if isinstance(kind, type) else str(kind)


def parse_settings(config_cls, settings: list[str]):
    """``["num_codes=512", "kmeans_init=true"]`` -> ``config_cls(num_codes=512, kmeans_init=True)``.

    Each value is read as its field's declared type (:func:`parse_value`); a UsageError names the
    field, its type and the value that is not one, or passes on what the config itself refuses.
    """
    kinds = typing.get_type_hints(config_cls)
    names = [f.name for f in fields(config_cls)]
    values = {}
    for item in settings:
        name, sep, text = item.partition("=")
        if not sep or name not in names:
            raise UsageError(f"--set expects FIELD=VALUE with FIELD one of {', '.join(names)} "
                             f"({config_cls.__name__}); got {item!r}")
        try:
            values[name] = parse_value(text, kinds[name])
        except (ValueError, SyntaxError):
            raise UsageError(f"--set {name}: expected {_type_name(kinds[name])}, got {text!r}"
                             + (" (true or false)" if kinds[name] is bool else "")) from None
    try:
        return config_cls(**values)
    except ValueError as error:
        raise UsageError(f"--set: {error}") from None


def _number(kind: type, accept, words: str):
    """An argparse type: ``kind(text)`` if ``accept`` takes it, else an error saying it must be ``words``."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value
    return parse


POSITIVE = _number(int, lambda n: n >= 1, "a positive integer")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        # argparse prints its usage block first, which buries the one line that matters
        self.exit(2, f"{self.prog}: error: {message}\n")


def _plain_text(rest: str) -> str:
    """reST as plain text (for --help): ``literals`` and :func:`roles` keep their words, lose their marks."""
    return re.sub(r"(:\w+:)?`+([^`]*)`+", r"\2", rest)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="vqvae-train", description=_plain_text(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(MODELS), help="which of the book's models to train")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a config field (repeatable)")
    p.add_argument("--dataset", default="fashion_mnist", choices=sorted(DATASETS), help="images (vae, vqvae)")
    p.add_argument("--codes", type=Path, help="prior: the code file a VQ-VAE run wrote with --export-codes")
    p.add_argument("--train-size", type=POSITIVE, help="train on the first N examples only (a quick run)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=POSITIVE, default=None, help="passes over the data (default 1)")
    budget.add_argument("--steps", type=POSITIVE, default=None, help="Adam steps, rounded up to whole equal epochs")
    p.add_argument("--batch-size", type=POSITIVE, default=128, help="the global batch, split over the processes")
    p.add_argument("--lr", type=_number(float, lambda lr: 0 < lr < math.inf, "a positive learning rate"), default=2e-4,
                   help="Adam's learning rate (the paper's 2e-4)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="fp16 mixed precision (default: on with CUDA, unless --float64 or --bf16)")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 mixed precision instead: no gradient scaler, and no fp16 overflow (any device)")
    p.add_argument("--seed", type=_number(int, lambda s: 0 <= s < 2**32, "an integer in 0..2**32-1"), default=0)
    p.add_argument("--float64", action="store_true",
                   help="train in double precision: slow, for checking numerics (DDP against one process)")
    p.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    p.add_argument("--name", help="checkpoint file name without .pt (default: the model)")
    p.add_argument("--resume", action="store_true", help="continue from <checkpoint-dir>/<name>.pt")
    p.add_argument("--export-codes", type=Path, help="vqvae: afterwards, write the train set's codes here")
    p.add_argument("--num-workers", type=_number(int, lambda n: n >= 0, "a number >= 0"), default=0,
                   help="DataLoader worker processes per rank")
    return p


def _read(path: Path, flag: str, fix: str) -> dict:
    """The dict that ``torch.save`` wrote at ``path``; otherwise a UsageError naming ``flag`` and ``fix``."""
    if not path.is_file():
        raise UsageError(f"{flag}: there is no file {path}; {fix}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load's errors for a file it cannot parse vary: RuntimeError, KeyError, EOFError...
        raise UsageError(f"{flag}: {path} cannot be read ({type(error).__name__}); {fix}") from None
    if not isinstance(saved, dict):
        raise UsageError(f"{flag}: {path} holds a {type(saved).__name__}, not what vqvae-train writes; {fix}")
    return saved


def _check_writable(path: Path, flag: str) -> None:
    """Refuse ``path`` now if it could not be written after training: its folder is a file or read-only."""
    if path.is_dir():
        raise UsageError(f"{flag}: {path} is a folder, so no file can be written there")
    folder = next(parent for parent in path.parents if parent.exists())  # the one that mkdir would start from
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"{flag}: cannot write {path}, because {folder} is not a folder this user may write to")


def _train_dataset(args, config):
    if args.model == "prior":
        dataset = _codes_dataset(args, config)
    else:
        dataset = load_dataset(args.dataset, "train")
        image = dataset[0][0]
        for name, value in (("in_channels", image.shape[0]), ("image_size", image.shape[-1])):
            if getattr(config, name, value) != value:
                raise UsageError(f"{args.dataset} has {name} = {value}, the config {getattr(config, name)}: "
                                 f"add --set {name}={value}")
    if args.train_size is not None:
        if args.train_size > len(dataset):
            raise UsageError(f"--train-size must be in 1..{len(dataset)}, got {args.train_size}")
        dataset = Subset(dataset, range(args.train_size))
    return dataset


def _codes_dataset(args, config) -> TensorDataset:
    write = "write one with vqvae-train vqvae --export-codes FILE"
    if args.codes is None:
        raise UsageError("the prior trains on codes: pass --codes FILE, written by a vqvae run with --export-codes")
    saved = _read(args.codes, "--codes", write)
    if not all(isinstance(saved.get(key), torch.Tensor) for key in ("codes", "labels")) or "num_codes" not in saved:
        raise UsageError(f"--codes: {args.codes} is not a code file (it lacks codes, labels or num_codes); {write}")
    if saved["num_codes"] != config.num_codes:
        raise UsageError(f"{args.codes} holds codes of a {saved['num_codes']}-code VQ-VAE, but the prior's "
                         f"num_codes is {config.num_codes}: add --set num_codes={saved['num_codes']}")
    return TensorDataset(*((saved["codes"], saved["labels"]) if config.num_classes else (saved["codes"],)))


def _loader(dataset, args) -> DataLoader:
    world = world_size()
    if args.batch_size % world:
        raise UsageError(f"--batch-size {args.batch_size} must be a multiple of the {world} processes")
    per_rank = args.batch_size // world
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank(), shuffle=True, seed=args.seed, drop_last=True)
    batches = len(sampler) // per_rank
    if batches == 0:
        raise UsageError(f"{len(dataset)} examples make no batch of {args.batch_size}: lower --batch-size")
    if args.steps is not None:
        epochs = math.ceil(args.steps / batches)
        batches = math.ceil(args.steps / epochs)
        sampler = _FirstSamples(sampler, batches * per_rank)
    return DataLoader(dataset, batch_size=per_rank, sampler=sampler, drop_last=True, num_workers=args.num_workers)


def _epochs(args, loader) -> int:
    if args.steps is not None:
        return math.ceil(args.steps / len(loader))
    return args.epochs or 1


def _state(args, config, optimizer, scaler, loader) -> dict:
    return {"kind": args.model, "config": asdict(config), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(), "args": {k: str(v) for k, v in vars(args).items()},
            "steps_per_epoch": len(loader)}


def _checkpoint_path(args) -> Path:
    return args.checkpoint_dir / f"{args.name or args.model}.pt"


def _check_resumable(saved: dict, path: Path, args, config) -> None:
    """Refuse to continue the run saved in ``path`` with another model, config or other batches."""
    if saved.get("kind") != args.model:
        raise UsageError(f"--resume: {path} holds no {args.model} run of vqvae-train; pick another --name")
    then, now = saved.get("config") or {}, asdict(config)
    if then != now:
        changes = ", ".join(f"{name}={then.get(name)!r} (now {now.get(name)!r})"
                            for name in sorted(then.keys() | now.keys()) if then.get(name) != now.get(name))
        raise UsageError(f"--resume: {path} was trained with a different config, {changes}; resume with its --set values")
    before = saved.get("args", {})
    differ = [name for name in RESUME_MUST_MATCH if name in before and before[name] != str(getattr(args, name))]
    if args.model == "prior" and "dataset" in differ:
        differ.remove("dataset")  # the prior's data is --codes
    if differ:
        flags = ", ".join(f"--{name.replace('_', '-')} {before[name]} (now {getattr(args, name)})" for name in differ)
        raise UsageError(f"--resume: {path} was trained with {flags}; resume with the same values")


def _prepare(args, device: torch.device) -> tuple[nn.Module, DataLoader, dict]:
    """Check everything a run needs and build it: the model (resumed if asked), the loader, fit's settings.

    Every UsageError of a run comes from here, before the first step.
    """
    config_cls, model_cls = MODELS[args.model]
    config = parse_settings(config_cls, args.set)
    if args.export_codes is not None and args.model != "vqvae":
        raise UsageError("--export-codes applies to the vqvae model")
    if args.codes is not None and args.model != "prior":
        raise UsageError(f"--codes applies to the prior model; the {args.model} trains on --dataset")
    amp = (device.type == "cuda" and not args.float64) if args.amp is None else args.amp
    if amp and device.type != "cuda":
        raise UsageError(f"--amp (fp16 mixed precision) needs a CUDA GPU, and this run is on {device.type}: drop --amp")
    if args.bf16 and (args.amp or args.float64):
        raise UsageError(f"--bf16 and {'--amp' if args.amp else '--float64'} ask for two precisions: drop one")
    if amp and args.float64:
        raise UsageError("--amp and --float64 ask for two precisions: drop one")
    amp = "bf16" if args.bf16 else amp
    path = _checkpoint_path(args)
    _check_writable(path, "--checkpoint-dir/--name")
    if args.export_codes is not None:
        _check_writable(args.export_codes, "--export-codes")
    if args.resume:
        saved = _read(path, "--resume", "run without --resume first, or give the first run's --name")
        _check_resumable(saved, path, args, config)
    set_seed(args.seed)  # the same initial weights on every rank
    model = model_cls(config).to(device)
    loader = _loader(_train_dataset(args, config), args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is True)  # fp16 only: bf16 needs no scaler
    epochs, history = _epochs(args, loader), None
    if args.resume:
        if saved.get("steps_per_epoch", len(loader)) != len(loader):
            raise UsageError(f"--resume: the epochs of {path} had {saved['steps_per_epoch']} steps and this run's "
                             f"have {len(loader)} (--steps rounds to whole equal epochs): choose --epochs or --steps "
                             "so that they match")
        history, rng = load_checkpoint(path, model)
        done = len(history.train) // len(loader)
        if done >= epochs:
            raise UsageError(f"--resume: {path} has already trained {done} epoch(s) and this run asks for {epochs}, "
                             f"so there is nothing left to train: ask for more (--epochs {done + 1})")
        optimizer.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        torch.set_rng_state(rng["cpu"].cpu())  # a ByteTensor on the CPU, whatever the file was loaded onto
        if "cuda" in rng and device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), device)
    return model, loader, dict(epochs=epochs, optimizer=optimizer, scaler=scaler, amp=amp, history=history)


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
    """``vqvae-train``: check the command line and its files, then train. A user's mistake exits with
    status 2 and one line on stderr; an error once training has started is a bug and keeps its traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    device = get_device()
    if launched_by_torchrun():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device))
    try:
        try:
            model, loader, settings = _prepare(args, device)
        except USER_ERRORS as error:
            parser.error(" ".join(str(error).splitlines()))
        _train(args, model, loader, settings, device)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(args, model: nn.Module, loader: DataLoader, settings: dict, device: torch.device) -> None:
    main_rank, path = rank() == 0, _checkpoint_path(args)
    config, optimizer, scaler = model.config, settings["optimizer"], settings["scaler"]
    trained = Float64Inputs(model) if args.float64 else model
    if world_size() > 1:
        trained = DistributedLoss(trained, device)

    def save(epoch: int, hist: History) -> None:
        if main_rank:
            rng = {"cpu": torch.get_rng_state()}
            if device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state(device)
            save_checkpoint(path, model, hist, rng=rng, extra=_state(args, config, optimizer, scaler, loader))

    if main_rank:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters()):,} parameters, {world_size()} process(es) "
              f"on {device.type}, {settings['epochs']} epoch(s) of {len(loader)} steps, global batch {args.batch_size}")
    history = fit(trained, loader, desc=args.model, after_epoch=save, **settings)
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
