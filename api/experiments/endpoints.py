"""HTTP endpoints under /v1/experiments. Each does its database work in one `Database.run`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import PrincipalDep
from api.deps import DatabaseDep, SettingsDep, WakeDispatcherDep
from api.errors import ErrorOut, NotFoundError, ValidationFailedError
from api.experiments import export, service
from api.experiments.artifacts import artifact_file
from api.experiments.compare import align_by_step
from api.openapi import EVENT_STREAM, FILE_CONTENT, FILE_TYPES, FORBIDDEN, SUBMISSION, attachment
from api.runs.events import event_stream
from api.runs.service import ListingDep, cancel_run, get_run_or_404, list_runs, run_facets
from api.schemas import (
    ArtifactOut,
    CompareOut,
    ExperimentCreate,
    ExperimentList,
    ExperimentOut,
    FacetsOut,
    MetricsOut,
    ProjectFacet,
    SeriesOut,
)
from store import repository
from store.models import Project, RunType

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExperimentOut,
    responses={
        201: {"headers": SUBMISSION},
        200: {
            "model": ExperimentOut,
            "description": "reuse=true found a finished run",
            "headers": SUBMISSION,
        },
        **FORBIDDEN,
    },
)
async def create_experiment(
    body: ExperimentCreate,
    request: Request,
    response: Response,
    database: DatabaseDep,
    wake_dispatcher: WakeDispatcherDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1, max_length=200, description="Retries with this key return the same run."
        ),
    ] = None,
    reuse: Annotated[
        bool, Query(description="Return a succeeded run with the same spec hash, if any.")
    ] = False,
) -> ExperimentOut:
    """Submit an experiment: it is stored as `queued`, then handed to a worker.

    The `Memlab-Submission` header says what happened: `created`, `reused` (200, an
    earlier succeeded run) or `replayed` (a retry with a known Idempotency-Key).
    """

    def submit(session: Session) -> tuple[ExperimentOut, service.Submission]:
        submitted = service.submit_experiment(
            session,
            settings,
            spec=body.spec,
            name=body.name,
            tags=body.tags,
            idempotency_key=idempotency_key,
            reuse=reuse,
            principal=principal,
            project_id=body.project_id,
            priority=body.priority,
            resources=body.resources,
        )
        return ExperimentOut.of(submitted.experiment), submitted.outcome

    experiment, outcome = await database.run(submit)
    wake_dispatcher()
    if outcome is service.Submission.reused:
        response.status_code = status.HTTP_200_OK
    response.headers["Memlab-Submission"] = outcome.value
    response.headers["Location"] = str(
        request.url_for("get_experiment", experiment_id=experiment.id)
    )
    return experiment


@router.get(
    "",
    response_model=ExperimentList,
    responses=FILE_CONTENT,
)
async def list_experiments(
    request: Request,
    database: DatabaseDep,
    listing: ListingDep,
    principal: PrincipalDep,
    export_format: Annotated[
        Literal["json", "csv", "parquet"],
        Query(
            alias="format",
            description="json (default): one page. csv or parquet: every matching run "
            "(limit and offset aside), streamed, a column per run field and per scalar of "
            "its spec and result (`spec.model.n_embd`, `result.final.facts`).",
        ),
    ] = "json",
) -> Any:
    """Experiments newest first, filtered by kind, status, tag and a `where` filter, or in
    the order `sort` gives."""
    if export_format != "json":
        sessions = request.app.state.sessions

        def pages() -> Iterator[export.Page]:
            return export.export_rows(sessions, listing, principal)

        stream = (
            export.csv_stream(pages) if export_format == "csv" else export.parquet_stream(pages)
        )
        return StreamingResponse(
            stream,
            media_type=FILE_TYPES[export_format],
            headers=attachment(f"experiments.{export_format}"),
        )

    def page(session: Session) -> ExperimentList:
        found = list_runs(session, RunType.experiment, listing, principal)
        items = [ExperimentOut.of(e) for e in found.items]
        return ExperimentList(
            items=items, total=found.total, limit=listing.limit, offset=listing.offset
        )

    return await database.run(page)


@router.get("/facets", response_model=FacetsOut)
async def experiment_facets(
    database: DatabaseDep, listing: ListingDep, principal: PrincipalDep
) -> FacetsOut:
    """Counts by status, kind, tag and project of the experiments the same filters as the
    listing keep; each facet ignores its own filter, so it shows what picking another
    value would give (limit, offset and sort aside)."""

    def count(session: Session) -> FacetsOut:
        facets = run_facets(session, RunType.experiment, listing, principal)
        total = list_runs(session, RunType.experiment, replace(listing, limit=1), principal).total
        names = dict(
            session.execute(
                select(Project.id, Project.name).where(
                    Project.id.in_([uuid.UUID(p) for p in facets["project"]])
                )
            )
            .tuples()
            .all()
        )
        return FacetsOut(
            total=total,
            status=facets["status"],
            kind=facets["kind"],
            tag=facets["tag"],
            project=[
                ProjectFacet(id=uuid.UUID(p), name=names.get(uuid.UUID(p), p), count=n)
                for p, n in facets["project"].items()
            ],
        )

    return await database.run(count)


MAX_COMPARED = 50


@router.get("/compare", response_model=CompareOut, responses={404: {"model": ErrorOut}})
async def compare_experiments(
    database: DatabaseDep,
    principal: PrincipalDep,
    ids: Annotated[str, Query(description="Comma-separated experiment ids (at most 50).")],
    keys: Annotated[
        str | None, Query(description="Comma-separated metric keys; all if absent.")
    ] = None,
    max_points: Annotated[
        int | None, Query(ge=1, le=100_000, description="Downsample each run's series.")
    ] = None,
) -> CompareOut:
    """The metric series of several experiments, aligned by step: for curves overlaid."""
    try:
        wanted_ids = list(dict.fromkeys(uuid.UUID(part) for part in ids.split(",") if part))
    except ValueError as error:
        raise ValidationFailedError(
            "ids: each must be an experiment id (a UUID)",
            [{"path": "ids", "message": str(error), "type": "uuid_parsing"}],
        ) from error
    if not 1 <= len(wanted_ids) <= MAX_COMPARED:
        message = f"give 1 to {MAX_COMPARED} experiment ids, not {len(wanted_ids)}"
        raise ValidationFailedError(
            f"ids: {message}", [{"path": "ids", "message": message, "type": "value_error"}]
        )
    wanted_keys = [k for k in keys.split(",") if k] if keys else None

    def aligned(session: Session) -> CompareOut:
        by_run = {}
        for experiment_id in wanted_ids:
            get_run_or_404(session, experiment_id, RunType.experiment, principal)
            by_run[str(experiment_id)] = repository.metric_series(
                session, experiment_id, wanted_keys, max_points
            )
        steps, series = align_by_step(by_run)
        return CompareOut(steps=steps, series=series)

    return await database.run(aligned)


@router.get("/{experiment_id}", response_model=ExperimentOut)
async def get_experiment(
    experiment_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> ExperimentOut:
    """One experiment: status, progress, spec and result (404 for a probe's id)."""
    return await database.run(
        lambda session: ExperimentOut.of(
            get_run_or_404(session, experiment_id, RunType.experiment, principal)
        )
    )


@router.get("/{experiment_id}/metrics", response_model=MetricsOut)
async def get_metrics(
    experiment_id: uuid.UUID,
    database: DatabaseDep,
    principal: PrincipalDep,
    keys: Annotated[
        str | None, Query(description="Comma-separated metric keys; all if absent.")
    ] = None,
    max_points: Annotated[
        int | None, Query(ge=1, le=100_000, description="Downsample each series.")
    ] = None,
) -> MetricsOut:
    """Every metric series of the experiment, each as parallel `steps` and `values` lists."""
    wanted = [k for k in keys.split(",") if k] if keys else None

    def series(session: Session) -> MetricsOut:
        get_run_or_404(session, experiment_id, RunType.experiment, principal)
        found = repository.metric_series(session, experiment_id, wanted, max_points)
        return MetricsOut(
            experiment_id=experiment_id,
            series={
                key: SeriesOut(steps=s.steps, values=s.values, total_points=s.total_points)
                for key, s in found.items()
            },
        )

    return await database.run(series)


@router.get("/{experiment_id}/artifacts", response_model=list[ArtifactOut])
async def get_artifacts(
    experiment_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> list[ArtifactOut]:
    """Checkpoints and other files the run stored, with sizes and SHA-256."""

    def artifacts(session: Session) -> list[ArtifactOut]:
        get_run_or_404(session, experiment_id, RunType.experiment, principal)
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

    return await database.run(artifacts)


@router.get(
    "/{experiment_id}/artifacts/{path:path}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The file."}},
)
async def download_artifact(
    experiment_id: uuid.UUID,
    path: str,
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> FileResponse:
    """One of the run's stored files (a `path` its artifact listing gives)."""

    def find(session: Session) -> Path:
        get_run_or_404(session, experiment_id, RunType.experiment, principal)
        if not any(a.path == path for a in repository.list_artifacts(session, experiment_id)):
            raise NotFoundError(f"the run has no artifact {path!r}")
        return artifact_file(settings.resolved_artifact_dir, path)

    file = await database.run(find)
    return FileResponse(file, filename=file.name, media_type="application/octet-stream")


@router.get(
    "/{experiment_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": EVENT_STREAM, "description": "The event stream."}},
)
async def stream_events(
    experiment_id: uuid.UUID,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    """Server-sent events: `status`, `progress`, and a final `end` when the run is over."""
    return await event_stream(
        request, database, settings, experiment_id, RunType.experiment, principal
    )


@router.post(
    "/{experiment_id}/cancel",
    response_model=ExperimentOut,
    responses={409: {"description": "The run has already ended."}, **FORBIDDEN},
)
async def cancel_experiment(
    experiment_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> ExperimentOut:
    """Cancel: a queued run ends at once; a running one stops at its next check (409 if over)."""
    return await database.run(
        lambda session: ExperimentOut.of(
            cancel_run(session, experiment_id, RunType.experiment, principal)
        )
    )
