"""Celery tasks: thin wrappers that hand an experiment id to `worker.runner`."""

from __future__ import annotations

import os
import socket
import uuid
from functools import cache

import torch

from store.artifacts import ArtifactStore
from store.db import make_engine, make_session_factory
from store.settings import Settings
from worker.celery_app import app
from worker.celery_config import RUN_EXPERIMENT_TASK
from worker.registry import NODE_ENV
from worker.runner import RunContext, execute_run


@cache
def _run_context() -> RunContext:
    # Built on first use inside the worker child process, never in the prefork parent, so
    # no database connection (or CUDA context) is shared across a fork.
    settings = Settings()
    settings.ensure_dirs()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    return RunContext(
        sessions=make_session_factory(make_engine(settings.resolved_database_url)),
        artifacts=ArtifactStore(settings.resolved_artifact_dir),
        # `<node>:<8 hex>`: the API finds a node's runs by its name (worker/registry.py).
        worker_name=f"{os.environ.get(NODE_ENV, socket.gethostname())}:{uuid.uuid4().hex[:8]}",
        flush_interval_s=settings.metrics_flush_interval_s,
        cancel_check_interval_s=settings.cancel_check_interval_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        db_retry_s=settings.db_retry_s,
        max_wall_s=settings.max_wall_s,
    )


@app.task(name=RUN_EXPERIMENT_TASK)
def run_experiment(experiment_id: str) -> str | None:
    """Execute the experiment with this id; returns its final status (None if not claimed)."""
    status = execute_run(_run_context(), uuid.UUID(experiment_id))
    return status.value if status else None
