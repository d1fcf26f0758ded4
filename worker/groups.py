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
from core.training.group import GroupResult, run_group
from store import runs
from store.models import Run, RunStatus
from worker.context import RunContext
from worker.group_reporter import GroupWrites, MemberReporter
from worker.heartbeat import Heartbeat
from worker.probes import queue_auto_probes
from worker.reporter import RunSupersededError
from worker.resume import drop_unrecorded_checkpoints

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    """A member this worker holds: its id, parsed spec, queue and reporter."""

    experiment_id: uuid.UUID
    spec: TrainedSpec
    queue: str
    reporter: MemberReporter


def execute_group(
    context: RunContext, group_id: uuid.UUID, deadline: float | None
) -> tuple[RunStatus | None, list[uuid.UUID]]:
    """Run the members of a group this worker has claimed; the group's final status (None
    when the reaper took the group back) and the probes its members queued.

    While it holds the group, every member it claimed ends: whatever the engine raises
    for the whole group is recorded as the failure of each member not yet ended, and of
    the group.
    """
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
    ended: set[uuid.UUID] = set()
    try:
        with heartbeat:
            try:
                summary = _train(context, member_ids, superseded, deadline, ended, auto_probes)
            except RunSupersededError:
                raise
            except Exception:
                log.exception("batched group %s failed", group_id)
                _fail_the_rest(context, group_id, member_ids, ended, traceback.format_exc())
                return RunStatus.failed, auto_probes
            finished = context.write(
                "finishing the group",
                lambda s: runs.finish_run(s, group_id, summary, context.worker_name),
            )
    except RunSupersededError:
        log.warning("group %s was taken back by the reaper; this attempt stops", group_id)
        return None, []
    return (RunStatus.succeeded if finished else None), auto_probes


def _train(
    context: RunContext,
    member_ids: list[uuid.UUID],
    superseded: threading.Event,
    deadline: float | None,
    ended: set[uuid.UUID],
    auto_probes: list[uuid.UUID],
) -> dict[str, int]:
    """Train the members through the engine, recording each as it ends (its id then joins
    `ended`); the group's summary."""
    writes = GroupWrites(context, superseded)
    members = _parse_members(context, member_ids, writes, deadline, ended)

    def record(index: int, outcome: GroupResult) -> None:
        # As each member ends: a cancelled one is told at once, not at the group's end.
        auto_probes.extend(_record(context, members[index], outcome))
        ended.add(members[index].experiment_id)

    outcomes = run_group(
        [(m.spec, m.reporter) for m in members], fatal=(RunSupersededError,), on_end=record
    )
    return {"members": len(member_ids), "batched": sum(o.batched for o in outcomes)}


def _fail_the_rest(
    context: RunContext,
    group_id: uuid.UUID,
    member_ids: list[uuid.UUID],
    ended: set[uuid.UUID],
    message: str,
) -> None:
    """The group failed as a whole: so does each member not yet ended, and the group."""
    for experiment_id in member_ids:
        if experiment_id not in ended:
            _end(context, experiment_id, RunStatus.failed, message)

    def fail_group(session: Session) -> None:
        if not runs.fail_run(session, group_id, message, context.worker_name):
            raise RunSupersededError(f"group {group_id} was taken back")

    context.write("recording the group's failure", fail_group)


def _parse_members(
    context: RunContext,
    member_ids: list[uuid.UUID],
    writes: GroupWrites,
    deadline: float | None,
    ended: set[uuid.UUID],
) -> list[Member]:
    """Each held member's spec, queue and reporter; a member whose stored spec no longer
    parses fails alone (and joins `ended`).

    A member's checkpoints without a row are dropped first (worker/resume.py). Unlike a
    solo run's, a member's metric points after its checkpoint are not dropped
    before it resumes: the members of one shape resume from the newest checkpoint they
    all hold, which may be older than a member's own. Every point after it is logged
    again at the same step (the cadence is the spec's), and the write replaces it.
    """
    rows: dict[uuid.UUID, tuple[dict[str, Any], str]] = context.write(
        "reading the members' specs",
        lambda s: {
            i: (dict(run.spec), run.queue) for i in member_ids if (run := s.get(Run, i)) is not None
        },
    )
    members = []
    for experiment_id in member_ids:
        raw_spec, queue = rows[experiment_id]
        try:
            spec = parse_spec(raw_spec)
        except (ValidationError, LookupError) as error:
            _end(context, experiment_id, RunStatus.failed, f"invalid spec: {error}")
            ended.add(experiment_id)
            continue
        assert isinstance(spec, TrainedSpec)
        reporter = writes.reporter(experiment_id, deadline)
        drop_unrecorded_checkpoints(context, experiment_id, reporter.checkpoint_dir())
        members.append(Member(experiment_id, spec, queue, reporter))
    return members


def _record(context: RunContext, member: Member, outcome: GroupResult) -> list[uuid.UUID]:
    """Store how one member ended; the ids of the probes it queued."""
    member.reporter.group.forget(member.experiment_id)
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
            return queue_auto_probes(
                session, experiment_id, probes, member.queue, context.worker_name
            )

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
