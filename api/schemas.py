"""Request and response bodies. The spec field is a discriminated union built from the registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from core.catalog import all_kinds, all_probes
from core.claims import Claim, VerdictName
from core.spec_model import field_error
from core.sweeps import AxisRange, AxisVariants
from store.models import Run, RunStatus, Sweep
from store.sweeps import SweepProgress


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


class ResourceRequest(BaseModel):
    """What a run needs of the worker node that trains it. It decides where the run goes,
    never what it computes: it is not part of the spec or of its hash."""

    model_config = ConfigDict(extra="forbid", strict=True)  # no "1" or true for 1

    gpus: int = Field(
        0, ge=0, le=16, description="GPUs on one node; the run waits for a node that has them."
    )
    gpu_memory_gib: float = Field(
        0.0, ge=0, le=4096, description="Memory each of those GPUs has, at least (GiB)."
    )

    @model_validator(mode="after")
    def _memory_of_a_gpu(self) -> ResourceRequest:
        if self.gpu_memory_gib and not self.gpus:
            raise ValueError(
                "gpu_memory_gib is the memory of each GPU asked for: set gpus to 1 or more"
            )
        return self


PRIORITY_FIELD = Field(
    0,
    strict=True,
    ge=-10,
    le=10,
    description="Higher runs are handed to workers first (fair share applies within a "
    "priority). Above 0 only an admin may give; anyone may go below.",
)


class ExperimentCreate(BaseModel):
    """POST /v1/experiments body."""

    model_config = ConfigDict(extra="forbid")

    spec: ExperimentSpecUnion  # type: ignore[valid-type]
    name: str | None = Field(None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    project_id: uuid.UUID | None = Field(
        None, description="The project it belongs to; default: your personal project."
    )
    priority: int = PRIORITY_FIELD
    resources: ResourceRequest = Field(default_factory=ResourceRequest)


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
    sweep_id: uuid.UUID | None = Field(None, description="The sweep that created this run.")
    sweep_cell: dict[str, Any] | None = Field(
        None, description='Its cell in that sweep: axis path → value, and "seed".'
    )
    group_id: uuid.UUID | None = Field(
        None, description="The batched group that trains it with other runs of its sweep."
    )
    batched: bool | None = Field(
        None, description="Whether it trained batched with others; null until it has run."
    )

    project_id: uuid.UUID = Field(description="The project the run belongs to.")
    priority: int
    resources: ResourceRequest
    dispatched_to: str | None = Field(
        None,
        description="The worker node the run was handed to, through that node's own queue "
        "(a probe an experiment listed: the worker process that runs it next).",
    )

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
            sweep_id=experiment.sweep_id,
            project_id=experiment.project_id,
            sweep_cell=experiment.sweep_cell,
            group_id=experiment.group_id,
            batched=experiment.batched,
            priority=experiment.priority,
            resources=ResourceRequest(
                gpus=experiment.gpus, gpu_memory_gib=experiment.gpu_memory_gib
            ),
            dispatched_to=experiment.dispatched_to,
        )


class ExperimentList(BaseModel):
    items: list[ExperimentOut]
    total: int
    limit: int
    offset: int


class ProjectFacet(BaseModel):
    id: uuid.UUID
    name: str
    count: int


class FacetsOut(BaseModel):
    """How many runs each value of a facet holds, under the listing's other filters."""

    total: int = Field(description="Runs under every filter.")
    status: dict[str, int]
    kind: dict[str, int]
    tag: dict[str, int] = Field(description="The 50 most common tags.")
    project: list[ProjectFacet]


class SeriesOut(BaseModel):
    steps: list[int]
    values: list[float | None]  # null where the run logged NaN or infinity
    total_points: int


class MetricsOut(BaseModel):
    experiment_id: uuid.UUID
    series: dict[str, SeriesOut]


class CompareOut(BaseModel):
    """Several runs' metric series on one step axis."""

    steps: list[int] = Field(description="Every step any of the series has, ascending.")
    series: dict[str, dict[str, list[float | None]]] = Field(
        description="run id → metric key → its values at `steps` (null where that run did "
        "not log the key at that step, or logged NaN or infinity)."
    )


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
    shadow_sweep_id: uuid.UUID | None = Field(
        None,
        description="The sweep training the shadow models this probe reads (lira, "
        "counterfactual); the probe runs once every child of it has ended.",
    )

    project_id: uuid.UUID = Field(description="The project: that of the probed experiment.")

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
            shadow_sweep_id=probe.after_sweep_id,
            project_id=probe.project_id,
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


MAX_SEEDS = 10_000
MAX_SEED = 2**31 - 1


class SweepCreate(BaseModel):
    """POST /v1/sweeps body: a base spec, axes and seeds; every cell runs once per seed."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(
        description='An experiment spec, as POST /v1/experiments takes it (with its "kind"); '
        "each child is the base with its cell's values laid over it."
    )
    axes: dict[str, Annotated[list[Any], Field(max_length=1000)] | AxisRange | AxisVariants] = (
        Field(
            default_factory=dict,
            max_length=16,
            description='Dotted spec paths and their values, e.g. {"model.n_embd": [14, 28]}; '
            'random search also takes a range {"min", "max", "scale": "linear"|"log"}. A '
            'label with named variants, {"corpus": {"variants": {"fact sheets": '
            '{"fact_sheets_only": true}, …}}}, sets several fields per value.',
        )
    )
    seeds: int | list[int] = Field(
        1,
        description="How many seeds (1 to 10,000: seeds 0, 1, …), or which (distinct, each "
        "0 to 2³¹−1), for every cell.",
    )
    method: Literal["grid", "random"] = "grid"
    samples: int | None = Field(
        None, ge=1, le=100_000, description="Cells drawn by random search (method random)."
    )
    sampler_seed: int = Field(0, ge=0, le=MAX_SEED, description="Seeds the random search.")
    batch: bool = Field(
        True,
        description="Train children that differ only in seed and learning rate as batched "
        "ensembles; false runs one child per task.",
    )
    name: str | None = Field(None, max_length=200)
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    project_id: uuid.UUID | None = Field(
        None, description="The project the sweep belongs to; default: your personal project."
    )
    priority: int = PRIORITY_FIELD
    resources: ResourceRequest = Field(
        default_factory=ResourceRequest, description="What each child needs of its node."
    )
    claims: list[Claim] = Field(
        default_factory=list,
        max_length=32,
        description="What the sweep sets out to show, each checked against the seeds' 95% "
        'intervals in its table: {"test": "greater", "statement": …, "value": "final.facts", '
        '"cell": {"model.n_embd": 56}, "than": {"cell": {"model.n_embd": 14}}}, or '
        '{"test": "within", …, "of": 0.25, "tolerance": 0.1}.',
    )

    @field_validator("seeds")
    @classmethod
    def _seeds_in_range(cls, seeds: int | list[int]) -> int | list[int]:
        # Checked here rather than by constrained types, so an error is located at
        # `seeds`, not at a member of the union.
        if isinstance(seeds, int):
            if not 1 <= seeds <= MAX_SEEDS:
                raise ValueError(f"a count of seeds is 1 to {MAX_SEEDS:,}")
            return seeds
        if not 1 <= len(seeds) <= MAX_SEEDS:
            raise ValueError(f"give at least 1 and at most {MAX_SEEDS:,} seeds")
        if any(not 0 <= seed <= MAX_SEED for seed in seeds):
            raise ValueError(f"a seed is 0 to {MAX_SEED:,}")
        if len(set(seeds)) < len(seeds):
            raise ValueError("seeds are the replicates of each cell: give each seed once")
        return seeds

    @field_validator("axes", mode="before")
    @classmethod
    def _read_ranges(cls, axes: Any) -> Any:
        """Each object value as variants or an AxisRange, an error located at its axis
        (left to the union, it would be reported once per member of it)."""
        if not isinstance(axes, dict):
            return axes
        read = dict(axes)
        for path, values in axes.items():
            if not isinstance(values, dict):
                continue
            model, what = (
                (AxisVariants, "variants {name: partial spec}")
                if "variants" in values
                else (AxisRange, "a range {min, max, scale}")
            )
            try:
                read[path] = model.model_validate(values)
            except ValidationError as error:
                reason = "; ".join(e["msg"] for e in error.errors())
                raise field_error(path, f"{what}: {reason}") from error
        return read

    @field_validator("axes")
    @classmethod
    def _separate_axes(cls, axes: dict[str, Any]) -> dict[str, Any]:
        for path in axes:
            for other in axes:
                if other.startswith(f"{path}."):
                    raise ValueError(
                        f"axis {path!r} holds axis {other!r}: the two would set one field; "
                        "sweep the inner field alone or put it in each value of the outer"
                    )
        return axes

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class SweepOut(BaseModel):
    id: uuid.UUID
    kind: str
    name: str | None
    tags: list[str]
    method: str
    base: dict[str, Any]
    axes: dict[str, Any]
    seeds: list[int]
    samples: int | None
    sampler_seed: int
    batch: bool
    claims: list[dict[str, Any]] = Field(description="The claims it was submitted with.")
    n_runs: int
    n_groups: int = Field(description="Batched groups its children were placed in.")
    status: RunStatus = Field(
        description="queued or running until every child (and every probe its spec lists) "
        "has ended; then succeeded if all children did, failed if any failed, else cancelled."
    )
    counts: dict[str, int] = Field(description="Children per status.")
    probe_counts: dict[str, int] = Field(
        description="The children's probes per status. The sweep stays running until the "
        "probes its children's specs list have ended too: the table reads their results."
    )
    progress: float
    cancel_requested: bool
    created_at: datetime
    finished_at: datetime | None

    project_id: uuid.UUID = Field(description="The project the sweep and its children belong to.")

    @classmethod
    def of(cls, sweep: Sweep, progress: SweepProgress) -> SweepOut:
        request = sweep.request
        return cls(
            id=sweep.id,
            project_id=sweep.project_id,
            kind=sweep.kind,
            name=sweep.name,
            tags=list(sweep.tags),
            method=request["method"],
            base=request["base"],
            axes=request["axes"],
            seeds=request["seeds"],
            samples=request.get("samples"),
            sampler_seed=request.get("sampler_seed", 0),
            batch=request.get("batch", True),
            claims=request.get("claims", []),
            n_runs=sweep.n_runs,
            n_groups=sweep.n_groups,
            status=progress.status,
            counts=progress.counts,
            probe_counts=progress.probe_counts,
            progress=round(progress.progress, 4),
            cancel_requested=sweep.cancel_requested,
            created_at=sweep.created_at,
            finished_at=progress.finished_at,
        )


class SweepList(BaseModel):
    items: list[SweepOut]
    total: int
    limit: int
    offset: int


class SummaryOut(BaseModel):
    """A value over a cell's succeeded seeds: std and interval are null below two."""

    n: int
    mean: float
    std: float | None
    ci95_low: float | None = Field(description="95% Student-t interval of the mean.")
    ci95_high: float | None


class CellOut(BaseModel):
    cell: dict[str, Any] = Field(description="The cell's coordinates: axis path → value.")
    counts: dict[str, int] = Field(description="Its children per status.")
    values: dict[str, SummaryOut] = Field(
        description="Each numeric result (`final.facts`) and probe result "
        "(`probe.loss_mia.attack.auc`), summarized over the cell's succeeded children."
    )


class VerdictOut(BaseModel):
    """One claim held against the seeds (see `core.claims`)."""

    statement: str
    test: str
    verdict: VerdictName = Field(
        description="shown, not shown (inside the noise), reversed, too few seeds, or no data."
    )
    n: int = Field(description="Seeds the interval is over.")
    mean: float | None = Field(description="Mean paired difference (greater) or value (within).")
    ci95_low: float | None
    ci95_high: float | None
    reason: str


class SweepTableOut(BaseModel):
    sweep_id: uuid.UUID
    axes: list[str]
    rows: list[CellOut]
    claims: list[VerdictOut] = Field(
        description="The sweep's claims, each with its verdict over the succeeded seeds so far."
    )
