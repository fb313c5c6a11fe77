"""The two ways to install the book (pip extras, conda) declare the same packages; what `pytest` runs."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirement(spec: str) -> tuple[str, str]:
    name, bounds = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", spec.strip()).groups()
    return name.lower().replace("_", "-"), bounds.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    return dict(_requirement(s) for s in specs)


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    specs = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            specs += [s for s in dep["pip"] if not s.startswith("-e")]
        elif not dep.startswith(("python=", "pip")) or dep.startswith("pyyaml"):
            specs.append(dep)
    return dict(_requirement(s) for s in specs)


def test_environment_yml_and_pyproject_declare_the_same_packages_and_bounds():
    assert conda_requirements() == pyproject_requirements()


def test_environment_installs_the_package_itself():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert "-e ." in pip


def test_torch_is_a_lower_bound_not_a_pin():
    reqs = pyproject_requirements()
    assert reqs["torch"].startswith(">=") and reqs["torchvision"].startswith(">=")


def test_requires_python_admits_exactly_what_the_tests_and_conda_use():
    floor = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert floor == ">=3.11", "the tests import tomllib (Python 3.11); keep requires-python in step"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda_python = next(dep for dep in env["dependencies"] if isinstance(dep, str) and dep.startswith("python="))
    assert tuple(int(v) for v in conda_python.split("=")[1].split(".")) >= (3, 11)


@pytest.mark.parametrize("given, expected", [(None, "1"), ("0", "0"), ("1", "1")])
def test_pytest_runs_the_fast_profile_unless_the_environment_says_otherwise(given, expected):
    """The root conftest.py: `pytest` as typed is the fast book; `VQVAE_FAST=0 pytest` the full re-check."""
    env = {k: v for k, v in os.environ.items() if k not in ("VQVAE_FAST", "TQDM_DISABLE", "GOMP_SPINCOUNT")}
    if given is not None:
        env["VQVAE_FAST"] = given
    code = ("import os, runpy; runpy.run_path('conftest.py'); "
            "print(os.environ['VQVAE_FAST'], os.environ['TQDM_DISABLE'], os.environ['GOMP_SPINCOUNT'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "1", "20000"]


@pytest.mark.slow  # two interpreter starts: `pytest -m slow` (CI runs it)
def test_the_console_script_runs_the_command_line():
    """``vqvae-train`` (pyproject's [project.scripts]) is ``python -m vqvae_lib``: both print the same help."""
    import shutil

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"vqvae-train": "vqvae_lib.cli:main"}
    script = shutil.which("vqvae-train", path=str(Path(sys.executable).parent))
    assert script, "vqvae-train is not installed next to this Python: pip install -e . again"
    by_script = subprocess.run([script, "--help"], capture_output=True, text=True, check=True).stdout
    by_module = subprocess.run([sys.executable, "-m", "vqvae_lib", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert by_script == by_module and "torchrun" in by_script
