"""Claims a sweep makes about its own results, each checked against an interval over seeds.

A reproduction is only as good as the sentence it supports. A sweep can state that
sentence as a claim, and the table then says whether the seeds bear it out:

- `greater`: a result in one cell exceeds a result in another cell (or another result in
  the same cell, or a number). Checked on the differences paired by seed (every cell of a
  sweep runs the same seeds): **shown** when the whole 95% Student-t interval of the mean
  difference lies above `margin`, **reversed** when it lies below −`margin`, and
  **not shown** otherwise, including an effect inside the noise.
- `within`: a result sits near a number, e.g. a blind baseline at chance: **shown** when
  the whole 95% interval of its mean lies inside [of − tolerance, of + tolerance].

Fewer than two seeds give no interval, so no verdict: **too few seeds**.

>>> from core.tables import Child
>>> runs = [Child({"width": w, "seed": s}, "succeeded", {"acc": a})
...         for w, s, a in [(8, 0, 0.40), (8, 1, 0.38), (8, 2, 0.41),
...                         (64, 0, 0.99), (64, 1, 1.00), (64, 2, 0.98)]]
>>> wider = Greater(test="greater", statement="wider memorizes more", value="acc",
...                 cell={"width": 64}, than=Side(cell={"width": 8}))
>>> check_claim(wider, runs).verdict
'shown'
>>> check_claim(Within(test="within", statement="at chance", value="acc",
...                    cell={"width": 8}, of=0.5, tolerance=0.05), runs).verdict
'not shown'
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.stats import Summary, summarize
from core.tables import Child, child_values

VerdictName = Literal["shown", "not shown", "reversed", "too few seeds", "no data"]

ResultPath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="A result path as the sweep table names it: `final.facts`, "
        "`probe.exposure.mean_exposure.r10`.",
    ),
]
CellSelector = Annotated[
    dict[str, Any],
    Field(
        max_length=16,
        description="Axis path → value, pinning one cell of the sweep; {} in a sweep of one "
        "cell (or to take every axis's only value).",
    ),
]


class Side(BaseModel):
    """The other side of a `greater` claim: a cell, a result path, or both; what is left
    out is the claim's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell: CellSelector | None = None
    value: ResultPath | None = None

    @model_validator(mode="after")
    def _names_something(self) -> Side:
        if self.cell is None and self.value is None:
            raise ValueError("the other side needs a `cell`, a `value`, or both")
        return self


class _Claim(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    statement: str = Field(
        min_length=1, max_length=300, description="The sentence the claim supports."
    )
    value: ResultPath
    cell: CellSelector = Field(default_factory=dict)


class Greater(_Claim):
    """`value` at `cell` exceeds `than` (another cell and/or value, or a number) by more
    than `margin`."""

    test: Literal["greater"]
    than: Side | float
    margin: float = Field(0.0, ge=0, description="How much larger counts as larger.")

    @model_validator(mode="after")
    def _two_sides(self) -> Greater:
        if (
            isinstance(self.than, Side)
            and (self.than.cell in (None, self.cell))
            and (self.than.value in (None, self.value))
        ):
            raise ValueError("`than` names the claim's own cell and value: nothing to compare")
        return self


class Within(_Claim):
    """`value` at `cell` lies within `tolerance` of `of` (e.g. a blind baseline at chance)."""

    test: Literal["within"]
    of: float
    tolerance: float = Field(gt=0)


Claim = Annotated[Greater | Within, Field(discriminator="test")]


@dataclass(frozen=True)
class Verdict:
    """What the seeds say about one claim: the verdict, and the interval it rests on (of
    the paired difference for `greater`, of the value for `within`)."""

    statement: str
    test: str
    verdict: VerdictName
    n: int
    mean: float | None
    ci95_low: float | None
    ci95_high: float | None
    reason: str


def check_claims(claims: Sequence[Greater | Within], children: Sequence[Child]) -> list[Verdict]:
    """Each claim's verdict over the succeeded children (each child's values read once)."""
    succeeded = _succeeded(children)
    return [_check(claim, succeeded) for claim in claims]


def check_claim(claim: Greater | Within, children: Sequence[Child]) -> Verdict:
    return _check(claim, _succeeded(children))


def _succeeded(children: Sequence[Child]) -> list[tuple[Child, dict[str, float]]]:
    return [(child, child_values(child)) for child in children if child.status == "succeeded"]


def _check(claim: Greater | Within, succeeded: Sequence[tuple[Child, dict[str, float]]]) -> Verdict:
    left = _by_seed(succeeded, claim.cell, claim.value)
    if isinstance(claim, Within):
        return _within(claim, list(left.values()))
    if isinstance(claim.than, Side):
        cell = claim.cell if claim.than.cell is None else claim.than.cell
        right = _by_seed(succeeded, cell, claim.than.value or claim.value)
    else:
        right = dict.fromkeys(left, float(claim.than))
    paired = sorted(left.keys() & right.keys())
    unpaired = len(left.keys() | right.keys()) - len(paired)
    if left and right and not paired:
        reason = f"no seed has a value on both sides (seeds {sorted(left)} against {sorted(right)})"
        return Verdict(claim.statement, claim.test, "too few seeds", 0, None, None, None, reason)
    verdict = _greater(claim, [left[seed] - right[seed] for seed in paired])
    if unpaired:  # e.g. a seed that never reached a target has no epochs_to_target
        note = f"; {unpaired} seed(s) with a value on one side only left out"
        verdict = dataclasses.replace(verdict, reason=verdict.reason + note)
    return verdict


def _within(claim: Within, values: list[float]) -> Verdict:
    summary = summarize(values) if values else None
    if summary is None or summary.ci95_low is None or summary.ci95_high is None:
        return _no_interval(claim, summary.n if summary else 0)
    low, high = claim.of - claim.tolerance, claim.of + claim.tolerance
    inside = low <= summary.ci95_low and summary.ci95_high <= high
    reason = (
        f"95% interval over {summary.n} seeds [{summary.ci95_low:.4g}, {summary.ci95_high:.4g}] "
        f"{'inside' if inside else 'not inside'} [{low:.4g}, {high:.4g}]"
    )
    return _verdict(claim, "shown" if inside else "not shown", summary, reason)


def _greater(claim: Greater, differences: list[float]) -> Verdict:
    """The verdict on the paired differences (left − right, one per seed)."""
    summary = summarize(differences) if differences else None
    if summary is None or summary.ci95_low is None or summary.ci95_high is None:
        return _no_interval(claim, summary.n if summary else 0)
    margin = f"{claim.margin:.4g}"
    if summary.ci95_low > claim.margin:
        verdict, where = "shown", f"above {margin}"
    elif summary.ci95_high < -claim.margin:
        verdict, where = "reversed", f"below {'-' + margin if claim.margin else '0'}"
    else:
        verdict, where = "not shown", f"not above {margin}"
    reason = (
        f"paired difference over {summary.n} seeds: 95% interval "
        f"[{summary.ci95_low:.4g}, {summary.ci95_high:.4g}], {where}"
    )
    return _verdict(claim, verdict, summary, reason)


def _no_interval(claim: Greater | Within, n: int) -> Verdict:
    if n == 0:
        reason = f"no succeeded seed reports {claim.value!r} where the claim looks"
        return Verdict(claim.statement, claim.test, "no data", 0, None, None, None, reason)
    reason = f"{n} seed: an interval needs at least 2"
    return Verdict(claim.statement, claim.test, "too few seeds", n, None, None, None, reason)


def _verdict(claim: Greater | Within, verdict: str, summary: Summary, reason: str) -> Verdict:
    return Verdict(
        claim.statement,
        claim.test,
        verdict,
        summary.n,
        summary.mean,
        summary.ci95_low,
        summary.ci95_high,
        reason,
    )


def _by_seed(
    succeeded: Sequence[tuple[Child, dict[str, float]]], cell: Mapping[str, Any], path: str
) -> dict[int, float]:
    """The value at `path` of each succeeded child (with its values) in the cell `cell`
    selects, by seed."""
    found: dict[int, float] = {}
    for child, values in succeeded:
        value = values.get(path) if _in_cell(child.cell, cell) else None
        if value is not None and math.isfinite(value):
            found[int(child.cell.get("seed", 0))] = value
    return found


def _in_cell(coordinates: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    return all(axis in coordinates and coordinates[axis] == v for axis, v in selector.items())


def selector_problems(
    claims: Sequence[Greater | Within], cells: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """(location, message) for each cell selector that names an axis the sweep lacks or does
    not pin exactly one of its `cells` (coordinates without the seed)."""
    axes = {axis for cell in cells for axis in cell}
    problems = []
    for index, claim in enumerate(claims):
        selectors = [("cell", claim.cell)]
        if (
            isinstance(claim, Greater)
            and isinstance(claim.than, Side)
            and claim.than.cell is not None
        ):
            selectors.append(("than.cell", claim.than.cell))
        for where, selector in selectors:
            message = _selector_problem(selector, axes, cells)
            if message:
                problems.append((f"claims[{index}].{where}", message))
    return problems


def _selector_problem(
    selector: Mapping[str, Any], axes: set[str], cells: Sequence[Mapping[str, Any]]
) -> str | None:
    unknown = sorted(set(selector) - axes)
    if unknown:
        return f"{', '.join(unknown)} is not an axis of this sweep (axes: {sorted(axes) or 'none'})"
    matching = {repr(sorted(c.items())) for c in cells if _in_cell(c, selector)}
    if len(matching) == 1:
        return None
    if not matching:
        return f"no cell of the sweep has {dict(selector)}"
    free = sorted(axes - set(selector))
    return f"{len(matching)} cells match {dict(selector)}: give a value for {', '.join(free)}"
