"""GET /v1/experiments?where=&sort=: the filter language over HTTP, on both databases."""

from __future__ import annotations

import csv
import io
import uuid

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.experiments import export
from store.db import make_engine, make_session_factory
from store.models import Run, RunStatus
from store.repository import write_metrics
from store.settings import Settings
from tests.conftest import tiny_capacity_spec

EXAMPLE = 'spec.model.n_embd in (14, 28) and result.final.facts_acc >= 0.9 and status = "succeeded"'


def seed(client: TestClient, settings: Settings) -> dict[str, str]:
    """Four experiments by name: widths 14, 28, 28 and 56; results set as if they ran."""
    finished = {
        "w14": (14, RunStatus.succeeded, {"final": {"facts_acc": 0.95}}),
        "w28": (28, RunStatus.succeeded, {"final": {"facts_acc": 0.91}}),
        "w28-low": (28, RunStatus.succeeded, {"final": {"facts_acc": 0.4}}),
        "w56": (56, RunStatus.failed, None),
    }
    ids = {}
    for name, (width, _, _) in finished.items():
        spec = tiny_capacity_spec(model={"n_embd": width, "n_head": 2})
        response = client.post("/v1/experiments", json={"spec": spec, "name": name})
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    engine = make_engine(settings.resolved_database_url)
    with make_session_factory(engine).begin() as session:
        for name, (_, status, result) in finished.items():
            session.execute(
                update(Run).where(Run.name == name).values(status=status, result=result)
            )
    engine.dispose()
    return ids


def listed(client: TestClient, **params: str) -> list[str]:
    response = client.get("/v1/experiments", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == len(body["items"])
    return [item["name"] for item in body["items"]]


def test_the_issue_example_and_sorting(client: TestClient, settings: Settings) -> None:
    seed(client, settings)
    assert listed(client, where=EXAMPLE) == ["w28", "w14"]
    assert listed(client, where=EXAMPLE, sort="result.final.facts_acc") == ["w28", "w14"]
    assert listed(client, sort="-result.final.facts_acc") == ["w14", "w28", "w28-low", "w56"]
    assert listed(client, where="not result.final.facts_acc < 0.9") == ["w28", "w14"]
    assert listed(client, where="result.final.facts_acc is null", kind="capacity_tradeoff") == [
        "w56"
    ]


def test_a_malformed_filter_is_a_422_that_points_at_the_position(client: TestClient) -> None:
    response = client.get("/v1/experiments", params={"where": "spec.train.lr >= "})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "path": "where",
            "message": "at position 17: expected a value after '>=', not the end of the filter",
            "type": "invalid_where",
        }
    ]
    assert error["message"].endswith("spec.train.lr >= \n" + " " * 17 + "^")


def test_type_mismatches_and_bad_sorts_are_422s(client: TestClient) -> None:
    for params, path, fragment in [
        ({"where": "status > 3"}, "where", "status compares with a string, not a number"),
        ({"where": "created_at = 5"}, "where", "at position 13"),
        ({"where": "spec.a = null"}, "where", "use 'spec.a is null'"),
        ({"sort": "-tag"}, "sort", "cannot sort by tag"),
        ({"where": "x" * 4001}, "where", ""),
    ]:
        response = client.get("/v1/experiments", params=params)
        assert response.status_code == 422, (params, response.text)
        [detail] = response.json()["error"]["details"]
        assert detail["path"] == path and fragment in detail["message"], (params, detail)


def test_probes_take_the_same_filter(client: TestClient) -> None:
    assert client.get("/v1/probes", params={"where": 'kind = "loss_mia"'}).json()["total"] == 0
    assert client.get("/v1/probes", params={"where": "kind ="}).status_code == 422


def test_compare_aligns_several_runs_series_by_step(client: TestClient, settings: Settings) -> None:
    first = client.post("/v1/experiments", json={"spec": {"kind": "capacity_tradeoff"}}).json()
    second = client.post("/v1/experiments", json={"spec": {"kind": "capacity_tradeoff"}}).json()
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        write_metrics(
            session, uuid.UUID(first["id"]), [(10, "train/loss", 2.0), (20, "train/loss", 1.0)]
        )
        write_metrics(
            session, uuid.UUID(second["id"]), [(20, "train/loss", 1.5), (20, "eval/x", 0.1)]
        )
    found = client.get(
        "/v1/experiments/compare", params={"ids": f"{first['id']},{second['id']}"}
    ).json()
    assert found["steps"] == [10, 20]
    assert found["series"][first["id"]] == {"train/loss": [2.0, 1.0]}
    assert found["series"][second["id"]] == {"eval/x": [None, 0.1], "train/loss": [None, 1.5]}
    only = client.get(
        "/v1/experiments/compare", params={"ids": second["id"], "keys": "eval/x"}
    ).json()
    assert only == {"steps": [20], "series": {second["id"]: {"eval/x": [0.1]}}}
    missing = client.get("/v1/experiments/compare", params={"ids": str(uuid.uuid4())})
    assert missing.status_code == 404
    malformed = client.get("/v1/experiments/compare", params={"ids": "not-a-uuid"})
    assert malformed.status_code == 422
    assert malformed.json()["error"]["details"][0]["path"] == "ids"


def test_a_listing_exports_as_csv_and_parquet_with_flat_spec_and_result_columns(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PAGE_SIZE", 2)  # several pages: the stream's seams show
    ids = []
    for width in (8, 16, 24, 32, 40):
        spec = {**tiny_capacity_spec(), "model": {"n_embd": width}}
        ids.append(client.post("/v1/experiments", json={"spec": spec}).json()["id"])
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions.begin() as session:
        session.execute(
            update(Run)
            .where(Run.id == uuid.UUID(ids[0]))
            .values(status=RunStatus.succeeded, result={"final": {"facts": 0.5}, "ok": True})
        )
    params = {"where": "spec.model.n_embd >= 16", "sort": "spec.model.n_embd"}
    text = client.get("/v1/experiments", params={**params, "format": "csv"})
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    assert [row["spec.model.n_embd"] for row in rows] == ["16", "24", "32", "40"]
    assert rows[0]["status"] == "queued"
    assert "result.final.facts" not in rows[0]  # the columns are the matching runs' own

    everything = client.get(
        "/v1/experiments", params={"format": "parquet", "sort": "spec.model.n_embd"}
    )
    table = pq.read_table(io.BytesIO(everything.content))
    assert table.num_rows == 5
    assert table.column("spec.model.n_embd").to_pylist() == [8.0, 16.0, 24.0, 32.0, 40.0]
    assert table.column("result.final.facts").to_pylist()[0] == 0.5
    assert table.column("result.ok").to_pylist()[0] is True
    assert str(table.schema.field("spec.kind").type) == "string"


@pytest.mark.parametrize(
    ("where", "position", "fragment"),
    [
        ("spec.model.n_embed = 14", 0, "no kind's spec has a field spec.model.n_embed"),
        ('spec.model.n_embd = "wide"', 18, "holds a number, not a string"),
        ("spec.task in (1, 2)", 10, "holds a string, not a number"),
    ],
)
def test_a_spec_field_no_kind_has_or_of_another_type_is_a_422_at_its_position(
    client: TestClient, where: str, position: int, fragment: str
) -> None:
    response = client.get("/v1/experiments", params={"where": where})
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["path"] == "where"
    assert detail["message"].startswith(f"at position {position}:")
    assert fragment in detail["message"]


def test_a_union_member_s_field_is_a_spec_field(client: TestClient) -> None:
    found = client.get("/v1/experiments", params={"where": "spec.model.mixer.n_head = 2"})
    assert found.status_code == 200
