"""docs/configuration.md, generated: every config key with its type, default and meaning.

The key tree, the types and the meanings come from the schema
(``workflow/schemas/config.schema.yaml``, its ``description:`` fields); the default is
the value in the shipped ``config.yaml``, else the schema's ``default:``. The page is
never edited by hand: ``python -m embrm.workflow.config_reference`` rewrites it, and a
test fails while the committed page differs from what this module renders.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from embrm.workflow.schema import resolve

SCHEMA = Path("workflow/schemas/config.schema.yaml")
DEFAULTS = Path("config.yaml")
PAGE = Path("docs/configuration.md")
MISSING = object()
LONGEST_DEFAULT = 60  # characters of a default written inline; longer: "see config.yaml"

HEADER = """\
# Configuration reference

Generated from `workflow/schemas/config.schema.yaml` (types, meanings) and `config.yaml`
(defaults) by `python -m embrm.workflow.config_reference`; do not edit by hand (a test
fails while this page is out of date). Every run checks its config against the schema
before any job starts, and an unknown key is an error. A `--configfile` is merged over
`config.yaml`, so a file holding only the keys you change is enough. What the sections
are for: [usage.md](usage.md#configuration); the refusals:
[bad_inputs.md](bad_inputs.md).

A key marked *optional* may be left out: where it has a default, the schema's `default:`
is filled in before any step reads the config. `<name>` stands for a name you choose.
"""


def type_text(node: Mapping, schema: Mapping) -> str:
    """A short reading of a schema node's type: ``integer >= 1``, ``one of: a, b``."""
    node = resolve(node, schema)
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    for combiner in ("oneOf", "anyOf"):
        if combiner in node and "type" not in node:
            return " or ".join(type_text(option, schema) for option in node[combiner])
    kinds = node.get("type", "any")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    words = " or ".join("`null`" if kind == "null" else kind for kind in kinds)
    bounds = [
        (">=", node.get("minimum")),
        (">", node.get("exclusiveMinimum")),
        ("<=", node.get("maximum")),
        ("<", node.get("exclusiveMaximum")),
    ]
    words += "".join(f" {op} {value}" for op, value in bounds if value is not None)
    if "items" in node:
        words += f" of {type_text(node['items'], schema)}"
    if node.get("minItems"):
        words += f", at least {node['minItems']}"
    return words


def default_text(value) -> str:
    if value is MISSING:
        return ""
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    return "see `config.yaml`" if len(text) > LONGEST_DEFAULT else f"`{text}`"


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(node: Mapping, schema: Mapping, defaults, path: str) -> Iterator[tuple]:
    """(key, type, default, meaning) of ``node`` and of every key below it, depth first."""
    node = resolve(node, schema)
    optional = node.get("_optional", False)
    default = defaults if defaults is not MISSING else node.get("default", MISSING)
    meaning = node.get("description", "")
    if optional:
        meaning = f"*optional.* {meaning}".strip()
    yield path, type_text(node, schema), default_text_for(node, default), meaning
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        sub_default = defaults.get(key, MISSING) if isinstance(defaults, Mapping) else MISSING
        sub = {**resolve(sub, schema), "_optional": key not in required}
        yield from rows(sub, schema, sub_default, f"{path}.{key}" if path else key)
    free = node.get("additionalProperties")
    if isinstance(free, Mapping) and resolve(free, schema).get("properties"):
        yield from rows({**free, "_optional": True}, schema, MISSING, f"{path}.<name>")


def default_text_for(node: Mapping, default) -> str:
    """Objects with named keys get their defaults row by row, not as one blob."""
    if isinstance(default, Mapping) and node.get("properties"):
        return ""
    return default_text(default)


def undescribed(node: Mapping, schema: Mapping, path: str = "") -> Iterator[str]:
    """The dotted key of every property below ``node`` without a ``description:``
    (its own or its ``$ref`` target's), inside ``oneOf``/``anyOf`` branches and
    ``<name>`` maps too: the page gives every key a meaning."""
    node = resolve(node, schema)
    for key, sub in node.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if not resolve(sub, schema).get("description"):
            yield where
        yield from undescribed(sub, schema, where)
    for combiner in ("oneOf", "anyOf"):
        for option in node.get(combiner, []):
            yield from undescribed(option, schema, path)
    free = node.get("additionalProperties")
    if isinstance(free, Mapping):
        yield from undescribed(free, schema, f"{path}.<name>")


def render(schema: Mapping, defaults: Mapping) -> str:
    """The page: one table per top-level section, in the schema's order."""
    lines = [HEADER]
    top = [(k, v) for k, v in schema["properties"].items()]
    scalars = [(k, v) for k, v in top if not resolve(v, schema).get("properties")]
    sections = [(k, v) for k, v in top if resolve(v, schema).get("properties")]
    required = set(schema.get("required", []))

    def table(items):
        out = ["| key | type | default | meaning |", "|---|---|---|---|"]
        for key, sub in items:
            sub = {**resolve(sub, schema), "_optional": key not in required}
            for row in rows(sub, schema, defaults.get(key, MISSING), key):
                out.append("| " + " | ".join(cell(c) for c in (f"`{row[0]}`", *row[1:])) + " |")
        return out

    lines += ["## Top-level keys", "", *table(scalars), ""]
    for key, sub in sections:
        lines += [f"## `{key}`", "", *table([(key, sub)]), ""]
    return "\n".join(lines).rstrip() + "\n"


def render_files(root: Path) -> str:
    schema = yaml.safe_load((root / SCHEMA).read_text())
    defaults = yaml.safe_load((root / DEFAULTS).read_text())
    return render(schema, defaults)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository root")
    args = parser.parse_args(argv)
    (args.root / PAGE).write_text(render_files(args.root))


if __name__ == "__main__":
    main()
