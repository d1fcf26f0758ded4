"""POST /v1/sweeps and friends: expansion, validation, grouping, publishing, cancel.

No worker runs here: what is checked is what the API stores and hands to the broker.
Execution is covered in tests/worker/test_groups.py and the e2e tests.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.probes.spec import ProbeSpec
from store import repository
from store.db import make_engine, make_session_factory, migrate, transaction
from store.models import Run, RunStatus, RunType, SweepRun
from store.settings import Settings
from tests.api.conftest import TEST_NODE_QUEUE, hand_out, published_ids


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: the queries here are the same on PostgreSQL, where the e2e tests run
    sweeps through a real worker."""
    url = f"sqlite:///{tmp_path / 'memlab.db'}"
    migrate(url)
    return url


BASE = {"kind": "capacity_tradeoff", "task": "facts", "n_facts": 8, "train": {"steps": 6}}
GRID = {"base": BASE, "axes": {"model.n_embd": [8, 16, 24]}, "seeds": 2, "name": "widths"}


WIDER = {
    "test": "greater",
    "statement": "wider memorizes more",
    "value": "final.facts",
    "cell": {"model.n_embd": 16},
    "than": {"cell": {"model.n_embd": 8}},
}


def children(client: TestClient, sweep_id: str) -> list[dict[str, Any]]:
    listing = client.get("/v1/experiments", params={"sweep_id": sweep_id, "limit": 200})
    assert listing.status_code == 200
    return listing.json()["items"]


def test_a_grid_sweep_stores_one_child_per_cell_and_seed(client: TestClient) -> None:
    response = client.post("/v1/sweeps", json=GRID)
    assert response.status_code == 201, response.text
    assert response.headers["Memlab-Submission"] == "created"
    sweep = response.json()
    assert sweep["n_runs"] == 6 and sweep["seeds"] == [0, 1]
    assert sweep["status"] == "queued" and sweep["counts"]["queued"] == 6
    found = children(client, sweep["id"])
    cells = [child["sweep_cell"] for child in found]
    assert cells == [{"model.n_embd": w, "seed": s} for w in (8, 16, 24) for s in (0, 1)]
    for child in found:
        assert child["sweep_id"] == sweep["id"]
        assert child["spec"]["model"]["n_embd"] == child["sweep_cell"]["model.n_embd"]
        assert child["spec"]["seed"] == child["sweep_cell"]["seed"]
        assert child["spec"]["train"]["steps"] == 6  # the base's fields are kept
    assert client.get(f"/v1/sweeps/{sweep['id']}").json()["counts"]["queued"] == 6


def test_seeds_of_one_width_share_a_group_and_only_groups_are_published(
    client: TestClient, broker: Celery
) -> None:
    sweep = client.post("/v1/sweeps", json=GRID).json()
    assert sweep["n_groups"] == 3  # widths differ in shape; each width's two seeds batch
    found = children(client, sweep["id"])
    groups: dict[str, set[int]] = {}
    for child in found:
        assert child["group_id"] is not None and child["batched"] is None
        groups.setdefault(child["group_id"], set()).add(child["sweep_cell"]["model.n_embd"])
    assert all(len(widths) == 1 for widths in groups.values())
    hand_out(client)
    assert sorted(published_ids(broker, TEST_NODE_QUEUE)) == sorted(groups)


def test_learning_rates_batch_together_but_without_batching_each_child_is_published(
    client: TestClient, broker: Celery
) -> None:
    body = {"base": BASE, "axes": {"train.lr": [1e-3, 3e-3]}, "seeds": 2}
    batched = client.post("/v1/sweeps", json=body).json()
    assert batched["n_groups"] == 1
    hand_out(client)
    assert len(published_ids(broker, TEST_NODE_QUEUE)) == 1
    solo = client.post("/v1/sweeps", json={**body, "batch": False}).json()
    assert solo["n_groups"] == 0
    ids = {child["id"] for child in children(client, solo["id"])}
    hand_out(client)
    assert set(published_ids(broker, TEST_NODE_QUEUE)) == ids and len(ids) == 4


def test_groups_hold_at_most_max_ensemble_members(settings: Settings, broker: Celery) -> None:
    capped = settings.model_copy(update={"max_ensemble_members": 2})
    with TestClient(create_app(capped, run_reaper=False)) as client:
        sweep = client.post("/v1/sweeps", json={"base": BASE, "seeds": 5}).json()
        found = children(client, sweep["id"])
    sizes = sorted(
        sum(1 for c in found if c["group_id"] == g) for g in {c["group_id"] for c in found}
    )
    assert sizes == [1, 2, 2]  # the None "group" is the fifth seed, alone
    assert sweep["n_groups"] == 2


def test_random_search_draws_the_same_cells_for_the_same_sampler_seed(
    client: TestClient,
) -> None:
    body = {
        "base": BASE,
        "axes": {
            "train.lr": {"min": 1e-4, "max": 1e-2, "scale": "log"},
            "model.n_embd": [8, 16],
        },
        "method": "random",
        "samples": 4,
        "seeds": [3, 5],
        "sampler_seed": 7,
    }
    first = children(client, client.post("/v1/sweeps", json=body).json()["id"])
    second = children(client, client.post("/v1/sweeps", json=body).json()["id"])
    other = children(
        client, client.post("/v1/sweeps", json={**body, "sampler_seed": 8}).json()["id"]
    )
    assert len(first) == 8
    assert [c["sweep_cell"] for c in first] == [c["sweep_cell"] for c in second]
    assert [c["sweep_cell"] for c in first] != [c["sweep_cell"] for c in other]
    rates = [c["sweep_cell"]["train.lr"] for c in first]
    assert all(1e-4 <= r <= 1e-2 for r in rates)
    assert rates[0::2] == rates[1::2]  # a cell's seeds are its replicates: one draw each
    assert [c["sweep_cell"]["seed"] for c in first] == [3, 5] * 4
    assert len({math.log10(r) for r in rates}) == 4


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        ({**GRID, "axes": {"model.n_embdd": [8]}}, "axes.model.n_embdd", "no field 'n_embdd'"),
        ({**GRID, "axes": {"modle.n_embd": [8]}}, "axes.modle.n_embd", "the spec has no field"),
        ({**GRID, "axes": {"model.n_embd": [8, 0]}}, "axes.model.n_embd[1]", "value 0"),
        ({**GRID, "axes": {"seed": [1, 2]}}, "axes.seed", "seeds"),
        (
            {**GRID, "axes": {"corpus": {"variants": {"ok": {}, "bad": {"n_facts": 0}}}}},
            "axes.corpus.bad",
            "variant 'bad'",
        ),
        ({**GRID, "axes": {"seed": {"variants": {"a": {}}}}}, "axes.seed", "seeds"),
        (
            {**GRID, "claims": [WIDER | {"cell": {"model.n_layer": 1}}]},
            "claims[0].cell",
            "not an axis",
        ),
        (
            {**GRID, "claims": [WIDER | {"than": {"cell": {"model.n_embd": 99}}}]},
            "claims[0].than.cell",
            "no cell",
        ),
        ({**GRID, "claims": [WIDER | {"cell": {}}]}, "claims[0].cell", "3 cells match"),
        ({**GRID, "axes": {"model.n_embd": []}}, "axes.model.n_embd", "at least one"),
        (
            {**GRID, "axes": {"train.lr": {"min": 1e-4, "max": 1e-2}}},
            "axes.train.lr",
            "method 'random'",
        ),
        ({**GRID, "method": "random"}, "samples", "needs samples"),
        ({**GRID, "base": {**BASE, "kind": "nope"}}, "base.kind", "unknown experiment kind"),
        ({**GRID, "base": {**BASE, "train": {"lr": -1}}}, "base.train.lr", "greater than"),
        # Every value is valid alone; lr 1e-5 is below the default min_lr (1e-4).
        ({**GRID, "axes": {"train.lr": [1e-5]}}, "axes.train.lr[0]", "min_lr"),
        ({**GRID, "seeds": []}, "seeds", "at least 1"),
        ({**GRID, "seeds": [0, 0]}, "seeds", "each seed once"),
        ({**GRID, "axes": {"train": [{}], "train.lr": [0.1]}}, "axes", "holds axis"),
        (
            {
                **GRID,
                "method": "random",
                "samples": 2,
                "axes": {"train.lr": {"min": -1e308, "max": 1e308}},
            },
            "axes.train.lr",
            "too wide",
        ),
    ],
)
def test_a_bad_axis_or_value_is_a_422_naming_it(
    client: TestClient, body: dict[str, Any], path: str, fragment: str
) -> None:
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert details[0]["path"] == path
    assert fragment in details[0]["message"]
    # Nothing stored, so nothing published: runs are published only after their commit.
    assert client.get("/v1/sweeps").json()["total"] == 0
    assert client.get("/v1/experiments").json()["total"] == 0


def test_a_random_search_that_draws_a_cell_twice_reuses_one_run_for_both(
    client: TestClient, settings: Settings
) -> None:
    done = client.post("/v1/experiments", json={"spec": {**BASE, "model": {"n_embd": 8}}}).json()
    _succeed(settings, done["id"])
    body = {"base": BASE, "axes": {"model.n_embd": [8]}, "method": "random", "samples": 3}
    sweep = client.post("/v1/sweeps", params={"reuse": "true"}, json=body)
    assert sweep.status_code == 201, sweep.text
    assert [c["id"] for c in children(client, sweep.json()["id"])] == [done["id"]] * 3
    assert sweep.json()["counts"]["succeeded"] == 3


def test_sweeps_are_found_by_tag(client: TestClient) -> None:
    tagged = client.post("/v1/sweeps", json={**GRID, "tags": ["study_1", "widths"]}).json()
    client.post("/v1/sweeps", json={**GRID, "tags": ["study11"]})
    found = client.get("/v1/sweeps", params={"tag": "study_1"}).json()
    assert [s["id"] for s in found["items"]] == [tagged["id"]]  # "_" is not a wildcard
    assert client.get("/v1/sweeps", params={"tag": "study"}).json()["total"] == 0


def test_a_combination_that_fails_names_the_cell(client: TestClient) -> None:
    # n_embd 9 and n_head 2 each pass alone (with the base's defaults); together they do not.
    body = {**GRID, "axes": {"model.n_embd": [9], "model.n_head": [2]}}
    response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert detail["path"] == "axes"
    assert "'model.n_embd': 9" in detail["message"] and "divisible" in detail["message"]


def test_a_sweep_over_the_cap_is_refused_naming_the_setting(
    settings: Settings, broker: Celery
) -> None:
    capped = settings.model_copy(update={"max_sweep_runs": 5})
    with TestClient(create_app(capped, run_reaper=False)) as client:
        response = client.post("/v1/sweeps", json=GRID)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "limit_exceeded"
    assert "6 runs" in error["message"] and "MEMLAB_MAX_SWEEP_RUNS" in error["message"]


def test_a_cell_over_a_server_limit_is_refused_naming_the_cell(
    settings: Settings, broker: Celery
) -> None:
    capped = settings.model_copy(update={"max_steps": 10})
    body = {**GRID, "axes": {"train.steps": [6, 20]}}
    with TestClient(create_app(capped, run_reaper=False)) as client:
        response = client.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    assert "'train.steps': 20" in response.json()["error"]["message"]


def test_an_idempotency_key_returns_the_same_sweep(client: TestClient) -> None:
    headers = {"Idempotency-Key": "sweep-1"}
    first = client.post("/v1/sweeps", json=GRID, headers=headers)
    again = client.post("/v1/sweeps", json=GRID, headers=headers)
    assert again.status_code == 200 and again.headers["Memlab-Submission"] == "replayed"
    assert again.json()["id"] == first.json()["id"]
    assert client.get("/v1/sweeps").json()["total"] == 1
    other = client.post("/v1/sweeps", json={**GRID, "seeds": 3}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


def _succeed(settings: Settings, run_id: str) -> None:
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(sessions) as session:
        run = session.get(Run, uuid.UUID(run_id))
        assert run is not None
        run.status, run.result = RunStatus.succeeded, {"final": {"facts_acc": 1.0}}


def test_reuse_makes_a_succeeded_identical_run_the_cells_child(
    client: TestClient, settings: Settings
) -> None:
    done = client.post("/v1/experiments", json={"spec": {**BASE, "model": {"n_embd": 8}}}).json()
    _succeed(settings, done["id"])
    sweep = client.post("/v1/sweeps", params={"reuse": "true"}, json=GRID).json()
    found = children(client, sweep["id"])
    assert found[0]["id"] == done["id"] and found[0]["sweep_id"] is None  # not made by it
    assert sweep["counts"]["succeeded"] == 1 and sweep["n_runs"] == 6
    assert all(child["id"] != done["id"] for child in found[1:])
    # Without reuse, the same cell trains again.
    fresh = children(client, client.post("/v1/sweeps", json=GRID).json()["id"])
    assert fresh[0]["id"] != done["id"]


def test_cancelling_a_sweep_cancels_every_unfinished_child_and_group(
    client: TestClient, settings: Settings
) -> None:
    sweep = client.post("/v1/sweeps", json=GRID).json()
    _succeed(settings, children(client, sweep["id"])[0]["id"])
    cancelled = client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200
    out = cancelled.json()
    assert out["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 1,
        "failed": 0,
        "cancelled": 5,
    }
    assert out["status"] == "cancelled" and out["cancel_requested"] is True
    assert out["progress"] == 1.0 and out["finished_at"] is not None
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with sessions() as session:
        groups = session.query(Run).filter(Run.run_type == RunType.group).all()
        assert groups and all(g.status is RunStatus.cancelled for g in groups)


def test_sweep_events_end_with_the_final_counts(client: TestClient) -> None:
    sweep = client.post("/v1/sweeps", json=GRID).json()
    client.post(f"/v1/sweeps/{sweep['id']}/cancel")
    with client.stream("GET", f"/v1/sweeps/{sweep['id']}/events") as stream:
        text = "".join(stream.iter_text())
    assert "event: counts" in text and "event: end" in text
    assert '"cancelled": 6' in text


def test_unknown_sweeps_are_404s(client: TestClient) -> None:
    missing = uuid.uuid4()
    assert client.get(f"/v1/sweeps/{missing}").status_code == 404
    assert client.post(f"/v1/sweeps/{missing}/cancel").status_code == 404
    assert client.get(f"/v1/sweeps/{missing}/events").status_code == 404


def test_sweeps_are_listed_newest_first_by_kind(client: TestClient, tmp_path: Path) -> None:
    first = client.post("/v1/sweeps", json=GRID).json()
    second = client.post("/v1/sweeps", json={**GRID, "name": "again"}).json()
    listing = client.get("/v1/sweeps", params={"kind": "capacity_tradeoff"}).json()
    assert [s["id"] for s in listing["items"]] == [second["id"], first["id"]]
    assert client.get("/v1/sweeps", params={"kind": "fictional_qa"}).json()["total"] == 0


def _finish_children(settings: Settings, sweep_id: str, facts: list[float | None]) -> None:
    """End the sweep's children in order: a number → succeeded with that facts accuracy
    (and a succeeded loss_mia probe with AUC facts/2); None → failed."""
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(sessions) as session:
        rows = (
            session.execute(
                select(SweepRun.run_id)
                .where(SweepRun.sweep_id == uuid.UUID(sweep_id))
                .order_by(SweepRun.position)
            )
            .scalars()
            .all()
        )
        for run_id, value in zip(rows, facts, strict=True):
            run = session.get(Run, run_id)
            assert run is not None
            if value is None:
                run.status, run.error = RunStatus.failed, "boom"
                continue
            run.status, run.result = RunStatus.succeeded, {"final": {"facts": value}, "ok": True}
            probe = repository.create_run(
                session,
                spec=ProbeSpec.model_validate({"kind": "loss_mia"}),
                name=None,
                tags=[],
                queue="cpu",
                target_id=run_id,
            )
            probe.status, probe.result = RunStatus.succeeded, {"attack": {"auc": value / 2}}


def test_a_sweep_table_summarizes_each_cell_over_its_succeeded_seeds(
    client: TestClient, settings: Settings
) -> None:
    sweep = client.post("/v1/sweeps", json={**GRID, "axes": {"model.n_embd": [8, 16]}, "seeds": 3})
    sweep_id = sweep.json()["id"]
    _finish_children(settings, sweep_id, [0.2, 0.4, None, 0.5, 0.6, 0.7])
    table = client.get(f"/v1/sweeps/{sweep_id}/table").json()
    assert table["axes"] == ["model.n_embd"]
    first, second = table["rows"]
    assert first["cell"] == {"model.n_embd": 8} and second["cell"] == {"model.n_embd": 16}
    assert first["counts"]["succeeded"] == 2 and first["counts"]["failed"] == 1
    facts = first["values"]["final.facts"]
    half = 12.7062 * math.sqrt(0.02) / math.sqrt(2)  # t(0.975, 1) · std / √n
    assert facts["n"] == 2 and facts["mean"] == pytest.approx(0.3)
    assert facts["ci95_low"] == pytest.approx(0.3 - half, abs=1e-3)
    assert second["values"]["probe.loss_mia.attack.auc"]["mean"] == pytest.approx(0.3)
    assert "ok" not in first["values"]  # booleans are not averaged

    csv_text = client.get(f"/v1/sweeps/{sweep_id}/table", params={"format": "csv"})
    assert csv_text.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(csv_text.text)))
    assert [line["model.n_embd"] for line in lines] == ["8", "16"]
    assert float(lines[1]["final.facts.mean"]) == pytest.approx(0.6)
    assert lines[0]["n_failed"] == "1"

    parquet = client.get(f"/v1/sweeps/{sweep_id}/table", params={"format": "parquet"})
    frame = pq.read_table(io.BytesIO(parquet.content)).to_pylist()
    assert [row["model.n_embd"] for row in frame] == [8, 16]
    assert frame[0]["final.facts.mean"] == pytest.approx(0.3)
    assert client.get(f"/v1/sweeps/{uuid.uuid4()}/table").status_code == 404


def test_named_variants_set_several_fields_per_cell(client: TestClient) -> None:
    variants = {"small": {"n_facts": 6, "model": {"n_embd": 8}}, "wide": {"model": {"n_embd": 16}}}
    body = {
        "base": {**BASE, "model": {"n_layer": 1, "n_embd": 24}},
        "axes": {"corpus": {"variants": variants}},
    }
    sweep = client.post("/v1/sweeps", json=body)
    assert sweep.status_code == 201, sweep.text
    assert sweep.json()["axes"] == {"corpus": {"variants": variants}}
    found = children(client, sweep.json()["id"])
    assert [c["sweep_cell"] for c in found] == [
        {"corpus": "small", "seed": 0},
        {"corpus": "wide", "seed": 0},
    ]
    small, wide = (c["spec"] for c in found)
    assert (small["n_facts"], small["model"]["n_embd"]) == (6, 8)
    assert (wide["n_facts"], wide["model"]["n_embd"]) == (8, 16)  # the base's n_facts
    assert small["model"]["n_layer"] == wide["model"]["n_layer"] == 1  # merged, not replaced


def test_claims_are_held_against_the_seeds_in_the_table(
    client: TestClient, settings: Settings
) -> None:
    at_chance = {"test": "within", "statement": "8 at 0.3", "value": "final.facts",
                 "cell": {"model.n_embd": 8}, "of": 0.3, "tolerance": 0.5}  # fmt: skip
    missing = WIDER | {"value": "final.nothing"}
    body = {
        **GRID,
        "axes": {"model.n_embd": [8, 16]},
        "seeds": 3,
        "claims": [WIDER, at_chance, missing],
    }
    sweep = client.post("/v1/sweeps", json=body)
    assert sweep.status_code == 201, sweep.text
    assert [c["statement"] for c in sweep.json()["claims"]] == [
        WIDER["statement"],
        "8 at 0.3",
        WIDER["statement"],
    ]
    _finish_children(settings, sweep.json()["id"], [0.2, 0.4, 0.3, 0.5, 0.6, 0.7])
    wider, chance, nothing = client.get(f"/v1/sweeps/{sweep.json()['id']}/table").json()["claims"]
    # Paired by seed: 16 − 8 = 0.3, 0.2, 0.4; the interval 0.3 ± 4.303 · 0.1 / √3 is above 0.
    assert wider["verdict"] == "shown" and wider["n"] == 3
    assert wider["mean"] == pytest.approx(0.3)
    assert wider["ci95_low"] == pytest.approx(0.3 - 4.3027 * 0.1 / math.sqrt(3), abs=1e-3)
    assert chance["verdict"] == "shown" and chance["mean"] == pytest.approx(0.3)
    assert nothing["verdict"] == "no data"


def test_a_sweep_ends_only_when_its_childrens_probes_have(
    client: TestClient, settings: Settings
) -> None:
    sweep = client.post("/v1/sweeps", json={**GRID, "axes": {"model.n_embd": [8]}, "seeds": 2})
    sweep_id = sweep.json()["id"]
    _finish_children(settings, sweep_id, [0.5, 0.6])  # each with a succeeded loss_mia probe
    assert client.get(f"/v1/sweeps/{sweep_id}").json()["status"] == "succeeded"
    sessions = make_session_factory(make_engine(settings.resolved_database_url))
    with transaction(sessions) as session:
        child = session.execute(
            select(SweepRun.run_id).where(SweepRun.sweep_id == uuid.UUID(sweep_id)).limit(1)
        ).scalar_one()
        pending = repository.create_run(
            session,
            spec=ProbeSpec.model_validate({"kind": "exact_recall"}),
            name=None,
            tags=[],
            queue="cpu",
            target_id=child,
        )
    found = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert found["status"] == "running" and found["finished_at"] is None
    assert found["probe_counts"]["queued"] == 1 and found["probe_counts"]["succeeded"] == 2
    with transaction(sessions) as session:
        session.get(Run, pending.id).status = RunStatus.failed  # type: ignore[union-attr]
    found = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert found["status"] == "succeeded" and found["probe_counts"]["failed"] == 1
