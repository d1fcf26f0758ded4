"""Real processes for end-to-end tests: the API server, Celery workers, `memlab serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from memlab_client.sdk import MemlabClient

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(
    base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 90
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base_url} was not ready within {timeout_s}s")


@contextmanager
def running(
    command: list[str], env: dict[str, str], log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` in its own process group for the block; output goes to `log_path`."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a test can kill it with all its children
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]


def environment_in(folder: Path) -> dict[str, str]:
    """Environment shared by a test's processes: one data folder, one torch thread each."""
    return {
        "MEMLAB_DATA_DIR": str(folder / "data"),
        "MEMLAB_TORCH_THREADS": "1",
        "MEMLAB_EVENTS_POLL_INTERVAL_S": "0.1",
        "MEMLAB_CANCEL_CHECK_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def process_env(tmp_path: Path) -> dict[str, str]:
    """The processes of one test: a server it kills, restarts or cuts off."""
    return environment_in(tmp_path)


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a server that a module's tests share (one server per mode): each
    test's runs are its own (their ids, tags or sweep), the server and its start-up cost
    are not."""
    return tmp_path_factory.mktemp("shared")


def dump_logs(tmp_path: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text()[-4000:]}" for p in sorted(tmp_path.glob("*.log"))
    )


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def newest_checkpoint_step(client: MemlabClient, experiment_id: str) -> int:
    return max((a["step"] for a in client.artifacts(experiment_id)), default=0)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`memlab ARGS…` as a user would run it; output captured as text."""
    return subprocess.run(
        python_command("-m", "client.cli", *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
