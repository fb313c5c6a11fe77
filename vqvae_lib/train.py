"""The one training loop of the book and its evaluation.

A model takes part by having a method ``loss(x) -> dict`` whose ``"loss"`` entry is the scalar to
minimise; every other entry (a scalar tensor) is logged. A model with ``conditional = True`` (a
class-conditional prior) is called as ``loss(x, y)`` with the batch's labels. The loop is
device-agnostic (it follows the model's parameters), shows a tqdm bar, records a history, and uses
mixed precision only on CUDA. Caching a trained model is :mod:`vqvae_lib.checkpoint`'s job.

Under DDP (``python -m vqvae_lib`` launched by torchrun, :mod:`vqvae_lib.cli`) every rank runs
this loop on its share of the data; only rank 0 shows the bar and prints, and a loader whose sampler
has ``set_epoch`` (a ``DistributedSampler``) is told each epoch, so it reshuffles.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .distributed import rank
from .runtime import eval_mode


@dataclass
class History:
    """Per-step training metrics and per-epoch test metrics, each row a dict with ``step``."""

    train: list[dict] = field(default_factory=list)
    test: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def last(self, split: str = "test") -> dict:
        rows = getattr(self, split)
        if not rows:
            raise ValueError(f"the history has no {split} rows")
        return rows[-1]


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer): where its inputs must go."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    raise ValueError("the model has no parameters or buffers, so it has no device to train on")


def _batch_images(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def _batch_loss(model: torch.nn.Module, batch, device: torch.device) -> tuple[dict, int]:
    x = _batch_images(batch).to(device, non_blocking=True)
    if getattr(model, "conditional", False):
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError("a conditional model needs (x, labels) batches; this loader yields no labels")
        return model.loss(x, batch[1].to(device, non_blocking=True)), len(x)
    return model.loss(x), len(x)


def _stacked(out: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """Every logged scalar in one fp32 vector, so that reading them costs one host sync, not one each."""
    return torch.stack([value.detach().float().reshape(()).to(device) for value in out.values()])


def _record(history: History, keys: list[str], pending: list[torch.Tensor]) -> None:
    """Append the rows of the steps in ``pending`` (logged vectors still on the device) to ``history``
    with one host sync for all of them, and empty ``pending``."""
    if pending:
        first = len(history.train) + 1
        history.train.extend({"step": first + i, **dict(zip(keys, row))}
                             for i, row in enumerate(torch.stack(pending).tolist()))
        pending.clear()


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> dict[str, float]:
    """Every entry of ``model.loss`` averaged over all examples of ``loader`` (in eval mode).

    Each batch is weighted by its number of examples, so a short last batch counts for what it holds.
    """
    device, keys, totals, count = model_device(model), None, None, 0
    with eval_mode(model):
        for batch in loader:
            out, n = _batch_loss(model, batch, device)
            values = _stacked(out, device) * n
            keys, totals = list(out), values if totals is None else totals + values
            count += n
    if count == 0:
        raise ValueError("the evaluation loader is empty")
    return dict(zip(keys, (totals / count).tolist()))


def progress_bars_disabled() -> bool:
    """Whether tqdm's own switch, ``TQDM_DISABLE=1``, is set.

    ``tqdm.notebook`` (what ``tqdm.auto`` picks inside Jupyter) overrides that environment default with
    an explicit ``disable=False``, so the switch must be passed by hand. Under pytest it matters: a
    kernel streams widget updates while nbval is not reading them, and a long run's updates overflow
    ZeroMQ's queue, which then drops the cell's final messages (see the root ``conftest.py``).
    """
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def autocast_dtype(amp: bool | str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype that :func:`fit`'s ``amp`` names on ``device`` (None: full precision)."""
    if amp is None:
        amp = device.type == "cuda"
    choices = {False: None, True: torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}
    if isinstance(amp, str) and amp not in choices or not isinstance(amp, (bool, str)):
        raise ValueError(f"amp must be 'fp16', 'bf16', True, False or None, got {amp!r}")
    if choices[amp] == torch.float16 and device.type != "cuda":
        raise ValueError(f"amp='fp16' (autocast with a GradScaler) needs a CUDA model, this one is on {device.type}; "
                         "use amp='bf16' or no amp")
    return choices[amp]


def fit(
    model: torch.nn.Module,
    train_loader,
    *,
    epochs: int,
    lr: float | None = None,
    test_loader=None,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "train",
    amp: bool | str | None = None,
    scaler: torch.amp.GradScaler | None = None,
    history: History | None = None,
    after_epoch=None,
    log_every: int = 50,
) -> History:
    """Train ``model`` for ``epochs`` passes with Adam at ``lr`` (or with ``optimizer``, then ``lr`` is unused).

    Evaluates on ``test_loader`` after every epoch and prints one line per epoch; the tqdm bar is
    transient, the printed lines and the returned :class:`History` are the record.
    ``amp`` is the mixed precision: ``"fp16"`` (or True; autocast with a GradScaler, CUDA only),
    ``"bf16"`` (autocast to bfloat16 on the model's device, which needs no scaler: its exponent range
    is fp32's, so activations that overflow fp16 stay finite), or False; None means fp16 exactly when
    the model is on CUDA.
    To resume, pass the saved ``history`` (training continues after its last epoch), ``optimizer``
    and ``scaler``; ``after_epoch(epoch, history)`` runs after each epoch (the CLI saves there).
    Every step's metrics are recorded, but read back from the device ``log_every`` steps at a time
    (and at each epoch's end), so a GPU is not stopped after every step to hand over a few numbers.
    """
    if epochs < 1 or len(train_loader) == 0:
        raise ValueError(f"need at least one epoch and one batch, got epochs={epochs}, batches={len(train_loader)}")
    if log_every < 1:
        raise ValueError(f"log_every must be a positive number of steps, got {log_every}")
    if optimizer is None and lr is None:
        raise ValueError("give lr (for the default Adam) or an optimizer")
    device = model_device(model)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    precision = autocast_dtype(amp, device)
    scaler = scaler or torch.amp.GradScaler("cuda", enabled=precision == torch.float16)
    history = history or History()
    done = len(history.train) // len(train_loader)  # whole epochs already trained
    start, seconds_before, pending = time.perf_counter(), history.seconds, []
    main = rank() == 0
    model.train()
    bar = tqdm(total=(epochs - done) * len(train_loader), desc=desc, leave=False,
               disable=progress_bars_disabled() or not main)
    for epoch in range(done + 1, epochs + 1):
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
            train_loader.sampler.set_epoch(epoch)
        for batch in train_loader:
            with torch.autocast(device.type, dtype=precision) if precision else nullcontext():
                out, _ = _batch_loss(model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            keys = list(out)
            pending.append(_stacked(out, device))
            if len(pending) == log_every:
                _record(history, keys, pending)
                bar.set_postfix(loss=f"{history.train[-1]['loss']:.4f}")
            bar.update(1)
        _record(history, keys, pending)
        line = f"epoch {epoch}/{epochs}  train loss {history.train[-1]['loss']:.4f}"
        if test_loader is not None:
            test = evaluate(model, test_loader)
            history.test.append({"step": len(history.train), "epoch": epoch, **test})
            line += f"  test loss {test['loss']:.4f}"
        history.seconds = seconds_before + time.perf_counter() - start
        if main:
            print(f"{line}  ({history.seconds:.0f} s)")
        if after_epoch is not None:
            after_epoch(epoch, history)
    bar.close()
    return history
