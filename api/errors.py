"""Domain errors carrying their HTTP status, and the one error shape every response uses.

    {"error": {"code": "not_found", "message": "...", "details": [...]}}

Validation errors list each problem with its field path, e.g. "spec.train.stepz".
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.server_limits import server_limit_detail
from store.runs import IllegalTransitionError
from store.settings import Settings

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class ValidationFailedError(ApiError):
    """A request the schema admits but a rule refuses; `details` name the fields."""

    status_code = 422
    code = "validation_error"


class ConflictError(ApiError):
    status_code = 409
    code = "conflict"


class ErrorDetail(BaseModel):
    """One problem with a request."""

    path: str = Field(description="The field at fault, e.g. `spec.train.lr`; `body` for the body.")
    message: str
    type: str = Field(description="A stable name for the problem, e.g. `extra_forbidden`.")


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable and machine-readable, e.g. `validation_error`.")
    message: str = Field(description="What went wrong, for a person.")
    details: list[ErrorDetail]


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


def error_body(
    code: str, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _field_path(location: tuple[Any, ...]) -> str:
    """pydantic's loc as a dotted path: ('spec', 'train', 'stepz') → 'spec.train.stepz'."""
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts)


def validation_details(
    errors: list[dict[str, Any]], tags: Collection[str] = (), settings: Settings | None = None
) -> list[dict[str, Any]]:
    """One {"path", "message", "type"} entry per pydantic error.

    With `settings`, a value over both the schema's bound and this server's limit is
    reported against the server's limit, the one actually in force.
    """
    details = []
    for error in errors:
        if error.get("type") == "json_invalid":
            details.append(_json_decode_detail(error))
            continue
        location = tuple(p for p in error.get("loc", ()) if p not in tags)
        if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            # The discriminator itself is the field at fault: spec → spec.kind.
            discriminator = str(error.get("ctx", {}).get("discriminator", "")).strip("'\"")
            location = (*location, discriminator) if discriminator else location
        path = _field_path(location)
        server_limit = server_limit_detail(path, error, settings) if settings else None
        details.append(
            server_limit
            or {"path": path, "message": error.get("msg", ""), "type": error.get("type", "")}
        )
    return details


def _json_decode_detail(error: dict[str, Any]) -> dict[str, Any]:
    """FastAPI puts the character offset of a JSON syntax error where a field path goes."""
    position = error.get("loc", (None, None))[-1]
    reason = error.get("ctx", {}).get("error", "invalid JSON")
    return {
        "path": "body",
        "message": f"the body is not valid JSON: {reason} at character {position}",
        "type": "json_invalid",
    }


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this request's path.

    Starlette's 405 names the methods of the first route whose path matched, so
    `PUT /v1/experiments` said `Allow: POST` although GET is served there too.
    """
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def install_error_handlers(app: FastAPI, union_tags: Collection[str]) -> None:
    """Map every error to the one shape; `union_tags` (kind names) are dropped from paths."""

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        settings: Settings = request.app.state.settings
        details = validation_details(jsonable_encoder(exc.errors()), union_tags, settings)
        summary = "; ".join(f"{d['path'] or '(body)'}: {d['message']}" for d in details[:5])
        if details and all(d["type"] == "limit_exceeded" for d in details):
            code, message = "limit_exceeded", f"over this server's limits: {summary}"
        else:
            code, message = "validation_error", f"invalid request: {summary}"
        return JSONResponse(status_code=422, content=error_body(code, message, details))

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(exc.code, exc.message, exc.details),
            headers=exc.headers,
        )

    @app.exception_handler(IllegalTransitionError)
    async def _illegal(_: Request, exc: IllegalTransitionError) -> JSONResponse:
        return JSONResponse(status_code=409, content=error_body("conflict", str(exc)))

    # Connection-level failures only: an IntegrityError is a bug to see, not an outage.
    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database error answered with 503: %s", exc)
        return JSONResponse(
            status_code=503,
            content=error_body(
                "database_unavailable", "the database is unavailable; retry shortly"
            ),
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(code, str(exc.detail)),
            headers=headers or None,
        )
