"""The chapters' setup cell, run as Colab runs it: ``%pip`` installs vqvae_lib from git into a fresh environment.

Every chapter opens with

    if importlib.util.find_spec("vqvae_lib") is None:
        %pip install -q "vqvae_lib @ git+<repository address>"
    from vqvae_lib.runtime import setup

and the install branch runs only on Colab: everywhere else the library is already installed, so no
other test reaches it. Here the cell, taken from chapters/00_preface.ipynb, runs through IPython (so
the ``%pip`` magic is what installs, with the venv's own interpreter) in a fresh venv in tmp_path,
shaped like Colab:

- it sees what Colab preinstalls (torch, torchvision, numpy, matplotlib, tqdm, IPython, pip) without
  downloading any of it: a .pth file in its site-packages lists a folder of links to this
  interpreter's site-packages, leaving out vqvae_lib's files and dist-info. .pth files inside a folder
  that a .pth adds are not processed, so the repository's editable-install hook stays inactive too;
  the test checks that neither import nor pip finds vqvae_lib before the cell runs;
- it has no pip of its own (``--without-pip``): pip comes with the preinstalled set, as on Colab.
  (ensurepip's bundled pip, 23.2 on Python 3.11.7, is also too old to parse a ``git+file:///``
  requirement.)

The address (pyproject.toml's [project.urls] Repository) is swapped for ``file://<this repository>``,
so pip clones the COMMITTED HEAD: in CI, a clean clone, that is the tree under test; locally,
uncommitted edits are not installed. pip builds the wheel with hatchling, fetched from the package
index: the test needs the network to it, and nothing else. About 10 s each on 2 cores.

Not part of the plain ``pytest``: ``.ci/run`` runs ``integration/`` after the book build. Alone:
``.venv/bin/python -m pytest integration/test_colab_install.py``.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT = 600  # s: cloning, building and installing; the cell's own work takes seconds
SETUP_LINE = re.compile(r"^device=\w+ profile=\w+ seed=0$", re.M)  # vqvae_lib.runtime.setup's one line


def setup_cell() -> tuple[str, str]:
    """The first code cell of chapters/00_preface.ipynb (the same in every chapter), and its address."""
    cells = json.loads((ROOT / "chapters" / "00_preface.ipynb").read_text())["cells"]
    cell = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    url = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert cell.count(f"git+{url}") == 1, f"the setup cell does not install from git+{url}:\n{cell}"
    return cell, url


def run(args, cwd, timeout=60):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONNOUSERSITE"] = "1"  # nothing from ~/.local either
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def tail(result, n=3000):
    """A failed command's exit status and the ends of its output, for an assertion message."""
    return (f"exit {result.returncode}\n--- stdout (tail) ---\n{result.stdout[-n:]}\n"
            f"--- stderr (tail) ---\n{result.stderr[-n:]}")


@pytest.fixture
def colab(tmp_path):
    """A fresh venv that sees Colab's preinstalled packages and not vqvae_lib; returns its python."""
    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    assert made.returncode == 0, tail(made)
    python = venv / "bin" / "python"
    site = next(venv.glob("lib/python*/site-packages"))
    preinstalled = tmp_path / "preinstalled"  # links to this interpreter's site-packages, minus vqvae_lib
    preinstalled.mkdir()
    for entry in Path(importlib.util.find_spec("torch").origin).parents[1].iterdir():
        if "vqvae_lib" not in entry.name.lower().replace("-", "_") and entry.suffix != ".pth":
            (preinstalled / entry.name).symlink_to(entry)
    (site / "colab_preinstalled.pth").write_text(f"{preinstalled}\n")

    probe = run([python, "-c", "import importlib.metadata as m, importlib.util as u; "
                 "print(u.find_spec('vqvae_lib') is None, m.version('torch'), u.find_spec('IPython') is not None)"],
                tmp_path)  # cwd outside the repository, as on Colab
    assert probe.returncode == 0, tail(probe)
    absent, torch_version, has_ipython = probe.stdout.split()
    assert absent == "True", "the fresh venv already finds vqvae_lib: the test would not install anything"
    assert has_ipython == "True" and torch_version, "the venv must see IPython, and torch (or pip downloads it)"
    listed = run([python, "-m", "pip", "show", "vqvae_lib"], tmp_path)
    assert listed.returncode != 0, "pip already lists vqvae_lib, so `%pip install` would do nothing"
    return python


def run_cell(python, cell, cwd):
    """Run ``cell`` through IPython in the venv, then print where vqvae_lib was imported from."""
    script = cwd / "setup_cell.ipy"
    script.write_text(cell + '\n\nimport vqvae_lib\nprint("vqvae_lib at", vqvae_lib.__file__)\n')
    return run([python, "-m", "IPython", "--no-banner", "--colors=nocolor", str(script)], cwd, timeout=PIP_TIMEOUT)


def test_the_setup_cell_installs_the_library_from_git_and_sets_up(colab, tmp_path):
    cell, url = setup_cell()
    result = run_cell(colab, cell.replace(f"git+{url}", f"git+file://{ROOT}"), tmp_path)
    assert result.returncode == 0 and SETUP_LINE.search(result.stdout), tail(result)

    prefix = colab.parents[1]  # the venv
    site = next(prefix.glob("lib/python*/site-packages"))
    imported = Path(re.search(r"^vqvae_lib at (.+)$", result.stdout, re.M)[1])
    assert imported.is_relative_to(site), f"vqvae_lib was imported from {imported}, not from the venv's {site}"

    settings = prefix / "share/jupyter/lab/settings/overrides.d/vqvae-book.json"
    assert settings.is_file(), "the wheel's shared data (JupyterLab settings overrides) was not installed"
    committed = run(["git", "show", "HEAD:jupyter/lab-settings/vqvae-book.json"], ROOT).stdout
    assert json.loads(settings.read_text()) == json.loads(committed)


def test_a_wrong_address_fails_with_pips_error(colab, tmp_path):
    """The same machinery is not vacuous: an address with no repository behind it stops the cell."""
    cell, url = setup_cell()
    result = run_cell(colab, cell.replace(f"git+{url}", "git+file:///nonexistent/vqvae-book"), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not SETUP_LINE.search(result.stdout), tail(result)
    assert "git clone" in output and "No module named 'vqvae_lib'" in output, tail(result)
