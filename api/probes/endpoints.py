"""HTTP endpoints under /v1/probes and /v1/probe-kinds."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from api.auth import PrincipalDep
from api.deps import DatabaseDep, SettingsDep, WakeDispatcherDep
from api.errors import NotFoundError
from api.openapi import EVENT_STREAM, FORBIDDEN, LOCATION
from api.probes import service
from api.runs.events import event_stream
from api.runs.service import ListingDep, cancel_run, get_run_or_404, list_runs
from api.schemas import ProbeCreate, ProbeKindOut, ProbeList, ProbeOut
from core.catalog import all_probes
from core.probes.registry import ProbeKind
from store.models import RunType

router = APIRouter(prefix="/v1/probes", tags=["probes"])
kinds_router = APIRouter(prefix="/v1/probe-kinds", tags=["probes"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProbeOut,
    responses={
        201: {"headers": LOCATION},
        409: {"description": "The experiment (or a reference) has not succeeded."},
        **FORBIDDEN,
    },
)
async def create_probe(
    body: ProbeCreate,
    request: Request,
    response: Response,
    database: DatabaseDep,
    wake_dispatcher: WakeDispatcherDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> ProbeOut:
    """Probe a succeeded experiment: stored as `queued`, run by a worker like an experiment.

    A probe that reads shadow models (lira, counterfactual) first submits the sweep that
    trains them (`shadow_sweep_id`; reused by later probes on the same pool) and runs
    once that sweep has ended. 422 when the probe cannot apply to that experiment (the
    message says why), 409 when the experiment has not succeeded.
    """

    def submit(session: Session) -> ProbeOut:
        probe = service.submit_probe(
            session,
            settings,
            principal,
            experiment_id=body.experiment_id,
            spec=body.spec,
            name=body.name,
            tags=body.tags,
        )
        return ProbeOut.of(probe)

    probe = await database.run(submit)
    wake_dispatcher()
    response.headers["Location"] = str(request.url_for("get_probe", probe_id=probe.id))
    return probe


@router.get("", response_model=ProbeList)
async def list_probes(
    database: DatabaseDep,
    listing: ListingDep,
    principal: PrincipalDep,
    experiment_id: uuid.UUID | None = None,
) -> ProbeList:
    """Probes newest first, filtered by the experiment probed, kind, status and tag."""

    def page(session: Session) -> ProbeList:
        found = list_runs(session, RunType.probe, listing, principal, target_id=experiment_id)
        items = [ProbeOut.of(p) for p in found.items]
        return ProbeList(items=items, total=found.total, limit=listing.limit, offset=listing.offset)

    return await database.run(page)


@router.get("/{probe_id}", response_model=ProbeOut)
async def get_probe(
    probe_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> ProbeOut:
    """One probe: status, progress, spec and result (404 for an experiment's id)."""
    return await database.run(
        lambda session: ProbeOut.of(get_run_or_404(session, probe_id, RunType.probe, principal))
    )


@router.get(
    "/{probe_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": EVENT_STREAM, "description": "The event stream."}},
)
async def stream_probe_events(
    probe_id: uuid.UUID,
    request: Request,
    database: DatabaseDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    """Server-sent events: `status`, `progress`, and a final `end` when the probe is over."""
    return await event_stream(request, database, settings, probe_id, RunType.probe, principal)


@router.post(
    "/{probe_id}/cancel",
    response_model=ProbeOut,
    responses={409: {"description": "The probe has already ended."}, **FORBIDDEN},
)
async def cancel_probe(
    probe_id: uuid.UUID, database: DatabaseDep, principal: PrincipalDep
) -> ProbeOut:
    """Cancel a probe (409 if it has ended)."""
    return await database.run(
        lambda session: ProbeOut.of(cancel_run(session, probe_id, RunType.probe, principal))
    )


def _describe(probe: ProbeKind[Any]) -> ProbeKindOut:
    required = any(field.is_required() for field in probe.spec_class.model_fields.values())
    return ProbeKindOut(
        name=probe.name,
        description=probe.description,
        needs=sorted(probe.spec_class.needs),
        json_schema=probe.spec_class.model_json_schema(),
        default_spec=None if required else probe.default_spec().model_dump(mode="json"),
    )


@kinds_router.get("", response_model=list[ProbeKindOut])
def list_probe_kinds() -> list[ProbeKindOut]:
    """Every probe kind, with what it needs of an experiment and its JSON schema."""
    return [_describe(probe) for probe in all_probes().values()]


@kinds_router.get("/{name}", response_model=ProbeKindOut)
def get_probe_kind(name: str) -> ProbeKindOut:
    probes = all_probes()
    if name not in probes:
        raise NotFoundError(f"unknown probe kind {name!r}; known: {', '.join(probes)}")
    return _describe(probes[name])
