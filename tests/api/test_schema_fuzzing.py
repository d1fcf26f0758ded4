"""A schemathesis run against the app: every answer is one the OpenAPI document describes.

The run is what `schemathesis run` does, in process over ASGI: the coverage phase
(boundary values, each parameter missing or of the wrong type, methods the path does not
serve, such as PUT or OPTIONS), then generated requests, valid and invalid. Each response
must be no 5xx, and have a documented status code, content type, headers and body; an
undeclared method must be a 405 whose `Allow` lists what the path serves; an invalid
request must be refused. Clients generated from the document rely on each of these.

`positive_data_acceptance` is left out on purpose: a request valid by the schema can still
be refused with a 422 by rules that no JSON schema states (warmup ≤ steps, a width that
divides into heads, the server's MEMLAB_MAX_* limits, an experiment id that must exist).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema

from api.app import create_app
from store.db import migrate
from store.settings import Settings

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
    "negative_data_rejection",
    "missing_required_header",
)

RUN_CONFIG = {
    "phases": {
        "examples": {"enabled": False},
        "coverage": {"enabled": True},
        "fuzzing": {"enabled": True},
        "stateful": {"enabled": False},
    },
    "generation": {"max-examples": 30, "database": "none"},
    "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
    # A queued run's event stream sends one event and then only keep-alives, for as long
    # as the run stays queued: read that one event rather than wait for a timeout.
    "max-stream-events": 1,
    "workers": 1,
}


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = Path(tmp_path_factory.mktemp("fuzz"))
    url = f"sqlite:///{data / 'memlab.db'}"
    migrate(url)
    return create_app(
        Settings(
            data_dir=data,
            database_url=url,
            broker_url=f"sqla+sqlite:///{data / 'broker.db'}",
            events_poll_interval_s=0.05,
        ),
        run_reaper=False,
    )


def test_every_answer_is_one_the_openapi_document_describes(fuzzed_app: FastAPI) -> None:
    config = schemathesis.Config.from_dict(RUN_CONFIG)
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=config)
    failures: list[str] = []
    errors: list[str] = []
    fuzzed: set[str] = set()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            fuzzed.add(event.recorder.label)
            for check in (c for nodes in event.recorder.checks.values() for c in nodes):
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    failures.append(
                        f"{event.recorder.label} [{check.name}] {failure.title}: "
                        f"{failure.message}\n{check.failure_info.code_sample}"
                    )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(repr(event))
    assert not errors, errors
    assert not failures, "\n\n".join(dict.fromkeys(failures))  # each distinct failure once
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert fuzzed == operations
    assert len(operations) >= 17, operations
