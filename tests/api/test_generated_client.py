"""A client generated from the live OpenAPI document by openapi-python-client submits every kind.

Users reach for generated clients; one that drops a spec class (as openapi-python-client
did when an object default sat on a discriminated union) cannot submit that kind at all.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI

from api.app import create_app
from core.catalog import all_kinds
from store.db import migrate
from store.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow

PACKAGE = "memlab_generated_client"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = Path(tmp_path_factory.mktemp("server"))
    url = f"sqlite:///{data / 'memlab.db'}"
    migrate(url)
    settings = Settings(
        data_dir=data, database_url=url, broker_url=f"sqla+sqlite:///{data / 'broker.db'}"
    )
    return create_app(settings, run_reaper=False)


@pytest.fixture(scope="module")
def generated(app: FastAPI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package openapi-python-client generates from the app's document."""
    root = Path(tmp_path_factory.mktemp("client"))
    document = root / "openapi.json"
    document.write_text(json.dumps(app.openapi()))
    config = root / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter needed to import it
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            f"--path={document}",
            f"--config={config}",
            "--meta=none",
            f"--output-path={root / PACKAGE}",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # A schema the generator cannot read is a warning: it drops the schema and goes on.
    assert completed.returncode == 0, completed.stdout + completed.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _operation(generated: ModuleType, document: dict[str, Any], method: str, path: str) -> Any:
    """The generated module for one operation (named after its operationId, under its tag)."""
    operation = document["paths"][path][method]
    return importlib.import_module(
        f"{generated.__name__}.api.{operation['tags'][0]}.{operation['operationId']}"
    )


@pytest.mark.parametrize("kind", sorted(all_kinds()))
def test_a_generated_client_submits_a_run_of_every_kind(
    kind: str, app: FastAPI, generated: ModuleType
) -> None:
    models = importlib.import_module(f"{generated.__name__}.models")
    create = _operation(generated, app.openapi(), "post", "/v1/experiments")
    default_spec = all_kinds()[kind].default_spec().model_dump(mode="json")

    # The whole default spec, nested model and mixer included, goes through the generated
    # models: parsed into the kind's own class, then serialized for the request.
    body = models.ExperimentCreate.from_dict({"spec": default_spec, "tags": ["generated"]})
    assert body.spec.kind == kind
    with TestClient(app, base_url="http://memlab.test") as http:
        client = generated.Client(base_url="http://memlab.test").set_httpx_client(http)
        response = create.sync_detailed(client=client, body=body)

    assert response.status_code == 201, response.content
    assert isinstance(response.parsed, models.ExperimentOut)
    assert response.parsed.kind == kind
    assert response.parsed.tags == ["generated"]
    assert response.headers["memlab-submission"] == "created"
