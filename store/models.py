"""SQLAlchemy 2.0 tables: runs (experiments, probes and batched groups), their tags, metric
points and artifacts, and sweeps."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive ones otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


# A run's spec and result: JSONB on PostgreSQL, so the listing filter (store/query.py)
# reads values out of them without reparsing text; JSON text on SQLite (JSON1).
RunDocument = JSON().with_variant(JSONB(), "postgresql")

TERMINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.cancelled})

# Stored as plain strings (no database enum type), so adding a status is a code change only.
_status_type = Enum(RunStatus, native_enum=False, length=16, validate_strings=True)


# The built-in user and project that own everything on a server without authentication
# (the embedded default on loopback), and every row written before projects existed.
LOCAL_USER_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")
LOCAL_PROJECT_ID = uuid.UUID("00000000-0000-0000-0000-000000000001")


class RunType(enum.StrEnum):
    """What a row runs: an experiment trains a model; a probe measures a finished one; a
    group trains several experiments of a sweep as one batched ensemble (its members
    name it in `group_id`)."""

    experiment = "experiment"
    probe = "probe"
    group = "group"


_run_type_type = Enum(RunType, native_enum=False, length=16, validate_strings=True)


class Run(Base):
    """One submitted run and its whole lifecycle: an experiment, or a probe of one.

    Probes share the table so that they go through the same queue, worker, state
    machine, reaper and cancellation as experiments; `run_type` tells them apart and a
    probe's `target_id` names the experiment it measures. A batched group shares it too,
    so that it is claimed, heartbeaten, reaped and requeued as one unit with the same
    fencing as a single run; its members point at it with `group_id`.
    """

    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    run_type: Mapped[RunType] = mapped_column(
        _run_type_type, default=RunType.experiment, server_default="experiment", index=True
    )
    target_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(64), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(RunDocument)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[RunStatus] = mapped_column(_status_type, default=RunStatus.queued, index=True)
    queue: Mapped[str] = mapped_column(String(32), default="cpu")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str | None] = mapped_column(String(200))
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(RunDocument)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The sweep that created this experiment and its cell there (axis path → value, "seed").
    sweep_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), index=True
    )
    sweep_cell: Mapped[dict[str, Any] | None]
    # The group that runs this experiment, and whether it trained batched with others
    # (null until it ran): a group of one shape-mismatched member trains alone.
    group_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), index=True
    )
    batched: Mapped[bool | None]
    # Who may see and act on the run (its project's members), and who submitted it.
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id"), default=LOCAL_PROJECT_ID, index=True
    )
    submitted_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), default=LOCAL_USER_ID)
    # A probe of shadow models (lira, counterfactual): the sweep that trains them. The
    # probe stays queued, unpublished, until every child of that sweep has ended.
    after_sweep_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL"), index=True
    )
    # How the dispatcher orders and routes it (worker/fair_dispatch.py): higher priority
    # first; handed only to a node with `gpus` devices of at least `gpu_memory_gib` each,
    # through that node's own queue (`dispatched_to`, null for the shared queue).
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gpu_memory_gib: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    dispatched_to: Mapped[str | None] = mapped_column(String(200))

    tags: Mapped[list[RunTag]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="RunTag.tag",
    )

    @property
    def tag_names(self) -> list[str]:
        return [t.tag for t in self.tags]


class RunTag(Base):
    """A free-form label; a table of its own so filtering by tag is an indexed join."""

    __tablename__ = "run_tags"

    run_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    run: Mapped[Run] = relationship(back_populates="tags", lazy="raise")


class MetricPoint(Base):
    """One scalar of one series (`key`) of a run at one training step."""

    __tablename__ = "metric_points"
    __table_args__ = (
        UniqueConstraint("run_id", "key", "step", name="uq_metric_points_series_step"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)  # NULL for a NaN or infinite value


class Artifact(Base):
    """A file a run produced (checkpoint shard, table, plot), stored under the artifact root."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "path", name="uq_artifacts_run_path"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "checkpoint" or "artifact"
    step: Mapped[int | None]
    path: Mapped[str] = mapped_column(String(500))  # relative to the artifact root
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """A client's Idempotency-Key and the experiment its first request created."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    experiment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sweep(Base):
    """A study: a base spec, axes and seeds, whose children are ordinary experiments.

    `request` keeps the sweep as it was accepted (base, axes, seeds, method, …); the
    children and their cells are rows of `sweep_runs`.
    """

    __tablename__ = "sweeps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    request: Mapped[dict[str, Any]]
    n_runs: Mapped[int] = mapped_column(Integer)
    n_groups: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id"), default=LOCAL_PROJECT_ID, index=True
    )
    submitted_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), default=LOCAL_USER_ID)


class SweepRun(Base):
    """One child of a sweep, at its cell. A child reused from an earlier run (`?reuse=true`)
    belongs to this sweep here while its own `sweep_id` names the sweep that made it."""

    __tablename__ = "sweep_runs"

    sweep_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True
    )
    # The cell's order in the expansion. Two cells may hold one run: a random search can
    # draw a cell twice, and with reuse both get the same succeeded run.
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    cell: Mapped[dict[str, Any]]


class SweepIdempotencyKey(Base):
    """A client's Idempotency-Key on POST /v1/sweeps and the sweep its first request made."""

    __tablename__ = "sweep_idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    sweep_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Role(enum.StrEnum):
    """What a project member may do, each role all that the one before may:
    viewer reads; member also submits and cancels its own runs; maintainer also cancels
    anyone's runs and manages the members."""

    viewer = "viewer"
    member = "member"
    maintainer = "maintainer"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


_role_type = Enum(Role, native_enum=False, length=16, validate_strings=True)


class User(Base):
    """Someone who holds API keys; an admin manages users and reads the audit log."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A user's key, kept only as the SHA-256 of the whole key: `prefix` (public, shown
    in listings) finds the row, and the digests are compared in constant time."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # A dashboard session is a short-lived key of its own, issued in exchange for the key
    # its user logged in with (`session_of`): revoking that key revokes its sessions.
    session_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), index=True
    )


class Project(Base):
    """What runs and sweeps belong to; a user's personal project has `personal_of` set."""

    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    personal_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectMember(Base):
    """A user's role in a project."""

    __tablename__ = "project_members"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[Role] = mapped_column(_role_type)


Index("ix_runs_created_at_id", Run.created_at, Run.id)


class AuditEvent(Base):
    """One thing a user did that a lab may need to account for later: a submission, a
    cancellation, a key created or revoked, a role changed (see store/audit.py).

    `actor_name` is kept beside the id so the log still reads after a user is renamed.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40), index=True)
    project_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), index=True
    )
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Worker(Base):
    """A Celery worker node (`memlab worker`): what it consumes and offers, and whether it
    is alive. Its pool processes run experiments under the names `<name>:<8 hex>`
    (`Run.worker`), which is how its busy slots are found.

    devices: [{"name": "NVIDIA H100", "memory_gib": 80.0, "index": 0}, ...], detected or
    declared with `memlab worker --devices`.
    """

    __tablename__ = "workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    concurrency: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None]
    # Set by `memlab worker --drain` or the API: the node finishes its runs and exits.
    drain_requested_at: Mapped[datetime | None]
