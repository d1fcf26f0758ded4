"""A sweep's results as a table: one row per cell, each numeric result summarized over
the cell's seeds.

Results are flattened to dotted paths (`final.facts`), probe results to
`probe.<kind>.<path>` (`probe.loss_mia.attack.auc`), and each point of a result's
`curves` (`core.curves`) to `curve.<name>.<x_name>=<x>.<field>` with field one of mean,
ci95_low, ci95_high and theory (`curve.E_attention.gamma=0.1.mean`). Only succeeded children enter a
summary; every child is counted by status, so a cell whose runs failed shows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.stats import Summary, summarize

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
SUMMARY_COLUMNS = ("mean", "std", "ci95_low", "ci95_high", "n")


@dataclass(frozen=True)
class Child:
    """What the table reads of one child: its cell (axis path → value, and "seed"), its
    status, its result, and its succeeded probes' results by probe kind."""

    cell: Mapping[str, Any]
    status: str
    result: Mapping[str, Any] | None
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class CellRow:
    """One cell: its coordinates (without the seed), its children by status, and each
    numeric value summarized over its succeeded children."""

    cell: dict[str, Any]
    counts: dict[str, int]
    values: dict[str, Summary]


def sweep_table(children: Sequence[Child]) -> list[CellRow]:
    """One row per cell, in the order cells first appear in `children`."""
    cells: dict[str, tuple[dict[str, Any], list[Child]]] = {}
    for child in children:
        coordinates = {k: v for k, v in child.cell.items() if k != "seed"}
        key = repr(sorted(coordinates.items()))
        cells.setdefault(key, (coordinates, []))[1].append(child)
    return [_row(coordinates, members) for coordinates, members in cells.values()]


def _row(coordinates: dict[str, Any], children: list[Child]) -> CellRow:
    counts = dict.fromkeys(STATUSES, 0)
    samples: dict[str, list[float]] = {}
    for child in children:
        counts[child.status] = counts.get(child.status, 0) + 1
        if child.status != "succeeded":
            continue
        for path, value in child_values(child).items():
            samples.setdefault(path, []).append(value)
    values = {path: summarize(found) for path, found in sorted(samples.items())}
    return CellRow(coordinates, counts, values)


def child_values(child: Child) -> dict[str, float]:
    """Every number a child reports, by table path: its result's and its probes'."""
    values = dict(numeric_leaves(child.result or {}))
    values.update(curve_leaves((child.result or {}).get("curves")))
    for kind, result in sorted(child.probes.items()):
        values.update(numeric_leaves(result, f"probe.{kind}"))
    return values


def numeric_leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """Every finite number below `value` (booleans and lists left out), with its dotted
    path: {"final": {"facts": 0.5}} → ("final.facts", 0.5)."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from numeric_leaves(child, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        yield prefix, float(value)


CURVE_FIELDS = ("mean", "ci95_low", "ci95_high", "theory")


def curve_leaves(curves: Any) -> Iterator[tuple[str, float]]:
    """Each point of a result's curves as table paths: `curve.<name>.<x_name>=<x>.mean`,
    `.ci95_low`, `.ci95_high` and `.theory`, leaving out what is missing or not finite."""
    if not isinstance(curves, list):
        return
    for curve in curves:
        if not isinstance(curve, Mapping):
            continue
        means = curve.get("mean") or []
        intervals = curve.get("ci95") or []
        theory = curve.get("theory") or []
        for index, x in enumerate(curve.get("x") or []):
            if not isinstance(x, int | float) or index >= len(means):
                continue
            prefix = f"curve.{curve.get('name')}.{curve.get('x_name')}={x:g}"
            interval = intervals[index] if index < len(intervals) else None
            point = {
                "mean": means[index],
                "ci95_low": interval[0] if interval else None,
                "ci95_high": interval[1] if interval else None,
                "theory": theory[index] if index < len(theory) else None,
            }
            for field_name, value in point.items():
                if isinstance(value, int | float) and math.isfinite(value):
                    yield f"{prefix}.{field_name}", float(value)


def flat_table(rows: Sequence[CellRow]) -> tuple[list[str], list[list[Any]]]:
    """The table as columns and rows of plain values, for CSV and Parquet: the axes, the
    counts per status, then `<path>.mean`, `.std`, `.ci95_low`, `.ci95_high`, `.n` for
    each value (None where a cell has none)."""
    axes = list(dict.fromkeys(axis for row in rows for axis in row.cell))
    paths = sorted({path for row in rows for path in row.values})
    columns = [
        *axes,
        *(f"n_{status}" for status in STATUSES),
        *(f"{path}.{stat}" for path in paths for stat in SUMMARY_COLUMNS),
    ]
    table = []
    for row in rows:
        line: list[Any] = [row.cell.get(axis) for axis in axes]
        line += [row.counts.get(status, 0) for status in STATUSES]
        for path in paths:
            summary = row.values.get(path)
            line += [getattr(summary, stat) if summary else None for stat in SUMMARY_COLUMNS]
        table.append(line)
    return columns, table
