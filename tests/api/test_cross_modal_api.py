"""`cross_modal` at the API: a default request is accepted; a bad spec is a 422 naming the
field to change."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def test_a_default_cross_modal_request_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "cross_modal"}})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "spec",
    [
        {"aligned_fraction": 1.0, "multi_hop": False},
        {"bridge_personas": 0, "attributes": 6, "values_per_attribute": 12},
        {"images": {"size": 32, "shift": 2, "train_views": 1, "test_views": 1}},
    ],
)
def test_a_cross_modal_request_at_the_edges_of_its_options_is_accepted(
    client: TestClient, spec: dict[str, Any]
) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "cross_modal", **spec}})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"personas": 7}, "spec.personas"),  # two halves, text and image
        ({"personas": 256, "bridge_personas": 64, "held_out_personas": 8}, "spec.personas"),
        ({"aligned_fraction": 1.5}, "spec.aligned_fraction"),
        ({"values_per_attribute": 1}, "spec.values_per_attribute"),
        ({"attributes": 7}, "spec.attributes"),
        ({"images": {"size": 18}}, "spec.images.size"),
        ({"images": {"test_views": 0}}, "spec.images.test_views"),
        ({"encoder": {"channels": 0}}, "spec.encoder.channels"),
        ({"alignment_threshold": 2}, "spec.alignment_threshold"),
        ({"model": {"mixer": {"type": "attention", "n_head": 3}}}, "spec.model"),
    ],
)
def test_a_bad_cross_modal_spec_is_a_422_naming_the_field(
    client: TestClient, spec: dict[str, Any], path: str
) -> None:
    response = client.post("/v1/experiments", json={"spec": {"kind": "cross_modal", **spec}})
    assert response.status_code == 422, response.text
    paths = {detail["path"] for detail in response.json()["error"]["details"]}
    assert path in paths, paths
