"""environment.yml (conda) and pyproject.toml (pip) name the same top-level dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"pytables": "tables"}


def _name(requirement: str) -> str:
    name = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
    return CONDA_TO_PYPI.get(name.lower(), name.lower()).replace("_", "-")


def _pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    return names


def _environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    names = set()
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            names |= {_name(r) for r in entry.get("pip", []) if not r.startswith("-")}
        else:
            names.add(_name(entry))
    return names - {"python", "pip"}


def test_same_top_level_dependencies():
    pip_names, conda_names = _pyproject_names(), _environment_names()
    assert pip_names - conda_names == set(), "in pyproject.toml but not environment.yml"
    assert conda_names - pip_names - {"torch"} == set(), "in environment.yml but not pyproject.toml"


def test_environment_pins_python_311_and_cpu_torch():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert "python=3.11" in env["dependencies"]
    pip_section = next(e["pip"] for e in env["dependencies"] if isinstance(e, dict))
    assert "torch==2.13.0" in pip_section


def test_constraints_file_pins_torch_and_makefile_uses_it():
    assert (ROOT / "constraints.txt").read_text().split() == ["torch==2.13.0"]
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    project = (ROOT / "pyproject.toml").read_text()
    assert "torch" not in project.split("[project.scripts]")[0].split("dependencies = [", 1)[1].split("]")[0]
