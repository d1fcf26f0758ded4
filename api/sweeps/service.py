"""Sweep use cases, independent of HTTP: submit (expand, validate, group, queue), read
and cancel. Each commits its own transaction."""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth import LOCAL_PRINCIPAL, Principal, submission_project
from api.errors import NotFoundError, ValidationFailedError, validation_details
from api.experiments.service import (
    IdempotencyConflictError,
    LimitExceededError,
    Submission,
    check_limits,
    check_priority,
    queue_for,
)
from api.schemas import SweepCreate
from api.sweeps.grouping import plan_groups
from core.catalog import get_kind
from core.claims import selector_problems
from core.registry import UnknownKindError
from core.spec_model import spec_hash
from core.specs import ExperimentSpec
from core.sweeps import Cell, SweepInvalidError, expand, run_count
from store import repository, runs, sweeps
from store.audit import AuditAction
from store.models import Role, Run, Sweep
from store.settings import Settings


@dataclass(frozen=True)
class SweepSubmitted:
    sweep: Sweep
    outcome: Submission


def submit_sweep(
    session: Session,
    settings: Settings,
    body: SweepCreate,
    *,
    idempotency_key: str | None = None,
    reuse: bool = False,
    principal: Principal = LOCAL_PRINCIPAL,
    project_id: uuid.UUID | None = None,
) -> SweepSubmitted:
    """Expand and validate the sweep, store it with its children (in batched groups where
    they can be), and commit; the dispatcher hands out the groups and the ungrouped
    children.

    `reuse` makes a cell's child an earlier succeeded experiment with the same spec hash
    instead of a new run; an `idempotency_key` seen before returns that request's sweep.
    The sweep and its children belong to `project_id` (default: the principal's personal
    project, or `body.project_id`), where the principal must be at least a member, and
    only that project's runs are reused.
    """
    project = submission_project(session, principal, project_id or body.project_id)
    check_priority(principal, body.priority)
    request = _stored_request(body)
    request_hash = sweep_request_hash(body, reuse, project)
    if idempotency_key is not None:
        replay = _replay(session, idempotency_key, request_hash, principal)
        if replay is not None:
            return SweepSubmitted(replay, Submission.replayed)
    cells = _cells(body, settings)
    sweep = sweeps.create_sweep(
        session,
        kind=cells[0].spec.kind,
        name=body.name,
        tags=body.tags,
        request=request,
        n_runs=len(cells),
        project_id=project,
        submitted_by=principal.user_id,
    )
    fresh: list[tuple[Run, ExperimentSpec]] = []
    for position, cell in enumerate(cells):
        child = (
            repository.find_succeeded_with_hash(session, spec_hash(cell.spec), project)
            if reuse
            else None
        )
        if child is None:
            child = repository.create_run(
                session,
                spec=cell.spec,
                name=_child_name(body.name, cell),
                tags=body.tags,
                queue=queue_for(cell.spec, body.resources),
                project_id=project,
                submitted_by=principal.user_id,
                priority=body.priority,
                gpus=body.resources.gpus,
                gpu_memory_gib=body.resources.gpu_memory_gib,
            )
            fresh.append((child, cell.spec))
        sweeps.add_child(session, sweep, child, position, cell.coordinates)
    groups = [
        sweeps.create_group(session, members)
        for members in (plan_groups(fresh, settings) if body.batch else [])
    ]
    sweep.n_groups = len(groups)
    if idempotency_key is not None:
        sweeps.add_idempotency_key(session, idempotency_key, request_hash, sweep.id)
    principal.audit(
        session,
        AuditAction.sweep_submitted,
        project_id=project,
        target=str(sweep.id),
        detail={"kind": sweep.kind, "runs": len(cells), "new_runs": len(fresh)},
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # a concurrent request with the same key committed first
        replay = _replay(session, idempotency_key or "", request_hash, principal)
        if replay is None:
            raise
        return SweepSubmitted(replay, Submission.replayed)
    return SweepSubmitted(sweep, Submission.created)


def sweep_request_hash(body: SweepCreate, reuse: bool, project: uuid.UUID) -> str:
    """What an idempotency key remembers of the request it was first used with (the
    same key sent to another project is another request)."""
    request = {**_stored_request(body), "reuse": reuse, "project": str(project)}
    hashed = json.dumps(request, sort_keys=True)
    return hashlib.sha256(hashed.encode()).hexdigest()


def _stored_request(body: SweepCreate) -> dict[str, Any]:
    """The request as the sweep keeps it (and as its idempotency hash covers it)."""
    return {
        "base": body.base,
        "axes": {
            path: values if isinstance(values, list) else values.model_dump()
            for path, values in body.axes.items()
        },
        "seeds": body.seed_list(),
        "method": body.method,
        "samples": body.samples,
        "sampler_seed": body.sampler_seed,
        "batch": body.batch,
        "name": body.name,
        "tags": body.tags,
        # Only when given, so that a request without claims hashes as it always did.
        **({"claims": [c.model_dump(mode="json") for c in body.claims]} if body.claims else {}),
        **({"priority": body.priority} if body.priority else {}),
        **({"resources": body.resources.model_dump()} if body.resources.gpus else {}),
    }


def _cells(body: SweepCreate, settings: Settings) -> list[Cell]:
    """The sweep's children, or a 422 naming the base field, axis or value at fault."""
    kind_name = body.base.get("kind")
    try:
        spec_class = get_kind(kind_name if isinstance(kind_name, str) else "").spec_class
    except UnknownKindError as error:
        raise ValidationFailedError(
            f"invalid sweep: base.kind: {error}",
            [{"path": "base.kind", "message": str(error), "type": "unknown_kind"}],
        ) from error
    try:
        spec_class.model_validate(body.base)
    except ValidationError as error:
        details = validation_details([dict(e) for e in error.errors(include_url=False)])
        for detail in details:
            detail["path"] = f"base.{detail['path']}" if detail["path"] else "base"
        raise _invalid(details) from error
    seeds = body.seed_list()
    if body.method == "random" and body.samples is None:
        raise _invalid([_detail("samples", "method 'random' needs samples", "missing")])
    count = run_count(body.axes, len(seeds), body.method, body.samples)
    if count > settings.max_sweep_runs:
        message = (
            f"the sweep has {count:,} runs ({'cells' if body.axes else 'one cell'} × "
            f"{len(seeds)} seeds); this server allows at most {settings.max_sweep_runs:,} "
            "(MEMLAB_MAX_SWEEP_RUNS)"
        )
        raise LimitExceededError(
            f"over this server's limits: {message}",
            [_detail("axes" if body.axes else "seeds", message, "limit_exceeded")],
        )
    try:
        cells = expand(
            spec_class,
            body.base,
            body.axes,
            seeds,
            body.method,
            body.samples,
            body.sampler_seed,
        )
    except SweepInvalidError as error:
        raise _invalid(
            [_detail(_request_path(p.path), p.message, p.type) for p in error.problems]
        ) from error
    _check_cell_limits(cells, settings)
    _check_claims(body, cells)
    return cells


def _check_claims(body: SweepCreate, cells: Sequence[Cell]) -> None:
    """Each claim's cells are cells of this sweep, pinned one each."""
    coordinates = [{k: v for k, v in c.coordinates.items() if k != "seed"} for c in cells]
    problems = selector_problems(body.claims, coordinates)
    if problems:
        raise _invalid([_detail(path, message) for path, message in problems])


def _check_cell_limits(cells: Sequence[Cell], settings: Settings) -> None:
    """This server's limits, for each distinct child shape; a refusal names the cell."""
    checked: set[str] = set()
    for cell in cells:
        key = spec_hash(cell.spec)
        if key in checked:
            continue
        checked.add(key)
        try:
            check_limits(cell.spec, settings)
        except LimitExceededError as error:
            where = {k: v for k, v in cell.coordinates.items() if k != "seed"}
            raise LimitExceededError(f"the cell {where}: {error.message}", error.details) from error


def _request_path(path: tuple[str | int, ...]) -> str:
    """("axes", "model.n_embd", 1) → "axes.model.n_embd[1]"."""
    text = ".".join(str(p) for p in path if not isinstance(p, int))
    return text + "".join(f"[{p}]" for p in path if isinstance(p, int))


def _detail(path: str, message: str, kind: str = "value_error") -> dict[str, str]:
    return {"path": path, "message": message, "type": kind}


def _invalid(details: list[dict[str, Any]]) -> ValidationFailedError:
    summary = "; ".join(f"{d['path']}: {d['message']}" for d in details[:5])
    return ValidationFailedError(f"invalid sweep: {summary}", details)


def _child_name(sweep_name: str | None, cell: Cell) -> str:
    coordinates = " ".join(f"{k}={v}" for k, v in cell.coordinates.items())
    return f"{sweep_name or 'sweep'} {coordinates}"[:200]


def _replay(session: Session, key: str, request_hash: str, principal: Principal) -> Sweep | None:
    seen = sweeps.find_idempotency_key(session, key)
    if seen is None:
        return None
    sweep = sweeps.get_sweep(session, seen.sweep_id)
    assert sweep is not None  # the key row cascades away with its sweep
    if seen.request_hash != request_hash or not principal.can_see(sweep.project_id):
        # Also for a sweep in a project the user has left since: the key must not show it.
        raise IdempotencyConflictError(
            f"Idempotency-Key {key!r} was already used for a different sweep; "
            "use a new key for a new sweep"
        )
    return sweep


def get_sweep_or_404(session: Session, sweep_id: uuid.UUID, principal: Principal) -> Sweep:
    """The sweep if it is in a project `principal` sees; a 404 otherwise."""
    sweep = sweeps.get_sweep(session, sweep_id)
    if sweep is None or not principal.can_see(sweep.project_id):
        raise NotFoundError(f"sweep {sweep_id} not found")
    return sweep


def cancel_sweep(session: Session, sweep_id: uuid.UUID, principal: Principal) -> Sweep:
    """Cancel every unfinished child: a queued one ends at once, a running one stops at
    its next check (a batched member alone, the rest of its group goes on). A member
    cancels its own sweeps, a maintainer anyone's."""
    sweep = get_sweep_or_404(session, sweep_id, principal)
    own = sweep.submitted_by == principal.user_id
    needed = Role.member if own else Role.maintainer
    principal.require(
        sweep.project_id,
        needed,
        "cancel " + ("your" if own else "another's") + " sweep",
        what="the sweep",
    )
    sweep.cancel_requested = True
    for run in sweeps.unfinished_children(session, sweep_id):
        with contextlib.suppress(runs.IllegalTransitionError):  # it ended meanwhile
            runs.request_cancel(session, run)
    principal.audit(
        session,
        AuditAction.sweep_cancelled,
        project_id=sweep.project_id,
        target=str(sweep.id),
        detail={"own": own},
    )
    session.commit()
    session.refresh(sweep)
    return sweep
