"""The one training loop of the book, its evaluation, and checkpoints.

A model takes part by having a method ``loss(x) -> dict`` whose ``"loss"`` entry is the scalar to
minimise; every other entry is logged. A model with ``conditional = True`` (a class-conditional prior)
is called as ``loss(x, y)`` with the batch's labels. The loop is device-agnostic (it follows the model's
parameters), shows a tqdm bar, records a history, and uses mixed precision only on CUDA.
"""

from __future__ import annotations

import ast
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


def _batch_loss(model: torch.nn.Module, batch, device: torch.device) -> tuple[dict, int]:
    x = _batch_images(batch).to(device, non_blocking=True)
    if getattr(model, "conditional", False):
        if not isinstance(batch, (list, tuple)) or len(batch) < 2:
            raise ValueError("a conditional model needs (x, labels) batches; this loader yields no labels")
        return model.loss(x, batch[1].to(device, non_blocking=True)), len(x)
    return model.loss(x), len(x)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader) -> dict[str, float]:
    """Every entry of ``model.loss`` averaged over all examples of ``loader`` (in eval mode)."""
    was_training = model.training
    model.eval()
    device, totals, count = _model_device(model), {}, 0
    for batch in loader:
        out, n = _batch_loss(model, batch, device)
        for key, value in out.items():
            totals[key] = totals.get(key, 0.0) + value.item() * n
        count += n
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
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                out, _ = _batch_loss(model, batch, device)
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


_PACKAGE = Path(__file__).parent
_ALWAYS = ("vqvae_lib.train", "vqvae_lib.data")  # the loop and the data shape every run


def _imported_modules(name: str) -> set[str]:
    """The ``vqvae_lib`` modules that module ``name`` imports (relative or absolute imports)."""
    tree = ast.parse((_PACKAGE / f"{name.rsplit('.', 1)[-1]}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(f"vqvae_lib.{node.module}")
            elif node.level == 1:
                found.update(f"vqvae_lib.{alias.name}" for alias in node.names)
            elif (node.module or "").startswith("vqvae_lib."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vqvae_lib."))
    return {m for m in found if (_PACKAGE / f"{m.rsplit('.', 1)[-1]}.py").is_file()}


def _library_source(modules: set[str] | None = None) -> bytes:
    """The source of ``modules`` and every ``vqvae_lib`` module they import; all of it when ``None``."""
    if modules is None:
        files = sorted(_PACKAGE.glob("*.py"))
    else:
        closure, todo = set(), list(modules)
        while todo:
            name = todo.pop()
            if name not in closure:
                closure.add(name)
                todo.extend(_imported_modules(name))
        files = [_PACKAGE / f"{m.rsplit('.', 1)[-1]}.py" for m in sorted(closure)]
    return b"".join(p.read_bytes() for p in files)


def checkpoint_path(name: str, config: dict, model: torch.nn.Module | None = None) -> Path:
    """A file name that changes whenever ``config`` or the code that trains the model does.

    So a fast run never loads a full one, and a checkpoint trained by older code is never reused.
    With ``model`` the code is the modules defining its classes, what they import, the loop and the
    data module, so adding a chapter's module does not invalidate an earlier chapter's checkpoint;
    without it, the whole library.
    """
    modules = None
    if model is not None:
        modules = {type(m).__module__ for m in model.modules() if type(m).__module__.startswith("vqvae_lib.")}
        modules.update(_ALWAYS)
    key = json.dumps(config, sort_keys=True, default=str).encode() + _library_source(modules)
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
    path = checkpoint_path(name, config, model)
    if path.is_file():
        history = load_checkpoint(path, model)
        print(f"loaded cached checkpoint {path.name} (trained in {history.seconds:.0f} s)")
        return history
    history = fit(model, train_loader, **fit_kwargs)
    save_checkpoint(path, model, history, config)
    return history
