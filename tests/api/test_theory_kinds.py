"""The theory kinds at the API: a size over the server's MEMLAB_MAX_MATRIX_DIM, an
activation that is not centred, a threshold out of range, each a 422 naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def _refusal(client: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/experiments", json={"spec": spec})
    assert response.status_code == 422, response.text
    return dict(response.json()["error"])


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"kind": "attention_memorization", "p": 300}, "spec.p"),
        ({"kind": "attention_memorization", "n": 300}, "spec.n"),
        (
            {"kind": "memorization_tradeoff", "problem": "boolean", "dimension": 300},
            "spec.dimension",
        ),
        (
            {"kind": "associative_memory", "part": "diffusion", "diffusion": {"samples": 300}},
            "spec.diffusion.samples",
        ),
    ],
)
def test_a_size_over_the_servers_matrix_limit_is_refused_naming_the_field_and_setting(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any], path: str
) -> None:
    monkeypatch.setenv("MEMLAB_MAX_MATRIX_DIM", "256")
    error = _refusal(client, spec)
    assert error["code"] == "limit_exceeded", error
    (detail,) = [d for d in error["details"] if d["path"] == path]
    assert "at most 256 (MEMLAB_MAX_MATRIX_DIM)" in detail["message"]


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        (
            {"kind": "attention_memorization", "f": "hermite", "hermite_coefficients": [0.3, 1]},
            "spec.hermite_coefficients.0",
            "centred",
        ),
        (
            {"kind": "associative_memory", "diffusion": {"memorized_radius": 2.5}},
            "spec.diffusion.memorized_radius",
            "2",
        ),
        (
            {"kind": "associative_memory", "diffusion": {"compact_spread": 0}},
            "spec.diffusion.compact_spread",
            "",
        ),
        ({"kind": "memorization_tradeoff", "problem": "boolean", "rho": 1.5}, "spec.rho", ""),
        ({"kind": "attention_memorization", "grid": []}, "spec.grid", ""),
    ],
)
def test_a_spec_the_theory_cannot_take_is_refused_naming_the_field(
    client: TestClient, spec: dict[str, Any], path: str, words: str
) -> None:
    error = _refusal(client, spec)
    details = {d["path"]: d["message"] for d in error["details"]}
    assert path in details, error
    assert words in details[path]
