"""A worker node's registration: its devices, declared or detected, and its row's life."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from store import workers
from store.db import make_engine, make_session_factory, migrate
from store.models import Worker
from store.settings import Settings
from worker import registry
from worker.celery_config import create_celery, node_queue


class _AllQueues(dict[str, object]):
    """Celery's queue map, as when the worker was given no --queues."""

    consume_from = None


@pytest.mark.parametrize("text", ["H100", "H100:", ":80", "H100:lots", "H100:0", "H100:-4"])
def test_a_declared_device_needs_a_name_and_its_memory(text: str) -> None:
    with pytest.raises(ValueError, match="NAME:GiB"):
        registry.declared_devices(text)


def test_devices_come_from_nvidia_smi_within_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(registry.shutil, "which", lambda _: None)
    assert registry.detected_devices() == []
    listing = "0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n"

    def fake_run(*_: Any, **__: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout=listing)

    monkeypatch.setattr(registry.shutil, "which", lambda _: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(registry.subprocess, "run", fake_run)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    (device,) = registry.detected_devices()
    assert device["index"] == 1 and device["name"] == "NVIDIA H100 80GB HBM3"
    assert device["memory_gib"] == pytest.approx(79.65, abs=0.01)
    monkeypatch.setenv(registry.DEVICES_ENV, "A10:24")
    assert registry.node_devices() == [{"index": 0, "name": "A10", "memory_gib": 24.0}]


def test_a_node_registers_beats_and_marks_itself_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'memlab.db'}"
    migrate(url)
    monkeypatch.setenv("MEMLAB_DATABASE_URL", url)
    monkeypatch.setenv(registry.DEVICES_ENV, "H100:80")
    monkeypatch.setenv(registry.NODE_ENV, "unset")  # restored after the test
    monkeypatch.setattr(registry, "_node", {})
    queues = SimpleNamespace(consume_from={"gpu": object()})
    sender = SimpleNamespace(
        hostname="gpu0@box", concurrency=1, app=SimpleNamespace(amqp=SimpleNamespace(queues=queues))
    )
    registry._name_the_node(sender)
    assert registry.os.environ[registry.NODE_ENV] == "gpu0@box"
    settings = Settings(heartbeat_interval_s=0.05)
    heartbeat = registry.NodeHeartbeat(registry.registration_of(sender), settings)
    sessions = make_session_factory(make_engine(url))
    heartbeat.start()
    try:
        with sessions() as session:
            row = session.get(Worker, "gpu0@box")
            assert row is not None and row.queues == ["gpu"] and row.stopped_at is None
            assert row.devices == [{"index": 0, "name": "H100", "memory_gib": 80.0}]
            first_beat = row.heartbeat_at
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sessions() as session:
                row = session.get(Worker, "gpu0@box")
                if row is not None and row.heartbeat_at > first_beat:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the heartbeat never moved")
    finally:
        heartbeat.stop()
    with sessions() as session:
        (state,) = workers.worker_states(session, stale_s=60, include_stopped=True)
        assert state.worker.stopped_at is not None and not state.live


def test_a_drain_asked_in_the_row_is_acted_on_once_at_the_next_heartbeat(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'memlab.db'}"
    migrate(url)
    registration = workers.Registration(
        name="n@box", hostname="box", pid=1, queues=["cpu"], devices=[], concurrency=1, version="x"
    )
    drains: list[float] = []
    settings = Settings(database_url=url, data_dir=tmp_path, heartbeat_interval_s=0.05)
    heartbeat = registry.NodeHeartbeat(registration, settings, drain=lambda: drains.append(1))
    sessions = make_session_factory(make_engine(url))
    heartbeat.start()
    try:
        time.sleep(0.2)
        assert drains == []
        with sessions.begin() as session:
            workers.request_drain(session, "n@box")
        deadline = time.monotonic() + 10
        while not drains and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # more heartbeats: still one drain
    finally:
        heartbeat.stop()
    assert drains == [1]


def test_a_node_registers_once_the_database_answers_and_shows_a_sigterm_drain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'memlab.db'}"  # not migrated yet: registering fails
    monkeypatch.setenv(registry.DEVICES_ENV, "not a device")  # logged, registered without
    queues = _AllQueues({"cpu": object()})  # no --queues: it consumes every queue
    sender = SimpleNamespace(
        hostname="late@box", concurrency=2, app=SimpleNamespace(amqp=SimpleNamespace(queues=queues))
    )
    registration = registry.registration_of(sender)
    assert registration.devices == [] and registration.queues == ["cpu"]
    settings = Settings(database_url=url, data_dir=tmp_path, heartbeat_interval_s=0.05)
    heartbeat = registry.NodeHeartbeat(registration, settings, drain=lambda: None)
    heartbeat.start()  # the database has no tables: a warning, and the heartbeat goes on
    sessions = make_session_factory(make_engine(url))
    try:
        migrate(url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sessions() as session:
                if session.get(Worker, "late@box") is not None:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the heartbeat never registered the node")
        heartbeat.mark_draining()  # what a SIGTERM's warm shutdown does first
        with sessions() as session:
            (state,) = workers.worker_states(session, stale_s=60)
            assert state.worker.drain_requested_at is not None
    finally:
        heartbeat.stop()


def test_a_node_consumes_its_own_queue_and_registers_only_the_shared_ones(
    tmp_path: Path,
) -> None:
    app = create_celery(Settings(data_dir=tmp_path))
    app.amqp.queues.select(["cpu", "gpu"])  # as `--queues cpu,gpu` leaves it
    registry._consume_own_queue("n@box", SimpleNamespace(app=app))
    assert set(app.amqp.queues.consume_from) == {"cpu", "gpu", node_queue("n@box")}
    controller = SimpleNamespace(hostname="n@box", concurrency=2, app=app)
    assert registry.registration_of(controller).queues == ["cpu", "gpu"]
