"""HTTP endpoints under /v1/sweeps. Each does its database work in one `Database.run`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.auth import PrincipalDep, scoped_idempotency_key
from api.deps import DatabaseDep, SettingsDep, WakeDispatcherDep
from api.experiments.service import Submission
from api.openapi import EVENT_STREAM, FILE_CONTENT, FILE_TYPES, FORBIDDEN, SUBMISSION, attachment
from api.schemas import (
    CellOut,
    SummaryOut,
    SweepCreate,
    SweepList,
    SweepOut,
    SweepTableOut,
    VerdictOut,
)
from api.sweeps import service, table
from api.sweeps.events import sweep_events
from core.tables import sweep_table
from store import sweeps
from store.models import Sweep

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


def _out(session: Session, sweep: Sweep) -> SweepOut:
    return SweepOut.of(sweep, sweeps.sweep_progress(session, sweep.id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepOut,
    responses={
        201: {"headers": SUBMISSION},
        200: {
            "model": SweepOut,
            "description": "A retry with a known Idempotency-Key",
            "headers": SUBMISSION,
        },
        **FORBIDDEN,
    },
)
async def create_sweep(
    body: SweepCreate,
    request: Request,
    response: Response,
    database: DatabaseDep,
    wake_dispatcher: WakeDispatcherDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1, max_length=200, description="Retries with this key return the same sweep."
        ),
    ] = None,
    reuse: Annotated[
        bool,
        Query(description="A cell whose spec hash matches a succeeded experiment reuses it."),
    ] = False,
) -> SweepOut:
    """Submit a sweep: every cell of the grid (or random draw) once per seed, as ordinary
    experiments that name the sweep; children that differ only in seed and learning rate
    train together as batched ensembles.

    `Memlab-Submission` says `created`, or `replayed` (200) for a retry with a known key.
    """

    def submit(session: Session) -> tuple[SweepOut, Submission]:
        submitted = service.submit_sweep(
            session,
            settings,
            body,
            idempotency_key=scoped_idempotency_key(principal, idempotency_key),
            reuse=reuse,
            principal=principal,
        )
        return _out(session, submitted.sweep), submitted.outcome

    sweep, outcome = await database.run(submit)
    wake_dispatcher()
    if outcome is Submission.replayed:
        response.status_code = status.HTTP_200_OK
    response.headers["Memlab-Submission"] = outcome.value
    response.headers["Location"] = str(request.url_for("get_sweep", sweep_id=sweep.id))
    return sweep


@router.get("", response_model=SweepList)
async def list_sweeps(
    database: DatabaseDep,
    principal: PrincipalDep,
    kind: str | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SweepList:
    """Sweeps newest first, of one kind and with one tag when given, with their
    children's counts per status."""

    def page(session: Session) -> SweepList:
        found = sweeps.list_sweeps(
            session,
            kind=kind,
            tag=tag,
            limit=limit,
            offset=offset,
            projects=principal.visible_projects(),
        )
        return SweepList(
            items=[_out(session, s) for s in found.items],
            total=found.total,
            limit=limit,
            offset=offset,
        )

    return await database.run(page)


@router.get("/{sweep_id}", response_model=SweepOut)
async def get_sweep(
    sweep_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> SweepOut:
    """One sweep: its request, counts per status and progress. Its children are
    `GET /v1/experiments?sweep_id=…`."""
    return await database.run(
        lambda session: _out(session, service.get_sweep_or_404(session, sweep_id, principal))
    )


@router.get(
    "/{sweep_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": EVENT_STREAM, "description": "The event stream."}},
)
async def stream_sweep_events(
    sweep_id: uuid.UUID,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    """Server-sent events: `counts` on every change of the children's counts or progress,
    and `end` once every child has ended."""
    await database.run(lambda session: service.get_sweep_or_404(session, sweep_id, principal))
    return StreamingResponse(
        sweep_events(
            request, request.app.state.sessions, sweep_id, settings.events_poll_interval_s
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{sweep_id}/table",
    response_model=SweepTableOut,
    responses=FILE_CONTENT,
)
async def get_sweep_table(
    sweep_id: uuid.UUID,
    database: DatabaseDep,
    principal: PrincipalDep,
    table_format: Annotated[
        Literal["json", "csv", "parquet"],
        Query(alias="format", description="json (default), csv, or parquet: one row per cell."),
    ] = "json",
) -> Any:
    """One row per cell: its coordinates, its children per status, and every numeric
    result and probe result as mean, standard deviation, 95% Student-t interval and n over
    its succeeded seeds. Failed and cancelled children are counted, not averaged."""

    def build(session: Session) -> Any:
        sweep = service.get_sweep_or_404(session, sweep_id, principal)
        children = table.table_children(session, sweep_id)
        rows = sweep_table(children)
        if table_format == "json":
            return SweepTableOut(
                sweep_id=sweep_id,
                axes=list(sweep.request["axes"]),
                rows=[
                    CellOut(
                        cell=row.cell,
                        counts=row.counts,
                        values={k: SummaryOut(**vars(v)) for k, v in row.values.items()},
                    )
                    for row in rows
                ],
                claims=[VerdictOut(**vars(v)) for v in table.verdicts(sweep, children)],
            )
        content = table.as_csv(rows) if table_format == "csv" else table.as_parquet(rows)
        return Response(
            content,
            media_type=FILE_TYPES[table_format],
            headers=attachment(f"sweep-{sweep_id}.{table_format}"),
        )

    return await database.run(build)


@router.post("/{sweep_id}/cancel", response_model=SweepOut, responses=FORBIDDEN)
async def cancel_sweep(
    sweep_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> SweepOut:
    """Cancel every unfinished child: queued ones at once, running ones at their next check."""
    return await database.run(
        lambda session: _out(session, service.cancel_sweep(session, sweep_id, principal))
    )
