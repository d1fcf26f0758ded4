"""Small pieces the runners of `associative_memory` share: a grid's validation, a
headline value with its interval over replicates, and the final check that a result
holds only finite numbers.

>>> interval("gap", [0.1, 0.3])["gap_mean"]
0.2
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from core.curves import finite
from core.stats import summarize

MAX_GRID_POINTS = 64


def check_grid(grid: Sequence[float]) -> None:
    """Raise ValueError unless `grid` has 1 … MAX_GRID_POINTS strictly increasing points."""
    if not grid:
        raise ValueError("the grid needs at least one point")
    if len(grid) > MAX_GRID_POINTS:
        raise ValueError(f"the grid has {len(grid)} points; at most {MAX_GRID_POINTS}")
    if any(later <= earlier for earlier, later in itertools.pairwise(grid)):
        raise ValueError("the grid must be strictly increasing")


def interval(key: str, values: Sequence[float]) -> dict[str, float]:
    """`key_mean` and, over two or more values, `key_ci95_low` and `key_ci95_high` (a 95%
    Student-t interval of the mean)."""
    summary = summarize([float(v) for v in values])
    found = {f"{key}_mean": summary.mean}
    if summary.ci95_low is not None and summary.ci95_high is not None:
        found[f"{key}_ci95_low"] = summary.ci95_low
        found[f"{key}_ci95_high"] = summary.ci95_high
    return found


def checked(result: dict[str, Any], kind: str) -> dict[str, Any]:
    """`result`, refused if a number in its headline or curves is not finite."""
    numbers = list(result["headline"].values())
    for curve in result["curves"]:
        numbers += curve["mean"] + [t for t in curve["theory"] or [] if t is not None]
    if not finite(numbers):
        raise ArithmeticError(f"{kind} produced a non-finite number")
    return result
