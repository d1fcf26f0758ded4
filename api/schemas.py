"""Request and response bodies. The spec field is a discriminated union built from the registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.registry import all_kinds
from store.models import Experiment, RunStatus


def build_spec_union() -> Any:
    """`Annotated[Union[SpecA, SpecB, ...], discriminator="kind"]` over every registered kind."""
    classes = tuple(kind.spec_class for kind in all_kinds().values())
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="kind")]  # noqa: UP007


ExperimentSpecUnion = build_spec_union()
KIND_NAMES = frozenset(all_kinds())

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
    def of(cls, experiment: Experiment) -> ExperimentOut:
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
