"""The documentation stays true to the code: the generated configuration reference is
the one committed, and every link to a section of README.md or docs/ finds its heading."""

from __future__ import annotations

import re

import yaml

from embrm.workflow import config_reference

from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page) -> set[str]:
    text = FENCED.sub("", page.read_text())
    return {anchor(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def test_configuration_reference_is_up_to_date():
    committed = (ROOT / config_reference.PAGE).read_text()
    assert committed == config_reference.render_files(ROOT), (
        "docs/configuration.md is out of date: run python -m embrm.workflow.config_reference"
    )


def test_every_schema_key_has_a_description():
    schema = yaml.safe_load((ROOT / config_reference.SCHEMA).read_text())
    assert list(config_reference.undescribed(schema, schema)) == []
    # the walk reaches keys behind $ref, inside oneOf branches and under <name> maps
    bare = {
        "$defs": {"x": {"type": "object", "properties": {"deep": {"type": "string"}}}},
        "properties": {
            "a": {"description": "a", "$ref": "#/$defs/x"},
            "b": {"oneOf": [{"type": "null"}, {"properties": {"c": {"type": "integer"}}}]},
            "m": {"description": "m", "additionalProperties": {"properties": {"n": {}}}},
        },
    }
    assert list(config_reference.undescribed(bare, bare)) == ["a.deep", "b", "b.c", "m.<name>.n"]


def test_configuration_reference_lists_every_schema_key_with_its_default():
    schema = yaml.safe_load((ROOT / config_reference.SCHEMA).read_text())
    page = config_reference.render(schema, {"orm": {"lr": 0.5}})
    for key in schema["properties"]["orm"]["properties"]:
        assert f"| `orm.{key}` |" in page
    assert re.search(r"\| `orm\.lr` \| [^|]+ \| `0\.5` \| Adam learning rate \|", page)
    # a schema default fills in where config.yaml has no value
    assert re.search(r"\| `cluster\.cpu\.mem_mb` \| [^|]+ \| `auto` \|", page)


def test_every_section_link_of_the_docs_finds_its_heading():
    broken = []
    for page in PAGES:
        for target in LINK.findall(FENCED.sub("", page.read_text())):
            path, _, fragment = target.partition("#")
            if target.startswith("http") or not fragment:
                continue
            linked = (page.parent / path) if path else page
            if not linked.exists() or fragment not in anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
