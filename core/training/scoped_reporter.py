"""A reporter for one of several trainings inside a run (a network per grid point, a
stage of a multi-stage run): its metrics prefixed and its progress mapped into a share
of the run's, its checkpoints in a folder of its own or in the run's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core.reporter import Reporter


@dataclass
class ScopedReporter:
    """The run's reporter `inner` as one training inside the run sees it.

    Metrics are logged as `<prefix>/<name>` at step `step_offset + step` (a later stage
    logs after the earlier ones' steps); progress fraction f becomes start + span · f.

    folder: where this training checkpoints; None for the run's own folder.
    record_checkpoints: whether its checkpoints are recorded as the run's (told to
    `inner.checkpoint_saved`). The run's record keeps one folder's checkpoints (the probe
    target loads the newest in the run's folder), so a training in a subfolder leaves its
    checkpoints unrecorded, on disk for resuming; the one training whose model is the
    run's (in the run's folder) records them.
    """

    inner: Reporter
    folder: Path | None
    prefix: str
    start: float
    span: float
    record_checkpoints: bool = False
    step_offset: int = 0

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        scoped = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        self.inner.log_metrics(self.step_offset + step, scoped)

    def progress(self, fraction: float, message: str = "") -> None:
        self.inner.progress(self.start + self.span * fraction, f"{self.prefix}: {message}")

    def checkpoint_dir(self) -> Path:
        if self.folder is None:
            return self.inner.checkpoint_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    def checkpoint_saved(self, step: int, files: Sequence[Path]) -> None:
        if self.record_checkpoints:
            self.inner.checkpoint_saved(step, files)

    def save_artifact(self, name: str, data: bytes) -> None:
        self.inner.save_artifact(name, data)

    def should_stop(self) -> bool:
        return self.inner.should_stop()
