"""The library's layers: every module declares one, and imports go downward (or sideways) only."""

import ast
from pathlib import Path

import vqvae_lib
from vqvae_lib.checkpoint import imported_modules

PACKAGE = Path(vqvae_lib.__file__).parent


def module_names() -> set[str]:
    """Every module of the package as LAYERS names it: ``quantizers.vq``, a sub-package's ``quantizers``."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            names.add(".".join(parts))
    return names


def imports_with_parents(module: str) -> set[str]:
    """What importing ``module`` loads: the modules its file imports, and the packages above each of
    them (Python runs ``quantizers/__init__.py`` before ``quantizers/vq.py``)."""
    found = set()
    for name in imported_modules(f"vqvae_lib.{module}"):
        parts = name.split(".")[1:]
        found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
    return found - {module} - own_packages  # a package is already loading when its modules import each other


def test_every_module_declares_its_layer():
    assert module_names() == set(vqvae_lib.LAYERS), "add new modules to vqvae_lib.LAYERS (and its docstring)"


def test_no_module_imports_one_from_a_higher_layer():
    upward = []
    for module, layer in vqvae_lib.LAYERS.items():
        for target in imports_with_parents(module):
            if vqvae_lib.LAYERS[target] > layer:
                upward.append(f"{module} (layer {layer}) imports {target} (layer {vqvae_lib.LAYERS[target]})")
    assert not upward, upward


def test_there_is_no_import_circle():
    graph = {m: imports_with_parents(m) & set(vqvae_lib.LAYERS) for m in vqvae_lib.LAYERS}
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        if module not in done:
            path.append(module)
            for target in sorted(graph[module]):
                visit(target)
            path.pop()
            done.add(module)

    for module in sorted(graph):
        visit(module)


def test_every_import_statement_of_the_package_is_seen():
    """Whatever form an import of the package takes, in any function, the layer check reads it."""
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(("vqvae_lib",) + (parts[:-1] if parts[-1] == "__init__" else parts))
        seen = imported_modules(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("vqvae_lib")):
                assert seen, f"{path}: an import of the package that imported_modules does not see"
