"""The GPU environment resolves: its pins and the package's own requirements, for the
Python and platform of a GPU node, against PyPI.

``envs/gpu.yaml`` installs ``envs/requirements-gpu.txt`` and the package with its
extras (``-e ..[workflow,serve]``). The
resolution runs ``uv pip compile`` for Python 3.13 on ``manylinux_2_31`` x86_64, which
evaluates environment markers for that target; pip cannot (``--python-version`` changes
only the wheel tags and Requires-Python checks, so from CI's Python 3.11 it would apply
mistral_common's ``numpy < 2.4`` cap for Python <= 3.12 and report a conflict the node
never has). Wheels are required for everything but the two source-only packages pip
builds on the node (deepspeed, and snakemake's connection-pool): their requirements come
from their own metadata, built from the source distribution here (with this
interpreter; their requirements do not depend on the Python version).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import tomllib
import yaml

from conftest import ROOT

pytestmark = pytest.mark.network

ENV_FILE = ROOT / "envs" / "gpu.yaml"
PLATFORM = "x86_64-manylinux_2_31"  # glibc 2.31: the oldest llguidance's wheels support
SOURCE_ONLY = ("deepspeed", "connection-pool")
RESOLVE_TIMEOUT_S = 300


def env_requirements() -> tuple[str, list[str]]:
    """``(python version, requirement lines)`` of envs/gpu.yaml: its pinned file and, for
    ``-e ..[extras]``, the package's declared dependencies and those of the extras."""
    env = yaml.safe_load(ENV_FILE.read_text())
    deps = env["dependencies"]
    python = next(d[len("python=") :] for d in deps if str(d).startswith("python="))
    pip_lines = next(d["pip"] for d in deps if isinstance(d, dict))
    lines = []
    for line in pip_lines:
        if line.startswith("-r "):
            pinned = (ENV_FILE.parent / line[3:]).read_text().splitlines()
            lines += [p for p in pinned if p.strip() and not p.startswith("#")]
        elif line.startswith("-e .."):
            project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
            extras = line[len("-e ..") :].strip("[]")
            lines += project["dependencies"]
            for extra in filter(None, extras.split(",")):
                lines += project["optional-dependencies"][extra]
        else:
            raise AssertionError(f"{ENV_FILE}: pip line {line!r} is not understood here")
    return python, lines


def resolve(python: str, lines: list[str], tmp_path) -> subprocess.CompletedProcess:
    requirements = tmp_path / "gpu.in"
    requirements.write_text("\n".join(lines) + "\n")
    binary_only = ["--only-binary", ":all:"] + [f"--no-binary={p}" for p in SOURCE_ONLY]
    cmd = [sys.executable, "-m", "uv", "pip", "compile", str(requirements)]
    cmd += ["--python-version", python, "--python-platform", PLATFORM, *binary_only]
    # source packages' metadata is built with this interpreter: uv must not fetch one
    cmd += ["--python", sys.executable, "--no-python-downloads", "--no-header", "--no-annotate"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S)


def test_gpu_environment_resolves_for_its_python_and_platform(tmp_path):
    python, lines = env_requirements()
    assert python == "3.13"
    proc = resolve(python, lines, tmp_path)
    assert proc.returncode == 0, f"envs/gpu.yaml does not resolve:\n{proc.stderr}"
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", proc.stdout, re.MULTILINE))
    # the pinned list is taken as written, and the stack the stages import is there
    for line in lines:
        name, _, version = line.partition("==")
        if version:
            assert pins.get(name) == version, (name, pins.get(name), version)
    for name in ("vllm", "deepspeed", "torch", "transformers", "peft", "fastapi", "uvicorn"):
        assert name in pins, f"{name} is missing from the resolution"
