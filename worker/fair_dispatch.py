"""The fair dispatcher (MEMLAB_DISPATCH=fair): the one place that hands queued runs to the
broker, as many as the live worker nodes have free slots, in fair-share order
(worker/fair_share.py). Submissions only commit their runs; a pass here publishes them.

Every API process runs passes (`DispatcherThread`), but on PostgreSQL each pass first
takes a transaction-level advisory lock and a process that does not get it skips the
pass: one dispatcher at a time, and when the one that held the lock dies its transaction
ends, the lock is free and the next pass anywhere takes over. The embedded default
(SQLite) has one server process, which is the dispatcher.

Slots come from the worker registry (store/workers.py): each live node that is not
draining offers `concurrency` minus its busy processes, less the runs already handed out
on its queues and not yet claimed. A batched group takes one slot.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from store import runs, workers
from store.db import transaction
from store.models import Run, RunStatus
from store.settings import Settings
from store.sweeps import still_waiting
from worker.dispatch import Dispatcher
from worker.fair_share import Active, Candidate, Choice, NodeSlots, Quotas, choose
from worker.reaper import watched_alone

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x6D656D6C  # "meml": the dispatcher's PostgreSQL advisory lock
WAITING = "waiting"  # the start of every reason this module writes in progress_message
REASON_BATCH = 1000  # ids per UPDATE: PostgreSQL's driver takes at most 65,535 parameters


def dispatch_pass(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings
) -> Choice | None:
    """Publish what the free slots can take, note why the rest waits; None when another
    process holds the dispatcher's lock.

    The chosen runs are marked handed out and committed before they are published: a
    worker may claim a run the moment its message is out, and a run marked but never
    published (the process died in between) is one the reaper republishes, whereas one
    published but never marked would be published again by the next pass.
    """
    with transaction(sessions) as session:
        if not _lead(session):
            return None
        nodes, offered = _free_slots(session, settings)
        candidates, shown = _candidates(session)
        if not candidates:
            return Choice()
        quotas = Quotas(settings.quota_runs_per_user, settings.quota_runs_per_project)
        active = _active(session)
        choice = choose(candidates, nodes, _last_use(session), active, quotas, offered)
        for run in choice.publish:
            runs.mark_enqueued(session, run.id)
    published = _publish(sessions, dispatcher, choice.publish)
    with transaction(sessions) as session:
        _note_reasons(session, choice.waiting, published, shown)
    if choice.publish:
        log.info("dispatcher: published %d, %d waiting", len(published), len(choice.waiting))
    return choice


def _publish(
    sessions: sessionmaker[Session], dispatcher: Dispatcher, chosen: Sequence[Candidate]
) -> list[uuid.UUID]:
    """Hand the marked runs to the broker, stopping at its first refusal: those not taken
    are unmarked, for a later pass."""
    published: list[uuid.UUID] = []
    for index, run in enumerate(chosen):
        if not dispatcher.enqueue(run.id, run.queue):
            with transaction(sessions) as session:
                runs.unmark_enqueued(session, [left.id for left in chosen[index:]])
            break
        published.append(run.id)
    return published


def _lead(session: Session) -> bool:
    """Whether this pass is the dispatcher: the advisory lock on PostgreSQL, held until the
    pass's transaction ends."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
    )
    return bool(locked.scalar())


def _free_slots(session: Session, settings: Settings) -> tuple[list[NodeSlots], set[str]]:
    """The live, undrained nodes' free slots, less the runs handed out and not yet
    claimed; and every queue those nodes take, free or not."""
    nodes = [
        NodeSlots(
            state.worker.name,
            frozenset(state.worker.queues),
            state.worker.concurrency - workers.busy_slots(state),
        )
        for state in workers.worker_states(session, settings.heartbeat_stale_s)
        if state.live and state.worker.drain_requested_at is None
    ]
    offered = {queue for node in nodes for queue in node.queues}
    handed_out = session.scalars(
        select(Run.queue)
        .where(Run.status == RunStatus.queued, Run.enqueued_at.is_not(None), watched_alone())
        .order_by(Run.created_at)
    ).all()
    takers = {queue: sum(queue in node.queues for node in nodes) for queue in set(handed_out)}
    # Each handed-out run will take a slot of a node consuming its queue: those of queues
    # fewer nodes take first, each from the node with the most room.
    for queue in sorted(handed_out, key=lambda queue: takers[queue]):
        room = [node for node in nodes if queue in node.queues and node.free > 0]
        if room:
            max(room, key=lambda node: node.free).free -= 1
    return [node for node in nodes if node.free > 0], offered


def _candidates(session: Session) -> tuple[list[Candidate], dict[uuid.UUID, str | None]]:
    """The runs waiting to be handed out, and the progress message each shows now."""
    rows = session.execute(
        select(
            Run.id,
            Run.queue,
            Run.submitted_by,
            Run.project_id,
            Run.created_at,
            Run.progress_message,
        ).where(
            Run.status == RunStatus.queued,
            Run.enqueued_at.is_(None),
            watched_alone(),
            ~still_waiting(),  # a probe of shadow models waits for their sweep to end
        )
    ).all()
    return [Candidate(*row[:5]) for row in rows], {row[0]: row[5] for row in rows}


def _last_use(session: Session) -> dict[uuid.UUID, Any]:
    """When each owner last had a run handed out."""
    rows = session.execute(
        select(Run.submitted_by, func.max(Run.enqueued_at))
        .where(Run.enqueued_at.is_not(None))
        .group_by(Run.submitted_by)
    )
    return {owner: used for owner, used in rows}


def _active(session: Session) -> Active:
    """Runs running or handed out and not yet claimed, by owner and project (a batched
    group once)."""
    rows = session.execute(
        select(Run.submitted_by, Run.project_id).where(
            watched_alone(),
            or_(
                Run.status == RunStatus.running,
                (Run.status == RunStatus.queued) & Run.enqueued_at.is_not(None),
            ),
        )
    ).all()
    return Active(Counter(owner for owner, _ in rows), Counter(project for _, project in rows))


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
        for start in range(0, len(all_ids), REASON_BATCH):
            ids = all_ids[start : start + REASON_BATCH]
            session.execute(
                update(Run)
                .where(
                    Run.id.in_(ids),
                    or_(Run.progress_message.is_(None), Run.progress_message.like(f"{WAITING}%")),
                    Run.progress_message.is_distinct_from(reason),  # no write when unchanged
                )
                .values(progress_message=reason)
                .execution_options(synchronize_session=False)
            )


class DispatcherThread(threading.Thread):
    """Runs `dispatch_pass` every `settings.dispatch_interval_s` until stopped; never dies
    of an error (a database or broker outage: the next pass tries again)."""

    def __init__(
        self, sessions: sessionmaker[Session], dispatcher: Dispatcher, settings: Settings
    ) -> None:
        super().__init__(name="memlab-dispatcher", daemon=True)
        self.sessions = sessions
        self.dispatcher = dispatcher
        self.settings = settings
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.settings.dispatch_interval_s):
            try:
                dispatch_pass(self.sessions, self.dispatcher, self.settings)
            except Exception as error:
                log.warning("dispatcher pass failed (will retry): %s", error)

    def stop(self) -> None:
        self._stop_event.set()


class DeferredDispatcher:
    """What submissions publish through in fair mode: nothing. The run stays committed
    as queued and unpublished, for the dispatcher's next pass."""

    def __init__(self, broker: Dispatcher) -> None:
        self.broker = broker

    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        return False

    def ping(self) -> bool:
        return self.broker.ping()

    def queue_length(self, queue: str) -> int | None:
        return self.broker.queue_length(queue)
