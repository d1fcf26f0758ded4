"""Probe use cases, independent of HTTP: each commits its own transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api.auth import Principal
from api.errors import ApiError, ConflictError
from api.probes.shadows import check_shadow_count, shadow_sweep
from api.runs.service import audit_run
from core.catalog import check_applicable, check_reference, parse_spec
from core.probes.registry import ProbeNotApplicableError
from core.probes.spec import ProbeSpec
from store import repository
from store.audit import AuditAction
from store.models import Role, Run, RunStatus, RunType
from store.settings import Settings


class ProbeNotApplicableApiError(ApiError):
    status_code = 422
    code = "probe_not_applicable"


class UnknownExperimentError(ApiError):
    status_code = 422
    code = "unknown_experiment"


def _probed_experiment(
    session: Session, experiment_id: uuid.UUID, field: str, principal: Principal
) -> Run:
    experiment = repository.get_run(session, experiment_id)
    if (
        experiment is None
        or experiment.run_type is not RunType.experiment
        or not principal.can_see(experiment.project_id)
    ):
        raise UnknownExperimentError(
            f"{field}: no experiment {experiment_id}",
            [{"path": field, "message": "no such experiment", "type": "unknown_experiment"}],
        )
    if experiment.status is not RunStatus.succeeded:
        raise ConflictError(
            f"experiment {experiment_id} is {experiment.status.value}; a probe needs a "
            "succeeded experiment (to probe a run as soon as it ends, list the probe in "
            "its spec's `probes`)"
        )
    return experiment


def check_probe(
    session: Session, experiment_id: uuid.UUID, spec: ProbeSpec, principal: Principal
) -> Run:
    """The experiment to probe, after checking the probe can apply to it (and to any
    experiment it references), all of them in projects `principal` sees."""
    experiment = _probed_experiment(session, experiment_id, "experiment_id", principal)
    try:
        check_applicable(spec, parse_spec(experiment.spec))
    except ProbeNotApplicableError as error:
        raise ProbeNotApplicableApiError(
            str(error), [{"path": "spec.kind", "message": str(error), "type": "not_applicable"}]
        ) from None
    for reference_id in spec.referenced_experiments():
        reference = _probed_experiment(
            session, reference_id, "spec.reference_experiment_id", principal
        )
        if reference.project_id != experiment.project_id:
            # The probe's result, read by the target's project, is computed from the reference.
            message = "the reference experiment must be in the probed experiment's project"
            raise ProbeNotApplicableApiError(
                message,
                [{"path": "spec.reference_experiment_id", "message": message, "type": "project"}],
            )
        try:
            check_reference(parse_spec(experiment.spec), parse_spec(reference.spec))
        except ProbeNotApplicableError as error:
            raise ProbeNotApplicableApiError(
                str(error),
                [
                    {
                        "path": "spec.reference_experiment_id",
                        "message": str(error),
                        "type": "not_applicable",
                    }
                ],
            ) from None
    return experiment


def submit_probe(
    session: Session,
    settings: Settings,
    principal: Principal,
    *,
    experiment_id: uuid.UUID,
    spec: ProbeSpec,
    name: str | None,
    tags: list[str],
) -> Run:
    """Commit a queued probe of a succeeded experiment, for the dispatcher to hand out. A
    probe of shadow models first submits their sweep (`api.probes.shadows`) and is
    handed out only once that sweep has ended."""
    experiment = check_probe(session, experiment_id, spec, principal)
    # A probe belongs to its experiment's project, where its submitter must be a member.
    principal.require(experiment.project_id, Role.member, "probe runs of this project")
    shadows = check_shadow_count(spec, settings)
    after_sweep_id = None
    if shadows is not None:
        target_spec = parse_spec(experiment.spec)
        after_sweep_id = shadow_sweep(
            session, settings, experiment, target_spec, shadows, principal
        ).id
    probe = repository.create_run(
        session,
        spec=spec,
        name=name,
        tags=tags,
        queue=experiment.queue,
        target_id=experiment.id,
        project_id=experiment.project_id,
        submitted_by=principal.user_id,
        # It loads the experiment's model: it needs what the experiment needed.
        gpus=experiment.gpus,
        gpu_memory_gib=experiment.gpu_memory_gib,
    )
    if shadows is not None:
        probe.after_sweep_id = after_sweep_id
        probe.progress_message = f"waiting for its {shadows.count} shadow models"
    audit_run(session, principal, AuditAction.probe_submitted, probe)
    session.commit()
    session.refresh(probe)
    return probe
