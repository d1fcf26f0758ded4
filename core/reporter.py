"""The channel from a running experiment to whoever hosts it (a worker, a test, a notebook).

The engine never knows where metrics go: it calls a `Reporter`. The worker's reporter
writes to the database; `InMemoryReporter` keeps everything in lists for tests and
local runs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable


class RunCancelled(Exception):
    """Raised by the engine when its reporter asked it to stop; the last checkpoint is kept."""

    def __init__(self, step: int) -> None:
        super().__init__(f"cancelled at step {step}")
        self.step = step


@runtime_checkable
class Reporter(Protocol):
    """What an experiment may tell its host, and the one thing it asks: should I stop?"""

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record scalar metrics measured at `step` (e.g. {"train/loss": 0.31})."""

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how much of the run is done, 0.0 to 1.0, with a short human message."""

    def checkpoint_dir(self) -> Path:
        """Folder where the trainer writes its checkpoints; it survives a requeue of the run."""

    def checkpoint_saved(self, step: int, files: Sequence[Path]) -> None:
        """Told after a checkpoint for `step` has been fully written to `files`."""

    def save_artifact(self, name: str, data: bytes) -> None:
        """Keep a named output of the run (a table, a plot, a JSON dump)."""

    def should_stop(self) -> bool:
        """True when the host wants the run to stop cleanly (cancellation, time limit)."""


@dataclass
class InMemoryReporter:
    """A Reporter that keeps everything in memory; `stop_after_checks` simulates a cancel."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="memlab-")))
    stop_after_checks: int | None = None
    metrics: list[tuple[int, str, float]] = field(default_factory=list)
    progress_log: list[tuple[float, str]] = field(default_factory=list)
    checkpoints: list[tuple[int, list[Path]]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    stop_checks: int = 0

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        self.metrics.extend((step, key, float(value)) for key, value in metrics.items())

    def progress(self, fraction: float, message: str = "") -> None:
        self.progress_log.append((fraction, message))

    def checkpoint_dir(self) -> Path:
        path = self.directory / "checkpoints"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def checkpoint_saved(self, step: int, files: Sequence[Path]) -> None:
        self.checkpoints.append((step, list(files)))

    def save_artifact(self, name: str, data: bytes) -> None:
        self.artifacts[name] = data

    def should_stop(self) -> bool:
        self.stop_checks += 1
        return self.stop_after_checks is not None and self.stop_checks > self.stop_after_checks

    def series(self, key: str) -> list[tuple[int, float]]:
        """The (step, value) points logged under `key`, in logging order."""
        return [(step, value) for step, k, value in self.metrics if k == key]
