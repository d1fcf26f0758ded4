"""A worker node in the registry: its row written when it is ready, a heartbeat while it
runs, and `stopped_at` when it shuts down (store/workers.py). Connected to Celery's
signals by worker/celery_app.py, in the node's main process.

The node's name reaches its pool processes through MEMLAB_WORKER_NODE, set before the
pool forks, so they claim runs as `<node>:<8 hex>` (worker/tasks.py) and the API can
tell which node runs what.

Devices come from `memlab worker --devices` (MEMLAB_WORKER_DEVICES, e.g. "H100:80,H100:80":
a name and GiB per device, so routing can be tested without a GPU), else from
`nvidia-smi`. Never from torch here: CUDA must not be initialised in a prefork parent.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    worker_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from store import workers
from store.db import make_engine, make_session_factory, transaction
from store.settings import Settings
from worker.celery_config import NODE_QUEUE_PREFIX, node_queue

log = logging.getLogger(__name__)

NODE_ENV = "MEMLAB_WORKER_NODE"
DEVICES_ENV = "MEMLAB_WORKER_DEVICES"


def declared_devices(text: str) -> list[dict[str, Any]]:
    """Devices from `NAME:GiB,NAME:GiB`, indexed in order.

    >>> [d["name"] for d in declared_devices("H100:80, A10:24")]
    ['H100', 'A10']
    >>> declared_devices("H100:80")
    [{'index': 0, 'name': 'H100', 'memory_gib': 80.0}]
    """
    devices = []
    for index, item in enumerate(part.strip() for part in text.split(",") if part.strip()):
        name, _, memory = item.rpartition(":")
        try:
            memory_gib = float(memory)
        except ValueError:
            memory_gib = -1.0
        if not name or memory_gib <= 0:
            raise ValueError(
                f"device {item!r}: write NAME:GiB, e.g. H100:80 (a name and its memory in GiB)"
            )
        devices.append({"index": index, "name": name, "memory_gib": memory_gib})
    return devices


def detected_devices() -> list[dict[str, Any]]:
    """The GPUs `nvidia-smi` lists (those CUDA_VISIBLE_DEVICES allows); none without it."""
    if shutil.which("nvidia-smi") is None:
        return []
    query = ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits"]
    try:
        listed = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True)
    except (subprocess.SubprocessError, OSError) as error:
        log.warning("nvidia-smi failed, registering no GPU: %s", error)
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    allowed = {part.strip() for part in visible.split(",")} if visible is not None else None
    devices = []
    for line in listed.stdout.strip().splitlines():
        index, name, memory_mib = (field.strip() for field in line.split(","))
        if allowed is None or index in allowed:
            devices.append(
                {"index": int(index), "name": name, "memory_gib": int(memory_mib) / 1024}
            )
    return devices


def node_devices() -> list[dict[str, Any]]:
    declared = os.environ.get(DEVICES_ENV)
    return declared_devices(declared) if declared else detected_devices()


def memlab_version() -> str:
    try:
        return version("memlab")
    except PackageNotFoundError:
        return "unknown"


class NodeHeartbeat:
    """The node's row and its heartbeat thread, from ready to shutdown.

    A drain asked for in the row (`memlab worker --drain`) makes the heartbeat call
    `drain` once: by default a SIGTERM to this process, Celery's warm shutdown, which
    takes no new message, lets the running ones finish and exits; what the node had
    reserved but not started goes back to the broker (and the dispatcher hands out again
    any run left unclaimed on a node that drains), so nothing is lost.
    """

    def __init__(
        self,
        registration: workers.Registration,
        settings: Settings,
        drain: Callable[[], None] | None = None,
    ) -> None:
        self.registration = registration
        self.drain = drain or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self.draining = False
        self.interval_s = settings.heartbeat_interval_s
        # No pooled connection: nothing open is inherited by pool processes forked later.
        engine = make_engine(settings.resolved_database_url, poolclass=NullPool)
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="memlab-node", daemon=True)

    def start(self) -> None:
        """Register now, and beat from now on; a failed registration (the database is
        down) is made again by the heartbeat, which always starts."""
        try:
            with transaction(self.sessions) as session:
                workers.register(session, self.registration)
        except Exception as error:
            log.warning("could not register worker %s yet: %s", self.registration.name, error)
        self._thread.start()

    def mark_draining(self) -> None:
        """The node is shutting down (SIGTERM): show it draining, so the dispatcher hands
        it nothing more while its runs finish."""
        self.draining = True
        try:
            with transaction(self.sessions) as session:
                workers.request_drain(session, self.registration.name)
        except Exception as error:
            log.warning("could not mark worker %s draining: %s", self.registration.name, error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s)
        try:
            with transaction(self.sessions) as session:
                workers.mark_stopped(session, self.registration.name)
        except Exception as error:  # the database is down: the row goes stale instead
            log.warning("could not mark worker %s stopped: %s", self.registration.name, error)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with transaction(self.sessions) as session:
                    row = workers.beat(session, self.registration.name)
                    if row is None:  # never registered (the database was down), or removed
                        row = workers.register(session, self.registration)
                    drain_asked = row.drain_requested_at is not None
            except Exception as error:  # the database is down: the next beat may succeed
                log.warning("worker heartbeat failed: %s", error)
                continue
            if drain_asked and not self.draining:
                log.warning(
                    "worker %s: drain asked; finishing its runs, then exiting",
                    self.registration.name,
                )
                self.draining = True
                self.drain()


_node: dict[str, Any] = {}  # this process's registration and heartbeat, between signals


@worker_init.connect
def _name_the_node(sender: Any, **_: Any) -> None:
    """Before the pool forks: tell its processes the node's name; note what it offers."""
    os.environ[NODE_ENV] = sender.hostname
    _node["controller"] = sender


@celeryd_after_setup.connect
def _consume_own_queue(sender: str, instance: Any, **_: Any) -> None:
    """Also consume the node's own queue, where the dispatcher sends the runs that need
    this node's GPUs (`sender` is the node's name)."""
    instance.app.amqp.queues.select_add(node_queue(sender))


@worker_ready.connect
def _register(**_: Any) -> None:
    """Once the pool is up (its size resolved, even for `--concurrency auto`): the row."""
    controller = _node.get("controller")
    if controller is None:
        return
    heartbeat = NodeHeartbeat(registration_of(controller), Settings())
    heartbeat.start()
    _node["heartbeat"] = heartbeat


def registration_of(controller: Any) -> workers.Registration:
    """What a Celery WorkController offers: its queues, devices and pool size."""
    queues = controller.app.amqp.queues
    try:
        devices = node_devices()
    except ValueError as error:  # a bad MEMLAB_WORKER_DEVICES: register, without devices
        log.error("%s: %s", DEVICES_ENV, error)
        devices = []
    return workers.Registration(
        name=controller.hostname,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        queues=sorted(
            name
            for name in (queues.consume_from or queues)
            if not name.startswith(NODE_QUEUE_PREFIX)  # its own: not a queue it shares
        ),
        devices=devices,
        concurrency=int(controller.concurrency),
        version=memlab_version(),
    )


@worker_shutting_down.connect
def _draining(**_: Any) -> None:
    """A warm shutdown began (SIGTERM, `memlab worker --drain`): no new run, show it."""
    heartbeat = _node.get("heartbeat")
    if heartbeat is not None and not heartbeat.draining:
        heartbeat.mark_draining()


@worker_shutdown.connect
def _unregister(**_: Any) -> None:
    heartbeat = _node.pop("heartbeat", None)
    if heartbeat is not None:
        heartbeat.stop()
