"""Executes a batched group: the experiments of a sweep that differ only in what an
ensemble batches (seed, learning rate), trained as one computation on this worker.

The group's row is claimed, heartbeaten and fenced like a single run's; each member keeps
its own row, and the engine writes each member's metrics, progress, checkpoints and
result through that member's own reporter. A member that fails, diverges or is cancelled
ends alone; the others go on.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.catalog import parse_spec
from core.probes.spec import ProbeSpec
from core.reporter import RunCancelled
from core.specs import TrainedSpec
from core.training.checkpoint import shared_checkpoint_step
from core.training.group import GroupResult, run_group
from store import repository, runs
from store.models import Run, RunStatus
from worker.context import RunContext
from worker.heartbeat import Heartbeat
from worker.probes import queue_auto_probes
from worker.reporter import DatabaseReporter, RunSupersededError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A member this worker holds: its id, parsed spec and reporter."""

    experiment_id: uuid.UUID
    spec: TrainedSpec
    reporter: DatabaseReporter


def execute_group(
    context: RunContext, group_id: uuid.UUID, deadline: float | None
) -> tuple[RunStatus | None, list[uuid.UUID]]:
    """Run the members of a group this worker has claimed; the group's final status (None
    when the reaper took the group back) and the probes its members queued."""
    member_ids = context.write(
        "claiming the group's members",
        lambda s: runs.claim_group_members(s, group_id, context.worker_name),
    )
    superseded = threading.Event()
    heartbeat = Heartbeat(
        context.sessions,
        group_id,
        context.worker_name,
        context.heartbeat_interval_s,
        superseded=superseded,
        beat=runs.heartbeat_group,
    )
    auto_probes: list[uuid.UUID] = []
    try:
        with heartbeat:
            members = _parse_members(context, member_ids, superseded, deadline)

            def record(index: int, outcome: GroupResult) -> None:
                # As each member ends: a cancelled one is told at once, not at the group's end.
                auto_probes.extend(_record(context, members[index], outcome))

            outcomes = run_group(
                [(m.spec, m.reporter) for m in members],
                fatal=(RunSupersededError,),
                on_end=record,
            )
            summary = {"members": len(member_ids), "batched": sum(o.batched for o in outcomes)}
            finished = context.write(
                "finishing the group",
                lambda s: runs.finish_run(s, group_id, summary, context.worker_name),
            )
    except RunSupersededError:
        log.warning("group %s was taken back by the reaper; this attempt stops", group_id)
        return None, []
    return (RunStatus.succeeded if finished else None), auto_probes


def _parse_members(
    context: RunContext,
    member_ids: list[uuid.UUID],
    superseded: threading.Event,
    deadline: float | None,
) -> list[Member]:
    """Each held member's spec and reporter; a member whose stored spec no longer parses
    fails alone, and its metrics past its newest checkpoint are dropped (the group resumes
    from the newest checkpoint all members share, and logs again from there)."""
    specs: dict[uuid.UUID, dict[str, Any]] = context.write(
        "reading the members' specs",
        lambda s: {i: dict(run.spec) for i in member_ids if (run := s.get(Run, i)) is not None},
    )
    members = []
    for experiment_id in member_ids:
        try:
            spec = parse_spec(specs[experiment_id])
        except (ValidationError, LookupError) as error:
            _end(context, experiment_id, RunStatus.failed, f"invalid spec: {error}")
            continue
        assert isinstance(spec, TrainedSpec)
        reporter = context.reporter(experiment_id, superseded, deadline)
        members.append(Member(experiment_id, spec, reporter))
    resume_step = shared_checkpoint_step([m.reporter.checkpoint_dir() for m in members])
    # A member logs again every step after the checkpoint it resumes from.
    first_step_again = resume_step + 1 if resume_step else 0
    ids = [m.experiment_id for m in members]

    def forget(session: Session) -> None:
        for experiment_id in ids:
            repository.delete_metrics_from_step(session, experiment_id, first_step_again)

    context.write("dropping metrics past the checkpoint", forget)
    return members


def _record(context: RunContext, member: Member, outcome: GroupResult) -> list[uuid.UUID]:
    """Store how one member ended; the ids of the probes it queued."""
    member.reporter.flush_or_drop()
    experiment_id = member.experiment_id
    if outcome.error is None:
        assert outcome.result is not None
        result = outcome.result

        def finish(session: Session) -> list[uuid.UUID]:
            if not runs.finish_run(session, experiment_id, result, context.worker_name):
                raise RunSupersededError(f"experiment {experiment_id} was taken back")
            _mark_batched(session, experiment_id, outcome.batched)
            probes: tuple[ProbeSpec, ...] = member.spec.probes
            return queue_auto_probes(session, experiment_id, probes, "cpu")

        return context.write("storing a member's result", finish)
    error = outcome.error
    if isinstance(error, RunCancelled):
        if member.reporter.stop_reason == "time limit":
            status, message = RunStatus.failed, f"time limit exceeded: stopped at step {error.step}"
        else:
            status, message = RunStatus.cancelled, f"cancelled at step {error.step}"
    else:
        status = RunStatus.failed
        message = "".join(traceback.format_exception(error))
    _end(context, experiment_id, status, message, batched=outcome.batched)
    return []


def _mark_batched(session: Session, experiment_id: uuid.UUID, batched: bool) -> None:
    session.execute(update(Run).where(Run.id == experiment_id).values(batched=batched))


def _end(
    context: RunContext,
    experiment_id: uuid.UUID,
    status: RunStatus,
    message: str,
    batched: bool = False,
) -> None:
    def record(session: Session) -> None:
        if status is RunStatus.cancelled:
            ended = runs.mark_cancelled(session, experiment_id, message, context.worker_name)
        else:
            ended = runs.fail_run(session, experiment_id, message, context.worker_name)
        if not ended:
            raise RunSupersededError(f"experiment {experiment_id} was taken back")
        _mark_batched(session, experiment_id, batched)

    context.write(f"recording {status.value}", record)
