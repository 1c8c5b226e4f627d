"""Schema errors as one line naming the offending key, not the whole schema.

``snakemake.utils.validate`` prints the failing subschema and instance, hundreds of lines
for a config section. Here the most relevant error (``jsonschema``'s ``best_match``) is
reduced to its key path, its message and the schema rule it broke. A config missing
required keys while ``config.yaml`` is absent from the working directory (``-d DIR
--configfile X`` reads only X) says so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jsonschema
import yaml

from embrm.io.errors import InputError

DEFAULT_CONFIG = "config.yaml"
MAX_CHARS = 200


def _short(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 3] + "..."


@functools.lru_cache(maxsize=8)
def _validator(schema_path: str, mtime_ns: int) -> jsonschema.Draft202012Validator:
    """The schema's validator, parsed once per file version: a study of 600 points checks
    601 configs, and parsing the YAML schema each time cost more than all the checks."""
    return jsonschema.Draft202012Validator(yaml.safe_load(Path(schema_path).read_text()))


def check_schema(config: dict, schema_path: str | Path, where: str = "config") -> None:
    """Raise InputError naming the first offending key of ``config`` (``where`` prefixes
    the message, e.g. a study point)."""
    validator = _validator(str(schema_path), Path(schema_path).stat().st_mtime_ns)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    rule = _short(f"{error.validator}: {error.validator_value!r}")
    message = f"{where} key {key}: {_short(error.message)} (schema rule {rule})"
    if error.validator == "required" and not Path(DEFAULT_CONFIG).is_file():
        message += (
            f"; {DEFAULT_CONFIG} is missing from the working directory {Path.cwd()}, so "
            "only the --configfile was read: copy it there or give a complete config"
        )
    raise InputError(message)
