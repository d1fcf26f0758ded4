"""Validated, immutable specs: what a researcher submits, and what the engine builds from."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class SpecModel(BaseModel):
    """Base of every spec: frozen, and a misspelt field is an error rather than ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Fields that cannot change a run's numbers (limits, bookkeeping): not hashed.
    hash_exclude: ClassVar[frozenset[str]] = frozenset()


Device = Literal["auto", "cpu", "cuda"]
LRSchedule = Literal["cosine", "linear", "constant"]


class TrainSpec(SpecModel):
    """How a kind that trains a model runs its optimisation loop (AdamW)."""

    steps: int = Field(2000, ge=1, le=10_000_000, description="Optimizer steps.")
    batch_size: int = Field(64, ge=1, le=65_536)
    lr: float = Field(1e-3, gt=0, le=10, description="Peak learning rate.")
    min_lr: float = Field(1e-4, ge=0, le=10, description="Learning rate at the end of decay.")
    schedule: LRSchedule = "cosine"
    warmup_steps: int = Field(100, ge=0)
    decay_steps: int | None = Field(
        None, ge=1, description="Step at which decay reaches min_lr (then held); null = steps."
    )
    weight_decay: float = Field(0.0, ge=0, le=10)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    grad_clip: float | None = Field(1.0, gt=0, description="Max global grad norm; null disables.")
    eval_every: int = Field(500, ge=1, description="Steps between evaluations.")
    checkpoint_every: int = Field(1000, ge=1, description="Steps between checkpoints.")
    device: Device = "auto"

    hash_exclude: ClassVar[frozenset[str]] = frozenset({"checkpoint_every"})

    @model_validator(mode="after")
    def _check_lr_range(self) -> TrainSpec:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.warmup_steps > self.steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed steps ({self.steps})"
            )
        if self.decay_steps is not None and self.decay_steps < self.warmup_steps:
            raise ValueError(
                f"decay_steps ({self.decay_steps}) must not be below warmup_steps "
                f"({self.warmup_steps})"
            )
        return self


@dataclass(frozen=True)
class ResourceEstimate:
    """What a run would ask of a worker, for the server's limits (0 = not applicable)."""

    parameters: int = 0
    steps: int = 0
    batch_size: int = 0
    dataset_items: int = 0


class ExperimentSpec(SpecModel):
    """Base of every experiment kind's spec; subclasses narrow `kind` to a literal.

    A nested spec given in part keeps the kind's defaults for the rest: with a kind
    whose default `train` has lr=0.01, `{"train": {"steps": 100}}` still trains at 0.01.
    """

    kind: str
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds every random draw of the run.")
    max_wall_s: int | None = Field(
        None,
        ge=1,
        description="Wall-time limit in seconds; the run fails past it (capped by the server).",
    )

    probes: tuple[dict[str, Any], ...] = Field(
        (),
        max_length=16,
        description="Probes to run on the final model when training succeeds, "
        'e.g. [{"kind": "loss_mia"}]; see GET /v1/probe-kinds.',
    )

    # Fields that cannot change the results, left out of the spec hash.
    hash_exclude: ClassVar[frozenset[str]] = frozenset({"max_wall_s", "probes"})

    @field_validator("probes")
    @classmethod
    def _known_probes(cls, probes: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        from core.probes.registry import UnknownProbeError, parse_probe_spec

        for index, raw in enumerate(probes):
            try:
                parse_probe_spec(raw)
            except (ValidationError, UnknownProbeError) as error:
                raise ValueError(f"probes[{index}]: {_one_line(error)}") from None
        return probes

    @model_validator(mode="after")
    def _probes_apply(self) -> ExperimentSpec:
        from core.probes.registry import ProbeNotApplicableError, check_applicable, parse_probe_spec

        for index, raw in enumerate(self.probes):
            try:
                check_applicable(parse_probe_spec(raw), self)
            except ProbeNotApplicableError as error:
                raise ValueError(f"probes[{index}]: {error}") from None
        return self

    @model_validator(mode="before")
    @classmethod
    def _complete_nested_specs(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return raw
        filled = cls.fill_defaults(dict(raw))
        for name, field in cls.model_fields.items():
            if isinstance(field.default, SpecModel) and isinstance(filled.get(name), dict):
                filled[name] = _deep_merge(field.default.model_dump(), filled[name])
        return filled

    @classmethod
    def fill_defaults(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """Hook for defaults that depend on other fields (e.g. batch size per task)."""
        return raw

    def resource_estimate(self) -> ResourceEstimate:
        """Steps and batch size from `train` when the kind has one; kinds add the rest."""
        train = getattr(self, "train", None)
        if isinstance(train, TrainSpec):
            return ResourceEstimate(steps=train.steps, batch_size=train.batch_size)
        return ResourceEstimate()


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` laid over `base`, recursively; a sub-spec of another `type` (a different
    member of a discriminated union, e.g. another mixer) replaces the default whole."""
    if "type" in override and override.get("type") != base.get("type"):
        return dict(override)
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spec_hash(spec: SpecModel) -> str:
    """SHA-256 of everything in the spec that can change the numbers, defaults filled in.

    Two specs hash equal exactly when they train the same thing: `{"kind": k}` and the
    same spec with every default written out are equal; a different seed, width or
    learning rate is not; specs that differ only in wall-time limit or checkpoint
    interval hash equal.
    """
    data = spec.model_dump(mode="json", exclude=_hash_exclusions(spec))
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hash_exclusions(spec: SpecModel) -> dict[str, Any]:
    exclusions: dict[str, Any] = dict.fromkeys(spec.hash_exclude, True)
    for name in type(spec).model_fields:
        child = getattr(spec, name)
        if isinstance(child, SpecModel) and name not in exclusions:
            nested = _hash_exclusions(child)
            if nested:
                exclusions[name] = nested
    return exclusions


def _one_line(error: Exception) -> str:
    """A validation error's messages on one line, each with its field path."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors()
        )
    return str(error)
