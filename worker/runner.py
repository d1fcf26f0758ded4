"""Executes one experiment: claim it, run its kind, and record how it ended.

Kept apart from the Celery task so it can be driven directly (tests, `memlab` tools).
"""

from __future__ import annotations

import logging
import math
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from core.registry import UnknownKindError, get_kind, parse_spec
from core.reporter import RunCancelled
from core.training.checkpoint import latest_checkpoint
from store import repository, runs
from store.artifacts import ArtifactStore
from store.db import transaction
from store.models import RunStatus
from worker.reporter import DatabaseReporter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What a worker process needs to execute runs."""

    sessions: sessionmaker[Session]
    artifacts: ArtifactStore
    worker_name: str
    flush_interval_s: float = 2.0
    cancel_check_interval_s: float = 1.0


def execute_run(context: RunContext, experiment_id: uuid.UUID) -> RunStatus | None:
    """Run the experiment if this call claims it; the final status, or None if not claimed.

    Once claimed, the run always ends in a terminal status: whatever the kind raises,
    and even if writing its metrics fails, the error is recorded as `failed`.
    """
    with transaction(context.sessions) as session:
        if not runs.claim_run(session, experiment_id, context.worker_name):
            log.info("experiment %s was not queued; duplicate delivery ignored", experiment_id)
            return None
        experiment = repository.get_experiment(session, experiment_id)
        assert experiment is not None
        raw_spec = dict(experiment.spec)

    reporter = DatabaseReporter(
        context.sessions,
        context.artifacts,
        experiment_id,
        flush_interval_s=context.flush_interval_s,
        cancel_check_interval_s=context.cancel_check_interval_s,
    )
    try:
        _forget_metrics_after_checkpoint(context, reporter, experiment_id)
        spec = parse_spec(raw_spec)
        result = get_kind(spec.kind).run(spec, reporter)
        reporter.flush()
    except RunCancelled as stop:
        reporter.flush_or_drop()
        return _end(context, experiment_id, RunStatus.cancelled, f"cancelled at step {stop.step}")
    except (ValidationError, UnknownKindError) as error:
        return _end(context, experiment_id, RunStatus.failed, f"invalid spec: {error}")
    except Exception:
        log.exception("experiment %s failed", experiment_id)
        reporter.flush_or_drop()
        return _end(context, experiment_id, RunStatus.failed, traceback.format_exc())
    try:
        with transaction(context.sessions) as session:
            runs.finish_run(session, experiment_id, json_safe(result))
    except Exception:
        log.exception("could not store the result of %s", experiment_id)
        return _end(context, experiment_id, RunStatus.failed, traceback.format_exc())
    return RunStatus.succeeded


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities replaced by None: JSON columns refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(child) for child in value]
    return value


def _forget_metrics_after_checkpoint(
    context: RunContext, reporter: DatabaseReporter, experiment_id: uuid.UUID
) -> None:
    """A re-run resumes from its newest checkpoint and logs again every step after it."""
    checkpoint = latest_checkpoint(reporter.checkpoint_dir())
    resume_step = checkpoint.step + 1 if checkpoint else 0
    with transaction(context.sessions) as session:
        repository.delete_metrics_from_step(session, experiment_id, resume_step)


def _end(
    context: RunContext, experiment_id: uuid.UUID, status: RunStatus, message: str
) -> RunStatus:
    with transaction(context.sessions) as session:
        if status is RunStatus.cancelled:
            runs.mark_cancelled(session, experiment_id, message)
        else:
            runs.fail_run(session, experiment_id, message)
    return status
