"""Executes one run: claim it, run its experiment kind or probe, and record how it ended.

Kept apart from the Celery task so it can be driven directly (tests, `memlab` tools).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from core.catalog import get_kind, parse_spec
from core.probes.registry import ProbeNotApplicableError, UnknownProbeError
from core.probes.spec import ProbeSpec
from core.registry import UnknownKindError
from core.reporter import RunCancelled
from core.training.checkpoint import latest_checkpoint
from store import repository, runs
from store.models import RunStatus, RunType
from worker.context import ClaimedRun, RunContext
from worker.groups import execute_group
from worker.heartbeat import Heartbeat
from worker.probes import (
    ProbeTargetError,
    queue_auto_probes,
    run_probe,
)
from worker.reporter import DatabaseReporter, RunSupersededError
from worker.resume import drop_unrecorded_checkpoints

log = logging.getLogger(__name__)

__all__ = ["ClaimedRun", "RunContext", "execute_run"]


def execute_run(context: RunContext, experiment_id: uuid.UUID) -> RunStatus | None:
    """Run the experiment if this call claims it; its final status, or None when this
    worker did not (or no longer) hold it.

    While it holds the run, the run always ends in a terminal status: whatever the kind
    raises, and even if writing its metrics fails, the error is recorded as `failed`.
    Every write is fenced by this worker's name, so a worker the reaper has replaced
    can no longer change the run.
    """
    claimed = context.write("claiming the run", lambda s: _claim(s, context, experiment_id))
    if claimed is None:
        log.info("experiment %s was not queued; duplicate delivery ignored", experiment_id)
        return None
    deadline = _deadline(claimed.spec, context.max_wall_s)
    if claimed.run_type is RunType.group:
        status, auto_probes = execute_group(context, experiment_id, deadline)
    else:
        status, auto_probes = _execute_claimed(context, experiment_id, claimed, deadline)
    for probe_id in auto_probes:  # the probes the experiments asked for, here and now
        execute_run(context, probe_id)
    # A probe of shadow models whose sweep this run ended is the dispatcher's to hand out,
    # like any queued run (quotas, resources and fair share apply).
    return status


def _execute_claimed(
    context: RunContext, experiment_id: uuid.UUID, claimed: ClaimedRun, deadline: float | None
) -> tuple[RunStatus | None, list[uuid.UUID]]:
    """Run a claimed experiment or probe, with its heartbeat; its final status (None when
    the reaper took it back) and the probes it queued."""
    superseded = threading.Event()
    reporter = context.reporter(experiment_id, superseded, deadline)
    heartbeat = Heartbeat(
        context.sessions,
        experiment_id,
        context.worker_name,
        context.heartbeat_interval_s,
        superseded=superseded,
    )
    auto_probes: list[uuid.UUID] = []
    try:
        with heartbeat:
            status = _run_claimed(context, experiment_id, claimed, reporter, auto_probes)
    except RunSupersededError:
        log.warning("experiment %s was taken back by the reaper; this attempt stops", experiment_id)
        return None, []
    return status, auto_probes


def _claim(session: Session, context: RunContext, experiment_id: uuid.UUID) -> ClaimedRun | None:
    """The run if this worker now holds it (including a retried claim whose first commit
    went through before the connection dropped), else None."""
    claimed = runs.claim_run(session, experiment_id, context.worker_name)
    experiment = repository.get_run(session, experiment_id)
    if experiment is None:
        return None
    mine = experiment.status is RunStatus.running and experiment.worker == context.worker_name
    if not (claimed or mine):
        return None
    return ClaimedRun(
        dict(experiment.spec), experiment.run_type, experiment.target_id, experiment.queue
    )


def _deadline(raw_spec: dict[str, Any], server_cap_s: int | None) -> float | None:
    limit = runs.wall_limit_s(raw_spec, server_cap_s)
    return time.monotonic() + limit if limit is not None else None


def _run_claimed(
    context: RunContext,
    experiment_id: uuid.UUID,
    claimed: ClaimedRun,
    reporter: DatabaseReporter,
    auto_probes: list[uuid.UUID],
) -> RunStatus | None:
    """Run it and record the outcome; the ids of the probes it queued go to `auto_probes`."""
    raw_spec = claimed.spec
    probes_to_queue: tuple[ProbeSpec, ...] = ()  # an experiment's own `probes`, parsed once
    try:
        _forget_metrics_after_checkpoint(context, reporter, experiment_id)
        if claimed.run_type is RunType.probe:
            assert claimed.target_id is not None
            result = run_probe(context, raw_spec, claimed.target_id, reporter)
        else:
            spec = parse_spec(raw_spec)
            probes_to_queue = spec.probes
            result = get_kind(spec.kind).run(spec, reporter)
        reporter.flush()
    except RunSupersededError:
        raise
    except RunCancelled as stop:
        reporter.flush_or_drop()
        if reporter.stop_reason == "time limit":
            message = (
                f"time limit exceeded: stopped at step {stop.step} after "
                f"{runs.wall_limit_s(raw_spec, context.max_wall_s)} s; the checkpoint is kept"
            )
            return _end(context, experiment_id, RunStatus.failed, message)
        return _end(context, experiment_id, RunStatus.cancelled, f"cancelled at step {stop.step}")
    except (ValidationError, UnknownKindError, UnknownProbeError) as error:
        return _end(context, experiment_id, RunStatus.failed, f"invalid spec: {error}")
    except (ProbeTargetError, ProbeNotApplicableError) as error:
        reporter.flush_or_drop()
        return _end(context, experiment_id, RunStatus.failed, f"cannot probe: {error}")
    except Exception:
        log.exception("experiment %s failed", experiment_id)
        reporter.flush_or_drop()
        return _end(context, experiment_id, RunStatus.failed, traceback.format_exc())

    def finish(session: Session) -> bool:
        if not runs.finish_run(session, experiment_id, result, context.worker_name):
            return False
        if claimed.run_type is RunType.experiment:
            auto_probes[:] = queue_auto_probes(
                session, experiment_id, probes_to_queue, claimed.queue, context.worker_name
            )
        return True

    try:
        stored = context.write("storing the result", finish)
    except Exception:
        log.exception("could not store the result of %s", experiment_id)
        return _end(context, experiment_id, RunStatus.failed, traceback.format_exc())
    if not stored:
        raise RunSupersededError(f"experiment {experiment_id} was taken back before it finished")
    return RunStatus.succeeded


def _forget_metrics_after_checkpoint(
    context: RunContext, reporter: DatabaseReporter, experiment_id: uuid.UUID
) -> None:
    """A re-run resumes from its newest recorded checkpoint and logs again every step
    after it."""
    drop_unrecorded_checkpoints(context, experiment_id, reporter.checkpoint_dir())
    checkpoint = latest_checkpoint(reporter.checkpoint_dir())
    resume_step = checkpoint.step + 1 if checkpoint else 0
    context.write(
        "dropping metrics past the checkpoint",
        lambda s: repository.delete_metrics_from_step(s, experiment_id, resume_step),
    )


def _end(
    context: RunContext, experiment_id: uuid.UUID, status: RunStatus, message: str
) -> RunStatus:
    def record(session: Session) -> bool:
        if status is RunStatus.cancelled:
            return runs.mark_cancelled(session, experiment_id, message, worker=context.worker_name)
        return runs.fail_run(session, experiment_id, message, worker=context.worker_name)

    if not context.write(f"recording {status.value}", record):
        raise RunSupersededError(f"experiment {experiment_id} was taken back before it ended")
    return status
