"""Server-sent events for a sweep: its children's counts per status and its progress.

Like a run's stream (`api.runs.events`) it polls the database, the source of truth.
Each event's data is JSON: {"status", "counts", "progress", "n_runs"}.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from store import sweeps

_KEEPALIVE_S = 15.0


def _snapshot(sessions: sessionmaker[Session], sweep_id: uuid.UUID) -> dict[str, Any] | None:
    with sessions() as session:
        sweep = sweeps.get_sweep(session, sweep_id)
        if sweep is None:
            return None
        progress = sweeps.sweep_progress(session, sweep_id)
        return {
            "status": progress.status.value,
            "counts": progress.counts,
            "progress": round(progress.progress, 4),
            "n_runs": sweep.n_runs,
        }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


async def sweep_events(
    request: Request, sessions: sessionmaker[Session], sweep_id: uuid.UUID, poll_s: float
) -> AsyncIterator[str]:
    """SSE frames: `counts` on each change, `end` last."""
    last: dict[str, Any] | None = None
    last_sent = time.monotonic()
    while not await request.is_disconnected():
        snapshot = await asyncio.to_thread(_snapshot, sessions, sweep_id)
        if snapshot is None:
            yield _event("error", {"message": f"sweep {sweep_id} no longer exists"})
            return
        if snapshot != last:
            yield _event("counts", snapshot)
            last, last_sent = snapshot, time.monotonic()
        if snapshot["status"] in ("succeeded", "failed", "cancelled"):
            yield _event("end", snapshot)
            return
        if time.monotonic() - last_sent > _KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_s)
