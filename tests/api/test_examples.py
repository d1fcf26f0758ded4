"""Every sweep file in examples/ is a request this server accepts as it stands: its
axes name fields, its values validate, and its claims pin cells of the sweep."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.sweep.json"))


def test_there_is_a_full_and_a_quick_file_for_every_reproduction() -> None:
    names = {path.name for path in EXAMPLES}
    full = {n for n in names if n.count(".") == 2}  # NAME.sweep.json
    assert "capacity_tradeoff.sweep.json" in full
    reproductions = (
        "capacity_tradeoff",
        "kg_memorization",
        "fictional_qa",
        "associative_recall",
        "attention_memorization",
        "associative_memory.capacity",
        "associative_memory.diffusion",
        "memorization_tradeoff",
        "interactive_teaching",
        "schema_linking",
        "cross_modal",
    )
    for name in reproductions:
        assert {f"{name}.sweep.json", f"{name}.quick.sweep.json"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_an_example_sweep_is_accepted_with_three_seeds_and_its_claims(
    client: TestClient, path: Path
) -> None:
    request = json.loads(path.read_text())
    response = client.post("/v1/sweeps", json=request)
    assert response.status_code == 201, response.text
    sweep = response.json()
    assert len(sweep["seeds"]) >= 3  # an interval needs seeds
    assert sweep["claims"] and len(sweep["claims"]) == len(request["claims"])
