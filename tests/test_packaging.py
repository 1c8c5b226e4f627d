"""Packaging: the core install is enough for the reward model, extras add the rest, and
the version has one source."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys

import tomllib

import embrm

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# A fresh interpreter in which the given modules are missing, as in a core-only install:
# imports the reward model and prints the third-party top-level modules it loaded.
IMPORT_WITHOUT_EXTRAS = """
import importlib.abc, json, sys
BLOCKED = set(json.loads(sys.argv[1]))
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
before = set(sys.modules)
from embrm import RewardModel
import embrm.serve.model
loaded = {m.split(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted(m for m in loaded if m not in sys.stdlib_module_names)))
"""


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require (without extras), installed ones."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [requirement_name(r) for r in requires if "extra ==" not in r]
    return seen


def test_reward_model_imports_with_only_the_core_dependencies():
    core = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    allowed = closure(core) | {"embrm"}
    installed = importlib.metadata.packages_distributions()
    missing = sorted(
        module
        for module, dists in installed.items()
        if not any(d.lower().replace("_", "-") in allowed for d in dists)
    )
    assert {"snakemake", "pandas", "fastapi", "uvicorn", "peft"} <= set(missing)
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_WITHOUT_EXTRAS, json.dumps(missing)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"torch", "safetensors", "numpy"} <= set(loaded)  # the check sees real imports
    assert not set(loaded) & set(missing)


def test_extras_split_the_workflow_serving_and_gpu_stacks_from_the_core():
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {extra: {requirement_name(r) for r in reqs} for extra, reqs in extras.items()}
    core = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert {"workflow", "serve", "gpu", "dev"} <= set(names)
    assert "snakemake" in names["workflow"] and "snakemake" not in core
    assert {"fastapi", "uvicorn"} <= names["serve"] and not {"fastapi", "uvicorn"} & core
    assert {"vllm", "deepspeed"} <= names["gpu"]
    # the README's install command installs the CPU stack with every extra but gpu
    editable = [line for line in (ROOT / "envs/requirements-cpu.txt").read_text().split("\n")]
    editable = [line for line in editable if line.startswith("-e .")]
    assert editable and set(re.findall(r"\w+", editable[0].split("[", 1)[1])) == {
        "workflow",
        "serve",
        "dev",
    }


def test_one_version_source_and_typed_marker():
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "embrm.__version__"}
    assert importlib.metadata.version("embrm") == embrm.__version__
    assert (ROOT / "src/embrm/py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["embrm"]
