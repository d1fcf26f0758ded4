"""The shadow models of a probe that reads them (lira, counterfactual): one sweep of the
target's spec over `pool_subset.index`, submitted like any sweep, so the shadows are
listed as its children, batched where the kind batches, and reused.

A later probe on the same pool (same target, shadow count and pool seed, whatever its
kind) gets the same sweep back through the sweep's idempotency key; where that sweep lost
a child (failed or cancelled) and ended, a new one is made that reuses every shadow that
succeeded, and the key answers with it from then on.
No task waits on another: the probe is stored queued and unpublished
(`Run.after_sweep_id`), and whoever sees the sweep end publishes it (the worker that
ends its last child, or the reaper).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api.auth import Principal
from api.errors import ApiError, ValidationFailedError
from api.experiments.service import IdempotencyConflictError, LimitExceededError
from api.schemas import ResourceRequest, SweepCreate
from api.sweeps.service import submit_sweep, sweep_request_hash
from core.probes.spec import ProbeSpec, ShadowRequest
from core.shadows import POOL_SUBSET_FIELD, SHADOW_INDEX_PATH
from core.specs import ExperimentSpec
from store import sweeps
from store.models import Run, RunStatus, Sweep
from store.settings import Settings

SHADOW_TAG = "shadow"


class TooManyShadowsError(ApiError):
    status_code = 422
    code = "limit_exceeded"


class ShadowSweepRefusedError(ApiError):
    status_code = 422
    code = "shadows_refused"


def check_shadow_count(spec: ProbeSpec, settings: Settings) -> ShadowRequest | None:
    """The shadows `spec` asks for, within this server's cap (else a 422 at spec.shadows)."""
    request = spec.shadow_models()
    if request is not None and request.count > settings.max_shadows:
        message = (
            f"{request.count} shadow models asked; this server trains at most "
            f"{settings.max_shadows} for one probe (MEMLAB_MAX_SHADOWS)"
        )
        raise TooManyShadowsError(
            f"over this server's limits: {message}",
            [{"path": "spec.shadows", "message": message, "type": "limit_exceeded"}],
        )
    return request


def shadow_sweep(
    session: Session,
    settings: Settings,
    target: Run,
    target_spec: ExperimentSpec,
    request: ShadowRequest,
    principal: Principal,
) -> Sweep:
    """The sweep that trains `target`'s shadows for `request`: the one an earlier probe
    on this pool made, unless it has ended having lost a child (failed or cancelled);
    then a new one, which reuses every shadow that succeeded and answers to the pool's
    key from now on. A sweep still running is returned as it is: its probe reports any
    shadow that did not succeed, and the next probe replaces it. The sweep belongs to the
    target's project, so its members share it."""
    body = _sweep_request(target, target_spec, request)
    key = f"shadows:{target.id}:{request.count}:{request.seed}"
    try:
        earlier = _submit(session, settings, body, key, principal, target.project_id)
    except IdempotencyConflictError:  # the target's spec is now written out differently
        earlier = None
    if earlier is not None and not _ended_short(session, earlier.id):
        return earlier
    replacement = _submit(session, settings, body, None, principal, target.project_id)
    sweeps.point_idempotency_key(
        session, key, sweep_request_hash(body, True, target.project_id), replacement.id
    )
    session.commit()
    return replacement


def _submit(
    session: Session,
    settings: Settings,
    body: SweepCreate,
    key: str | None,
    principal: Principal,
    project_id: uuid.UUID,
) -> Sweep:
    """`submit_sweep` with reuse; a refusal of the target's spec as a sweep (a rule added
    since the target was stored, a limit lowered since) is a 422 naming the target."""
    try:
        return submit_sweep(
            session,
            settings,
            body,
            idempotency_key=key,
            reuse=True,
            principal=principal,
            project_id=project_id,
        ).sweep
    except (ValidationFailedError, LimitExceededError) as error:
        message = f"the target's spec cannot train as shadow models: {error.message}"
        raise ShadowSweepRefusedError(
            message, [{"path": "experiment_id", "message": message, "type": error.code}]
        ) from error


def _sweep_request(target: Run, target_spec: ExperimentSpec, request: ShadowRequest) -> SweepCreate:
    base = target_spec.model_dump(mode="json", exclude={"probes", "max_wall_s"})
    base[POOL_SUBSET_FIELD] = {"seed": request.seed, "count": request.count, "index": 0}
    return SweepCreate(
        base=base,
        axes={SHADOW_INDEX_PATH: list(range(request.count))},
        seeds=[target_spec.seed],
        batch=True,
        name=f"shadows of {target.id} (pool seed {request.seed})",
        tags=[SHADOW_TAG],
        # Shadows train the target's model: they need what it needed.
        resources=ResourceRequest(gpus=target.gpus, gpu_memory_gib=target.gpu_memory_gib),
    )


def _ended_short(session: Session, sweep_id: uuid.UUID) -> bool:
    """Every child has ended, and one of them failed or was cancelled."""
    if not sweeps.has_ended(session, sweep_id):
        return False
    counts = sweeps.sweep_progress(session, sweep_id).counts
    return bool(counts[RunStatus.failed.value] or counts[RunStatus.cancelled.value])
