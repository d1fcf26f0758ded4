"""What one dispatcher pass costs (worker/fair_dispatch.py) as the
queue grows: the dispatcher runs a pass every second, so a pass must stay well under that.

For each queue size it fills a scratch PostgreSQL database (or a SQLite file with
`--stack embedded`) with `--history` finished runs and N queued, unpublished ones from
`--users` submitters, registers one live worker node of `--slots` processes, then times
`--passes` passes with a broker that only records. After each pass the runs it handed out
are marked finished, so every pass has the node's slots to fill (the busiest case).

    python bench/dispatch.py                              # 1,000 and 10,000 queued
    python bench/dispatch.py --queued 100000 --passes 10
    python bench/dispatch.py --stack embedded

PostgreSQL comes from MEMLAB_TEST_POSTGRES_URL (a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, update

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.api_load import TINY_SPEC, percentile, scratch_database
from store import identity, workers
from store.db import make_engine, make_session_factory, migrate, transaction
from store.models import Run, RunStatus, utcnow
from store.settings import Settings
from worker.dispatch import RecordingDispatcher
from worker.fair_dispatch import dispatch_pass


@contextmanager
def database(stack: str) -> Iterator[str]:
    if stack == "shared":
        with scratch_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'memlab.db'}"
        migrate(url)
        yield url


def fill(url: str, queued: int, history: int, users: int, slots: int) -> None:
    """The submitters, their finished and queued runs, and one live node."""
    sessions = make_session_factory(make_engine(url))
    with transaction(sessions) as session:
        owners = []
        for index in range(users):
            user, _ = identity.create_user(session, f"user{index}")
            owners.append((user.id, identity.personal_project(session, user.id)))
        workers.register(
            session, workers.Registration("bench@box", "box", 1, ["cpu"], [], slots, "bench")
        )
    now = utcnow()
    rows = []
    for index in range(history + queued):
        owner, project = owners[index % users]
        finished = index < history
        rows.append(
            {
                "id": uuid.uuid4(),
                "kind": "capacity_tradeoff",
                "spec": TINY_SPEC,
                "spec_hash": f"{index:064x}",
                "status": RunStatus.succeeded if finished else RunStatus.queued,
                "queue": "cpu",
                "attempts": 1 if finished else 0,
                "cancel_requested": False,
                "progress": 1.0 if finished else 0.0,
                "created_at": now - timedelta(seconds=history + queued - index),
                "enqueued_at": now - timedelta(seconds=history - index) if finished else None,
                "project_id": project,
                "submitted_by": owner,
            }
        )
    with make_engine(url).begin() as connection:
        for start in range(0, len(rows), 5000):
            connection.execute(insert(Run), rows[start : start + 5000])


def time_passes(url: str, passes: int, settings: Settings) -> tuple[list[float], list[int]]:
    """Milliseconds per pass, and runs handed out per pass."""
    sessions = make_session_factory(make_engine(url))
    broker = RecordingDispatcher()  # takes every message, publishes nothing
    timings, handed = [], []
    for _ in range(passes):
        with transaction(sessions) as session:  # the node beats, as a live one does
            workers.beat(session, "bench@box")
        before = len(broker.published)
        started = time.perf_counter()
        dispatch_pass(sessions, broker, settings)
        timings.append((time.perf_counter() - started) * 1000)
        out = broker.published[before:]
        handed.append(len(out))
        with transaction(sessions) as session:  # those runs ran and ended: slots free again
            session.execute(
                update(Run)
                .where(Run.id.in_(out))
                .values(status=RunStatus.succeeded, finished_at=utcnow())
            )
    return timings, handed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", default="1000,10000", help="Comma-separated queue sizes.")
    parser.add_argument("--history", type=int, default=10_000, help="Finished runs beside them.")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--stack", choices=("shared", "embedded"), default="shared")
    args = parser.parse_args()
    print(f"machine: {platform.node()}, Python {platform.python_version()}, {args.stack} stack")
    header = "| queued | finished | submitters | slots | pass ms p50 | p95 | max | handed out |"
    print(f"\n{header}")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    settings = Settings()
    for queued in (int(size) for size in args.queued.split(",")):
        with database(args.stack) as url:
            fill(url, queued, args.history, args.users, args.slots)
            timings, handed = time_passes(url, args.passes, settings)
        print(
            f"| {queued:,} | {args.history:,} | {args.users} | {args.slots} "
            f"| {statistics.median(timings):.1f} | {percentile(timings, 0.95):.1f} "
            f"| {max(timings):.1f} | {statistics.median(handed):.0f} |"
        )


if __name__ == "__main__":
    main()
