"""The code a rule runs, as one hash, so a change in a step's logic reruns that step.

Snakemake hashes a rule's script, but the scripts are thin: the logic lives in the
package. :func:`code_hash` follows the script's ``embrm`` imports through the
package's import graph (every ``import`` statement of each module, also those inside
functions) and hashes the source of exactly the modules the step can run, with the
``__init__.py`` of every package on the way. :func:`attach` adds that hash as a
``code`` param to each script rule, so ``--list-changes params`` names the jobs and a
plain run reruns them and what follows; editing a module a step never imports reruns
nothing of it. The GPU rules run ``python -m embrm.generation.entry STAGE ...``, which
imports its stage's module by name (``entry.STAGES``): their hash covers the entry and
that module's import graph, so each stage reruns on a change of exactly the code it runs.
"""

from __future__ import annotations

import ast
import hashlib
import re
from functools import cache
from pathlib import Path

import embrm
from embrm.generation.entry import STAGES, stage_module

PACKAGE = Path(embrm.__file__).resolve().parent
NAME = PACKAGE.name


def module_file(module: str) -> Path | None:
    """The source file of ``embrm.<...>`` (a module or a package's ``__init__.py``)."""
    parts = module.split(".")
    if parts[0] != NAME:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """``embrm.a.b`` -> ``embrm``, ``embrm.a``, ``embrm.a.b``: importing a module runs
    the ``__init__.py`` of every package above it."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(path: Path) -> set[str]:
    """The ``embrm`` modules a source file imports (``from embrm.x import y`` counts
    ``embrm.x.y`` when that is a module). Imports inside a module-level ``__getattr__``
    (``embrm.RewardModel``, loaded on first access) are not followed: the workflow's
    scripts import what they run by its full module path."""
    found = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    # a module's lazy exports run only when asked for by name
    tree.body = [
        n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name == "__getattr__")
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if module_file(m) is not None}


@cache
def _closure(path: Path) -> frozenset[Path]:
    files, todo = set(), [path]
    while todo:
        current = todo.pop()
        for module in imported_modules(current):
            for name in _with_parents(module):
                source = module_file(name)
                if source not in files:
                    files.add(source)
                    todo.append(source)
    return frozenset(files)


def package_files(*scripts: str | Path) -> list[Path]:
    """Every package source file ``scripts`` can run (themselves too, if they are), sorted."""
    files = set()
    for script in scripts:
        path = Path(script).resolve()
        files |= _closure(path) | ({path} if path.is_relative_to(PACKAGE) else set())
    return sorted(files)


def code_hash(*scripts: str | Path) -> str:
    """SHA-256 over the relative paths and bytes of :func:`package_files` of ``scripts``."""
    digest = hashlib.sha256()
    for path in package_files(*scripts):
        digest.update(str(path.relative_to(PACKAGE.parent)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


ENTRY = re.compile(r"-m\s+(embrm(?:\.\w+)+)(?:\s+(\w+))?")


def command_modules(shellcmd: str) -> list[Path]:
    """The package modules a shell command runs: ``python -m embrm.x`` is ``embrm.x``;
    ``python -m embrm.generation.entry STAGE`` is the entry and its stage's module."""
    entry = ENTRY.search(shellcmd or "")
    if entry is None:
        return []
    module, stage = entry.groups()
    files = [module_file(module)]
    if module_file(module) == module_file("embrm.generation.entry"):
        if stage not in STAGES:
            raise ValueError(f"{shellcmd!r}: no GPU stage named {stage!r} in entry.STAGES")
        files.append(module_file(stage_module(stage)))
    return files


def attach(rule) -> None:
    """Add the ``code`` param to a Snakemake rule: :func:`code_hash` of its script, or of
    the package modules a shell rule runs (:func:`command_modules`, the GPU stages)."""
    if rule.script is not None:
        rule.set_params(
            code=code_hash(Path(rule.basedir.get_path_or_uri(secret_free=True)) / rule.script)
        )
        return
    modules = command_modules(rule.shellcmd)
    if modules:
        rule.set_params(code=code_hash(*modules))
