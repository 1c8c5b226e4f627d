"""The ``orm`` section as typed, frozen settings, and what its loss variants imply.

Built once per experiment from the section the schema has completed (its ``default:``
values written in, see :func:`embrm.workflow.schema.fill_defaults`), so nothing here
repeats a default. Torch-free, so the workflow's parse-time checks can read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from embrm.io.errors import InputError

MARGIN_LOSSES = ("margin", "hinge")


@dataclasses.dataclass(frozen=True)
class OrmSettings:
    """Step 5's knobs (the schema's ``orm`` keys, described there)."""

    n_sample: int | None
    consider_first_n: int
    comparison: str
    n_pairs: int
    annotation_quality: float
    reward_scale: float | str
    objective: str
    ensemble_number: int
    hidden_sizes: tuple[int, ...]
    lr: float
    batch_size: int
    max_epochs: int
    checks_per_epoch: int
    patience: int
    val_fraction: float
    loss: str | None
    label_smoothing: float
    margin_source: str
    margin_scale: float
    noise_remedy: str
    remedy_fraction: float
    listwise: bool
    stopping: str
    stopping_scope: str
    min_epochs: int
    weight_average: float

    @classmethod
    def of(cls, orm: Mapping[str, Any]) -> OrmSettings:
        """The settings of a complete ``orm`` section; a missing or unknown key is an
        InputError naming it (a section that did not pass the schema)."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in orm]
        unknown = sorted(set(orm) - set(names))
        if missing or unknown:
            raise InputError(
                f"config section orm: missing keys {missing}, unknown keys {unknown} "
                "(the schema fills the defaults: check the config against it first)"
            )
        return cls(**{**orm, "hidden_sizes": tuple(orm["hidden_sizes"])})

    def as_dict(self) -> dict[str, Any]:
        """The section as the config writes it (for summaries and JSON)."""
        return {**dataclasses.asdict(self), "hidden_sizes": list(self.hidden_sizes)}

    @property
    def pair_loss(self) -> str:
        """The loss trained: ``loss``, else ``objective``; ``noise_remedy:
        adaptive_margin`` turns ``bt`` into ``margin`` (with the strength as margin)."""
        loss = self.loss or self.objective
        if loss == "bt" and self.noise_remedy == "adaptive_margin":
            return "margin"
        return loss

    @property
    def uses_margin(self) -> bool:
        """Whether the loss reads a per-pair margin (margin and hinge)."""
        return self.pair_loss in MARGIN_LOSSES

    @property
    def adaptive_margin(self) -> bool:
        """Whether the margin comes from a first ensemble's strength (not from golden
        rewards): ``noise_remedy: adaptive_margin`` or ``margin_source: adaptive``."""
        return self.uses_margin and (
            self.noise_remedy == "adaptive_margin" or self.margin_source == "adaptive"
        )

    @property
    def needs_strength(self) -> bool:
        """Whether training reads a first ensemble's preference strength."""
        return self.noise_remedy != "none" or (
            self.pair_loss in MARGIN_LOSSES and self.margin_source == "adaptive"
        )

    @property
    def given_margin_source(self) -> bool:
        """Whether the margin loss reads the pairs' own margins (``margin_source: given``)."""
        return self.uses_margin and self.margin_source == "given"
