"""The OpenAPI document, made to tell the truth: every status a route answers, one error shape.

FastAPI's generated document lists 200 and a 422 in its own `{"detail": ...}` shape. This
module rewrites it once, when first asked for:

- **Errors.** Each route documents the errors it can answer, all with `ErrorOut`. Most
  follow from how the route is built: a body can be unreadable (400), too large (413) or
  invalid (422); a path parameter names something that may not exist (404); a route that
  reads the database answers 503 when it is down. A route declares the rest, such as a
  409, with `responses={409: {"description": ...}}`, or a 403 with `FORBIDDEN`; the
  shape is filled in here. Routes behind the API key check answer 401 and 429.
- **Discriminators are required.** A spec class declares its `kind` (or a mixer its
  `type`) with a default, so the generated schema calls it optional, but the union needs it
  to choose a member. Each member of a discriminated union lists the tag as required.
- **No object-valued defaults on references or unions.** `model: SequenceModelSpec =
  SequenceModelSpec(...)` puts an object `default` beside a `$ref` (or a `oneOf`), which
  code generators refuse (openapi-python-client drops the schema: "ModelProperty cannot
  have a default value"). The default moves into the description; the server applies it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.auth import get_principal
from api.deps import get_database
from api.errors import ErrorOut

ERROR_REF = "#/components/schemas/ErrorOut"

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer"},
    }
}

# Response headers a route can document with `responses={201: {"headers": ...}}`.
LOCATION = {
    "Location": {
        "description": "The URL of the new resource.",
        "required": True,
        "schema": {"type": "string"},
    }
}
SUBMISSION = {
    **LOCATION,
    "Memlab-Submission": {
        "description": "`created`: a new run; `reused`: an earlier succeeded run (200); "
        "`replayed`: a retry with a known Idempotency-Key.",
        "required": True,
        "schema": {"type": "string", "enum": ["created", "reused", "replayed"]},
    },
}
# The files a listing or a sweep's table can be downloaded as (`?format=`), by format.
FILE_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
# An answer's `responses` entry for them, beside its JSON model.
FILE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in FILE_TYPES.values()}}
}


def attachment(filename: str) -> dict[str, str]:
    """The header that makes a browser or `curl -OJ` save the answer as `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


# Server-sent events; as OpenAPI 3.1 has no `itemSchema`, `schema` describes one event.
EVENT_STREAM = {
    "text/event-stream": {
        "schema": {
            "type": "object",
            "properties": {
                "event": {"type": "string", "enum": ["status", "progress", "end", "error"]},
                "data": {
                    "type": "string",
                    "description": 'JSON: {"status", "progress", "message", "attempts"}.',
                },
            },
            "required": ["event", "data"],
        }
    }
}

# What each error status means when a route does not say more.
ERROR_DESCRIPTIONS = {
    400: "The request body could not be read (for example, it is not UTF-8).",
    401: "Authentication is on and the request has no valid API key "
    "(`Authorization: Bearer KEY`; unknown, revoked and expired keys are refused).",
    403: "The caller's role in the project (or not being an admin) does not allow this; "
    "the message names the role needed.",
    404: "Not found: no such id or name (also for ids the caller may not see).",
    409: "The request conflicts with the resource's state.",
    413: "The request body is over this server's limit (`MEMLAB_MAX_BODY_BYTES`).",
    422: "The request is invalid or asks for more than this server allows; each entry "
    "of `details` names a field path and the reason.",
    429: "This API key made more than `MEMLAB_RATE_LIMIT_PER_MINUTE` requests a minute; "
    "retry after `Retry-After` seconds.",
    503: "The database is unavailable; retry after `Retry-After` seconds.",
}
# A route where the caller's role decides: `responses=FORBIDDEN` (or merged into others).
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {"description": ERROR_DESCRIPTIONS[403]}}


def install_openapi(app: FastAPI) -> None:
    """Serve the rewritten document at /openapi.json (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = truthful_openapi(document, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def truthful_openapi(document: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """A copy of FastAPI's `document` with the three rewrites of this module's docstring."""
    document = copy.deepcopy(document)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    _add_error_schema(components)
    for path, route in _api_routes(routes):
        if route.include_in_schema:
            for method in route.methods or ():
                _document_errors(document["paths"][path][method.lower()], answered_errors(route))
    for name in ("HTTPValidationError", "ValidationError"):
        if not _is_referenced(document, f"#/components/schemas/{name}"):
            components.pop(name, None)
    for schema in components.values():
        _require_discriminators(schema, components)
    for schema in components.values():
        _move_object_defaults_to_descriptions(schema)
    return document


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[tuple[str, APIRoute]]:
    """Each APIRoute with its path as served (newer FastAPI nests included routers)."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:  # older FastAPI: included routes are flattened
        yield from ((r.path_format, r) for r in routes if isinstance(r, APIRoute))
        return
    for context in iter_route_contexts(list(routes)):
        if isinstance(context.original_route, APIRoute):
            yield context.path_format, context.original_route


def answered_errors(route: APIRoute) -> set[int]:
    """Every error status `route` can answer: from how it is built, and what it declares."""
    statuses = {int(code) for code in route.responses if str(code).isdigit() and int(code) >= 400}
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    for dependant in _walk(route.dependant):  # the route's own parameters, then its dependencies'
        if dependant.path_params:
            statuses |= {404, 422}
        if dependant.query_params or dependant.header_params or dependant.cookie_params:
            statuses.add(422)
        if dependant.call is get_database:
            statuses.add(503)
        if dependant.call is get_principal:
            statuses |= {401, 429}
    return statuses


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _walk(sub)


def _add_error_schema(components: dict[str, Any]) -> None:
    schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components["ErrorOut"] = schema


def _document_errors(operation: dict[str, Any], statuses: set[int]) -> None:
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        response = responses.setdefault(str(status), {})
        if response.get("description") in (None, "", _FASTAPI_422["description"]):
            response["description"] = ERROR_DESCRIPTIONS.get(status, "An error.")
        if response.get("content") in (None, _FASTAPI_422["content"]):
            response["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
        if status in (429, 503):
            response.setdefault("headers", RETRY_AFTER)
    operation["responses"] = dict(sorted(responses.items()))


# The 422 FastAPI documents for every route with parameters, in a shape no route answers.
_FASTAPI_422 = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}


def _is_referenced(document: dict[str, Any], ref: str) -> bool:
    return any(node.get("$ref") == ref for node in _subschemas(document))


def _subschemas(schema: Any) -> Iterator[dict[str, Any]]:
    """`schema` and every object nested in it (properties, items, unions)."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _subschemas(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _subschemas(value)


def _require_discriminators(schema: dict[str, Any], components: dict[str, Any]) -> None:
    for node in list(_subschemas(schema)):
        discriminator = node.get("discriminator")
        if not isinstance(discriminator, dict) or "mapping" not in discriminator:
            continue
        tag = discriminator["propertyName"]
        for ref in discriminator["mapping"].values():
            member = components[ref.rsplit("/", 1)[-1]]
            required = member.setdefault("required", [])
            if tag not in required:
                required.insert(0, tag)


def _move_object_defaults_to_descriptions(schema: dict[str, Any]) -> None:
    for node in list(_subschemas(schema)):
        for prop in node.get("properties", {}).values():
            default = prop.get("default")
            points_elsewhere = "$ref" in prop or any(k in prop for k in ("oneOf", "anyOf"))
            if isinstance(default, dict) and points_elsewhere:
                del prop["default"]
                text = f"Default: `{json.dumps(default, separators=(', ', ': '))}`."
                prop["description"] = (
                    f"{prop['description']} {text}" if "description" in prop else text
                )
