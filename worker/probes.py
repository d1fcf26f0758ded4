"""Probe runs on a worker: rebuild the probed experiment's model from its final
checkpoint, run the probe kind, and queue the probes an experiment asked for."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.catalog import (
    TargetUnavailableError,
    build_target,
    check_reference,
    get_probe,
    parse_probe_spec,
    parse_spec,
)
from core.probes.registry import ProbeInputs
from core.probes.spec import ProbeSpec
from core.probes.target import ProbeTarget
from core.reporter import Reporter
from core.shadows import shadow_specs
from core.spec_model import spec_hash
from core.specs import ExperimentSpec
from core.training.device import resolve_device
from store import repository, runs
from store.models import Run, RunStatus, RunType

if TYPE_CHECKING:
    from worker.runner import RunContext


class ProbeTargetError(Exception):
    """The probed experiment cannot be read (gone, unfinished, or without a checkpoint)."""


def _experiment_spec(session: Session, experiment_id: uuid.UUID) -> dict[str, Any]:
    experiment = repository.get_run(session, experiment_id)
    if experiment is None or experiment.run_type is not RunType.experiment:
        raise ProbeTargetError(f"experiment {experiment_id} does not exist")
    if experiment.status is not RunStatus.succeeded:
        raise ProbeTargetError(
            f"experiment {experiment_id} is {experiment.status.value}; only a succeeded "
            "experiment has a final model to probe"
        )
    return dict(experiment.spec)


def load_target(
    context: RunContext, experiment_id: uuid.UUID
) -> tuple[ExperimentSpec, ProbeTarget]:
    """The spec of a succeeded experiment and its probe target, from its newest checkpoint."""
    raw_spec = context.write(
        "reading the probed experiment", lambda s: _experiment_spec(s, experiment_id)
    )
    spec = parse_spec(raw_spec)
    run_dir = context.artifacts.checkpoint_dir(experiment_id)
    try:
        return spec, build_target(spec, run_dir, resolve_device("auto"))
    except TargetUnavailableError as error:
        raise ProbeTargetError(f"experiment {experiment_id}: {error}") from None


def run_probe(
    context: RunContext, raw_spec: Mapping[str, Any], target_id: uuid.UUID, reporter: Reporter
) -> dict[str, Any]:
    """Run one probe on its target experiment (and any experiment it references)."""
    spec = parse_probe_spec(raw_spec)
    reporter.progress(0.0, "loading the probed model")
    experiment, target = load_target(context, target_id)
    references = {}
    for reference_id in spec.referenced_experiments():
        # Checked at submission too; a probe listed in an experiment's spec is checked here.
        reference, references[reference_id] = load_target(context, reference_id)
        check_reference(experiment, reference)
    shadow_ids, shadows = load_shadows(context, target_id, experiment, spec, reporter)
    result = get_probe(spec.kind).run(spec, ProbeInputs(target, references, shadows), reporter)
    reporter.progress(1.0, "done")
    read = {"shadow_experiment_ids": [str(i) for i in shadow_ids]} if shadow_ids else {}
    return {"experiment_id": str(target_id), "probe": spec.kind, **result, **read}


def load_shadows(
    context: RunContext,
    target_id: uuid.UUID,
    experiment: ExperimentSpec,
    spec: ProbeSpec,
    reporter: Reporter,
) -> tuple[list[uuid.UUID], list[ProbeTarget]]:
    """The ids and models of the shadow models `spec` reads, in row order, found by their
    specs' hashes in the target's project (so a shadow trained for an earlier probe on the
    same pool serves this one too, and no other project's run is read)."""
    request = spec.shadow_models()
    if request is None:
        return [], []
    specs = shadow_specs(experiment, request.count, request.seed)
    hashes = [spec_hash(shadow) for shadow in specs]

    def find(session: Session) -> list[Run | None]:
        target = repository.get_run(session, target_id)
        assert target is not None  # load_target read it
        return [
            repository.find_succeeded_with_hash(session, value, target.project_id)
            for value in hashes
        ]

    found = context.write("finding the shadow models", find)
    missing = [index for index, run in enumerate(found) if run is None]
    if missing:
        raise ProbeTargetError(
            f"{len(missing)} of {request.count} shadow models (rows {_rows(missing)}) have not "
            "succeeded; the probe's shadow sweep (`shadow_sweep_id`) lists them and why. "
            "Submitting the probe again retrains the missing ones"
        )
    targets, ids = [], []
    for index, (shadow, run) in enumerate(zip(specs, found, strict=True)):
        assert run is not None
        reporter.progress(0.05 * index / len(specs), f"loading shadow model {index}")
        directory = context.artifacts.checkpoint_dir(run.id)
        try:
            targets.append(build_target(shadow, directory, resolve_device("auto")))
            ids.append(run.id)
        except TargetUnavailableError as error:
            raise ProbeTargetError(f"shadow model {index} ({run.id}): {error}") from None
    return ids, targets


def _rows(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:10])
    return shown + (", …" if len(indices) > 10 else "")


def queue_auto_probes(
    session: Session,
    experiment_id: uuid.UUID,
    probes: Sequence[ProbeSpec],
    queue: str,
    worker_name: str,
) -> list[uuid.UUID]:
    """Add a queued probe run for each probe the experiment spec lists (in the caller's
    transaction, so they exist exactly when the experiment has succeeded). They are marked
    handed out to `worker_name`, the pool process that runs them next (they take no
    other slot); if its node is lost first, the dispatcher hands them out again."""
    ids = []
    experiment = repository.get_run(session, experiment_id)
    assert experiment is not None  # the caller has just finished it
    for probe_spec in probes:
        probe = repository.create_run(
            session,
            spec=probe_spec,
            name=None,
            tags=["auto-probe"],
            queue=queue,
            target_id=experiment_id,
            # The experiment's project and submitter: whoever sees the run sees its probes.
            project_id=experiment.project_id,
            submitted_by=experiment.submitted_by,
            # And what it asked for: a probe loads the same model, on the same GPUs.
            priority=experiment.priority,
            gpus=experiment.gpus,
            gpu_memory_gib=experiment.gpu_memory_gib,
        )
        runs.mark_enqueued(session, probe.id, worker_name)
        ids.append(probe.id)
    return ids
