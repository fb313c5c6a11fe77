"""A cache of trained models, keyed by everything that decides what training produces.

``load_or_fit`` trains a model once and afterwards loads it. Its key is the *run*:

- the model's class and its config dataclass (``model.config``: sizes, beta, decay, ...; only the
  fields that act, where the config says which with ``acting_fields()``);
- a fingerprint of its initial weights and buffers (so the seed before building it counts);
- the training settings: epochs, learning rate, seed, device type;
- the data: which dataset, which subset (a hash of the indices), batch size, shuffling;
  the test loader likewise, because its numbers are stored in the history;
- the code that trains it: the modules defining the model's classes, every ``vqvae_lib`` module they
  import, the loop and this module, each parsed and dumped with its docstrings dropped, so that
  editing prose or comments never retrains anything, and editing code always does.

The key is stored inside the checkpoint and compared on load. A run starts by seeding the global
RNG and the loader's generator with ``seed``; the states training leaves behind are saved and, on a
cache hit, restored, so the cells after a hit draw the same numbers as after a miss.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path

import torch
from torch.utils.data import RandomSampler, Subset, TensorDataset

from .train import History, fit, model_device

_PACKAGE = Path(__file__).parent
_MODULES_OF_EVERY_RUN = ("vqvae_lib.train", "vqvae_lib.checkpoint", "vqvae_lib.data")  # they shape every run


def checkpoint_dir() -> Path:
    """Where checkpoints are cached: ``$VQVAE_CHECKPOINTS``, else ``~/.cache/vqvae_lib/checkpoints``."""
    default = Path.home() / ".cache" / "vqvae_lib" / "checkpoints"
    return Path(os.environ.get("VQVAE_CHECKPOINTS") or default)


def _sha1(data) -> str:
    """Hex SHA-1 of bytes or of any contiguous buffer (a NumPy view of a tensor: hashed in place, not copied)."""
    return hashlib.sha1(data).hexdigest()


def _module_file(name: str) -> Path:
    """The file of ``vqvae_lib`` module ``name``: ``vqvae_lib.quantizers.vq`` -> ``quantizers/vq.py``,
    a package -> its ``__init__.py``."""
    path = _PACKAGE.joinpath(*name.split(".")[1:])
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _read_source(name: str) -> str:
    return _module_file(name).read_text()


def imported_modules(name: str) -> set[str]:
    """The ``vqvae_lib`` modules that module ``name`` imports anywhere in its file: ``import``,
    ``from ... import`` (absolute or relative, at any depth, of modules or of names), and
    ``importlib.import_module("vqvae_lib...")`` with a literal name."""
    package = name if _module_file(name).name == "__init__.py" else name.rsplit(".", 1)[0]
    found = _imports_in(_read_source(name), package)
    return {m for m in found if m != "vqvae_lib" and m != name and _module_file(m).is_file()}


@functools.lru_cache(maxsize=None)  # a pure function of the text: parsed once per process, not once per run
def _imports_in(source: str, package: str) -> frozenset[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            if base.startswith("vqvae_lib"):
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vqvae_lib"))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("vqvae_lib")):
            found.add(node.args[0].value)
    return frozenset(found)


class _DropDocstrings(ast.NodeTransformer):
    def visit_Expr(self, node: ast.Expr):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a bare string statement (docstring) does nothing at run time
        return node


@functools.lru_cache(maxsize=None)  # keyed by the text itself, so an edited file is hashed afresh
def code_fingerprint(source: str) -> str:
    """A hash of what ``source`` does: its syntax tree without docstrings. Comments, blank lines and
    line breaks never reach the tree; a changed name, number or statement changes the hash."""
    tree = _DropDocstrings().visit(ast.parse(source))
    return _sha1(ast.dump(tree).encode())


def _closure(modules: set[str]) -> list[str]:
    closure, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo.extend(imported_modules(name))
    return sorted(closure)


def _state_fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _dataset_fingerprint(dataset) -> dict:
    if isinstance(dataset, Subset):
        indices = torch.as_tensor(list(dataset.indices), dtype=torch.int64)
        return {"subset_of": _dataset_fingerprint(dataset.dataset), "indices": _sha1(indices.numpy().tobytes())}
    if isinstance(dataset, TensorDataset):
        return {"tensors": [_sha1(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
                            + f":{t.dtype}:{tuple(t.shape)}" for t in dataset.tensors]}
    return {"class": f"{type(dataset).__module__}.{type(dataset).__qualname__}", "size": len(dataset),
            "train": getattr(dataset, "train", None)}


def _loader_fingerprint(loader) -> dict | None:
    if loader is None:
        return None
    return {"dataset": _dataset_fingerprint(loader.dataset), "batch_size": loader.batch_size,
            "drop_last": loader.drop_last, "shuffle": isinstance(loader.sampler, RandomSampler)}


def run_key(model: torch.nn.Module, train_loader, *, epochs: int, lr: float, seed: int = 0, test_loader=None) -> dict:
    """Everything that decides what ``load_or_fit`` would produce (see the module docstring), as a
    JSON-able dict. ``model`` must carry its config dataclass as ``model.config``."""
    config = getattr(model, "config", None)
    if not is_dataclass(config):
        raise TypeError(f"{type(model).__name__} has no config dataclass (model.config); build the model from one, "
                        "e.g. VQVAE(VQVAEConfig(...)), so that the checkpoint key can name every setting")
    modules = {type(m).__module__ for m in model.modules() if type(m).__module__.startswith("vqvae_lib.")}
    code = {name: code_fingerprint(_read_source(name)) for name in _closure(modules | set(_MODULES_OF_EVERY_RUN))}
    return {
        "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "config": config.acting_fields() if hasattr(config, "acting_fields") else asdict(config),
        "initial_state": _state_fingerprint(model),
        "train": {"epochs": epochs, "lr": lr, "seed": seed, "device": model_device(model).type},
        "train_data": _loader_fingerprint(train_loader),
        "test_data": _loader_fingerprint(test_loader),
        "code": code,
    }


def _as_json(key: dict | None) -> dict | None:
    return None if key is None else json.loads(json.dumps(key, sort_keys=True))


def checkpoint_path(name: str, key: dict) -> Path:
    """``<checkpoint_dir>/<name>-<hash of key>.pt``: a different run never shares a file."""
    return checkpoint_dir() / f"{name}-{_sha1(json.dumps(key, sort_keys=True).encode())[:10]}.pt"


def _rng_state(device: torch.device, loader) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if getattr(loader, "generator", None) is not None:
        state["loader"] = loader.generator.get_state()
    return state


def _set_rng_state(state: dict, device: torch.device, loader) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    if "loader" in state:
        loader.generator.set_state(state["loader"])


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there, so that a run fails before
    training rather than after it; raises a ValueError that names the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise ValueError(f"cannot write checkpoints to {folder} ({err.strerror or err}); choose a writable "
                         "folder, e.g. set VQVAE_CHECKPOINTS or --checkpoint-dir") from err
    return folder


def save_checkpoint(path: str | Path, model: torch.nn.Module, history: History, key: dict | None = None,
                    rng: dict | None = None, extra: dict | None = None) -> None:
    """Save weights (parameters and buffers), history, key, RNG states and ``extra`` entries (the
    command line's optimiser state and config). The file is written under a temporary name of its
    own in the same folder and then renamed, so a reader never sees it half-written and two writers
    of the same path never share a temporary file (the last rename wins, whole)."""
    path = Path(path)
    check_writable(path.parent)
    state = {"model": model.state_dict(), "history": asdict(history), "key": _as_json(key), "rng": rng}
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save({**(extra or {}), **state}, file)
        os.replace(partial, path)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def read_checkpoint(path: str | Path) -> dict:
    """The saved dict of a checkpoint file, every tensor on the CPU (weights are moved to a model's
    device when loaded into it; RNG states must stay CPU byte tensors). A file that is not a whole
    checkpoint raises a ValueError that names it and says to delete it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # a truncated zip, a pickle of something else, garbage: torch's errors vary
        raise ValueError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:120]}); "
                         "it is damaged or not a checkpoint: delete it to retrain") from err
    if not isinstance(state, dict) or not {"model", "history"} <= set(state):
        raise ValueError(f"checkpoint {path} is not a checkpoint of this library (no weights and history in it); "
                         "delete it to retrain")
    return state


def load_checkpoint(path: str | Path, model: torch.nn.Module, key: dict | None = None) -> tuple[History, dict | None]:
    """Load weights into ``model`` (onto its device, whatever device saved them); returns the history
    and the saved RNG states (CPU tensors, as ``torch.set_rng_state`` requires).

    With ``key``, the key stored in the file must equal it, or a ValueError names what differs.
    """
    state = read_checkpoint(path)
    key, stored = _as_json(key), state.get("key") or {}
    if key is not None and stored != key:
        differ = sorted(k for k in set(key) | set(stored) if stored.get(k) != key.get(k))
        raise ValueError(f"checkpoint {path} was made by a different run (it differs in {differ}); "
                         "delete the file to retrain")
    model.load_state_dict(state["model"])
    return History(**state["history"]), state.get("rng")


def load_or_fit(
    model: torch.nn.Module,
    name: str,
    train_loader,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    test_loader=None,
    desc: str | None = None,
) -> History:
    """Load the checkpoint cached for this run if there is one, else seed, ``fit`` and cache it.

    ``name`` only makes the file recognisable; the key (:func:`run_key`) decides hits. Either way the
    global RNG and the loader's generator end in the state that training leaves behind.
    """
    key = run_key(model, train_loader, epochs=epochs, lr=lr, seed=seed, test_loader=test_loader)
    path, device = checkpoint_path(name, key), model_device(model)
    if path.is_file():
        history, rng = load_checkpoint(path, model, key)
        if rng is not None:
            _set_rng_state(rng, device, train_loader)
        print(f"loaded cached checkpoint {path.name} (trained in {history.seconds:.0f} s)")
        return history
    check_writable(path.parent)  # before training, not after it
    torch.manual_seed(seed)
    if getattr(train_loader, "generator", None) is not None:
        train_loader.generator.manual_seed(seed)
    history = fit(model, train_loader, epochs=epochs, lr=lr, test_loader=test_loader, desc=desc or name)
    save_checkpoint(path, model, history, key, _rng_state(device, train_loader))
    return history
