"""A kind's run split in two: what it prepares before training, and how it reports after.

`prepare(spec) -> Prepared` builds the run's data and model factory (`built`) and keeps,
in `report`, how the kind turns the trained model into its result. Training sits between
the two and is not the kind's business: `core.training.fit.run_prepared` trains one run
alone, `core.training.group.run_group` trains several prepared runs as one batched
ensemble, and both hand each run's `Trained` to its own `report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.built import Built
from core.reporter import Reporter
from core.training.fit import Trained

# The kind's result from its trained model; it may save artifacts through the reporter.
ReportFn = Callable[[Trained, Reporter], dict[str, Any]]


@dataclass(frozen=True)
class Prepared:
    """A run ready to train: its parts, and the kind's report on the trained model."""

    built: Built
    report: ReportFn
