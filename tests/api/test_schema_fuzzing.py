"""schemathesis against the OpenAPI schema: generated requests, bounded, and never a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from api.app import create_app
from store.db import migrate
from store.settings import Settings


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    url = f"sqlite:///{data / 'memlab.db'}"
    migrate(url)
    return create_app(
        Settings(
            data_dir=data, database_url=url, broker_url=f"sqla+sqlite:///{data / 'broker.db'}"
        ),
        run_reaper=False,
    )


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FastAPI) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)


def test_no_generated_request_gets_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def never_a_5xx(case: schemathesis.Case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text[:500])

        never_a_5xx()
        checked.append(operation.label)
    assert len(checked) >= 9, checked  # every operation in the schema was exercised
