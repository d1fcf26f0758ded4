"""Server-sent events for a sweep: its children's counts per status and its progress.

Like a run's stream (`api.runs.events`) it polls the database, the source of truth.
Each event's data is JSON: {"status", "counts", "progress", "n_runs"}.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session, sessionmaker

from api.runs.events import polled_events
from store import sweeps


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


async def sweep_events(
    request: Request, sessions: sessionmaker[Session], sweep_id: uuid.UUID, poll_s: float
) -> AsyncIterator[str]:
    """SSE frames: `counts` on each change, `end` last."""
    async for frame in polled_events(
        request,
        lambda: _snapshot(sessions, sweep_id),
        lambda last, new: "counts",
        f"sweep {sweep_id}",
        poll_s,
    ):
        yield frame
