"""Dispatch through the API: a submission only commits its run, and the run says why it
waits once a dispatcher pass has looked at it."""

from __future__ import annotations

from celery import Celery
from fastapi.testclient import TestClient

from api.app import create_app
from store.settings import Settings
from tests.conftest import tiny_capacity_spec
from worker.fair_dispatch import dispatch_pass


def test_a_server_leaves_submissions_to_the_dispatcher(settings: Settings, broker: Celery) -> None:
    app = create_app(settings, run_reaper=False)
    with TestClient(app) as client:
        experiment = client.post("/v1/experiments", json={"spec": tiny_capacity_spec()}).json()
        sweep = client.post("/v1/sweeps", json={"base": tiny_capacity_spec(), "seeds": 2}).json()
        children = client.get("/v1/experiments", params={"sweep_id": sweep["id"]}).json()
        submitted = [experiment, *children["items"]]
        assert [run["enqueued_at"] for run in submitted] == [None, None, None]
        assert client.get("/readyz").status_code == 200  # the broker is still asked
        dispatch_pass(app.state.sessions, app.state.dispatcher, settings)
        shown = client.get(f"/v1/experiments/{experiment['id']}").json()
    assert shown["status"] == "queued" and shown["enqueued_at"] is None
    assert shown["progress_message"] == "waiting: no live worker takes the cpu queue"
