"""`memlab table` (means and intervals per cell of a sweep a worker ran) and `memlab ls --where`."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from memlab_client.sdk import MemlabClient
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


def test_ls_where_filters_in_the_database_and_explains_a_bad_filter(
    sdk: MemlabClient, run_cli: Callable[..., Result]
) -> None:
    for width in (8, 16, 24):
        sdk.submit({**tiny_capacity_spec(), "model": {"n_embd": width}}, name=f"w{width}")
    shown = run_cli("ls", "--where", "spec.model.n_embd in (8, 24)", "--sort", "spec.model.n_embd")
    assert shown.exit_code == 0, shown.output
    names = [name for name in ("w8", "w16", "w24") if name in shown.output]
    assert names == ["w8", "w24"]
    assert shown.output.index("w8") < shown.output.index("w24")
    refused = run_cli("ls", "--where", "spec.model.n_embd >=")
    assert refused.exit_code == 1
    assert "position" in refused.output


def test_compare_and_table_give_dataframes_from_the_live_api(
    worker: ThreadWorker, sdk: MemlabClient
) -> None:
    base = tiny_capacity_spec(task="facts", n_facts=8, train={"steps": 20, "eval_every": 10})
    sweep = sdk.sweep({"base": base, "seeds": 2})
    worker.join()
    ids = [child["id"] for child in sdk.sweep_experiments(sweep["id"])]
    frame = sdk.compare(ids, keys=["train/loss", "eval/facts"])
    assert list(frame.index) == list(range(1, 21))  # every step either run logged
    assert frame[ids[0], "eval/facts"].dropna().index.tolist() == [10, 20]
    assert frame[ids[1], "train/loss"].notna().all()
    table = sdk.table(sweep["id"])
    assert table.loc[0, "n_succeeded"] == 2 and table.loc[0, "final.facts.n"] == 2
