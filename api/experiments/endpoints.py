"""HTTP endpoints under /v1/experiments."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import DispatcherDep, SessionDep, SettingsDep
from api.experiments import service
from api.experiments.events import experiment_events
from api.schemas import (
    ArtifactOut,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    MetricsOut,
    SeriesOut,
)
from store import repository
from store.models import RunStatus

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExperimentOut)
def create_experiment(
    body: ExperimentCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> ExperimentOut:
    """Submit an experiment: it is stored as `queued`, then handed to a worker."""
    experiment = service.submit_experiment(
        session, dispatcher, spec=body.spec, name=body.name, tags=body.tags
    )
    response.headers["Location"] = str(
        request.url_for("get_experiment", experiment_id=experiment.id)
    )
    return ExperimentOut.of(experiment)


@router.get("", response_model=ExperimentList)
def list_experiments(
    session: SessionDep,
    kind: str | None = None,
    status: RunStatus | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ExperimentList:
    """Experiments newest first, filtered by kind, status and tag."""
    page = repository.list_experiments(
        session, kind=kind, status=status, tag=tag, limit=limit, offset=offset
    )
    return ExperimentList(
        items=[ExperimentOut.of(e) for e in page.items],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.get("/{experiment_id}", response_model=ExperimentOut)
def get_experiment(experiment_id: uuid.UUID, session: SessionDep) -> ExperimentOut:
    """One experiment: status, progress, spec and result."""
    return ExperimentOut.of(service.get_experiment_or_404(session, experiment_id))


@router.get("/{experiment_id}/metrics", response_model=MetricsOut)
def get_metrics(
    experiment_id: uuid.UUID,
    session: SessionDep,
    keys: Annotated[
        str | None, Query(description="Comma-separated metric keys; all if absent.")
    ] = None,
    max_points: Annotated[
        int | None, Query(ge=1, le=100_000, description="Downsample each series.")
    ] = None,
) -> MetricsOut:
    """Every metric series of the experiment, each as parallel `steps` and `values` lists."""
    service.get_experiment_or_404(session, experiment_id)
    wanted = [k for k in keys.split(",") if k] if keys else None
    series = repository.metric_series(session, experiment_id, wanted, max_points)
    return MetricsOut(
        experiment_id=experiment_id,
        series={
            key: SeriesOut(steps=s.steps, values=s.values, total_points=s.total_points)
            for key, s in series.items()
        },
    )


@router.get("/{experiment_id}/artifacts", response_model=list[ArtifactOut])
def get_artifacts(experiment_id: uuid.UUID, session: SessionDep) -> list[ArtifactOut]:
    """Checkpoints and other files the run stored, with sizes and SHA-256."""
    service.get_experiment_or_404(session, experiment_id)
    return [
        ArtifactOut(
            kind=a.kind,
            step=a.step,
            path=a.path,
            size_bytes=a.size_bytes,
            sha256=a.sha256,
            created_at=a.created_at,
        )
        for a in repository.list_artifacts(session, experiment_id)
    ]


@router.get("/{experiment_id}/events", response_class=StreamingResponse)
def stream_events(
    experiment_id: uuid.UUID, request: Request, settings: SettingsDep
) -> StreamingResponse:
    """Server-sent events: `status`, `progress`, and a final `end` when the run is over."""
    # A short session of its own: a request-scoped one would stay checked out of the pool
    # for as long as the client listens.
    with request.app.state.sessions() as session:
        service.get_experiment_or_404(session, experiment_id)
    return StreamingResponse(
        experiment_events(
            request, request.app.state.sessions, experiment_id, settings.events_poll_interval_s
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.post("/{experiment_id}/cancel", response_model=ExperimentOut)
def cancel_experiment(experiment_id: uuid.UUID, session: SessionDep) -> ExperimentOut:
    """Cancel: a queued run ends at once; a running one stops at its next check (409 if over)."""
    return ExperimentOut.of(service.cancel_experiment(session, experiment_id))
