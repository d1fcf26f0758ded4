"""What the worker tests share: a RunContext over a real database and a temporary artifact
folder, with flushes and cancel checks on every call."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store.artifacts import ArtifactStore
from worker.runner import RunContext


@pytest.fixture
def context(sessions: sessionmaker[Session], tmp_path: Path) -> RunContext:
    return RunContext(
        sessions=sessions,
        artifacts=ArtifactStore(tmp_path / "artifacts"),
        worker_name="test",
        flush_interval_s=0.0,
        cancel_check_interval_s=0.0,
    )
