"""`schema_linking` at the API: a default request is accepted; a bad spec is a 422 naming
the field to change."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from store.settings import Settings


def test_a_default_schema_linking_request_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "schema_linking"}})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "spec",
    [
        {"min_attributes": 1, "max_attributes": 1},  # no table can be asked for two columns
        {"model": {"tie_embeddings": True, "mixer": {"type": "s6"}}},
        {"cold_start_examples": None, "grpo": None},
        {"n_train_schemas": 10, "grpo": {"prompt_pool": 80}},  # every training question
    ],
)
def test_a_schema_linking_request_at_the_edges_of_its_options_is_accepted(
    client: TestClient, spec: dict[str, Any]
) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "schema_linking", **spec}})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"min_tables": 4, "max_tables": 2}, "spec.min_tables"),
        ({"min_attributes": 3, "max_attributes": 1}, "spec.min_attributes"),
        ({"cold_start_examples": 100_000}, "spec.cold_start_examples"),
        ({"grpo": {"group_size": 1}}, "spec.grpo.group_size"),
        ({"grpo": {"clip": 0}}, "spec.grpo.clip"),
        ({"grpo": {"accuracy_weight": 0, "format_weight": 0}}, "spec.grpo.accuracy_weight"),
        ({"grpo": {"train": {"lr": 0}}}, "spec.grpo.train.lr"),
        ({"max_answer_tokens": 8}, "spec.max_answer_tokens"),
        ({"max_answer_tokens": 50}, "spec.max_answer_tokens"),  # cuts a full-schema answer
        ({"grpo": {"train": {"device": "cpu"}}}, "spec.grpo.train.device"),
        ({"grpo": {"prompt_pool": 0}}, "spec.grpo.prompt_pool"),
        # More than the 10 × 8 training questions it could draw from.
        ({"n_train_schemas": 10, "grpo": {"prompt_pool": 81}}, "spec.grpo.prompt_pool"),
    ],
)
def test_a_bad_schema_linking_spec_is_a_422_naming_the_field(
    client: TestClient, spec: dict[str, Any], path: str
) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "schema_linking", **spec}})
    assert response.status_code == 422, response.text
    paths = {detail["path"] for detail in response.json()["error"]["details"]}
    assert path in paths, paths


def test_both_stages_steps_count_against_the_servers_step_limit(
    client: TestClient, settings: Settings
) -> None:
    each = settings.max_steps * 3 // 4  # either stage alone is under the limit, both over
    spec = {"kind": "schema_linking", "train": {"steps": each}, "grpo": {"train": {"steps": each}}}
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "limit_exceeded"
    (detail,) = [d for d in error["details"] if d["path"] == "spec.train.steps"]
    # The message says why a train.steps under the limit is refused.
    assert f"asks for {2 * each:,}" in detail["message"]
    assert f"train.steps {each:,} plus the later stages' steps" in detail["message"]
