"""pandas DataFrames from the API's answers: a sweep's table, a listing of experiments, and
the metric series of several runs side by side.

pandas is the `[frames]` extra: it is imported only when a frame is built, and where it is
missing that is an ImportError which says how to install it. Each builder takes the decoded
JSON of one answer, so it can be tested without a server:

>>> frame = table_frame({"axes": ["model.n_embd"], "rows": [
...     {"cell": {"model.n_embd": 14}, "counts": {"succeeded": 2},
...      "values": {"final.facts": {"n": 2, "mean": 0.5, "std": 0.1,
...                                 "ci95_low": -0.4, "ci95_high": 1.4}}}]})
>>> list(frame.columns)[:3], float(frame.loc[0, "final.facts.mean"])
(['model.n_embd', 'n_queued', 'n_running'], 0.5)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# The order of the server's CSV and Parquet tables (core/tables.py), so the three agree.
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
SUMMARY_STATS = ("mean", "std", "ci95_low", "ci95_high", "n")
EXPERIMENT_COLUMNS = ("id", "name", "kind", "status", "created_at")

INSTALL_HINT = 'pip install "memlab-client[frames]"'


def require_pandas() -> ModuleType:
    """pandas, or an ImportError that names the extra which installs it."""
    try:
        import pandas
    except ImportError as error:
        raise ImportError(
            "DataFrames from memlab need pandas, which the client installs only with its "
            f"`frames` extra: {INSTALL_HINT} (from a memlab checkout: "
            'pip install "./clients/python[frames]").'
        ) from error
    return pandas


def table_frame(body: Mapping[str, Any]) -> pd.DataFrame:
    """A sweep's table (GET /v1/sweeps/{id}/table) with one row per cell: a column per axis,
    `n_<status>` counts, then `<path>.mean`, `.std`, `.ci95_low`, `.ci95_high`, `.n` for
    each summarized value (NaN where a cell has none), as in the CSV and Parquet files.

    An axis value that is an object or a list (an axis over a sub-spec) is its JSON text,
    as in those files, so every column can be grouped and pivoted on.
    """
    pandas = require_pandas()
    rows: Sequence[Mapping[str, Any]] = body["rows"]
    axes = list(dict.fromkeys([*body.get("axes", []), *(a for row in rows for a in row["cell"])]))
    statuses = list(dict.fromkeys([*RUN_STATUSES, *(s for row in rows for s in row["counts"])]))
    paths = sorted({path for row in rows for path in row["values"]})
    count_columns = [f"n_{status}" for status in statuses]
    records = []
    for row in rows:
        record: dict[str, Any] = {axis: _plain(row["cell"].get(axis)) for axis in axes}
        record.update({f"n_{s}": row["counts"].get(s, 0) for s in statuses})
        for path in paths:
            summary = row["values"].get(path) or {}
            record.update({f"{path}.{stat}": summary.get(stat) for stat in SUMMARY_STATS})
        records.append(record)
    stat_columns = [f"{path}.{stat}" for path in paths for stat in SUMMARY_STATS]
    frame = pandas.DataFrame.from_records(records, columns=[*axes, *count_columns, *stat_columns])
    frame[count_columns] = frame[count_columns].astype("int64")
    for column in stat_columns:
        # Interval and spread are null below two seeds; n is missing only where the value is.
        frame[column] = frame[column].astype("Int64" if column.endswith(".n") else "float64")
    return frame


def experiments_frame(items: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per experiment: id, name, kind, status, created_at (UTC timestamps), then
    its spec and result flattened to dotted columns (`spec.train.lr`, `result.final.facts`);
    a list stays one value. A column a run lacks is NaN (None for text) in its row."""
    pandas = require_pandas()
    records = []
    for item in items:
        record: dict[str, Any] = {column: item.get(column) for column in EXPERIMENT_COLUMNS}
        record.update(flatten(item.get("spec") or {}, "spec"))
        record.update(flatten(item.get("result") or {}, "result"))
        records.append(record)
    # Spec columns first, then result columns, each in the order first met.
    spec_columns = dict.fromkeys(k for r in records for k in r if k.startswith("spec."))
    result_columns = dict.fromkeys(k for r in records for k in r if k.startswith("result."))
    columns = [*EXPERIMENT_COLUMNS, *spec_columns, *result_columns]
    frame = pandas.DataFrame.from_records(records, columns=columns)
    frame["created_at"] = pandas.to_datetime(frame["created_at"], utc=True, format="ISO8601")
    return frame


def compare_frame(body: Mapping[str, Any], run_order: Sequence[str] = ()) -> pd.DataFrame:
    """The series of several runs (GET /v1/experiments/compare) as one frame: indexed by
    `step`, a column per (run, key), NaN where a run has no point at that step.

    Runs come in `run_order` (the ids asked for), then any others in the answer's order.

    Raises:
        ValueError: a series whose length differs from the steps' (the answer is malformed).
    """
    pandas = require_pandas()
    steps: list[int] = body["steps"]
    series: Mapping[str, Mapping[str, Sequence[float | None]]] = body["series"]
    runs = [run for run in run_order if run in series]
    runs += [run for run in series if run not in runs]
    columns: dict[tuple[str, str], list[float]] = {}
    for run in runs:
        for key, points in series[run].items():
            if len(points) != len(steps):
                raise ValueError(
                    f"the compare answer's series {run} {key} has {len(points)} points for "
                    f"{len(steps)} steps"
                )
            columns[(run, key)] = [float("nan") if p is None else float(p) for p in points]
    index = pandas.Index(steps, name="step", dtype="int64")
    frame = pandas.DataFrame(dict(enumerate(columns.values())), index=index, dtype="float64")
    frame.columns = pandas.MultiIndex.from_arrays(
        [[run for run, _ in columns], [key for _, key in columns]], names=["run", "key"]
    )
    return frame


def flatten(value: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """(`prefix.a.b`, leaf) for every leaf of nested dicts; lists and scalars are leaves.

    >>> dict(flatten({"train": {"lr": 0.01, "steps": 5}, "seeds": [1, 2]}, "spec"))
    {'spec.train.lr': 0.01, 'spec.train.steps': 5, 'spec.seeds': [1, 2]}
    """
    for key, item in value.items():
        path = f"{prefix}.{key}"
        if isinstance(item, Mapping) and item:
            yield from flatten(item, path)
        else:
            yield path, item


def _plain(value: Any) -> Any:
    """A scalar as is; an object or list as its JSON text (as the server's CSV writes it)."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value
