"""This server's limits on what a spec may ask for (`MEMLAB_MAX_*`), and how a breach reads.

A spec field can have two bounds: the schema's (`TrainSpec.steps ≤ 10,000,000`, the same
on every server) and this server's setting (`MEMLAB_MAX_STEPS`, 2,000,000 by default).
A value over both is refused by the schema first; the error still names the server's
setting, the limit actually in force.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.registry import ExperimentKind
from core.specs import ComputedSpec, ComputeLimit
from store.settings import Settings


@dataclass(frozen=True)
class FieldLimit:
    """A server setting that caps one spec field, e.g. spec.train.steps by max_steps."""

    path: str  # the field's path in a request body, union tags left out
    setting: str  # the Settings attribute
    variable: str  # its environment variable


# The fields whose schema bound may sit above the server's limit. Limits on derived
# quantities (parameters, dataset items) are checked on the resource estimate instead.
SCHEMA_CAPPED_FIELDS = (
    FieldLimit("spec.train.steps", "max_steps", "MEMLAB_MAX_STEPS"),
    FieldLimit("spec.train.batch_size", "max_batch_size", "MEMLAB_MAX_BATCH_SIZE"),
    FieldLimit("spec.max_wall_s", "max_wall_s", "MEMLAB_MAX_WALL_S"),
)


def limit_message(value: float, limit: int, variable: str) -> str:
    """ "asks for 3,000,000 but this server allows at most 2,000,000 (MEMLAB_MAX_STEPS)"."""
    return f"asks for {value:,} but this server allows at most {limit:,} ({variable})"


def server_limit_detail(
    path: str, error: dict[str, Any], settings: Settings
) -> dict[str, Any] | None:
    """A `limit_exceeded` detail for a schema bound error on a field this server caps lower.

    `error` is one pydantic error (with its `input`); None where no server limit applies.
    """
    if error.get("type") not in ("less_than_equal", "less_than"):
        return None
    value = error.get("input")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    for field in SCHEMA_CAPPED_FIELDS:
        allowed = getattr(settings, field.setting)
        if field.path == path and value > allowed:
            return {
                "path": path,
                "message": limit_message(value, allowed, field.variable),
                "type": "limit_exceeded",
            }
    return None


def computed_limit(limit: ComputeLimit) -> int:
    """The cap in force for a computing kind's own limit: its environment variable, or the
    kind's default where the server does not set it (values are checked at start-up by
    `check_computed_limit_settings`)."""
    raw = os.environ.get(limit.setting)
    return limit.default if raw is None else int(raw)


def check_computed_limit_settings(kinds: Iterable[ExperimentKind[Any]]) -> None:
    """Refuse to start with a computing kind's limit variable set to something that is not
    a positive integer, naming the variable (rather than failing each request later)."""
    for kind in kinds:
        if not issubclass(kind.spec_class, ComputedSpec):
            continue
        for limit in kind.default_spec().compute_limits():
            raw = os.environ.get(limit.setting)
            if raw is not None and not (raw.isdigit() and int(raw) > 0):
                raise ValueError(f"{limit.setting}={raw!r}: expected a positive integer")


def warm_up_estimates(kinds: Iterable[ExperimentKind[Any]]) -> None:
    """Estimate every kind's default spec once, at start-up.

    The first parameter count of a process builds a model on torch's meta device, which
    pays about a second of one-off set-up in torch; done here, no researcher's first POST
    waits for it, and the default shapes are remembered."""
    for kind in kinds:
        kind.default_spec().resource_estimate()
