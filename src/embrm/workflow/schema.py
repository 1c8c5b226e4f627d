"""Schema errors as one line naming the offending key, not the whole schema.

``snakemake.utils.validate`` prints the failing subschema and instance, hundreds of lines
for a config section. Here the most relevant error (``jsonschema``'s ``best_match``) is
reduced to its key path, its message and the schema rule it broke. A config missing
required keys while ``config.yaml`` is absent from the working directory (``-d DIR
--configfile X`` reads only X) says so.

``type: integer`` is strict here: JSON Schema counts ``2.0`` as an integer, but the
steps use the value as Python gives it (``range(2.0)`` fails after hours of data
preparation), so a float where an integer is meant is refused, naming the key.

The schema's ``default:`` values are the only defaults: :func:`check_schema` writes each
absent key that has one into the config before validating it, so every step reads a
complete section and no module keeps its own list of defaults.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from embrm.io.errors import InputError

DEFAULT_CONFIG = "config.yaml"
MAX_CHARS = 200


def _short(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."


# an integer is a Python int, never a float such as 2.0 (nor a bool)
STRICT_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
)
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, type_checker=STRICT_TYPES
)


@functools.lru_cache(maxsize=8)
def _validator(schema_path: str, mtime_ns: int) -> jsonschema.Draft202012Validator:
    """The schema's validator, parsed once per file version: a study of 600 points checks
    601 configs, and parsing the YAML schema each time cost more than all the checks."""
    return StrictValidator(yaml.safe_load(Path(schema_path).read_text()))


def resolve(node: Mapping, schema: Mapping) -> Mapping:
    """``node`` with a local ``$ref`` followed (its own keys win over the target's)."""
    ref = node.get("$ref")
    if ref is None:
        return node
    target = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**resolve(target, schema), **{k: v for k, v in node.items() if k != "$ref"}}


def fill_defaults(config: dict, schema: Mapping) -> dict:
    """Write the ``default:`` of every absent key into ``config`` (in place; returned).

    Only plain ``properties`` are followed, into sections the config has or that a
    default creates (``active: {}``), never the branches of ``oneOf``/``anyOf``: a
    default there would be written before the branch is known to match."""

    def fill(node: Mapping, instance) -> None:
        if not isinstance(instance, dict):
            return
        for key, sub in resolve(node, schema).get("properties", {}).items():
            sub = resolve(sub, schema)
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                fill(sub, instance[key])

    fill(schema, config)
    return config


def _float_for_integer(error: jsonschema.ValidationError) -> jsonschema.ValidationError | None:
    """The error, of ``error`` or the alternatives of its ``oneOf``/``anyOf``, that is a
    float where an integer is meant; None if there is none."""
    wanted = (
        error.validator_value
        if isinstance(error.validator_value, list)
        else [error.validator_value]
    )
    if error.validator == "type" and "integer" in wanted and isinstance(error.instance, float):
        return error
    return next(filter(None, map(_float_for_integer, error.context or ())), None)


def _float_message(value: float) -> str:
    fix = f"write {int(value)}" if value.is_integer() else "write a whole number"
    return f"{value!r} is a float where an integer is meant; {fix}"


def check_schema(config: dict, schema_path: str | Path, where: str = "config") -> None:
    """Fill ``config``'s defaults in place (:func:`fill_defaults`), then raise InputError
    naming its first offending key (``where`` prefixes the message, e.g. a study point)."""
    validator = _validator(str(schema_path), Path(schema_path).stat().st_mtime_ns)
    fill_defaults(config, validator.schema)
    errors = list(validator.iter_errors(config))
    floats = list(filter(None, map(_float_for_integer, errors)))
    error = floats[0] if floats else jsonschema.exceptions.best_match(errors)
    if error is None:
        return
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if floats:
        raise InputError(f"{where} key {key}: {_float_message(error.instance)}")
    rule = _short(f"{error.validator}: {error.validator_value!r}")
    message = f"{where} key {key}: {_short(error.message)} (schema rule {rule})"
    if error.validator == "required" and not Path(DEFAULT_CONFIG).is_file():
        message += (
            f"; {DEFAULT_CONFIG} is missing from the working directory {Path.cwd()}, so "
            "only the --configfile was read: copy it there or give a complete config"
        )
    raise InputError(message)
