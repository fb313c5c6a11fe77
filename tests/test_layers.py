"""The library's layers: every module declares one, and imports go downward (or sideways) only."""

from pathlib import Path

import vqvae_lib
from vqvae_lib.checkpoint import imported_modules

PACKAGE = Path(vqvae_lib.__file__).parent


def test_every_module_declares_its_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert modules == set(vqvae_lib.LAYERS), "add new modules to vqvae_lib.LAYERS (and its docstring)"


def test_no_module_imports_one_from_a_higher_layer():
    upward = []
    for module, layer in vqvae_lib.LAYERS.items():
        for imported in imported_modules(f"vqvae_lib.{module}"):
            target = imported.rsplit(".", 1)[-1]
            if vqvae_lib.LAYERS[target] > layer:
                upward.append(f"{module} (layer {layer}) imports {target} (layer {vqvae_lib.LAYERS[target]})")
    assert not upward, upward
