"""Request and response bodies. The spec field is a discriminated union built from the registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.catalog import all_kinds, all_probes
from store.models import Run, RunStatus


def build_spec_union() -> Any:
    """`Annotated[Union[SpecA, SpecB, ...], discriminator="kind"]` over every registered kind."""
    classes = tuple(kind.spec_class for kind in all_kinds().values())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


def build_probe_spec_union() -> Any:
    """The same over every registered probe kind."""
    classes = tuple(probe.spec_class for probe in all_probes().values())
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


ExperimentSpecUnion = build_spec_union()
ProbeSpecUnion = build_probe_spec_union()
KIND_NAMES = frozenset(all_kinds()) | frozenset(all_probes())

Tag = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/@+-]+$")
]


class ExperimentCreate(BaseModel):
    """POST /v1/experiments body."""

    model_config = ConfigDict(extra="forbid")

    spec: ExperimentSpecUnion  # type: ignore[valid-type]
    name: str | None = Field(None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=32)


class ExperimentOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str | None
    tags: list[str]
    status: RunStatus
    queue: str
    attempts: int
    cancel_requested: bool
    progress: float
    progress_message: str | None
    spec: dict[str, Any]
    spec_hash: str
    result: dict[str, Any] | None
    error: str | None
    worker: str | None
    created_at: datetime
    enqueued_at: datetime | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, experiment: Run) -> ExperimentOut:
        return cls(
            id=experiment.id,
            kind=experiment.kind,
            name=experiment.name,
            tags=experiment.tag_names,
            status=experiment.status,
            queue=experiment.queue,
            attempts=experiment.attempts,
            cancel_requested=experiment.cancel_requested,
            progress=experiment.progress,
            progress_message=experiment.progress_message,
            spec=experiment.spec,
            spec_hash=experiment.spec_hash,
            result=experiment.result,
            error=experiment.error,
            worker=experiment.worker,
            created_at=experiment.created_at,
            enqueued_at=experiment.enqueued_at,
            started_at=experiment.started_at,
            heartbeat_at=experiment.heartbeat_at,
            finished_at=experiment.finished_at,
        )


class ExperimentList(BaseModel):
    items: list[ExperimentOut]
    total: int
    limit: int
    offset: int


class SeriesOut(BaseModel):
    steps: list[int]
    values: list[float | None]  # null where the run logged NaN or infinity
    total_points: int


class MetricsOut(BaseModel):
    experiment_id: uuid.UUID
    series: dict[str, SeriesOut]


class ArtifactOut(BaseModel):
    kind: str
    step: int | None
    path: str
    size_bytes: int
    sha256: str
    created_at: datetime


class KindOut(BaseModel):
    name: str
    description: str
    json_schema: dict[str, Any]
    default_spec: dict[str, Any]


class ProbeCreate(BaseModel):
    """POST /v1/probes body: which finished experiment to probe, and how."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: uuid.UUID
    spec: ProbeSpecUnion  # type: ignore[valid-type]
    name: str | None = Field(None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=32)


class ProbeOut(BaseModel):
    id: uuid.UUID
    experiment_id: uuid.UUID
    kind: str
    name: str | None
    tags: list[str]
    status: RunStatus
    attempts: int
    progress: float
    progress_message: str | None
    spec: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, probe: Run) -> ProbeOut:
        assert probe.target_id is not None
        return cls(
            id=probe.id,
            experiment_id=probe.target_id,
            kind=probe.kind,
            name=probe.name,
            tags=probe.tag_names,
            status=probe.status,
            attempts=probe.attempts,
            progress=probe.progress,
            progress_message=probe.progress_message,
            spec=probe.spec,
            result=probe.result,
            error=probe.error,
            created_at=probe.created_at,
            started_at=probe.started_at,
            finished_at=probe.finished_at,
        )


class ProbeList(BaseModel):
    items: list[ProbeOut]
    total: int
    limit: int
    offset: int


class ProbeKindOut(BaseModel):
    name: str
    description: str
    needs: list[str]
    json_schema: dict[str, Any]
    default_spec: dict[str, Any] | None  # null when a field must be given (e.g. a reference)
