"""Server-sent events for one run, experiment or probe: `status` and `progress` until it ends.

The stream polls the database (the source of truth) rather than a pub/sub channel, so
it works the same on SQLite and PostgreSQL and never misses the final state.
Each event's data is JSON: {"status", "progress", "message", "attempts"}.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import Principal
from api.deps import Database
from api.runs.service import get_run_or_404
from store.models import Run, RunStatus, RunType
from store.settings import Settings

_KEEPALIVE_S = 15.0


async def event_stream(
    request: Request,
    database: Database,
    settings: Settings,
    run_id: uuid.UUID,
    run_type: RunType,
    principal: Principal,
) -> StreamingResponse:
    """The SSE response for a run of `run_type`; a 404 before streaming if there is none
    that `principal` sees."""
    await database.run(lambda session: get_run_or_404(session, run_id, run_type, principal))
    return StreamingResponse(
        run_events(request, request.app.state.sessions, run_id, settings.events_poll_interval_s),
        media_type="text/event-stream",
        # Proxies must pass each frame on as it comes, not buffer or cache the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _snapshot(sessions: sessionmaker[Session], run_id: uuid.UUID) -> dict[str, Any] | None:
    with sessions() as session:
        row = session.execute(
            select(Run.status, Run.progress, Run.progress_message, Run.attempts).where(
                Run.id == run_id
            )
        ).one_or_none()
    if row is None:
        return None
    return {
        "status": RunStatus(row.status).value,
        "progress": row.progress,
        "message": row.progress_message,
        "attempts": row.attempts,
    }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def run_events(
    request: Request, sessions: sessionmaker[Session], run_id: uuid.UUID, poll_s: float
) -> AsyncIterator[str]:
    """SSE frames: `status` on each status change, `progress` in between, `end` last."""

    def name(last: dict[str, Any] | None, snapshot: dict[str, Any]) -> str:
        changed_status = last is None or snapshot["status"] != last["status"]
        return "status" if changed_status else "progress"

    async for frame in polled_events(
        request, lambda: _snapshot(sessions, run_id), name, f"run {run_id}", poll_s
    ):
        yield frame


async def polled_events(
    request: Request,
    snapshot: Callable[[], dict[str, Any] | None],
    event_name: Callable[[dict[str, Any] | None, dict[str, Any]], str],
    what: str,
    poll_s: float,
) -> AsyncIterator[str]:
    """SSE frames from polling `snapshot()` (a dict with a "status"; None once `what` is
    gone): an event named by `event_name(last, new)` on each change, a keep-alive
    comment during silences, and `end` once the status is terminal."""
    last: dict[str, Any] | None = None
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        current = await asyncio.to_thread(snapshot)
        if current is None:
            yield _event("error", {"message": f"{what} no longer exists"})
            return
        if current != last:
            yield _event(event_name(last, current), current)
            last, last_sent = current, time.monotonic()
        if RunStatus(current["status"]).is_terminal:
            yield _event("end", current)
            return
        if time.monotonic() - last_sent > _KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_s)
