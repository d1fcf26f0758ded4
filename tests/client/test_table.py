"""`memlab table`: a sweep's means and intervals per cell, from a sweep a worker ran."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from client.sdk import MemlabClient
from tests.client.conftest import ThreadWorker
from tests.conftest import tiny_capacity_spec


def test_memlab_table_shows_means_and_intervals_per_cell_and_writes_csv(
    worker: ThreadWorker,
    sdk: MemlabClient,
    run_cli: Callable[..., Result],
    tmp_path: Path,
) -> None:
    base = tiny_capacity_spec(task="facts", n_facts=8, train={"steps": 20, "eval_every": 20})
    sweep = sdk.sweep({"base": base, "axes": {"model.n_embd": [8, 16]}, "seeds": 3})
    worker.join()
    assert sdk.get_sweep(sweep["id"])["status"] == "succeeded"
    out = tmp_path / "table.csv"
    shown = run_cli("table", sweep["id"], "--value", "final.facts", "--csv", str(out))
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if "3 succeeded" in line]
    assert len(lines) == 2 and all("±" in line and "(3)" in line for line in lines)
    rows = list(csv.DictReader(out.open()))
    assert [row["model.n_embd"] for row in rows] == ["8", "16"]
    assert all(row["final.facts.n"] == "3" for row in rows)
    mean = sdk.sweep_table(sweep["id"])["rows"][0]["values"]["final.facts"]["mean"]
    assert f"{mean:.4g}" in lines[0]
