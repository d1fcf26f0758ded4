"""`interactive_teaching` at the API: the default spec is accepted, and a spec the kind
cannot run is a 422 naming the field to change (and, for a size, the server setting)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def _refusal(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 422, response.text
    return dict(response.json()["error"])


def test_the_default_spec_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "interactive_teaching"}})
    assert response.status_code == 201, response.text
    assert response.json()["spec"]["learner"] == "q_softmax"


@pytest.mark.parametrize(
    ("fields", "path", "words"),
    [
        ({"headline_delay": 3}, "spec.headline_delay", "not one of delays"),
        ({"delays": [0, 7, 7]}, "spec.delays", "strictly increasing"),
        ({"eval_every": 1000}, "spec.eval_every", "exceeds trials"),
        ({"consistency": 0.5}, "spec.consistency", "greater than 0.5"),
        ({"irregular_fraction": 0.6}, "spec.irregular_fraction", "less than 0.5"),
        ({"teacher": {"strategy": "lecture"}}, "spec.teacher.strategy", "'focus_errors'"),
        ({"teacher": {"accuracy": 1.5}}, "spec.teacher.accuracy", "less than or equal to 1"),
        (
            {"teacher": {"accuracy": 0.2, "positive_bias": 0.9}},
            "spec.teacher.accuracy",
            "raise accuracy to at least 0.444",
        ),
        ({"learner": "sarsa"}, "spec.learner", "'policy_shaping'"),
    ],
)
def test_a_spec_the_kind_cannot_run_is_refused_naming_the_field(
    client: TestClient, fields: dict[str, Any], path: str, words: str
) -> None:
    error = _refusal(client, {"kind": "interactive_teaching", **fields})
    details = {d["path"]: d["message"] for d in error["details"]}
    assert path in details, error
    assert words in details[path]


def test_items_over_the_servers_matrix_limit_are_refused_naming_the_setting(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMLAB_MAX_MATRIX_DIM", "256")
    error = _refusal(
        client, {"kind": "interactive_teaching", "seen_items": 300, "unseen_items": 100}
    )
    assert error["code"] == "limit_exceeded", error
    (detail,) = [d for d in error["details"] if d["path"] == "spec.seen_items"]
    assert (
        "asks for 300 but this server allows at most 256 (MEMLAB_MAX_MATRIX_DIM)"
        in (detail["message"])
    )
    assert "spec.unseen_items" not in {d["path"] for d in error["details"]}
