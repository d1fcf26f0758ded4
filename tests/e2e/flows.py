"""The user journeys every deployment mode must support, written once."""

from __future__ import annotations

from client.sdk import MemlabClient
from tests.conftest import tiny_capacity_spec

E2E_SPEC = tiny_capacity_spec(
    task="joint", train={"steps": 120, "eval_every": 40, "checkpoint_every": 60}
)


def submit_follow_and_check(client: MemlabClient) -> str:
    """POST a short capacity_tradeoff, follow its events to the end, check what was stored."""
    experiment = client.submit(E2E_SPEC, name="e2e", tags=["e2e"])
    events = list(client.events(experiment["id"]))
    names = [name for name, _ in events]
    statuses = [data["status"] for name, data in events if name == "status"]
    assert statuses[-1] == "succeeded", events
    assert names[-1] == "end"
    assert statuses[0] in ("queued", "running") and "running" in statuses, events
    assert "progress" in names, events

    final = client.get(experiment["id"])
    assert final["status"] == "succeeded", final.get("error")
    result = final["result"]
    assert result["training"]["steps"] == 120
    assert set(result["final"]) >= {"arithmetic_held_out", "arithmetic_seen", "facts"}

    metrics = client.metrics(experiment["id"])["series"]
    assert metrics["eval/facts"]["steps"] == [40, 80, 120]
    assert metrics["train/loss"]["steps"][-1] == 120
    assert client.list(tag="e2e")["items"][0]["id"] == experiment["id"]
    return str(experiment["id"])


def cancel_while_running(client: MemlabClient) -> None:
    """A long run, cancelled once it runs, ends `cancelled`; cancelling again is a 409."""
    long_spec = tiny_capacity_spec(train={"steps": 1_000_000, "checkpoint_every": 1_000_000})
    experiment = client.submit(long_spec)
    for name, data in client.events(experiment["id"]):
        if data["status"] == "running":
            client.cancel(experiment["id"])
            break
        assert name != "end", data
    final = client.wait(experiment["id"])
    assert final["status"] == "cancelled", final
    assert final["progress"] < 1.0
    try:
        client.cancel(experiment["id"])
    except Exception as error:  # MemlabError
        assert getattr(error, "status", None) == 409
    else:
        raise AssertionError("cancelling a cancelled run must be a 409")
