"""The dispatcher: the one place that hands queued runs to the broker, as many as the
live worker nodes have free slots, in fair-share order (worker/fair_share.py).
Submissions only commit their runs (and wake this process's dispatcher); the reaper only
puts lost runs back in the queue; a pass here publishes them. It also hands out again a
run whose message the broker lost (handed out, unclaimed for `redeliver_after_s`, its
queue empty: a Redis restart without persistence).

Every API process runs passes (`DispatcherThread`), but on PostgreSQL each pass first
takes a transaction-level advisory lock and a process that does not get it skips the
pass: one dispatcher at a time, and when the one that held the lock dies its transaction
ends, the lock is free and the next pass anywhere takes over. The embedded default
(SQLite) has one server process, which is the dispatcher.

Slots come from the worker registry (store/workers.py): each live node that is not
draining offers `concurrency` minus its busy processes, less the runs already handed out
to it and not yet claimed. A batched group takes one slot. Every run is published to the
queue of the node chosen for it (`node_queue`), which only that node consumes, and only
that node (or the process a worker handed a probe to) may claim it (store/runs.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, or_, select, text, true, update
from sqlalchemy.orm import Session, sessionmaker

from store import runs, workers
from store.db import transaction
from store.models import Run, RunStatus, utcnow
from store.settings import Settings
from store.sweeps import still_waiting
from worker.celery_config import node_queue
from worker.dispatch import Dispatcher
from worker.fair_share import Active, Candidate, Choice, Needs, NodeSlots, Quotas, choose
from worker.reaper import watched_alone

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6D656D6C  # "meml": the dispatcher's PostgreSQL advisory lock
WAITING = "waiting"  # the start of every reason this module writes in progress_message
REASON_BATCH = 1000  # ids per UPDATE: PostgreSQL's driver takes at most 65,535 parameters
GPU_HOURS_WINDOW = timedelta(hours=24)  # what the GPU-hour quotas count
# Statuses only a running run reaches (a run cancelled may have been waiting, queued again).
ENDED_RUNNING = frozenset({RunStatus.succeeded, RunStatus.failed})


def dispatch_pass(
    sessions: sessionmaker[Session],
    dispatcher: Dispatcher,
    settings: Settings,
    now: datetime | None = None,
    only_if_free: bool = False,
) -> Choice | None:
    """Publish what the free slots can take, note why the rest waits; None when another
    process holds the dispatcher's lock. `only_if_free`: stop early, writing no reason,
    when no slot is free (the pass a submission asks for: what it could start, at once;
    the reasons wait for the next full pass).

    The chosen runs are marked handed out and committed before they are published: a
    worker may claim a run the moment its message is out, and a run marked but never
    published (the process died in between) is handed out again once
    `redeliver_after_s` has passed, whereas one published but never marked would be
    published again by the next pass.
    """
    now = now or utcnow()
    with transaction(sessions) as session:
        if not _lead(session):
            return None
        # Handed-out runs first, running ones second: a run claimed between the two
        # reads is then counted twice (its slot waits for the next pass), never missed
        # (which handed a node one run more than it has slots: seen under load in CI).
        handed_out = _handed_out(session)
        fleet = _live_nodes(session, settings)
        lost = _lost_messages(handed_out, dispatcher, settings, fleet, now)
        if lost:
            log.warning("dispatcher: %d handed-out runs lost their message; again", len(lost))
            runs.unmark_enqueued(session, list(lost))
        nodes = _free_slots(fleet, [run for run in handed_out if run.id not in lost])
        if only_if_free and not nodes:
            return Choice()
        candidates, shown = _candidates(session)
        if not candidates:
            return Choice()
        active = _active(session, now)
        choice = choose(candidates, nodes, _last_use(session), active, _quotas(settings), fleet)
        for run in choice.publish:
            runs.mark_enqueued(session, run.id, choice.routed.get(run.id))
    published = _publish(sessions, dispatcher, choice)
    with transaction(sessions) as session:
        _note_reasons(session, choice.waiting, published, shown)
    if choice.publish:
        log.info("dispatcher: published %d, %d waiting", len(published), len(choice.waiting))
    return choice


def _publish(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, choice: Choice
) -> list[uuid.UUID]:
    """Hand the marked runs to the broker, stopping at its first refusal: those not taken
    are unmarked, for a later pass."""
    published: list[uuid.UUID] = []
    chosen = choice.publish
    for index, run in enumerate(chosen):
        node = choice.routed.get(run.id)
        if not dispatcher.enqueue(run.id, run.queue if node is None else node_queue(node)):
            with transaction(sessions) as session:
                runs.unmark_enqueued(session, [left.id for left in chosen[index:]])
            break
        published.append(run.id)
    return published


def _handed_out(session: Session) -> Sequence[Row[Any]]:
    """The runs handed out and not yet claimed (a batched group once)."""
    return session.execute(
        select(Run.id, Run.queue, Run.dispatched_to, Run.enqueued_at, Run.gpus, Run.gpu_memory_gib)
        .where(Run.status == RunStatus.queued, Run.enqueued_at.is_not(None), watched_alone())
        .order_by(Run.created_at)
    ).all()


def _lost_messages(
    handed_out: Sequence[Row[Any]],
    dispatcher: Dispatcher,
    settings: Settings,
    fleet: list[NodeSlots],
    now: datetime,
) -> set[uuid.UUID]:
    """The handed-out runs whose message is gone, for this pass to hand out again: those
    routed to a node that is no longer live (or drains), and those handed out longer
    than `redeliver_after_s` ago whose queue is empty (while messages wait in a queue, a
    run's is most likely among them). Should an old message turn up after all, its claim
    is refused (store/runs.claim_run) or finds the run taken."""
    live = {node.name for node in fleet}
    before = now - timedelta(seconds=settings.redeliver_after_s)
    empty: dict[str, bool] = {}
    lost = set()
    for run in handed_out:
        node = None if run.dispatched_to is None else workers.node_of(run.dispatched_to)
        if node is not None and node not in live:
            lost.add(run.id)
            continue
        if run.enqueued_at >= before:
            continue
        queue = run.queue if node is None else node_queue(node)
        if queue not in empty:
            empty[queue] = dispatcher.queue_length(queue) == 0
        if empty[queue]:
            lost.add(run.id)
    return lost


def _lead(session: Session) -> bool:
    """Whether this pass is the dispatcher: the advisory lock on PostgreSQL, held until the
    pass's transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
    )
    return bool(locked.scalar())


def _live_nodes(session: Session, settings: Settings) -> list[NodeSlots]:
    """The live, undrained nodes, each with its pool processes and GPUs that no running
    run holds."""
    nodes = []
    for state in workers.worker_states(session, settings.heartbeat_stale_s):
        if not state.live or state.worker.drain_requested_at is not None:
            continue
        gpus = tuple(float(device["memory_gib"]) for device in state.worker.devices)
        free_gpus = list(gpus)
        for run in state.running:
            if run.group_id is None:  # a batched group's members share its GPUs
                free_gpus = Needs(run.gpus, run.gpu_memory_gib).taken_from(free_gpus)
        free = state.worker.concurrency - workers.busy_slots(state)
        nodes.append(
            NodeSlots(state.worker.name, frozenset(state.worker.queues), free, free_gpus, gpus)
        )
    return nodes


def _free_slots(fleet: list[NodeSlots], handed_out: Sequence[Row[Any]]) -> list[NodeSlots]:
    """The nodes with free slots left once the runs handed out and not yet claimed take
    theirs: a run routed to a node, that node's slot and GPUs. A run a worker handed
    itself (`dispatched_to` its process: the probes an experiment asked for, run next in
    that process) takes none."""
    nodes = [replace(node, free_gpus=list(node.free_gpus)) for node in fleet]
    by_name = {node.name: node for node in nodes}
    shared = []
    for run in handed_out:
        if run.dispatched_to is None:
            shared.append(run.queue)
        elif run.dispatched_to in by_name:
            by_name[run.dispatched_to].hold(Needs(run.gpus, run.gpu_memory_gib))
    takers = {queue: sum(queue in node.queues for node in nodes) for queue in set(shared)}
    # A run handed out to a shared queue (before runs were routed) will take a slot of a
    # node consuming it: those of queues fewer nodes take first, each from the node with
    # the most room.
    for queue in sorted(shared, key=lambda queue: takers[queue]):
        room = [node for node in nodes if queue in node.queues and node.free > 0]
        if room:
            max(room, key=lambda node: node.free).free -= 1
    return [node for node in nodes if node.free > 0]


def _candidates(session: Session) -> tuple[list[Candidate], dict[uuid.UUID, str | None]]:
    """The runs waiting to be handed out, and the progress message each shows now."""
    rows = session.execute(
        select(
            Run.id,
            Run.queue,
            Run.submitted_by,
            Run.project_id,
            Run.created_at,
            Run.priority,
            Run.gpus,
            Run.gpu_memory_gib,
            Run.progress_message,
        ).where(
            Run.status == RunStatus.queued,
            Run.enqueued_at.is_(None),
            watched_alone(),
            ~still_waiting(),  # a probe of shadow models waits for their sweep to end
        )
    ).all()
    needs: dict[tuple[int, float], Needs] = {}  # one object per distinct request
    candidates = [
        Candidate(
            run_id,
            queue,
            owner,
            project,
            created,
            priority,
            needs.setdefault((gpus, memory), Needs(gpus, memory)),
        )
        for run_id, queue, owner, project, created, priority, gpus, memory, _ in rows
    ]
    return candidates, {row[0]: row[-1] for row in rows}


def _last_use(session: Session) -> dict[uuid.UUID, Any]:
    """When each owner last had a run handed out."""
    rows = session.execute(
        select(Run.submitted_by, func.max(Run.enqueued_at))
        .where(Run.enqueued_at.is_not(None))
        .group_by(Run.submitted_by)
    )
    return {owner: used for owner, used in rows}


def _active(session: Session, now: datetime) -> Active:
    """Runs (and GPU runs) running or handed out and not yet claimed, by owner and
    project (a batched group once); and the GPU-hours used over the last 24 hours."""
    active = Active()
    rows = session.execute(
        select(Run.submitted_by, Run.project_id, Run.gpus).where(
            watched_alone(),
            or_(
                Run.status == RunStatus.running,
                (Run.status == RunStatus.queued) & Run.enqueued_at.is_not(None),
            ),
        )
    ).all()
    for owner, project, gpus in rows:
        active.add(owner, project, gpus)
    for owner, project, hours in _gpu_hours_used(session, now):
        active.add_gpu_hours(owner, project, hours)
    return active


def _gpu_hours_used(session: Session, now: datetime) -> list[tuple[uuid.UUID, uuid.UUID, float]]:
    """(owner, project, GPU-hours) of each run that held GPUs within the last 24 hours: a
    solo run or a batched group (its members share its GPUs, never counted again). A
    running run counts up to now; one that succeeded or failed, up to its end; any other
    (lost and requeued, or cancelled while queued again) up to its last heartbeat, which
    has not moved since. Only a run's latest attempt counts (a claim restamps
    `started_at`)."""
    day_ago = now - GPU_HOURS_WINDOW
    rows = session.execute(
        select(
            Run.submitted_by,
            Run.project_id,
            Run.gpus,
            Run.status,
            Run.started_at,
            Run.heartbeat_at,
            Run.finished_at,
        ).where(
            Run.gpus > 0,
            Run.group_id.is_(None),
            Run.started_at.is_not(None),
            or_(
                Run.status == RunStatus.running,
                Run.heartbeat_at > day_ago,
                Run.finished_at > day_ago,
            ),
        )
    ).all()
    used = []
    for owner, project, gpus, status, started, beat, finished in rows:
        ended: datetime | None = None  # running: up to now
        if status in ENDED_RUNNING:
            ended = finished
        elif status is not RunStatus.running:  # queued again, or cancelled after that
            ended = beat or started
        used.append((owner, project, gpu_hours(gpus, started, ended, now)))
    return used


def gpu_hours(gpus: int, started: datetime, ended: datetime | None, now: datetime) -> float:
    """GPUs x hours of the run inside the last 24 hours (`ended` None: running, up to now).

    >>> from datetime import UTC
    >>> now = datetime(2026, 1, 2, 12, tzinfo=UTC)
    >>> gpu_hours(2, datetime(2026, 1, 2, 9, tzinfo=UTC), None, now)  # 3 h on 2 GPUs, running
    6.0
    >>> day_before = datetime(2025, 12, 31, tzinfo=UTC)
    >>> gpu_hours(1, day_before, datetime(2026, 1, 1, 14, tzinfo=UTC), now)  # 2 h in the window
    2.0
    """
    start = max(started, now - GPU_HOURS_WINDOW)
    end = ended if ended is not None else now
    return gpus * max(0.0, (end - start).total_seconds()) / 3600


def _quotas(settings: Settings) -> Quotas:
    return Quotas(
        per_user=settings.quota_runs_per_user,
        per_project=settings.quota_runs_per_project,
        gpu_runs_per_user=settings.quota_gpu_runs_per_user,
        gpu_runs_per_project=settings.quota_gpu_runs_per_project,
        gpu_hours_per_user=settings.quota_gpu_hours_per_user,
        gpu_hours_per_project=settings.quota_gpu_hours_per_project,
    )


def _note_reasons(
    session: Session,
    waiting: dict[uuid.UUID, str],
    published: Sequence[uuid.UUID],
    shown: dict[uuid.UUID, str | None],
) -> None:
    """Show why each run waits (`GET /v1/experiments/{id}`'s progress_message), without
    overwriting a message that is not the dispatcher's; clear it once handed out. Only
    the runs whose reason changed are written: most passes write nothing."""
    wanted: dict[uuid.UUID, str | None] = {**waiting, **dict.fromkeys(published)}
    by_reason: dict[str | None, list[uuid.UUID]] = {}
    for run_id, why in wanted.items():
        now_shown = shown.get(run_id)
        if why != now_shown and (now_shown is None or now_shown.startswith(WAITING)):
            by_reason.setdefault(why, []).append(run_id)
    for reason, all_ids in by_reason.items():
        # Written after the pass's lock is gone: a reason only on a run still waiting
        # (another process's pass may have handed it out since, or a worker claimed it).
        still_unpublished = (
            (Run.status == RunStatus.queued) & Run.enqueued_at.is_(None) if reason else true()
        )
        for start in range(0, len(all_ids), REASON_BATCH):
            ids = all_ids[start : start + REASON_BATCH]
            session.execute(
                update(Run)
                .where(
                    Run.id.in_(ids),
                    still_unpublished,
                    or_(Run.progress_message.is_(None), Run.progress_message.like(f"{WAITING}%")),
                    Run.progress_message.is_distinct_from(reason),  # no write when unchanged
                )
                .values(progress_message=reason)
                .execution_options(synchronize_session=False)
            )


class DispatcherThread(threading.Thread):
    """Runs `dispatch_pass` every `settings.dispatch_interval_s`, or at once when woken
    (`wake`: a submission to this process), until stopped; never dies of an error (a
    database or broker outage: the next pass tries again)."""

    def __init__(
        self, sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings
    ) -> None:
        super().__init__(name="memlab-dispatcher", daemon=True)
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self._woken = threading.Event()
        self._stopped = False

    def run(self) -> None:
        interval = self.settings.dispatch_interval_s
        last_full = time.monotonic()
        while True:
            self._woken.wait(interval)
            self._woken.clear()
            if self._stopped:
                return
            # Between full passes (one per interval, whatever the wakes), a woken pass
            # goes on only if a slot is free: a burst of submissions does not make the
            # API process read every waiting run once per request.
            full = time.monotonic() - last_full >= interval
            if full:
                last_full = time.monotonic()
            try:
                dispatch_pass(self.sessions, self.dispatcher, self.settings, only_if_free=not full)
            except Exception as error:
                log.warning("dispatcher pass failed (will retry): %s", error)

    def wake(self) -> None:
        """Run a pass now rather than at the next interval."""
        self._woken.set()

    def stop(self) -> None:
        self._stopped = True
        self._woken.set()
