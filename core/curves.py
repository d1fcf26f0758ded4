"""Curves: what a run of a theory-checking kind reports, one measured curve over its own
grid and seeds, with the closed form (or surrogate) beside it on the same x.

One run is one or more curves. The grid (x) and the seeds are spec fields of the run,
so a curve carries its own interval: at every x, the mean over the seeds and its 95%
Student-t interval (`core.stats`). `theory` is the prediction at the same x, or None
where no theory exists. A result holds them as `curves: [Curve.as_json(), …]`; the
sweep table flattens each point (`core.tables.curve_leaves`) and the dashboard plots
measurement and theory on the same axes.

Shapes: S seeds, X grid points.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from core.reporter import Reporter, RunCancelled
from core.stats import summarize

T = TypeVar("T")

# The server setting that caps the side of any matrix a computing kind builds (p, n, N,
# d, samples), with its default: one setting for every theory kind, so an operator sets
# one number for the memory a worker may spend on a dense matrix. 8,192² float64 is
# 512 MiB.
MATRIX_DIM_SETTING = "MEMLAB_MAX_MATRIX_DIM"
MATRIX_DIM_DEFAULT = 8192
# The setting that caps the work of one run where sizes multiply (samples × K, resamples
# × reruns × d): each side under MATRIX_DIM can still multiply to terabytes. 2²⁷ float64
# cells are 1 GiB.
THEORY_CELLS_SETTING = "MEMLAB_MAX_THEORY_CELLS"
THEORY_CELLS_DEFAULT = 2**27

# The server setting (and its default) that caps a trained kind's train.steps, for a
# computing kind whose work is counted in steps of the same size (an update of a network
# or of a table), so one number caps both.
MAX_STEPS_SETTING = "MEMLAB_MAX_STEPS"
MAX_STEPS_DEFAULT = 2_000_000

# The most points a run's grid may have (γ, α, K, n …), for every theory kind.
MAX_GRID_POINTS = 64

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Curve:
    """A measured quantity against x, over seeds, with theory beside it.

    name:    what is measured, unique within a run (e.g. "E_attention").
    x_name:  the grid's variable (e.g. "gamma").
    x:       (X,) grid values.
    mean:    (X,) mean over the seeds at each x.
    ci95:    (X,) 95% Student-t interval of the mean, None where fewer than 2 seeds.
    theory:  (X,) the prediction at each x, None where no theory exists at all, and a
             None entry where it exists on part of the grid only (e.g. below a critical
             load).
    n_seeds: S, the seeds behind each mean.
    """

    name: str
    x_name: str
    x: tuple[float, ...]
    mean: tuple[float, ...]
    ci95: tuple[tuple[float, float] | None, ...]
    theory: tuple[float | None, ...] | None
    n_seeds: int

    def __post_init__(self) -> None:
        # Names become table paths (`curve.<name>.<x_name>=<x>.mean`): no dots, no "=".
        for label in (self.name, self.x_name):
            if not _NAME.fullmatch(label):
                raise ValueError(f"curve label {label!r} must be letters, digits and _")
        lengths = {len(self.x), len(self.mean), len(self.ci95)}
        if self.theory is not None:
            lengths.add(len(self.theory))
        if len(lengths) != 1:
            raise ValueError(f"curve {self.name!r}: x, mean, ci95 and theory differ in length")

    def as_json(self) -> dict[str, Any]:
        """The curve as a result holds it: plain lists, an interval as [low, high]."""
        return {
            "name": self.name,
            "x_name": self.x_name,
            "x": list(self.x),
            "mean": list(self.mean),
            "ci95": [list(interval) if interval else None for interval in self.ci95],
            "theory": list(self.theory) if self.theory is not None else None,
            "n_seeds": self.n_seeds,
        }


def curve_from_samples(
    name: str,
    x_name: str,
    x: Sequence[float],
    samples: Sequence[Sequence[float]],
    theory: Sequence[float | None] | None = None,
) -> Curve:
    """The curve of `samples` (S seeds × X points): mean and 95% interval at each x."""
    if not samples or any(len(row) != len(x) for row in samples):
        raise ValueError(f"curve {name!r}: every seed needs one value per grid point")
    means, intervals = [], []
    for column in zip(*samples, strict=True):
        summary = summarize([float(v) for v in column])
        means.append(summary.mean)
        if summary.ci95_low is None or summary.ci95_high is None:
            intervals.append(None)
        else:
            intervals.append((summary.ci95_low, summary.ci95_high))
    return Curve(
        name=name,
        x_name=x_name,
        x=tuple(float(v) for v in x),
        mean=tuple(means),
        ci95=tuple(intervals),
        theory=tuple(None if v is None else float(v) for v in theory)
        if theory is not None
        else None,
        n_seeds=len(samples),
    )


def replicate_generator(seed: int, replicate: int, stream: str = "") -> torch.Generator:
    """The generator of replicate `replicate` (an inner seed) of a run seeded `seed`:
    distinct for every (seed, replicate) pair, so runs with neighbouring seeds share no
    replicate. A named `stream` (one learner's noise, the data at one n) is a further
    generator of the same replicate, so a draw does not depend on what else the run draws."""
    key = f"{seed}:{replicate}" + (f":{stream}" if stream else "")
    digest = hashlib.sha256(key.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def seeded_steps(
    items: Sequence[T], reporter: Reporter, describe: Callable[[T], str]
) -> Iterator[tuple[int, T]]:
    """Each item with its index, checking for a stop before each and reporting progress
    after it, ending at 1.0: the loop of a computing kind over its seeds or grid."""
    total = len(items)
    for index, item in enumerate(items):
        if reporter.should_stop():
            raise RunCancelled(index)
        yield index, item
        reporter.progress((index + 1) / total, describe(item))


def finite(values: Iterable[float]) -> bool:
    """Every value is a finite number (a result holds no NaN or infinity)."""
    return all(math.isfinite(v) for v in values)


def check_grid(grid: Sequence[float]) -> None:
    """Raise ValueError unless `grid` has 1 … MAX_GRID_POINTS strictly increasing points
    (a field validator turns it into a 422 at the field)."""
    if not grid:
        raise ValueError("the grid needs at least one point")
    if len(grid) > MAX_GRID_POINTS:
        raise ValueError(f"the grid has {len(grid)} points; at most {MAX_GRID_POINTS}")
    if any(later <= earlier for earlier, later in itertools.pairwise(grid)):
        raise ValueError("the grid must be strictly increasing")


def mean_and_interval(
    key: str, values: Sequence[float], mean_suffix: str = "_mean"
) -> dict[str, float]:
    """A headline value over replicates: its mean (under `key` + `mean_suffix`) and, over
    two or more values, `key_ci95_low` and `key_ci95_high`, the 95% Student-t interval of
    the mean.

    >>> mean_and_interval("gap", [0.1, 0.3])["gap_mean"]
    0.2
    """
    summary = summarize([float(v) for v in values])
    found = {f"{key}{mean_suffix}": summary.mean}
    if summary.ci95_low is not None and summary.ci95_high is not None:
        found[f"{key}_ci95_low"] = summary.ci95_low
        found[f"{key}_ci95_high"] = summary.ci95_high
    return found


def check_finite_result(result: dict[str, Any], why: str = "") -> dict[str, Any]:
    """`result` (its `curves` as JSON and its `headline`), refused with ArithmeticError
    naming the curve if a mean, a theory value or a headline number is NaN or infinite;
    `why` says what usually causes it."""
    for curve in result["curves"]:
        theory = [t for t in curve["theory"] or [] if t is not None]
        if not finite([*curve["mean"], *theory]):
            cause = f": {why}" if why else ""
            raise ArithmeticError(f"{curve['name']} is not finite at some {curve['x_name']}{cause}")
    if not finite(result["headline"].values()):
        raise ArithmeticError("the headline is not finite")
    return result
