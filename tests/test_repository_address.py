"""The repository address is written once, in pyproject.toml's [project.urls] Repository; its copies agree.

The copies sit where pyproject.toml cannot be read: every chapter's setup cell (Colab installs the
library from ``git+<address>``) and its "Open in Colab" link, in both halves of each pair, and
_config.yml's repository.url (the site's buttons). ``tools/set_repository.py`` rewrites them; these
tests hold every copy to the address, and the tool to its promise on a copy of the repository.
Repositories the text merely cites are not copies and are left alone.
"""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jupytext
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOL = Path("tools") / "set_repository.py"
OLD_REPO = "vqvae-from-first-principles/vqvae-book"
NEW_URL = "https://github.com/someone-else/a-fork"


def address(root):
    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]["Repository"]


def chapters(root):
    """Every notebook that carries a copy: the chapters and their worked solutions."""
    return sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb")) + sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))


def run_tool(root, *args):
    return subprocess.run([sys.executable, str(root / TOOL), *args], capture_output=True, text=True, timeout=60)


def problems(root):
    """Every copy of the address in ``root`` that differs from pyproject.toml's, one message each."""
    url = address(root)
    repo = url.removeprefix("https://github.com/")
    found = []
    config = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    if config != url:
        found.append(f"_config.yml: repository.url is {config}")
    for notebook in chapters(root):
        md = notebook.with_suffix(".md")
        cells = json.loads(notebook.read_text())["cells"]
        halves = {  # name: (setup cell, whole text), the notebook's from its JSON, where quotes are escaped
            notebook.name: ("".join(next(c for c in cells if c["cell_type"] == "code")["source"]),
                            "".join("".join(c["source"]) for c in cells)),
            md.name: (re.search(r"^```\{code-cell\}.*?\n(.*?)^```", md.read_text(), re.M | re.S)[1], md.read_text()),
        }
        colab = f"https://colab.research.google.com/github/{repo}/blob/main/{notebook.parent.name}/{notebook.name}"
        for name, (setup, text) in halves.items():
            if f'%pip install -q "vqvae_lib @ git+{url}"\n' not in setup:
                found.append(f"{name}: the setup cell does not install from git+{url}:\n{setup}")
            if colab not in text:
                found.append(f"{name}: lacks the link {colab}")
    check = run_tool(root, "--check")  # any other copy, in any place the tool knows (README included)
    if check.returncode != 0:
        found.append(f"set_repository.py --check (exit {check.returncode}):\n{check.stdout}{check.stderr}")
    return found


def copy_of_repository(tmp_path):
    """The files the tool reads and writes (the chapters' pairs, _config.yml, README.md), and the tool."""
    for name in ("pyproject.toml", "_config.yml", "README.md", str(TOOL)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    for notebook in chapters(ROOT):
        folder = tmp_path / notebook.parent.name
        folder.mkdir(exist_ok=True)
        shutil.copy(notebook, folder / notebook.name)
        shutil.copy(notebook.with_suffix(".md"), folder / notebook.with_suffix(".md").name)
    return tmp_path


def pair_agrees(notebook):
    return jupytext.writes(jupytext.read(notebook), fmt="md:myst") == notebook.with_suffix(".md").read_text()


def test_every_copy_of_the_address_is_pyprojects():
    found = problems(ROOT)
    assert not found, "run `python tools/set_repository.py`:\n" + "\n".join(found)


def test_a_stale_copy_in_one_chapter_is_caught(tmp_path):
    """The check above is not vacuous: one Colab link left on an old address fails it, naming the file."""
    root = copy_of_repository(tmp_path)
    md = chapters(root)[3].with_suffix(".md")
    colab = "https://colab.research.google.com/github/"
    md.write_text(md.read_text().replace(colab + OLD_REPO, colab + "old/place"))
    found = problems(root)
    assert len(found) == 2 and all(md.name in message for message in found), found


def test_set_repository_rewrites_every_copy_and_keeps_pairs_in_sync(tmp_path):
    root = copy_of_repository(tmp_path)
    for notebook in chapters(root):  # in sync before, whatever the working tree holds right now
        notebook.with_suffix(".md").write_text(jupytext.writes(jupytext.read(notebook), fmt="md:myst"))
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace(f'Repository = "https://github.com/{OLD_REPO}"', f'Repository = "{NEW_URL}"'))
    assert address(root) == NEW_URL
    assert problems(root), "the copies still hold the old address, and the check must say so"

    result = run_tool(root)
    assert result.returncode == 0, result.stderr
    changed = {line.split(":")[0] for line in result.stdout.splitlines()}
    pairs = [path for notebook in chapters(root) for path in (notebook, notebook.with_suffix(".md"))]
    assert changed == {"_config.yml"} | {f"{path.parent.name}/{path.name}" for path in pairs}, result.stdout

    assert not problems(root), problems(root)
    for path in [root / "_config.yml", root / "README.md", *(root / "chapters").iterdir(), *(root / "solutions").iterdir()]:
        assert OLD_REPO not in path.read_text(), f"{path.name} holds a copy of the address the tool does not know"
    for notebook in chapters(root):
        assert pair_agrees(notebook), f"{notebook.name} and its .md no longer agree"
    assert run_tool(root).stdout.strip() == f"every copy reads {NEW_URL}"  # a second run changes nothing
