"""What `GET /metrics` reads from the database at each scrape, in one short session:
runs by status, queue depths, worker nodes and their busy slots, and the dispatch-latency
and run-duration histograms.

The two histograms count what this API process has seen since it started: each scrape
feeds them the runs that started or ended since the one before (`EventLog`), and the
first scrape starts from the app's start time, so a new process does not replay history
as a burst. Every API process reads the same table, so each counts every run: read one
process's histograms, not the sum over processes.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from store import workers
from store.models import Run, RunStatus, utcnow
from worker.celery_config import QUEUES

log = logging.getLogger(__name__)

GaugeReader = Callable[[Session], Metric]

# How long after its timestamp a run's start or end may still become visible and be
# counted: workers stamp `started_at` and `finished_at` with their own clocks, inside
# transactions that commit later, so a scrape can read a run that started after one it
# has not seen yet.
SETTLE = timedelta(minutes=5)

# Runs wait seconds to hours for a slot, and last seconds to the 7-day wall-time cap.
DISPATCH_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600)
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 3 * 86400)


def runs_by_status(session: Session) -> Metric:
    """`memlab_runs`: runs per status, kind and run type. Every status of a (kind, run
    type) that has runs is exported, so a series falls to 0 instead of vanishing."""
    rows = session.execute(
        select(Run.kind, Run.run_type, Run.status, func.count()).group_by(
            Run.kind, Run.run_type, Run.status
        )
    ).tuples()
    counts = {(kind, run_type.value, status.value): n for kind, run_type, status, n in rows}
    family = GaugeMetricFamily(
        "memlab_runs", "Runs in each status.", labels=("status", "kind", "run_type")
    )
    for kind, run_type in sorted({(kind, run_type) for kind, run_type, _ in counts}):
        for status in RunStatus:
            count = counts.get((kind, run_type, status.value), 0)
            family.add_metric([status.value, kind, run_type], count)
    return family


def queue_depth(session: Session) -> Metric:
    """`memlab_queue_depth`: queued runs per queue, each known queue exported even when empty.

    A group's members wait inside their group, which takes one slot, so they are left out.
    """
    depths = dict.fromkeys(QUEUES, 0) | workers.runs_by_queue(session, RunStatus.queued)
    family = GaugeMetricFamily("memlab_queue_depth", "Queued runs per queue.", labels=("queue",))
    for queue, depth in sorted(depths.items()):
        family.add_metric([queue], depth)
    return family


def worker_gauges(session: Session, stale_s: float) -> list[Metric]:
    """`memlab_workers{state}`: registered nodes not stopped, live or silent (heartbeat
    older than `stale_s`); `memlab_worker_slots{state}`: the live nodes' pool processes,
    busy or idle (a batched group holds one slot)."""
    states = workers.worker_states(session, stale_s)
    nodes = GaugeMetricFamily("memlab_workers", "Worker nodes not stopped.", labels=("state",))
    live = [state for state in states if state.live]
    nodes.add_metric(["live"], len(live))
    nodes.add_metric(["silent"], len(states) - len(live))
    busy = sum(workers.busy_slots(state) for state in live)
    total = sum(state.worker.concurrency for state in live)
    slots = GaugeMetricFamily(
        "memlab_worker_slots", "Pool processes of live worker nodes.", labels=("state",)
    )
    slots.add_metric(["busy"], busy)
    slots.add_metric(["idle"], max(total - busy, 0))
    return [nodes, slots]


# The gauges read from the database at each scrape: a new one is a function from a
# session to a metric family, named here.
GAUGE_READERS: tuple[GaugeReader, ...] = (runs_by_status, queue_depth)


@dataclass(frozen=True)
class RunEvent:
    """A run's start or end: when, the time it measures, and the histogram's labels."""

    run_id: uuid.UUID
    at: datetime
    seconds: float
    labels: tuple[str, ...]
    waited: float = 0.0  # a start's: from submission to the claim


class EventLog:
    """Which run events a histogram has counted, so that each counts once.

    A scrape reads the events stamped since `since()`: from `SETTLE` before the newest
    one seen (never before the process started), so an event whose transaction committed
    after a later one was read is still counted. The events already counted in that
    window are remembered and skipped.
    """

    def __init__(self, started: datetime) -> None:
        self._started = started
        self._newest = started
        self._counted: set[tuple[uuid.UUID, datetime]] = set()

    def since(self) -> datetime:
        return max(self._started, self._newest - SETTLE)

    def take(self, events: Iterable[RunEvent]) -> list[RunEvent]:
        """The events not counted before, now counted."""
        new = [event for event in events if (event.run_id, event.at) not in self._counted]
        for event in new:
            self._counted.add((event.run_id, event.at))
            self._newest = max(self._newest, event.at)
        since = self.since()
        self._counted = {(run_id, at) for run_id, at in self._counted if at >= since}
        return new


def run_starts(session: Session, since: datetime) -> list[RunEvent]:
    """Claims since `since` of runs published to the broker; a group's members, never
    published themselves, are left out (their group is)."""
    rows = session.execute(
        select(Run.id, Run.started_at, Run.enqueued_at, Run.created_at, Run.queue).where(
            Run.started_at >= since, Run.enqueued_at.is_not(None)
        )
    ).tuples()
    # The dispatcher stamps enqueued_at and a worker started_at, each by its own clock: a
    # skew must not make a latency negative.
    return [
        RunEvent(
            run_id,
            started,
            max(0.0, (started - enqueued).total_seconds()),
            (queue,),
            waited=max(0.0, (started - created).total_seconds()),
        )
        for run_id, started, enqueued, created, queue in rows
        if started is not None and enqueued is not None
    ]


def run_ends(session: Session, since: datetime) -> list[RunEvent]:
    """Runs that ended since `since` after a worker claimed them (a run cancelled while
    queued has no duration)."""
    rows = session.execute(
        select(Run.id, Run.finished_at, Run.started_at, Run.status, Run.run_type).where(
            Run.finished_at >= since, Run.started_at.is_not(None)
        )
    ).tuples()
    return [
        RunEvent(
            run_id, finished, (finished - started).total_seconds(), (status.value, run_type.value)
        )
        for run_id, finished, started, status, run_type in rows
        if finished is not None and started is not None
    ]


def database_up(read: bool) -> Metric:
    family = GaugeMetricFamily("memlab_database_up", "1 when this scrape read the database.")
    family.add_metric([], 1 if read else 0)
    return family


class DatabaseCollector:
    """Reads the gauges and feeds the histograms from the database when it is scraped."""

    def __init__(self, sessions: sessionmaker[Session], stale_s: float) -> None:
        """`stale_s`: a worker silent this long is not live (`heartbeat_stale_s`)."""
        self._sessions = sessions
        self._stale_s = stale_s
        # Two scrapes at once must not both count the same events.
        self._lock = threading.Lock()
        started = utcnow()
        self._dispatch_latency = Histogram(
            "memlab_dispatch_latency_seconds",
            "From a run's publication to the broker to its claim by a worker, for the "
            "claims this API process has seen since it started.",
            ("queue",),
            buckets=DISPATCH_BUCKETS,
            registry=None,
        )
        self._queue_wait = Histogram(
            "memlab_queue_wait_seconds",
            "From a run's submission to its claim by a worker (the time it waited for the "
            "dispatcher, a slot and a quota, then the broker), for the claims this API "
            "process has seen since it started.",
            ("queue",),
            buckets=DISPATCH_BUCKETS,
            registry=None,
        )
        self._run_duration = Histogram(
            "memlab_run_duration_seconds",
            "From a run's claim to its end, for the runs this API process has seen end "
            "since it started.",
            ("status", "run_type"),
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self._starts = EventLog(started)
        self._ends = EventLog(started)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                gauges = self._read()
            except SQLAlchemyError:
                # The request latencies are still worth a scrape while the database is down.
                log.warning("metrics: the database could not be read", exc_info=True)
                yield database_up(False)
                return
            yield database_up(True)
            yield from gauges
            yield from self._dispatch_latency.collect()
            yield from self._queue_wait.collect()
            yield from self._run_duration.collect()

    def _read(self) -> list[Metric]:
        with self._sessions() as session:
            gauges = [read(session) for read in GAUGE_READERS]
            gauges += worker_gauges(session, self._stale_s)
            starts = run_starts(session, self._starts.since())
            ends = run_ends(session, self._ends.since())
        # Fed only after every read succeeded: a failed scrape neither counts nor skips any.
        for event in self._starts.take(starts):
            self._dispatch_latency.labels(*event.labels).observe(event.seconds)
            self._queue_wait.labels(*event.labels).observe(event.waited)
        for event in self._ends.take(ends):
            self._run_duration.labels(*event.labels).observe(event.seconds)
        return gauges
