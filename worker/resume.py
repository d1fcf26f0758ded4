"""What a re-run may resume from: only checkpoints whose metrics are stored.

The trainer writes a checkpoint's files, then the reporter flushes the metrics up to it
and records the checkpoint's row (worker/reporter.py, worker/group_reporter.py). A worker
killed between the two left a checkpoint on disk newer than its stored metrics, and
resuming from it would lose those points for good; its row is missing, so it is dropped
here and the run resumes from the one before (the trainer keeps two).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from core.training.checkpoint import list_checkpoints
from store import repository
from worker.context import RunContext

log = logging.getLogger(__name__)


def drop_unrecorded_checkpoints(
    context: RunContext, experiment_id: uuid.UUID, directory: Path
) -> None:
    """Delete the run's checkpoints in `directory` that have no row."""
    recorded = set(
        context.write(
            "reading the recorded checkpoints",
            lambda s: repository.checkpoint_steps(s, experiment_id),
        )
    )
    for checkpoint in list_checkpoints(directory):
        if checkpoint.step not in recorded:
            log.warning("%s: dropping unrecorded checkpoint %d", experiment_id, checkpoint.step)
            shutil.rmtree(checkpoint.path, ignore_errors=True)
