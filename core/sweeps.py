"""A sweep's cells: a base spec, axes and seeds expanded into the specs of its children.

An axis is a dotted spec path (`model.n_embd`, `train.lr`) and the values it takes: a
list, or, for random search, a range `{"min", "max", "scale", "integer"}`. An axis can
also be a set of named variants, `{"variants": {"fact sheets": {"fact_sheets_only": true},
…}}`: its name is a label of the sweep's choosing, each variant a partial spec laid over
the base, and a cell's coordinate is the variant's name (for conditions that differ in
several fields at once). `grid` crosses
every axis's list; `random` draws `samples` cells, each axis independently, from a
generator seeded with `sampler_seed`. Either way every cell runs once per seed, so the
seeds of a cell are its replicates and differ in nothing else.

Each value is validated here, merged alone into the base, before any cell is formed, so
an error names the axis and the value at fault, not a cell of a thousand runs.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.specs import ExperimentSpec

SweepMethod = Literal["grid", "random"]

# The axes a sweep may not name: the kind is the base's, and seeds have their own field.
_RESERVED_AXES = {"kind": "the kind is the base spec's", "seed": "give seeds in `seeds`"}


class AxisRange(BaseModel):
    """Values drawn uniformly between `min` and `max` (random search only); `log` draws
    the logarithm uniformly, as a learning-rate search wants."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    min: float
    max: float
    scale: Literal["linear", "log"] = "linear"
    integer: bool = Field(False, description="Round each draw to the nearest integer.")

    @model_validator(mode="after")
    def _ordered(self) -> AxisRange:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if not math.isfinite(self.max - self.min):
            raise ValueError("the range is too wide to draw from: max − min overflows")
        if self.scale == "log" and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        return self

    def draw(self, rng: random.Random) -> float | int:
        if self.scale == "log":
            value = math.exp(rng.uniform(math.log(self.min), math.log(self.max)))
        else:
            value = rng.uniform(self.min, self.max)
        return round(value) if self.integer else value


class AxisVariants(BaseModel):
    """Named conditions, each a partial spec merged into the base (nested objects merge
    field by field), e.g. {"1 document x4": {"documents_per_event": 1, "repeats": 4}}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variants: dict[str, dict[str, Any]] = Field(min_length=1, max_length=1000)


AxisValues = list[Any] | AxisRange | AxisVariants


@dataclass(frozen=True)
class SweepProblem:
    """One reason a sweep cannot be expanded, at a request path such as
    ("axes", "model.n_embd", 1)."""

    path: tuple[str | int, ...]
    message: str
    type: str = "value_error"


class SweepInvalidError(ValueError):
    """The sweep cannot be expanded; `problems` says where and why."""

    def __init__(self, problems: Sequence[SweepProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Cell:
    """One child: its coordinates (axis path → value, and "seed") and its full spec."""

    coordinates: dict[str, Any]
    spec: ExperimentSpec


def axis_path_problem(spec_class: type[BaseModel], path: str) -> str | None:
    """Why `path` names no field of `spec_class` (walking nested specs and unions), or None."""
    if path in _RESERVED_AXES:
        return f"{path!r} cannot be an axis: {_RESERVED_AXES[path]}"
    models: list[type[BaseModel]] = [spec_class]
    walked: list[str] = []
    for name in path.split("."):
        fields = {n: f for model in models for n, f in model.model_fields.items()}
        if name not in fields:
            where = ".".join(walked) or "the spec"
            known = ", ".join(sorted(fields)) or "none"
            return f"{where} has no field {name!r} (its fields: {known})"
        walked.append(name)
        models = [
            model
            for f in (model.model_fields.get(name) for model in models)
            if f is not None
            for model in _nested_models(f.annotation)
        ]
    return None


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    """The spec classes a field holds: itself, or each member of a union or Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _nested_models(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _nested_models(arg)]
    return []


def with_value(raw: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of the raw spec `raw` with the field at dotted `path` set to `value`."""
    merged = copy.deepcopy(dict(raw))
    node = merged
    *parents, leaf = path.split(".")
    for parent in parents:
        child = node.get(parent)
        if not isinstance(child, dict):
            child = {}  # the kind's default for the rest of this sub-spec is kept
            node[parent] = child
        node = child
    node[leaf] = value
    return merged


def with_overrides(raw: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `raw` with `overrides` merged in: objects field by field, anything
    else replaced."""
    merged = copy.deepcopy(dict(raw))
    for name, value in overrides.items():
        current = merged.get(name)
        if (
            isinstance(value, Mapping)
            and isinstance(current, Mapping)
            and _same_member(current, value)
        ):
            merged[name] = with_overrides(current, value)
        else:
            merged[name] = copy.deepcopy(value)
    return merged


def _same_member(current: Mapping[str, Any], value: Mapping[str, Any]) -> bool:
    """Whether `value` stays in `current`'s member of a tagged union (the mixer's `type`):
    switching members replaces the object, as the new member's fields differ."""
    return "type" not in value or value["type"] == current.get("type")


def _apply(raw: Mapping[str, Any], axis: str, values: AxisValues, value: Any) -> dict[str, Any]:
    """`raw` at one axis's value: a variant's fields merged, or the field at the path set."""
    if isinstance(values, AxisVariants):
        return with_overrides(raw, values.variants[value])
    return with_value(raw, axis, value)


def expand(
    spec_class: type[ExperimentSpec],
    base: Mapping[str, Any],
    axes: Mapping[str, AxisValues],
    seeds: Sequence[int],
    method: SweepMethod = "grid",
    samples: int | None = None,
    sampler_seed: int = 0,
) -> list[Cell]:
    """Every child of the sweep, cell by cell, each cell's seeds together.

    Raises SweepInvalidError naming the axis and value of each problem.
    """
    _check_axes(spec_class, base, axes, method)
    rows = _cell_rows(axes, method, samples, sampler_seed)
    cells, problems = [], []
    for row in rows:
        for seed in seeds:
            raw = dict(base)
            for path, value in row.items():
                raw = _apply(raw, path, axes[path], value)
            raw["seed"] = seed
            try:
                spec = spec_class.model_validate(raw)
            except ValidationError as error:
                # Every value passed alone: it is the combination that fails.
                problems.append(SweepProblem(("axes",), f"the cell {row}: {_first(error)}"))
                break
            cells.append(Cell({**row, "seed": seed}, spec))
    if problems:
        raise SweepInvalidError(problems)
    return cells


def _check_axes(
    spec_class: type[ExperimentSpec],
    base: Mapping[str, Any],
    axes: Mapping[str, AxisValues],
    method: SweepMethod,
) -> None:
    """Each axis names a field, and each of its listed values validates in the base alone."""
    problems = []
    for path, values in axes.items():
        if isinstance(values, AxisVariants):
            problems += _variant_problems(spec_class, base, path, values)
            problems += _overlaps(path, values, axes)
            continue
        if (reason := axis_path_problem(spec_class, path)) is not None:
            problems.append(SweepProblem(("axes", path), reason, "unknown_axis"))
            continue
        if isinstance(values, AxisRange):
            if method == "grid":
                problems.append(
                    SweepProblem(("axes", path), "a range is drawn from: it needs method 'random'")
                )
            continue
        if not values:
            problems.append(SweepProblem(("axes", path), "an axis needs at least one value"))
        for index, value in enumerate(values):
            try:
                spec_class.model_validate(with_value(base, path, value))
            except ValidationError as error:
                problems.append(
                    SweepProblem(("axes", path, index), f"value {value!r}: {_first(error)}")
                )
    if problems:
        raise SweepInvalidError(problems)


def _variant_problems(
    spec_class: type[ExperimentSpec], base: Mapping[str, Any], label: str, axis: AxisVariants
) -> list[SweepProblem]:
    """Each variant validates merged alone into the base; the label is not a reserved name."""
    if label in _RESERVED_AXES:
        return [
            SweepProblem(("axes", label), f"{label!r} cannot be an axis: {_RESERVED_AXES[label]}")
        ]
    problems = []
    for name, overrides in axis.variants.items():
        try:
            spec_class.model_validate(with_overrides(base, overrides))
        except ValidationError as error:
            problems.append(
                SweepProblem(("axes", label, name), f"variant {name!r}: {_first(error)}")
            )
    return problems


def _overlaps(label: str, axis: AxisVariants, axes: Mapping[str, AxisValues]) -> list[SweepProblem]:
    """A variant may not set a field another axis sets (nor the seed or the kind): the cell
    would be labelled with one value and train with another."""
    others = {other: _fields_set(values, other) for other, values in axes.items() if other != label}
    problems = []
    for name, overrides in axis.variants.items():
        for field in _leaf_paths(overrides):
            top = field.split(".")[0]
            if top in _RESERVED_AXES:
                message = f"variant {name!r} sets {field}: {_RESERVED_AXES[top]}"
                problems.append(SweepProblem(("axes", label, name), message))
            for other, fields in others.items():
                if any(_nested(field, f) for f in fields):
                    message = f"variant {name!r} sets {field}, which axis {other!r} also sets"
                    problems.append(SweepProblem(("axes", label, name), message))
    return problems


def _fields_set(values: AxisValues, path: str) -> list[str]:
    """The spec fields an axis sets: its path, or every field its variants set."""
    if isinstance(values, AxisVariants):
        return [f for overrides in values.variants.values() for f in _leaf_paths(overrides)]
    return [path]


def _leaf_paths(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """{"model": {"n_embd": 8}, "task": "facts"} → ["model.n_embd", "task"]."""
    paths = []
    for key, value in overrides.items():
        dotted = f"{prefix}.{key}" if prefix else key
        paths += _leaf_paths(value, dotted) if isinstance(value, Mapping) and value else [dotted]
    return paths


def _nested(a: str, b: str) -> bool:
    """Whether one dotted path is the other or lies inside it."""
    return a == b or a.startswith(f"{b}.") or b.startswith(f"{a}.")


def _cell_rows(
    axes: Mapping[str, AxisValues], method: SweepMethod, samples: int | None, sampler_seed: int
) -> list[dict[str, Any]]:
    """Each cell's coordinates, before seeds."""
    if method == "grid":
        lists = [_listed(values) for values in axes.values() if not isinstance(values, AxisRange)]
        return [
            dict(zip(axes, combination, strict=True)) for combination in itertools.product(*lists)
        ]
    if samples is None:
        raise SweepInvalidError([SweepProblem(("samples",), "method 'random' needs samples")])
    rng = random.Random(sampler_seed)
    return [
        {
            path: values.draw(rng) if isinstance(values, AxisRange) else rng.choice(_listed(values))
            for path, values in axes.items()
        }
        for _ in range(samples)
    ]


def _listed(values: list[Any] | AxisVariants) -> list[Any]:
    """An axis's values in order: a list's items, or the variants' names."""
    return list(values.variants) if isinstance(values, AxisVariants) else values


def run_count(
    axes: Mapping[str, AxisValues], seeds: int, method: SweepMethod, samples: int | None
) -> int:
    """How many children the sweep has, before anything is validated (for the cap)."""
    if method == "random":
        return (samples or 0) * seeds
    return math.prod(len(_listed(v)) for v in axes.values() if not isinstance(v, AxisRange)) * seeds


def _first(error: ValidationError) -> str:
    """A validation error in one line: each problem's location in the spec and message."""
    return "; ".join(
        f"{error_item['msg']} (at spec.{'.'.join(str(p) for p in error_item['loc'])})"
        if error_item["loc"]
        else error_item["msg"]
        for error_item in error.errors()[:3]
    )
