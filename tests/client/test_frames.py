"""`MemlabClient.table`, `.query` and `.compare`: the server's JSON shaped into pandas
DataFrames, against stand-ins for the routes (`httpx.MockTransport`)."""

from __future__ import annotations

import doctest
import json
import math
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import memlab_client.frames
from memlab_client.sdk import MemlabClient, MemlabError

pd = pytest.importorskip("pandas", reason="the frames extra (pandas) is not installed")

SWEEP_ID = "5e0b7a52-0000-4000-8000-000000000001"
RUN_A = "a0000000-0000-4000-8000-000000000000"
RUN_B = "b0000000-0000-4000-8000-000000000000"

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, seen: list[httpx.Request]) -> MemlabClient:
    """The SDK over a fake server; every request it sends lands in `seen`."""

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.Client(transport=httpx.MockTransport(record), base_url="http://memlab.test")
    return MemlabClient("http://memlab.test", http=http)


def summary(mean: float, n: int = 2, std: float | None = 0.1) -> dict[str, Any]:
    low, high = (None, None) if std is None else (mean - 1.0, mean + 1.0)
    return {"n": n, "mean": mean, "std": std, "ci95_low": low, "ci95_high": high}


SWEEP_TABLE = {
    "sweep_id": SWEEP_ID,
    "axes": ["model.n_embd", "train.lr"],
    "rows": [
        {
            "cell": {"model.n_embd": 14, "train.lr": 0.01},
            "counts": {"queued": 0, "running": 0, "succeeded": 2, "failed": 1, "cancelled": 0},
            "values": {"final.facts": summary(0.25), "probe.loss_mia.attack.auc": summary(0.6)},
        },
        {
            # One seed succeeded: no spread or interval; no probe ran.
            "cell": {"model.n_embd": 28, "train.lr": 0.01},
            "counts": {"queued": 0, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0},
            "values": {"final.facts": summary(0.5, n=1, std=None)},
        },
    ],
}


def test_table_is_one_row_per_cell_with_axes_counts_and_each_statistic() -> None:
    seen: list[httpx.Request] = []
    client = client_for(lambda request: httpx.Response(200, json=SWEEP_TABLE), seen)

    frame = client.table(SWEEP_ID)

    assert seen[0].url.path == f"/v1/sweeps/{SWEEP_ID}/table"
    assert seen[0].url.params["format"] == "json"
    stats = ["mean", "std", "ci95_low", "ci95_high", "n"]
    # The column order of the server's CSV and Parquet tables.
    assert list(frame.columns) == [
        "model.n_embd",
        "train.lr",
        *(f"n_{s}" for s in ("queued", "running", "succeeded", "failed", "cancelled")),
        *(f"final.facts.{s}" for s in stats),
        *(f"probe.loss_mia.attack.auc.{s}" for s in stats),
    ]
    assert frame["model.n_embd"].tolist() == [14, 28]
    assert frame["n_failed"].tolist() == [1, 0]
    assert frame["n_running"].dtype == "int64"
    assert frame["final.facts.mean"].tolist() == [0.25, 0.5]
    assert frame["final.facts.n"].tolist() == [2, 1]
    # Statistics are floats, NaN where a cell has no spread or no value at all.
    assert frame["final.facts.std"].dtype == "float64"
    assert math.isnan(frame.loc[1, "final.facts.std"])
    assert math.isnan(frame.loc[1, "probe.loss_mia.attack.auc.mean"])
    assert frame["probe.loss_mia.attack.auc.n"].isna().tolist() == [False, True]


def test_table_writes_an_axis_over_a_sub_spec_as_json_text_so_it_can_be_grouped_on() -> None:
    model = {"n_embd": 14, "n_layer": 2}
    body = {
        "sweep_id": SWEEP_ID,
        "axes": ["model"],
        "rows": [{"cell": {"model": model}, "counts": {"succeeded": 1}, "values": {}}],
    }
    frame = client_for(lambda request: httpx.Response(200, json=body), []).table(SWEEP_ID)
    assert frame.loc[0, "model"] == json.dumps(model, sort_keys=True)
    assert frame.loc[0, "n_succeeded"] == 1
    assert frame.loc[0, "n_queued"] == 0


def test_table_of_an_unknown_sweep_is_the_servers_error() -> None:
    error = {"error": {"code": "not_found", "message": "no sweep with that id"}}
    client = client_for(lambda request: httpx.Response(404, json=error), [])
    with pytest.raises(MemlabError) as raised:
        client.table(SWEEP_ID)
    assert raised.value.status == 404


def experiment(number: int, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "id": f"e{number:07d}-0000-4000-8000-000000000000",
        "name": f"run-{number}",
        "kind": "capacity_tradeoff",
        "status": "succeeded",
        "tags": ["x"],
        "created_at": f"2026-01-0{1 + number % 9}T12:00:00Z",
        "spec": {"kind": "capacity_tradeoff", "model": {"n_embd": 14 * number}, "seeds": [1]},
        "result": {"final": {"facts": number / 10}},
    }
    return {**found, **fields}


def listing(items: list[dict[str, Any]]) -> Handler:
    """GET /v1/experiments over `items`, paged by limit and offset."""

    def handle(request: httpx.Request) -> httpx.Response:
        limit = int(request.url.params["limit"])
        offset = int(request.url.params.get("offset", 0))
        page = items[offset : offset + limit]
        return httpx.Response(
            200, json={"items": page, "total": len(items), "limit": limit, "offset": offset}
        )

    return handle


def test_query_reads_every_page_and_flattens_spec_and_result_to_dotted_columns() -> None:
    items = [experiment(n) for n in range(1, 6)]
    seen: list[httpx.Request] = []
    client = client_for(listing(items), seen)

    frame = client.query('status = "succeeded"', sort="-result.final.facts", page_size=2)

    assert [request.url.params["offset"] for request in seen] == ["0", "2", "4"]
    assert {request.url.params["where"] for request in seen} == {'status = "succeeded"'}
    assert {request.url.params["sort"] for request in seen} == {"-result.final.facts"}
    assert list(frame.columns) == [
        "id",
        "name",
        "kind",
        "status",
        "created_at",
        "spec.kind",
        "spec.model.n_embd",
        "spec.seeds",
        "result.final.facts",
    ]
    assert frame["id"].tolist() == [item["id"] for item in items]
    assert frame["spec.model.n_embd"].tolist() == [14, 28, 42, 56, 70]
    assert frame["result.final.facts"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert frame.loc[0, "spec.seeds"] == [1]  # a list is one value
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame.loc[0, "created_at"] == pd.Timestamp("2026-01-02T12:00:00Z")


def test_query_stops_at_its_limit_and_leaves_out_filters_it_was_not_given() -> None:
    seen: list[httpx.Request] = []
    client = client_for(listing([experiment(n) for n in range(1, 8)]), seen)

    frame = client.query(limit=3, page_size=2)

    assert len(frame) == 3
    assert [request.url.params["limit"] for request in seen] == ["2", "1"]
    assert all("where" not in r.url.params and "sort" not in r.url.params for r in seen)


def test_query_of_a_failed_run_has_no_result_columns_in_its_row() -> None:
    items = [experiment(1), experiment(2, status="failed", result=None)]
    frame = client_for(listing(items), []).query()
    assert frame["status"].tolist() == ["succeeded", "failed"]
    assert math.isnan(frame.loc[1, "result.final.facts"])


def test_query_matching_nothing_is_an_empty_frame_with_the_fixed_columns() -> None:
    frame = client_for(listing([]), []).query('kind = "nothing"')
    assert frame.empty
    assert list(frame.columns) == ["id", "name", "kind", "status", "created_at"]


def test_a_malformed_filter_is_the_servers_422() -> None:
    error = {"error": {"code": "validation_error", "message": "where: unexpected end"}}
    client = client_for(lambda request: httpx.Response(422, json=error), [])
    with pytest.raises(MemlabError) as raised:
        client.query("status =")
    assert raised.value.status == 422


COMPARISON = {
    "steps": [0, 10, 20],
    "series": {
        RUN_B: {"train/loss": [2.0, 1.5, None]},
        RUN_A: {"train/loss": [2.5, 1.0, 0.5], "eval/acc": [None, 0.5, 0.75]},
    },
}


def test_compare_is_indexed_by_step_with_a_column_per_run_and_key() -> None:
    seen: list[httpx.Request] = []
    client = client_for(lambda request: httpx.Response(200, json=COMPARISON), seen)

    frame = client.compare([RUN_A, RUN_B], keys=["train/loss", "eval/acc"])

    assert seen[0].url.path == "/v1/experiments/compare"
    assert seen[0].url.params["ids"] == f"{RUN_A},{RUN_B}"
    assert seen[0].url.params["keys"] == "train/loss,eval/acc"
    assert frame.index.name == "step"
    assert frame.index.tolist() == [0, 10, 20]
    # Runs in the order asked for, keys in the answer's order.
    assert list(frame.columns) == [
        (RUN_A, "train/loss"),
        (RUN_A, "eval/acc"),
        (RUN_B, "train/loss"),
    ]
    assert list(frame.columns.names) == ["run", "key"]
    assert frame[RUN_A, "train/loss"].tolist() == [2.5, 1.0, 0.5]
    assert math.isnan(frame.loc[20, (RUN_B, "train/loss")])  # no point at that step
    assert frame[RUN_B].columns.tolist() == ["train/loss"]


def test_compare_without_keys_asks_for_every_series() -> None:
    seen: list[httpx.Request] = []
    client_for(lambda request: httpx.Response(200, json=COMPARISON), seen).compare([RUN_A])
    assert "keys" not in seen[0].url.params


def test_compare_of_runs_without_metrics_is_an_empty_frame() -> None:
    body = {"steps": [], "series": {RUN_A: {}}}
    frame = client_for(lambda request: httpx.Response(200, json=body), []).compare([RUN_A])
    assert frame.shape == (0, 0)


def test_compare_refuses_no_ids_and_a_series_that_does_not_fit_its_steps() -> None:
    with pytest.raises(ValueError, match="at least one"):
        client_for(lambda request: httpx.Response(200, json=COMPARISON), []).compare([])
    body = {"steps": [0, 10], "series": {RUN_A: {"train/loss": [1.0]}}}
    client = client_for(lambda request: httpx.Response(200, json=body), [])
    with pytest.raises(ValueError, match="1 points for 2 steps"):
        client.compare([RUN_A])


def test_without_pandas_each_frame_method_says_to_install_the_frames_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    seen: list[httpx.Request] = []
    client = client_for(listing([]), seen)
    for call in (
        lambda: client.table(SWEEP_ID),
        lambda: client.query(),
        lambda: client.compare([RUN_A]),
    ):
        with pytest.raises(ImportError, match=r'pip install "memlab-client\[frames\]"'):
            call()
    assert seen == []  # refused before asking the server


def test_the_frames_module_examples_hold() -> None:
    assert doctest.testmod(memlab_client.frames).failed == 0
