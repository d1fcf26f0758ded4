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
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from store.runs import IllegalTransitionError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a stable machine-readable code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class ConflictError(ApiError):
    status_code = 409
    code = "conflict"


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
    errors: list[dict[str, Any]], tags: Collection[str] = ()
) -> list[dict[str, Any]]:
    """One {"path", "message", "type"} entry per pydantic error."""
    details = []
    for error in errors:
        location = tuple(p for p in error.get("loc", ()) if p not in tags)
        if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            # The discriminator itself is the field at fault: spec → spec.kind.
            discriminator = str(error.get("ctx", {}).get("discriminator", "")).strip("'\"")
            location = (*location, discriminator) if discriminator else location
        details.append(
            {
                "path": _field_path(location),
                "message": error.get("msg", ""),
                "type": error.get("type", ""),
            }
        )
    return details


def install_error_handlers(app: FastAPI, union_tags: Collection[str]) -> None:
    """Map every error to the one shape; `union_tags` (kind names) are dropped from paths."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = validation_details(jsonable_encoder(exc.errors()), union_tags)
        summary = "; ".join(f"{d['path'] or '(body)'}: {d['message']}" for d in details[:5])
        return JSONResponse(
            status_code=422,
            content=error_body("validation_error", f"invalid request: {summary}", details),
        )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.status_code, content=error_body(exc.code, exc.message, exc.details)
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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(code, str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )
