"""Experiment use cases, independent of HTTP: each commits its own transaction."""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth import (
    LOCAL_PRINCIPAL,
    ForbiddenError,
    Principal,
    scoped_idempotency_key,
    submission_project,
)
from api.errors import ApiError
from api.runs.service import audit_run
from api.schemas import ResourceRequest
from api.server_limits import computed_limit, limit_message
from core.spec_model import spec_hash
from core.specs import ExperimentSpec, TrainedSpec
from store import repository
from store.audit import AuditAction
from store.models import Run
from store.settings import Settings


class LimitExceededError(ApiError):
    status_code = 422
    code = "limit_exceeded"


class IdempotencyConflictError(ApiError):
    status_code = 422
    code = "idempotency_key_reused"


class Submission(enum.Enum):
    created = "created"  # a new experiment, queued
    reused = "reused"  # ?reuse=true found a succeeded experiment with the same spec hash
    replayed = "replayed"  # the Idempotency-Key was seen before with the same request


@dataclass(frozen=True)
class SubmitResult:
    experiment: Run
    outcome: Submission


def queue_for(spec: ExperimentSpec, resources: ResourceRequest | None = None) -> str:
    """`gpu` for a spec that insists on CUDA or a request for GPUs; everything else can
    run on the `cpu` queue."""
    asks_for_gpus = resources is not None and resources.gpus > 0
    return "gpu" if spec.requested_device() == "cuda" or asks_for_gpus else "cpu"


def check_priority(principal: Principal, priority: int) -> None:
    """A priority above 0 puts runs ahead of everyone's, so only an admin may give one
    (as a scheduler's `nice`); anyone may lower their own runs' priority, down to -10."""
    if priority > 0 and not principal.is_admin:
        raise ForbiddenError(
            "a priority above 0 puts runs ahead of everyone's: only an admin may give one; "
            "yours may go down to -10"
        )


def check_limits(spec: ExperimentSpec, settings: Settings) -> None:
    """Refuse a spec that asks for more than this server allows, naming each limit."""
    estimate = spec.resource_estimate()
    checks = [
        ("spec.train.steps", estimate.steps, settings.max_steps, "MEMLAB_MAX_STEPS"),
        (
            "spec.train.batch_size",
            estimate.batch_size,
            settings.max_batch_size,
            "MEMLAB_MAX_BATCH_SIZE",
        ),
        ("spec.model", estimate.parameters, settings.max_parameters, "MEMLAB_MAX_PARAMETERS"),
        ("spec", estimate.dataset_items, settings.max_dataset_items, "MEMLAB_MAX_DATASET_ITEMS"),
        ("spec.max_wall_s", spec.max_wall_s or 0, settings.max_wall_s, "MEMLAB_MAX_WALL_S"),
    ]
    # A computing kind's own limits, each capped by the setting it names.
    checks += [
        (limit.path, limit.value, computed_limit(limit), limit.setting) for limit in estimate.limits
    ]
    details = [
        {
            "path": path,
            "message": limit_message(value, limit, setting) + _stages_note(spec, path, value),
            "type": "limit_exceeded",
        }
        for path, value, limit, setting in checks
        if value > limit
    ]
    if details:
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
        raise LimitExceededError(f"over this server's limits: {summary}", details)


def _stages_note(spec: ExperimentSpec, path: str, steps: float) -> str:
    """Where a run trains in stages, why its steps exceed `train.steps`."""
    if path != "spec.train.steps" or not isinstance(spec, TrainedSpec):
        return ""
    if steps == spec.train.steps:
        return ""
    return f" (train.steps {spec.train.steps:,} plus the later stages' steps, counted together)"


def _request_hash(
    spec: ExperimentSpec,
    name: str | None,
    tags: list[str],
    project: uuid.UUID,
    scheduling: dict[str, object],
) -> str:
    """What an idempotency key remembers of its request: the same key sent to another
    project is another request (a 422), never a replay of a run there. `scheduling`
    (priority, resources) counts only where it is not the default, so keys stored before
    it existed still match."""
    canonical = json.dumps(
        {
            "spec": spec_hash(spec),
            "name": name,
            "tags": tags,
            "project": str(project),
            **({"scheduling": scheduling} if scheduling else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def submit_experiment(
    session: Session,
    settings: Settings,
    *,
    spec: ExperimentSpec,
    name: str | None,
    tags: list[str],
    idempotency_key: str | None = None,
    reuse: bool = False,
    principal: Principal = LOCAL_PRINCIPAL,
    project_id: uuid.UUID | None = None,
    priority: int = 0,
    resources: ResourceRequest | None = None,
) -> SubmitResult:
    """Commit a queued experiment; the dispatcher hands it to a worker.

    It goes to `project_id` (default: the principal's personal project), where the
    principal must be at least a member. An `idempotency_key` this user sent before
    returns that request's experiment (the same request again, or a 422 if the request
    differs); `reuse` returns a succeeded experiment of the same project with the same
    spec hash instead of training again.
    """
    project = submission_project(session, principal, project_id)
    idempotency_key = scoped_idempotency_key(principal, idempotency_key)
    check_limits(spec, settings)
    check_priority(principal, priority)
    resources = resources or ResourceRequest()
    scheduling = _non_default_scheduling(priority, resources)
    request_hash = _request_hash(spec, name, tags, project, scheduling)
    if idempotency_key is not None:
        replay = _replay(session, idempotency_key, request_hash, principal)
        if replay is not None:
            return SubmitResult(replay, Submission.replayed)
    if reuse:
        existing = repository.find_succeeded_with_hash(session, spec_hash(spec), project)
        if existing is not None:
            return SubmitResult(existing, Submission.reused)
    experiment = repository.create_run(
        session,
        spec=spec,
        name=name,
        tags=tags,
        queue=queue_for(spec, resources),
        project_id=project,
        submitted_by=principal.user_id,
        priority=priority,
        gpus=resources.gpus,
        gpu_memory_gib=resources.gpu_memory_gib,
    )
    if idempotency_key is not None:
        repository.add_idempotency_key(session, idempotency_key, request_hash, experiment.id)
    audit_run(session, principal, AuditAction.experiment_submitted, experiment)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its run.
        session.rollback()
        replay = _replay(session, idempotency_key or "", request_hash, principal)
        if replay is None:
            raise
        return SubmitResult(replay, Submission.replayed)
    session.refresh(experiment)
    return SubmitResult(experiment, Submission.created)


def _non_default_scheduling(priority: int, resources: ResourceRequest) -> dict[str, object]:
    scheduling: dict[str, object] = {}
    if priority:
        scheduling["priority"] = priority
    if resources != ResourceRequest():
        scheduling["resources"] = resources.model_dump()
    return scheduling


def _replay(session: Session, key: str, request_hash: str, principal: Principal) -> Run | None:
    seen = repository.find_idempotency_key(session, key)
    if seen is None:
        return None
    experiment = repository.get_run(session, seen.experiment_id)
    assert experiment is not None  # the key row cascades away with its experiment
    if seen.request_hash != request_hash or not principal.can_see(experiment.project_id):
        # Also for a run in a project the user has left since: the key must not show it.
        raise IdempotencyConflictError(
            f"Idempotency-Key {key!r} was already used for a different request; "
            "use a new key for a new experiment"
        )
    return experiment
