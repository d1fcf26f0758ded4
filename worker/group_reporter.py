"""The reporters of a batched group's members, whose database writes are made together.

A solo run's reporter writes its progress at most twice a second, reads its cancel flag
once a second and flushes its metrics every few seconds. K members doing the same in one
group would cost the database K times what one run costs, for the same wall time: on
PostgreSQL, with a commit per write, that was most of what the service added to a
32-member group (bench/sweep.py). Here the members' progress goes in one transaction,
their cancel flags come from one query and their metrics are flushed in one transaction,
each on the solo reporter's clock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store import repository, runs
from store.models import Run
from worker.context import RunContext
from worker.reporter import (
    MAX_BUFFERED_POINTS,
    PROGRESS_INTERVAL_S,
    DatabaseReporter,
    RunSupersededError,
)


class GroupWrites:
    """What a group's member reporters write, gathered and written together."""

    def __init__(
        self,
        context: RunContext,
        superseded: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.context = context
        self.superseded = superseded
        self.clock = clock
        self.members: dict[uuid.UUID, MemberReporter] = {}
        self._progress: dict[uuid.UUID, tuple[float, str]] = {}
        self._cancelled: set[uuid.UUID] = set()
        self._last_progress = float("-inf")
        self._last_cancel_check = float("-inf")
        self._last_flush = clock()

    def reporter(self, run_id: uuid.UUID, deadline: float | None) -> MemberReporter:
        """A member's reporter, whose writes go through this group's."""
        reporter = MemberReporter(self, run_id, deadline)
        self.members[run_id] = reporter
        return reporter

    def forget(self, run_id: uuid.UUID) -> None:
        """A member that ended writes nothing more through the group."""
        self.members.pop(run_id, None)
        self._progress.pop(run_id, None)

    def progress(self, run_id: uuid.UUID, fraction: float, message: str) -> None:
        """Keep a member's progress; write every member's kept progress at most every
        PROGRESS_INTERVAL_S (and at once when one reaches the end)."""
        self._progress[run_id] = (fraction, message)
        now = self.clock()
        if fraction < 1.0 and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        pending, self._progress = self._progress, {}
        # Members step together: nearly always one point, and so one UPDATE, for all.
        at_point: dict[tuple[float, str], list[uuid.UUID]] = {}
        for member, point in pending.items():
            at_point.setdefault(point, []).append(member)
        worker = self.context.worker_name

        def record(session: Session) -> list[uuid.UUID]:
            return [
                lost
                for (done, text), members in at_point.items()
                for lost in runs.record_members_progress(session, members, done, text, worker)
            ]

        lost = self.context.write("recording the members' progress", record)
        if lost:
            self.superseded.set()
            raise RunSupersededError(f"experiments {lost} are no longer ours")

    def cancel_requested(self, run_id: uuid.UUID) -> bool:
        """Whether a member's cancel flag is set; every member's flag is read in one query
        at most every check interval."""
        now = self.clock()
        if now - self._last_cancel_check >= self.context.cancel_check_interval_s:
            self._last_cancel_check = now
            ids = list(self.members)
            self._cancelled = self.context.write(
                "checking the members for cancellation",
                lambda s: set(
                    s.scalars(select(Run.id).where(Run.id.in_(ids), Run.cancel_requested))
                ),
            )
        return run_id in self._cancelled

    def maybe_flush(self, reporter: MemberReporter) -> None:
        """Flush every member's metrics in one transaction when one member's buffer is
        full or the flush interval has passed."""
        if not (
            reporter.buffer_full()
            or self.clock() - self._last_flush >= self.context.flush_interval_s
        ):
            return
        buffers = {run_id: member.take_buffer() for run_id, member in self.members.items()}
        self.context.write(
            "writing the members' metrics", lambda s: repository.write_metrics_of(s, buffers)
        )
        self._last_flush = self.clock()


class MemberReporter(DatabaseReporter):
    """A group member's reporter: its own checkpoints and artifacts, as a solo run's; its
    progress, cancel checks and metric flushes through the group's `GroupWrites`."""

    def __init__(self, group: GroupWrites, run_id: uuid.UUID, deadline: float | None) -> None:
        context = group.context
        super().__init__(
            context.sessions,
            context.artifacts,
            run_id,
            worker=context.worker_name,
            superseded=group.superseded,
            flush_interval_s=context.flush_interval_s,
            cancel_check_interval_s=context.cancel_check_interval_s,
            db_retry_s=context.db_retry_s,
            deadline=deadline,
            clock=group.clock,
        )
        self.group = group

    def progress(self, fraction: float, message: str = "") -> None:
        if self.superseded.is_set():
            raise RunSupersededError(f"experiment {self.experiment_id} is no longer ours")
        self.group.progress(self.experiment_id, max(0.0, min(1.0, fraction)), message)

    def _maybe_flush(self) -> None:
        self.group.maybe_flush(self)

    def _cancel_asked(self, now: float) -> bool:
        return self.group.cancel_requested(self.experiment_id)

    def buffer_full(self) -> bool:
        return len(self._buffer) >= MAX_BUFFERED_POINTS

    def take_buffer(self) -> list[tuple[int, str, float | None]]:
        """The buffered points, handed over to be written; the buffer starts empty."""
        points, self._buffer = self._buffer, []
        return points
