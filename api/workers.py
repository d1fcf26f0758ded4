"""/v1/workers: the worker nodes, what each offers and what it is running since when; an
admin drains one for maintenance."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import ForbiddenError, Principal, PrincipalDep
from api.deps import DatabaseDep, SettingsDep
from api.errors import NotFoundError
from api.openapi import FORBIDDEN
from store import workers
from store.audit import AuditAction
from store.models import Run, RunStatus
from store.settings import Settings
from worker.celery_config import QUEUES

router = APIRouter(prefix="/v1/workers", tags=["workers"])


class RunningOut(BaseModel):
    """A run a node is running. Its id and kind show only to members of its project."""

    id: uuid.UUID | None
    kind: str | None
    run_type: str
    started_at: datetime | None

    @classmethod
    def of(cls, run: Run, principal: Principal) -> RunningOut:
        visible = principal.can_see(run.project_id)
        return cls(
            id=run.id if visible else None,
            kind=run.kind if visible else None,
            run_type=run.run_type.value,
            started_at=run.started_at,
        )


class WorkerOut(BaseModel):
    name: str = Field(description="The node's Celery name, e.g. `gpu0@host`.")
    hostname: str
    pid: int
    queues: list[str]
    devices: list[dict[str, Any]] = Field(
        description='[{"index", "name", "memory_gib"}]: detected, or declared with '
        "`memlab worker --devices`."
    )
    concurrency: int = Field(description="Pool processes: runs it can hold at once.")
    busy: int = Field(description="Pool processes running something now.")
    version: str
    live: bool = Field(description="Its heartbeat is fresh (`MEMLAB_HEARTBEAT_STALE_S`).")
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    draining: bool = Field(description="Asked to drain: it finishes its runs, then exits.")
    running: list[RunningOut] = Field(description="Oldest first; a batched group's members too.")

    @classmethod
    def of(cls, state: workers.WorkerState, principal: Principal) -> WorkerOut:
        row = state.worker
        return cls(
            name=row.name,
            hostname=row.hostname,
            pid=row.pid,
            queues=row.queues,
            devices=row.devices,
            concurrency=row.concurrency,
            busy=workers.busy_slots(state),
            version=row.version,
            live=state.live,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            stopped_at=row.stopped_at,
            draining=row.drain_requested_at is not None and row.stopped_at is None,
            running=[RunningOut.of(run, principal) for run in state.running],
        )


class QueueOut(BaseModel):
    name: str
    queued: int = Field(description="Runs waiting (a batched group counts once).")
    running: int


class QuotasOut(BaseModel):
    """The server's quotas (0 = none): what one user or project may hold at once."""

    runs_per_user: int
    runs_per_project: int
    gpu_runs_per_user: int
    gpu_runs_per_project: int
    gpu_hours_per_user: float = Field(description="GPU-hours over the last 24 h.")
    gpu_hours_per_project: float

    @classmethod
    def of(cls, settings: Settings) -> QuotasOut:
        return cls(**{name: getattr(settings, f"quota_{name}") for name in cls.model_fields})


class WorkerList(BaseModel):
    items: list[WorkerOut]
    queues: list[QueueOut] = Field(default_factory=list, description="Every known queue.")
    quotas: QuotasOut | None = None


@router.get("", response_model=WorkerList)
async def list_workers(
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    stopped: Annotated[bool, Query(description="Also nodes that have shut down.")] = False,
) -> WorkerList:
    """Every worker node by name: its queues, devices, slots, liveness and running runs."""

    def listing(session: Session) -> WorkerList:
        states = workers.worker_states(session, settings.heartbeat_stale_s, stopped)
        queued = workers.runs_by_queue(session, RunStatus.queued)
        running = workers.runs_by_queue(session, RunStatus.running)
        return WorkerList(
            items=[WorkerOut.of(state, principal) for state in states],
            queues=[
                QueueOut(name=q, queued=queued.get(q, 0), running=running.get(q, 0))
                for q in sorted(set(QUEUES) | set(queued) | set(running))
            ],
            quotas=QuotasOut.of(settings),
        )

    return await database.run(listing)


@router.post("/{name}/drain", response_model=WorkerOut, responses=FORBIDDEN)
async def drain_worker(
    name: str, database: DatabaseDep, settings: SettingsDep, principal: PrincipalDep
) -> WorkerOut:
    """Ask the node to finish the runs it holds, take no new one and exit (admins only);
    it reads the request at its next heartbeat. Queued runs wait for other nodes, or for
    this one's restart. The same as `memlab worker --drain NAME` on the server."""
    if not principal.is_admin:
        raise ForbiddenError("draining a worker is for admins")

    def drain(session: Session) -> WorkerOut:
        if workers.request_drain(session, name) is None:
            raise NotFoundError(f"no worker named {name!r}")
        principal.audit(session, AuditAction.worker_drained, target=name)
        session.commit()
        states = workers.worker_states(session, settings.heartbeat_stale_s, True)
        (state,) = (one for one in states if one.worker.name == name)
        return WorkerOut.of(state, principal)

    return await database.run(drain)
