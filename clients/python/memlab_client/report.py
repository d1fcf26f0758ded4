"""A finished reproduction as Markdown, from the files `memlab reproduce` wrote: its table
(docs/data/NAME.csv) and its record (docs/data/NAME.json). No server is needed, so the
tables in docs/reproductions.md can be printed again from what is committed."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from memlab_client.reproduce import (
    ReproduceError,
    default_values,
    read_sweep_file,
    table_values,
)

STATUS_COLUMNS = ("n_queued", "n_running", "n_succeeded", "n_failed", "n_cancelled")
# A curve point's column in a sweep table: `curve.<name>.<x_name>=<x>.<field>.<statistic>`
# (the server's `core.tables.curve_leaves`, then the table's summary over seeds).
_CURVE_COLUMN = re.compile(
    r"curve\.(?P<name>\w+)\.(?P<x_name>\w+)=(?P<x>.+)\.(?P<field>mean|theory)\.mean"
)


def markdown_report(
    data: Path,
    name: str,
    values: list[str] | None,
    examples: Path,
    digits: int = 3,
    curves: list[str] | None = None,
    cells: dict[str, str] | None = None,
    claims: bool = True,
) -> str:
    """The table (one row per cell: its axes, its seeds, then `mean ± half-width` of the
    95% interval for each of `values`, by default the paths its claims name), then for
    each of `curves` a table per cell of the curve against its x with its theory beside
    it, and the claims with their verdicts. `cells` keeps only the rows whose axes have
    those values (as the table's CSV writes them). Curves asked for without `values` come
    without the table; `claims` False leaves out the claims and the sweep's line."""
    table_file, record_file = data / f"{name}.csv", data / f"{name}.json"
    if not table_file.is_file() or not record_file.is_file():
        raise ReproduceError(
            f"no {table_file} and {record_file}: run `memlab reproduce {name}` first"
        )
    with table_file.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    unknown = sorted(set(cells or {}) - set(rows[0] if rows else []))
    if unknown:
        raise ReproduceError(f"{table_file} has no axis {unknown[0]!r}")
    rows = [row for row in rows if all(row[a] == v for a, v in (cells or {}).items())]
    record = _read_record(record_file)
    columns = list(rows[0]) if rows else []
    table_skipped = values is None and bool(curves)
    if values is None:
        values = [] if table_skipped else _claimed_values(record, examples, columns)
    axes = columns[: columns.index(STATUS_COLUMNS[0])] if STATUS_COLUMNS[0] in columns else []
    missing = [v for v in values if f"{v}.mean" not in columns]
    if missing:
        raise ReproduceError(f"{table_file} has no value {missing[0]!r}")
    lines: list[str] = []
    if not table_skipped:
        lines = [
            "| " + " | ".join([*axes, "seeds", *values]) + " |",
            "|" + "---|" * (len(axes) + 1 + len(values)),
        ]
        shown = {axis: varying_keys([_parsed(row[axis]) for row in rows]) for axis in axes}
        for row in rows:
            line = [_axis_text(only(_parsed(row[axis]), shown[axis])) for axis in axes]
            line.append(_seeds_text(row))
            line += [_value_text(row, value, digits) for value in values]
            lines.append("| " + " | ".join(line) + " |")
    for curve in curves or []:
        lines += ["", *curve_tables(rows, axes, curve, digits)]
    if not claims:
        return "\n".join(lines).lstrip("\n") + "\n"
    lines += ["", *_claims_lines(record["claims"], digits)]
    lines.append(
        f"Sweep `{record['sweep_id']}` ({record['file']}, sha256 {record['file_sha256'][:12]}…): "
        f"{record['status']}, {sum(record['counts'].values())} runs"
        + (f", {record['minutes']} min of training" if record.get("minutes") is not None else "")
        + "."
    )
    return "\n".join(lines) + "\n"


def curve_tables(rows: list[dict[str, str]], axes: list[str], curve: str, digits: int) -> list[str]:
    """Curve `curve` in each cell: one line per x the cell has, the measured mean ± the
    half-width of its 95% interval over the sweep's seeds, and the theory at that x where
    there is one. Cells whose curves run over different variables name each x's."""
    columns = list(rows[0]) if rows else []
    mine = [m for c in columns if (m := _CURVE_COLUMN.fullmatch(c)) and m["name"] == curve]
    if not mine:
        raise ReproduceError(f"the table has no curve {curve!r}")
    # Table columns are sorted as text ("10" before "2"): the curve runs in x's order.
    present = [m for m in mine if any(row.get(m.string) for row in rows)]
    points = sorted({(m["x_name"], m["x"]) for m in present}, key=lambda p: (p[0], float(p[1])))
    x_names = sorted({x_name for x_name, _ in points})
    has_theory = any(m["field"] == "theory" for m in mine)
    shown = {axis: varying_keys([_parsed(row[axis]) for row in rows]) for axis in axes}
    header = [
        *axes,
        x_names[0] if len(x_names) == 1 else "x",
        f"{curve} (measured)",
        *([f"{curve} (theory)"] if has_theory else []),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cell = [_axis_text(only(_parsed(row[axis]), shown[axis])) for axis in axes]
        for x_name, x in points:
            path = f"curve.{curve}.{x_name}={x}"
            if not row.get(f"{path}.mean.mean"):
                continue  # this cell's curve has no point there
            x_text = x if len(x_names) == 1 else f"{x_name}={x}"
            line = [*cell, x_text, _value_text(row, f"{path}.mean", digits)]
            if has_theory:
                theory = row.get(f"{path}.theory.mean")
                line.append(number(float(theory), digits) if theory else "—")
            lines.append("| " + " | ".join(line) + " |")
    return lines


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
        missing = {"claims", "sweep_id", "file", "file_sha256", "status", "counts"} - set(record)
        if missing:
            raise KeyError(", ".join(sorted(missing)))
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ReproduceError(
            f"{path} is not a record `memlab reproduce` wrote ({error})"
        ) from error
    return dict(record)


def _claimed_values(record: dict[str, Any], examples: Path, columns: list[str]) -> list[str]:
    """The result paths the reproduction's claims name (from its sweep file in
    `examples`), else the table's final and probe values."""
    sweep_file = examples / Path(record["file"]).name
    named = table_values(read_sweep_file(sweep_file).request, []) if sweep_file.is_file() else []
    paths = sorted({c.removesuffix(".mean") for c in columns if c.endswith(".mean")})
    return named or default_values(paths)


def varying_keys(values: list[Any]) -> set[str] | None:
    """For an axis over a sub-spec (object values), the keys whose values differ between
    its cells, so that a cell can show only those; None for other axes."""
    if not values or not all(isinstance(value, dict) for value in values):
        return None
    keys = {key for value in values for key in value}
    return {k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in values}) > 1}


def only(value: Any, keys: set[str] | None) -> Any:
    """The object `value` cut down to `keys` (any other value as it is)."""
    if keys is None or not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k in keys}


def _parsed(text: str) -> Any:
    """A CSV cell: an axis over a sub-spec is stored as its JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _axis_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items())
    return value if isinstance(value, str) else json.dumps(value)


def _seeds_text(row: dict[str, str]) -> str:
    succeeded = int(row["n_succeeded"])
    others = {
        status.removeprefix("n_"): int(row[status])
        for status in STATUS_COLUMNS
        if status != "n_succeeded" and row.get(status) and int(row[status])
    }
    return str(succeeded) + "".join(f", {n} {status}" for status, n in others.items())


def _value_text(row: dict[str, str], value: str, digits: int) -> str:
    """`0.412 ± 0.031`: the mean and the half-width of its 95% interval; the mean alone
    for one seed; empty where the cell has none."""
    mean = row.get(f"{value}.mean")
    if not mean:
        return "—"
    high = row.get(f"{value}.ci95_high")
    text = number(float(mean), digits)
    if high:
        half = float(high) - float(mean)
        exact = abs(half) <= 1e-9 * max(1.0, abs(float(mean)))  # equal seeds: rounding residue
        text += f" ± {number(0.0 if exact else half, 2)}"
    n = int(float(row[f"{value}.n"]))
    return text if n == int(row["n_succeeded"]) else f"{text} (n = {n})"  # some lack it


def number(x: float, digits: int) -> str:
    """`digits` significant digits, but no exponent: 1,234 rather than 1.23e+03."""
    return f"{x:,.0f}" if abs(x) >= 10 ** (digits - 1) and abs(x) >= 10 else f"{x:.{digits}g}"


def _claims_lines(claims: list[dict[str, Any]], digits: int) -> list[str]:
    if not claims:
        return []
    lines = [
        "| claim | verdict | mean difference or value [95% interval], seeds |",
        "|---|---|---|",
    ]
    for claim in claims:
        if claim["ci95_low"] is None:
            evidence = claim["reason"]
        else:
            evidence = (
                f"{number(claim['mean'], digits)} [{number(claim['ci95_low'], digits)}, "
                f"{number(claim['ci95_high'], digits)}], n = {claim['n']}"
            )
        lines.append(f"| {claim['statement']} | **{claim['verdict']}** | {evidence} |")
    return [*lines, ""]
