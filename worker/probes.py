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
from core.specs import ExperimentSpec
from core.training.device import resolve_device
from store import repository, runs
from store.models import RunStatus, RunType

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
    result = get_probe(spec.kind).run(spec, ProbeInputs(target, references), reporter)
    reporter.progress(1.0, "done")
    return {"experiment_id": str(target_id), "probe": spec.kind, **result}


def queue_auto_probes(
    session: Session, experiment_id: uuid.UUID, probes: Sequence[ProbeSpec], queue: str
) -> list[uuid.UUID]:
    """Add a queued probe run for each probe the experiment spec lists (in the caller's
    transaction, so they exist exactly when the experiment has succeeded). They are marked
    handed out: this worker runs them next, and if it dies first the reaper republishes
    them like any run stuck in the queue."""
    ids = []
    for probe_spec in probes:
        probe = repository.create_run(
            session,
            spec=probe_spec,
            name=None,
            tags=["auto-probe"],
            queue=queue,
            target_id=experiment_id,
        )
        runs.mark_enqueued(session, probe.id)
        ids.append(probe.id)
    return ids
