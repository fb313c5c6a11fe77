"""The one training loop of the book, its evaluation, and checkpoints.

A model takes part by having a method ``loss(x) -> dict`` whose ``"loss"`` entry is the scalar to
minimise; every other entry is logged. The loop is device-agnostic (it follows the model's
parameters), shows a tqdm bar, records a history, and uses mixed precision only on CUDA.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm


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


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batch_images(batch) -> torch.Tensor:
    return batch[0] if isinstance(batch, (list, tuple)) else batch


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> dict[str, float]:
    """Every entry of ``model.loss`` averaged over all examples of ``loader`` (in eval mode)."""
    was_training = model.training
    model.eval()
    device, totals, count = _model_device(model), {}, 0
    for batch in loader:
        x = _batch_images(batch).to(device, non_blocking=True)
        out = model.loss(x)
        for key, value in out.items():
            totals[key] = totals.get(key, 0.0) + value.item() * len(x)
        count += len(x)
    model.train(was_training)
    if count == 0:
        raise ValueError("the evaluation loader is empty")
    return {key: total / count for key, total in totals.items()}


def fit(
    model: torch.nn.Module,
    train_loader,
    *,
    epochs: int,
    lr: float,
    test_loader=None,
    optimizer: torch.optim.Optimizer | None = None,
    desc: str = "train",
) -> History:
    """Train ``model`` for ``epochs`` passes with Adam (unless an optimizer is given).

    Evaluates on ``test_loader`` after every epoch and prints one line per epoch; the tqdm bar is
    transient, the printed lines and the returned :class:`History` are the record.
    """
    if epochs < 1 or len(train_loader) == 0:
        raise ValueError(f"need at least one epoch and one batch, got epochs={epochs}, batches={len(train_loader)}")
    device = _model_device(model)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, step, start = History(), 0, time.perf_counter()
    model.train()
    bar = tqdm(total=epochs * len(train_loader), desc=desc, leave=False)
    for epoch in range(1, epochs + 1):
        for batch in train_loader:
            x = _batch_images(batch).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                out = model.loss(x)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            row = {"step": step, **{k: v.detach().item() for k, v in out.items()}}
            history.train.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        line = f"epoch {epoch}/{epochs}  train loss {row['loss']:.4f}"
        if test_loader is not None:
            test = evaluate(model, test_loader)
            history.test.append({"step": step, "epoch": epoch, **test})
            line += f"  test loss {test['loss']:.4f}"
        print(f"{line}  ({time.perf_counter() - start:.0f} s)")
    bar.close()
    history.seconds = time.perf_counter() - start
    return history


def checkpoint_dir() -> Path:
    """Where checkpoints are cached: ``$VQVAE_CHECKPOINTS``, else ``~/.cache/vqvae_lib/checkpoints``."""
    default = Path.home() / ".cache" / "vqvae_lib" / "checkpoints"
    return Path(os.environ.get("VQVAE_CHECKPOINTS") or default)


def _library_source() -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("*.py")))


def checkpoint_path(name: str, config: dict) -> Path:
    """A file name that changes whenever ``config`` or the library's code does.

    So a fast run never loads a full one, and a checkpoint trained by older code is never reused.
    """
    key = json.dumps(config, sort_keys=True, default=str).encode() + _library_source()
    return checkpoint_dir() / f"{name}-{hashlib.sha1(key).hexdigest()[:10]}.pt"


def save_checkpoint(path: str | Path, model: torch.nn.Module, history: History, config: dict | None = None) -> None:
    """Save weights, history and config; written to a temporary name and renamed, never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save({"model": model.state_dict(), "history": asdict(history), "config": config}, partial)
    partial.replace(path)


def load_checkpoint(path: str | Path, model: torch.nn.Module) -> History:
    """Load weights into ``model`` (onto its device) and return the saved history."""
    state = torch.load(path, map_location=_model_device(model), weights_only=True)
    model.load_state_dict(state["model"])
    return History(**state["history"])


def load_or_fit(model: torch.nn.Module, name: str, config: dict, train_loader, **fit_kwargs) -> History:
    """Load the checkpoint cached for ``(name, config)`` if there is one, else ``fit`` and cache it."""
    path = checkpoint_path(name, config)
    if path.is_file():
        history = load_checkpoint(path, model)
        print(f"loaded cached checkpoint {path.name} (trained in {history.seconds:.0f} s)")
        return history
    history = fit(model, train_loader, **fit_kwargs)
    save_checkpoint(path, model, history, config)
    return history
