"""The two ways to install the book (pip extras, conda) declare the same packages."""

import re
import tomllib
from pathlib import Path

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
