"""Probes of shadow models through the API and a worker: lira and counterfactual expand
into a sweep of shadows, wait for it without blocking a worker, run when it ends, and a
later probe on the same pool reuses it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from celery import Celery
from fastapi.testclient import TestClient

from store.artifacts import ArtifactStore
from store.db import make_engine, make_session_factory
from store.models import Run, utcnow
from store.settings import Settings
from tests.api.conftest import TEST_NODE, hand_out
from tests.conftest import tiny_capacity_spec
from worker.dispatch import RecordingDispatcher
from worker.fair_dispatch import dispatch_pass
from worker.runner import RunContext, execute_run

SHADOWS = 4


def tiny_recall_spec(**overrides: Any) -> dict[str, Any]:
    """An associative_recall run of a second or two on a CPU."""
    return {
        "kind": "associative_recall",
        "vocab_size": 16,
        "seq_len": 16,
        "num_kv_pairs": 2,
        "train_examples": 48,
        "test_examples": 48,
        "model": {"n_layer": 1, "width": 16},
        "train": {"steps": 20, "batch_size": 16, "eval_every": 10, "device": "cpu"},
        **overrides,
    }


def worker_for(settings: Settings) -> RunContext:
    """A worker of this server, run in-process on the ids the broker was handed."""
    return RunContext(
        sessions=make_session_factory(make_engine(settings.resolved_database_url)),
        artifacts=ArtifactStore(settings.resolved_artifact_dir),
        worker_name=f"{TEST_NODE}:00000000",  # a process of the node `hand_out` registers
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )


def handed_out(client: TestClient, worker: RunContext, run_id: str) -> bool:
    """Whether a dispatcher pass hands the run to the broker. Read from the run's row, not
    from the broker: a Redis consumer of an earlier read may still pop a message that
    arrives after it gave up, so what one read returns is not reliable under load."""
    hand_out(client)
    with worker.sessions() as session:
        run = session.get(Run, uuid.UUID(run_id))
        return run is not None and run.enqueued_at is not None


def trained_experiment(client: TestClient, worker: RunContext, broker: Celery) -> str:
    experiment_id = client.post("/v1/experiments", json={"spec": tiny_recall_spec()}).json()["id"]
    assert handed_out(client, worker, experiment_id)
    assert execute_run(worker, uuid.UUID(experiment_id)) is not None
    assert client.get(f"/v1/experiments/{experiment_id}").json()["status"] == "succeeded"
    return str(experiment_id)


def post_probe(client: TestClient, experiment_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/probes", json={"experiment_id": experiment_id, "spec": spec})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_lira_waits_for_its_shadow_sweep_runs_when_it_ends_and_the_pool_is_reused(
    client: TestClient, settings: Settings, broker: Celery
) -> None:
    worker = worker_for(settings)
    target = trained_experiment(client, worker, broker)
    probe = post_probe(client, target, {"kind": "lira", "shadows": SHADOWS, "bootstrap_rounds": 50})
    sweep_id = probe["shadow_sweep_id"]
    assert probe["status"] == "queued" and sweep_id is not None
    assert probe["progress_message"] == f"waiting for its {SHADOWS} shadow models"

    # The shadows are children of a sweep, trained as one batched group; the probe itself
    # is not handed out (no task waits on another), not even as a lost message.
    sweep = client.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["n_runs"] == SHADOWS and sweep["n_groups"] == 1 and "shadow" in sweep["tags"]
    children = client.get("/v1/experiments", params={"sweep_id": sweep_id}).json()["items"]
    assert sorted(c["spec"]["pool_subset"]["index"] for c in children) == list(range(SHADOWS))
    assert {c["spec"]["seed"] for c in children} == {0}
    (group_id,) = {child["group_id"] for child in children}
    assert handed_out(client, worker, group_id) and not handed_out(client, worker, probe["id"])
    an_hour_later = utcnow() + timedelta(hours=1)
    lost_message = RecordingDispatcher()  # an hour on, unclaimed, the queue empty
    dispatch_pass(worker.sessions, lost_message, settings, an_hour_later)
    assert lost_message.published == [uuid.UUID(group_id)]  # the group again, not the probe

    # Once the sweep has ended, the dispatcher hands the probe out like any run.
    execute_run(worker, uuid.UUID(group_id))
    assert handed_out(client, worker, probe["id"])
    execute_run(worker, uuid.UUID(probe["id"]))
    done = client.get(f"/v1/probes/{probe['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    result = done["result"]
    assert result["headline"] == "online_fixed_variance"  # the paper's choice below 64
    assert result["shadows"]["count"] == SHADOWS
    assert set(result["variants"]) == {
        "online",
        "offline",
        "online_fixed_variance",
        "offline_fixed_variance",
    }
    assert result["attack"]["n_members"] == 48 and result["attack"]["n_non_members"] == 48
    assert result["loss_attack"]["n_members"] == 48 and "blind_baseline" in result
    assert sorted(result["shadow_experiment_ids"]) == sorted(c["id"] for c in children)

    # A counterfactual probe on the same pool reuses the ended sweep and runs at once.
    again = post_probe(client, target, {"kind": "counterfactual", "shadows": SHADOWS, "top_k": 3})
    assert again["shadow_sweep_id"] == sweep_id
    assert handed_out(client, worker, again["id"])
    execute_run(worker, uuid.UUID(again["id"]))
    counterfactual = client.get(f"/v1/probes/{again['id']}").json()
    assert counterfactual["status"] == "succeeded", counterfactual["error"]
    assert len(counterfactual["result"]["top"]) == 3
    assert len(counterfactual["result"]["scores"]) == 96

    # Another pool seed is another set of shadows.
    other = post_probe(client, target, {"kind": "lira", "shadows": SHADOWS, "pool_seed": 1})
    assert other["shadow_sweep_id"] not in (None, sweep_id)


def test_a_shadow_probe_says_what_stands_in_its_way(
    client: TestClient, settings: Settings, broker: Celery
) -> None:
    worker = worker_for(settings)
    target = trained_experiment(client, worker, broker)
    cases = [
        (
            {"kind": "lira", "shadows": settings.max_shadows + 2},
            "spec.shadows",
            "MEMLAB_MAX_SHADOWS",
        ),
        ({"kind": "lira", "shadows": 3}, "spec.shadows", "4 shadows"),
        ({"kind": "counterfactual", "shadows": 1}, "spec.shadows", "greater than or equal to 2"),
    ]
    for spec, path, message in cases:
        response = client.post("/v1/probes", json={"experiment_id": target, "spec": spec})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert path in {d["path"] for d in error["details"]} and message in error["message"], error
    # A kind whose runs cannot train on halves of their pool is refused, with the reason.
    capacity = client.post("/v1/experiments", json={"spec": tiny_capacity_spec(task="facts")})
    capacity_id = capacity.json()["id"]
    execute_run(worker, uuid.UUID(capacity_id))
    response = client.post(
        "/v1/probes", json={"experiment_id": capacity_id, "spec": {"kind": "lira"}}
    )
    assert response.status_code == 422 and "shadow_training" in response.text, response.text
    # A probe of shadow models cannot ride in an experiment's own `probes`.
    response = client.post(
        "/v1/experiments", json={"spec": tiny_recall_spec(probes=[{"kind": "lira"}])}
    )
    assert response.status_code == 422 and "POST /v1/probes" in response.text, response.text


def test_a_lost_shadow_fails_its_probe_and_the_next_probe_retrains_only_that_one(
    client: TestClient, settings: Settings, broker: Celery
) -> None:
    worker = worker_for(settings)
    target = trained_experiment(client, worker, broker)
    spec = {"kind": "lira", "shadows": SHADOWS, "bootstrap_rounds": 20}
    first = post_probe(client, target, spec)
    children = client.get("/v1/experiments", params={"sweep_id": first["shadow_sweep_id"]})
    (group_id,) = {child["group_id"] for child in children.json()["items"]}
    assert handed_out(client, worker, group_id)
    lost = children.json()["items"][0]["id"]
    assert client.post(f"/v1/experiments/{lost}/cancel").status_code == 200
    execute_run(worker, uuid.UUID(group_id))  # the other three train
    assert handed_out(client, worker, first["id"])
    execute_run(worker, uuid.UUID(first["id"]))
    failed = client.get(f"/v1/probes/{first['id']}").json()
    assert failed["status"] == "failed" and "1 of 4 shadow models" in failed["error"], failed

    second = post_probe(client, target, spec)
    replacement = second["shadow_sweep_id"]
    assert replacement != first["shadow_sweep_id"]
    rows = client.get("/v1/experiments", params={"sweep_id": replacement}).json()["items"]
    (retrained,) = [row["id"] for row in rows if row["status"] == "queued"]
    assert retrained != lost and handed_out(client, worker, retrained)
    assert sum(row["status"] == "succeeded" for row in rows) == SHADOWS - 1
    execute_run(worker, uuid.UUID(retrained))
    assert handed_out(client, worker, second["id"])
    execute_run(worker, uuid.UUID(second["id"]))
    assert client.get(f"/v1/probes/{second['id']}").json()["status"] == "succeeded"
    # The pool's key now answers with the replacement.
    assert post_probe(client, target, spec)["shadow_sweep_id"] == replacement


def test_the_dispatcher_hands_out_a_waiting_probe_once_its_sweep_has_ended(
    client: TestClient, settings: Settings, broker: Celery
) -> None:
    worker = worker_for(settings)
    target = trained_experiment(client, worker, broker)
    probe = post_probe(client, target, {"kind": "counterfactual", "shadows": SHADOWS})
    # Every shadow is cancelled from the API: no worker ends the sweep, the dispatcher
    # sees it.
    assert not handed_out(client, worker, probe["id"])
    assert client.post(f"/v1/sweeps/{probe['shadow_sweep_id']}/cancel").status_code == 200
    assert handed_out(client, worker, probe["id"])
    execute_run(worker, uuid.UUID(probe["id"]))
    ended = client.get(f"/v1/probes/{probe['id']}").json()
    assert ended["status"] == "failed" and "4 of 4 shadow models" in ended["error"], ended
