"""Experiment use cases, independent of HTTP: each commits its own transaction."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from api.dispatch import Dispatcher
from api.errors import NotFoundError
from core.specs import ExperimentSpec
from store import repository, runs
from store.models import Experiment


def queue_for(spec: ExperimentSpec) -> str:
    """`gpu` for a spec that insists on CUDA; everything else can run on the `cpu` queue."""
    train = getattr(spec, "train", None)
    return "gpu" if getattr(train, "device", None) == "cuda" else "cpu"


def submit_experiment(
    session: Session,
    dispatcher: Dispatcher,
    *,
    spec: ExperimentSpec,
    name: str | None,
    tags: list[str],
) -> Experiment:
    """Commit a queued experiment, then publish its id; it stays queued if the broker is down."""
    experiment = repository.create_experiment(
        session, spec=spec, name=name, tags=tags, queue=queue_for(spec)
    )
    session.commit()  # before publishing: a worker must always find the row it is sent
    if dispatcher.enqueue(experiment.id, experiment.queue):
        runs.mark_enqueued(session, experiment.id)
        session.commit()
    session.refresh(experiment)
    return experiment


def get_experiment_or_404(session: Session, experiment_id: uuid.UUID) -> Experiment:
    experiment = repository.get_experiment(session, experiment_id)
    if experiment is None:
        raise NotFoundError(f"experiment {experiment_id} not found")
    return experiment


def cancel_experiment(session: Session, experiment_id: uuid.UUID) -> Experiment:
    """Cancel a queued run now, or flag a running one to stop at its next check (409 if ended)."""
    experiment = get_experiment_or_404(session, experiment_id)
    runs.request_cancel(session, experiment)
    session.commit()
    session.refresh(experiment)
    return experiment
