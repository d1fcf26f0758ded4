"""The OpenAPI document: each route's errors with the one shape, unions a generator can read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from store.settings import Settings

ERROR_REF = "#/components/schemas/ErrorOut"


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document as served; building it needs no database."""
    data = Path(tmp_path_factory.mktemp("openapi"))
    settings = Settings(data_dir=data, broker_url=f"sqla+sqlite:///{data / 'broker.db'}")
    response = TestClient(create_app(settings, run_reaper=False)).get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_every_error_response_has_the_one_error_shape(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["error"]
    for label, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or label == "GET /readyz":  # /readyz reports its checks
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_REF}, (label, status)
            assert response["description"], (label, status)


def test_each_route_documents_the_statuses_it_can_answer(document: dict[str, Any]) -> None:
    statuses = {label: set(op["responses"]) for label, op in _operations(document)}
    assert {"404", "422", "503"} <= statuses["GET /v1/experiments/{experiment_id}"]
    assert {"404", "422"} <= statuses["GET /v1/kinds/{name}"]
    assert "503" not in statuses["GET /v1/kinds/{name}"]  # answered from the registry
    assert {"201", "200", "400", "413", "422", "503"} <= statuses["POST /v1/experiments"]
    assert {"201", "409", "413", "422"} <= statuses["POST /v1/probes"]
    assert "409" in statuses["POST /v1/experiments/{experiment_id}/cancel"]
    assert "409" in statuses["POST /v1/probes/{probe_id}/cancel"]
    assert {"422", "503"} <= statuses["GET /v1/experiments"]  # query parameters
    assert statuses["GET /v1/kinds"] == {"200"}
    for label, answered in statuses.items():
        if "{" in label:
            assert "404" in answered, label
        if "503" in answered:
            headers = dict(_operations(document))[label]["responses"]["503"]["headers"]
            assert "Retry-After" in headers, label


def test_submissions_document_their_headers(document: dict[str, Any]) -> None:
    created = document["paths"]["/v1/experiments"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "Memlab-Submission"} <= set(created)
    assert "Location" in document["paths"]["/v1/probes"]["post"]["responses"]["201"]["headers"]


def test_every_member_of_a_discriminated_union_requires_its_tag(
    document: dict[str, Any],
) -> None:
    components = document["components"]["schemas"]
    unions = [node["discriminator"] for node in _nodes(components) if "discriminator" in node]
    # kinds and probes (kind), mixers (type), sweep claims (test)
    assert {u["propertyName"] for u in unions} == {"kind", "type", "test"}
    for union in unions:
        for ref in union["mapping"].values():
            member = components[ref.rsplit("/", 1)[-1]]
            assert union["propertyName"] in member["required"], ref


def test_no_object_default_sits_on_a_reference_or_a_union(document: dict[str, Any]) -> None:
    """openapi-python-client drops a schema with one ("ModelProperty cannot have a default")."""
    components = document["components"]["schemas"]
    for node in _nodes(components):
        for name, prop in node.get("properties", {}).items():
            if "$ref" in prop or "oneOf" in prop or "anyOf" in prop:
                assert not isinstance(prop.get("default"), dict), name
    mixer = components["SequenceModelSpec"]["properties"]["mixer"]
    assert 'Default: `{"type": "attention"' in mixer["description"]  # still said, in words
