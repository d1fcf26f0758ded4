"""Hands committed experiment ids to the broker by task name; used by the dispatcher
(worker/fair_dispatch.py), and by the API for the broker's health and queue lengths."""

from __future__ import annotations

import logging
import uuid
from typing import Protocol

from celery import Celery
from kombu.exceptions import ChannelError

from worker.celery_config import RUN_EXPERIMENT_TASK

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        """Publish the run; False if the broker did not take it (the run stays queued)."""

    def ping(self) -> bool:
        """True when the broker answers."""

    def queue_length(self, queue: str) -> int | None:
        """Messages waiting in `queue`, or None when the broker cannot say."""


class CeleryDispatcher:
    """Publishes `memlab.run_experiment(id)` to the run's queue."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery

    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        try:
            self.celery.send_task(RUN_EXPERIMENT_TASK, args=[str(experiment_id)], queue=queue)
        except Exception as error:  # any broker failure: the database still holds the run
            log.warning("could not enqueue experiment %s: %s", experiment_id, error)
            return False
        return True

    def ping(self) -> bool:
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=3)
        except Exception as error:
            log.warning("broker ping failed: %s", error)
            return False
        return True

    def queue_length(self, queue: str) -> int | None:
        try:
            with self.celery.connection_for_read() as connection:
                declared = connection.default_channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            return 0  # the broker has no such queue (a restarted Redis): nothing waits in it
        except Exception as error:
            log.warning("could not measure queue %s: %s", queue, error)
            return None
        return int(declared.message_count)


class RecordingDispatcher:
    """A dispatcher without a broker, for tests and benchmarks: records each run it is
    handed, or refuses all (`accept=False`, a broker that is down); every queue reports
    `waiting` messages."""

    def __init__(self, accept: bool = True, waiting: int = 0) -> None:
        self.accept = accept
        self.waiting = waiting
        self.sent: list[tuple[uuid.UUID, str]] = []

    @property
    def published(self) -> list[uuid.UUID]:
        """The ids handed over, in order."""
        return [experiment_id for experiment_id, _ in self.sent]

    def enqueue(self, experiment_id: uuid.UUID, queue: str) -> bool:
        if self.accept:
            self.sent.append((experiment_id, queue))
        return self.accept

    def ping(self) -> bool:
        return self.accept

    def queue_length(self, queue: str) -> int | None:
        return self.waiting
