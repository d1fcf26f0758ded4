"""The worker registry: each `memlab worker` node writes its row when it starts, beats
while it runs and marks itself stopped when it exits (worker/registry.py); the API reads
which nodes are alive and what their pool processes are running.

A node is live while its heartbeat is younger than `Settings.heartbeat_stale_s`. Its pool
processes claim runs under the names `<node>:<8 hex>`, so a node's running runs are the
running rows whose `worker` starts with its name and a colon.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Run, RunStatus, Worker, utcnow


@dataclass(frozen=True)
class Registration:
    """What a node says of itself when it starts."""

    name: str
    hostname: str
    pid: int
    queues: list[str]
    devices: list[dict[str, Any]]
    concurrency: int
    version: str


@dataclass(frozen=True)
class WorkerState:
    """A node as the API shows it: its row, whether it is alive, its running runs."""

    worker: Worker
    live: bool
    running: Sequence[Run]


def register(session: Session, node: Registration) -> Worker:
    """Write the node's row (a restarted node keeps its name and starts afresh)."""
    now = utcnow()
    row = session.get(Worker, node.name) or Worker(name=node.name)
    row.hostname, row.pid, row.version = node.hostname, node.pid, node.version
    row.queues, row.devices, row.concurrency = node.queues, node.devices, node.concurrency
    row.started_at, row.heartbeat_at, row.stopped_at = now, now, None
    row.drain_requested_at = None
    session.add(row)
    session.flush()
    return row


def beat(session: Session, name: str) -> Worker | None:
    """Refresh the node's heartbeat and return its row (None: it has none any more)."""
    row = session.get(Worker, name)
    if row is not None:
        row.heartbeat_at = utcnow()
    return row


def request_drain(session: Session, name: str) -> Worker | None:
    """Ask the node to finish what it runs, take nothing new and exit (it reads this at
    its next heartbeat); None if there is no such node."""
    row = session.get(Worker, name)
    if row is not None and row.drain_requested_at is None:
        row.drain_requested_at = utcnow()
    return row


def mark_stopped(session: Session, name: str) -> None:
    row = session.get(Worker, name)
    if row is not None:
        row.stopped_at = utcnow()


def worker_states(
    session: Session, stale_s: float, include_stopped: bool = False
) -> list[WorkerState]:
    """Every node by name (stopped ones only if asked), with its liveness and the runs
    its pool processes are running now (batched groups' members included)."""
    workers = session.scalars(select(Worker).order_by(Worker.name)).all()
    running = session.scalars(
        select(Run)
        .where(Run.status == RunStatus.running, Run.worker.is_not(None))
        .order_by(Run.started_at)
    ).all()
    fresh_since = utcnow() - timedelta(seconds=stale_s)
    states = []
    for worker in workers:
        if worker.stopped_at is not None and not include_stopped:
            continue
        mine = [run for run in running if run.worker and node_of(run.worker) == worker.name]
        live = worker.stopped_at is None and worker.heartbeat_at >= fresh_since
        states.append(WorkerState(worker, live, mine))
    return states


def node_of(holder: str) -> str:
    """The node of a pool process's name (`<node>:<8 hex>`), or of the node's own name.

    >>> node_of("gpu0@box:1a2b3c4d"), node_of("gpu0@box")
    ('gpu0@box', 'gpu0@box')
    """
    return holder.partition(":")[0]


def busy_slots(state: WorkerState) -> int:
    """Pool processes busy: one per run it holds, a batched group's members counting once
    (the group row holds the slot)."""
    return sum(1 for run in state.running if run.group_id is None)


def runs_by_queue(session: Session, status: RunStatus) -> dict[str, int]:
    """Runs of `status` per queue. A batched group's members wait and run inside their
    group, which takes one slot, so they are left out."""
    rows = session.execute(
        select(Run.queue, func.count())
        .where(Run.status == status, Run.group_id.is_(None))
        .group_by(Run.queue)
    ).tuples()
    return dict(rows.all())
