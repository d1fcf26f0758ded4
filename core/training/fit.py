"""The one way a kind trains: its `Built` model on its `Built` batches, with the spec's
schedule, checkpoints keyed to the spec's hash, and the kind's evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from core.built import Built
from core.reporter import Reporter
from core.specs import TrainedSpec
from core.training.device import resolve_device
from core.training.trainer import (
    Objective,
    Trainer,
    TrainOutcome,
    next_token_objective,
    spec_checkpoint_state,
)

if TYPE_CHECKING:
    from core.prepared import Prepared


@dataclass(frozen=True)
class Trained:
    """A finished training: the final model, on `device`, and what the trainer reported."""

    model: torch.nn.Module
    outcome: TrainOutcome
    device: torch.device

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def train_built(
    spec: TrainedSpec,
    built: Built,
    reporter: Reporter,
    objective: Objective = next_token_objective,
    stage: str | None = None,
) -> Trained:
    """Train `built`'s model on its batches to minimise `objective`; resumes from the
    newest checkpoint of the same spec in the reporter's folder. `stage` names the stage
    in the checkpoints of a kind that trains in several (e.g. "sft")."""
    device = resolve_device(spec.train.device)
    model = built.make_model()
    trainer = Trainer(
        model,
        spec.train,
        built.sample_batch,
        reporter,
        seed=spec.seed,
        device=device,
        evaluate=built.evaluate,
        checkpoint_state={
            **spec_checkpoint_state(spec),
            **({"stage": stage} if stage is not None else {}),
        },
        objective=objective,
    )
    return Trained(trainer.model, trainer.fit(), device)


def run_prepared(spec: TrainedSpec, prepared: Prepared, reporter: Reporter) -> dict[str, Any]:
    """A kind's run, alone: train `prepared.built`, then the kind's report on the result."""
    return prepared.report(train_built(spec, prepared.built, reporter), reporter)
