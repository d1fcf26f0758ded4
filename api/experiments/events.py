"""Server-sent events for one experiment: `status` and `progress` until it ends.

The stream polls the database (the source of truth) rather than a pub/sub channel, so
it works the same on SQLite and PostgreSQL and never misses the final state.
Each event's data is JSON: {"status", "progress", "message", "attempts"}.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Experiment, RunStatus

_KEEPALIVE_S = 15.0


def _snapshot(sessions: sessionmaker[Session], experiment_id: uuid.UUID) -> dict[str, Any] | None:
    with sessions() as session:
        row = session.execute(
            select(
                Experiment.status,
                Experiment.progress,
                Experiment.progress_message,
                Experiment.attempts,
            ).where(Experiment.id == experiment_id)
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


async def experiment_events(
    request: Request, sessions: sessionmaker[Session], experiment_id: uuid.UUID, poll_s: float
) -> AsyncIterator[str]:
    """SSE frames: `status` on each status change, `progress` in between, `end` last."""
    last: dict[str, Any] | None = None
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        snapshot = await asyncio.to_thread(_snapshot, sessions, experiment_id)
        if snapshot is None:
            yield _event("error", {"message": f"experiment {experiment_id} no longer exists"})
            return
        if snapshot != last:
            changed_status = last is None or snapshot["status"] != last["status"]
            yield _event("status" if changed_status else "progress", snapshot)
            last, last_sent = snapshot, time.monotonic()
        if RunStatus(snapshot["status"]).is_terminal:
            yield _event("end", snapshot)
            return
        if time.monotonic() - last_sent > _KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_s)
