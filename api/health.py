"""Liveness (/healthz: the process answers) and readiness (/readyz: database and broker answer)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.openapi import RETRY_AFTER

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "down"]]  # "database", "broker"


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "The database or the broker does not answer.",
            "headers": RETRY_AFTER,
        }
    },
)
async def readyz(request: Request) -> JSONResponse:
    database_ok, broker_ok = await asyncio.gather(
        run_in_threadpool(_database_ok, request),
        run_in_threadpool(request.app.state.dispatcher.ping),
    )
    checks = {"database": database_ok, "broker": broker_ok}
    ready = all(checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
    }
    headers = {} if ready else {"Retry-After": "5"}
    return JSONResponse(status_code=200 if ready else 503, content=body, headers=headers)


def _database_ok(request: Request) -> bool:
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception:
        return False
    return True
