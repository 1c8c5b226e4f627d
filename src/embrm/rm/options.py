"""The optional ``orm`` keys of the loss variants and noise remedies, and their defaults.

A config without these keys trains exactly as before: ``loss`` defaults to
``orm.objective``, no smoothing, no remedy. Torch-free, so the workflow's parse-time
checks can read it.
"""

from __future__ import annotations

# optional orm keys and the values that reproduce the original objectives
DEFAULTS = {
    "loss": None,  # None: orm.objective
    "label_smoothing": 0.0,
    "margin_source": "golden",
    "margin_scale": 1.0,
    "noise_remedy": "none",
    "remedy_fraction": 0.1,
    "listwise": False,  # Plackett-Luce on K-wise rankings instead of their pairs
    "stopping": "loss",  # what early stopping measures (embrm.rm.stopping)
    "weight_average": 0.0,  # EMA decay of the weights that are validated and kept; 0 = off
}


def setting(orm_cfg: dict, key: str):
    """An optional ``orm`` key, or its default when the config does not name it. The
    loss defaults to ``orm.objective``; ``noise_remedy: adaptive_margin`` turns ``bt``
    into ``margin`` (with the strength as the margin)."""
    value = orm_cfg.get(key, DEFAULTS[key])
    if key == "loss":
        value = value or orm_cfg["objective"]
        if value == "bt" and setting(orm_cfg, "noise_remedy") == "adaptive_margin":
            value = "margin"
    return value


def uses_margin(orm_cfg: dict) -> bool:
    """Whether the loss reads a per-pair margin (margin and hinge; ``adaptive_margin``
    makes bt a margin loss)."""
    return setting(orm_cfg, "loss") in ("margin", "hinge")


def adaptive_margin(orm_cfg: dict) -> bool:
    """Whether the margin loss takes its margin from a first ensemble's strength (not
    from golden rewards): ``noise_remedy: adaptive_margin`` or ``margin_source:
    adaptive``."""
    return uses_margin(orm_cfg) and (
        setting(orm_cfg, "noise_remedy") == "adaptive_margin"
        or setting(orm_cfg, "margin_source") == "adaptive"
    )


def needs_strength(orm_cfg: dict) -> bool:
    """Whether training reads a first ensemble's preference strength."""
    return setting(orm_cfg, "noise_remedy") != "none" or (
        setting(orm_cfg, "loss") in ("margin", "hinge")
        and setting(orm_cfg, "margin_source") == "adaptive"
    )


def given_margin_source(orm_cfg: dict) -> bool:
    """Whether the margin loss reads the pairs' own margins (``margin_source: given``)."""
    return uses_margin(orm_cfg) and setting(orm_cfg, "margin_source") == "given"
