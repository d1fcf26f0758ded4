"""How memlab configures Celery for long GPU jobs; builds apps, imports no task code.

The API builds a client app from its own settings and publishes by task name; the
worker's app (with the tasks) lives in `worker.celery_app`.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from store.settings import Settings

RUN_EXPERIMENT_TASK = "memlab.run_experiment"
QUEUES = ("cpu", "gpu")
NODE_QUEUE_PREFIX = "memlab.node."


def node_queue(node: str) -> str:
    """The queue only `node` consumes (worker/registry.py adds it when the node starts):
    where the dispatcher sends a run that needs that node's GPUs."""
    return f"{NODE_QUEUE_PREFIX}{node}"


def create_celery(settings: Settings) -> Celery:
    """A Celery app for `settings`; the worker imports `worker.tasks` through `include`."""
    app = Celery("memlab", broker=settings.resolved_broker_url, include=["worker.tasks"])
    visibility = {"visibility_timeout": settings.visibility_timeout_s}
    app.conf.update(
        # A message is acknowledged only after the run ends, and given back if the worker
        # process dies, so an OOM-killed run is redelivered rather than lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One run at a time per process: prefetching would park runs behind a long one.
        worker_prefetch_multiplier=1,
        # Redis redelivers unacknowledged messages after the visibility timeout; it must
        # exceed the longest run, and Celery reads it in these three places.
        broker_transport_options=_broker_transport_options(settings),
        result_backend_transport_options=visibility,
        visibility_timeout=settings.visibility_timeout_s,
        # The database is the source of truth; Celery keeps no results.
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="cpu",
        task_routes={RUN_EXPERIMENT_TASK: {"queue": "cpu"}},
        broker_connection_retry_on_startup=True,
        # Publishing must fail fast so the API can answer; the run stays queued in the DB.
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2},
        broker_connection_timeout=3,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
    )
    return app


def _broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.resolved_broker_url.startswith("sqla+"):
        # kombu's SQLAlchemy transport hands its options to create_engine(); it has no
        # visibility timeout (the reaper covers lost runs) and polls once a second.
        return {"connect_args": {"timeout": 30}}
    return {"visibility_timeout": settings.visibility_timeout_s}
