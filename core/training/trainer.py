"""The training loop shared by every kind that trains a model.

One `Trainer.fit()` call: AdamW with learning-rate warmup and decay and weight decay on
the parameters `core.training.weight_decay` names, gradient clipping, periodic
evaluation through a callback, checkpoints every `checkpoint_every` steps, resume from
the newest checkpoint in the reporter's folder, and a clean stop when the reporter asks.
Same spec and seed give the same numbers: all batch randomness comes from one seeded
`torch.Generator` whose state is checkpointed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from core.reporter import Reporter, RunCancelled
from core.spec_model import SpecModel, spec_hash
from core.specs import TrainSpec
from core.training.checkpoint import (
    Checkpoint,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from core.training.schedule import learning_rate
from core.training.weight_decay import adamw_parameter_groups

# Draws one batch of tensors on `device` for the objective; for next-token training,
# (inputs, targets), each (B, T) int64, targets IGNORE_INDEX where a position does not count.
BatchSampler = Callable[[torch.Generator, torch.device], tuple[torch.Tensor, ...]]
# Measures the model; returns metrics such as {"eval/accuracy": 0.9}.
Evaluator = Callable[[torch.nn.Module], dict[str, float]]
# The loss to minimise on one batch, from the model and the batch the sampler drew: a
# scalar tensor. Next-token prediction is one case; a score-matching, policy-gradient or
# contrastive loss is another function of the same shape.
Objective = Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]

IGNORE_INDEX = -1


def spec_checkpoint_state(spec: SpecModel) -> dict[str, Any]:
    """What every checkpoint of a run of `spec` carries: the spec itself and its hash, so
    that a resumed run only resumes from checkpoints of the same spec."""
    return {"spec": spec.model_dump(mode="json"), "spec_hash": spec_hash(spec)}


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; continuing would only write garbage."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(
            f"training diverged at step {step}: the loss is {loss}; "
            "lower train.lr, raise train.warmup_fraction or set train.grad_clip"
        )


class CheckpointMismatchError(RuntimeError):
    """The checkpoint folder holds a checkpoint of a different spec."""


def make_adamw(model: torch.nn.Module, spec: TrainSpec) -> torch.optim.AdamW:
    """The optimizer a run of `spec` trains `model` with: AdamW at the peak rate (the
    schedule sets each step's), decaying the parameters `spec.weight_decay_scope` names."""
    return torch.optim.AdamW(
        adamw_parameter_groups(model, spec.weight_decay, spec.weight_decay_scope),
        lr=spec.lr,
        betas=(spec.beta1, spec.beta2),
        weight_decay=spec.weight_decay,
    )


def log_interval(spec: TrainSpec) -> int:
    """Steps between logged loss points: roughly 200 points per curve, however long the run."""
    return max(1, spec.steps // 200)


def progress_interval(spec: TrainSpec) -> int:
    """Steps between progress reports.

    Progress moves at least every 10 steps, even when the first logged point is thousands
    of steps away (steps // 200): a long run should not sit at 0% for minutes. The
    worker's reporter throttles what it writes by time.
    """
    return min(log_interval(spec), 10)


def is_due(done: int, every: int, spec: TrainSpec) -> bool:
    """Whether something done every `every` steps (and after the last) is due once `done`
    steps have been taken."""
    return done % every == 0 or done == spec.steps


def check_resumable(checkpoint: Checkpoint, checkpoint_state: dict[str, Any]) -> None:
    """Refuse a checkpoint written by another spec: `checkpoint_state`'s "spec_hash", when
    both it and the checkpoint's state carry one, must match."""
    expected = checkpoint_state.get("spec_hash")
    found = checkpoint.state().get("spec_hash")
    if expected is not None and found is not None and expected != found:
        raise CheckpointMismatchError(
            f"checkpoint {checkpoint.path} was written by spec {found[:12]}, "
            f"not by this run's spec {expected[:12]}; refusing to resume from it"
        )


def eval_history_from_state(state: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    """The evaluations a checkpoint's JSON state carries, as (step, metrics) pairs."""
    return [(int(step), dict(metrics)) for step, metrics in state.get("eval_history", [])]


def training_state(
    eval_history: list[tuple[int, dict[str, float]]], last_loss: float
) -> dict[str, Any]:
    """What a checkpoint keeps of the training so far, beside the spec: the evaluations and
    the last step's loss (None before any step), so that a run resumed from its final
    checkpoint reports the loss an uninterrupted run did."""
    return {
        "eval_history": eval_history,
        "last_train_loss": last_loss if math.isfinite(last_loss) else None,
    }


def last_loss_from_state(state: dict[str, Any]) -> float:
    """The last step's loss a checkpoint's state carries; NaN where it has none."""
    value = state.get("last_train_loss")
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class TrainOutcome:
    """What a finished `fit()` reports back to its kind."""

    steps: int
    resumed_from_step: int
    final_train_loss: float
    final_eval: dict[str, float]
    eval_history: list[tuple[int, dict[str, float]]]
    wall_seconds: float

    def best_eval(self, key: str) -> tuple[int, dict[str, float]] | None:
        """The (step, metrics) of the evaluation with the highest `key`; earliest on ties."""
        scored = [entry for entry in self.eval_history if key in entry[1]]
        return max(scored, key=lambda entry: (entry[1][key], -entry[0])) if scored else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "resumed_from_step": self.resumed_from_step,
            "final_train_loss": self.final_train_loss,
            "final_eval": self.final_eval,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def next_token_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over positions whose target is not IGNORE_INDEX.

    Args:
        logits: (B, T, V); targets: (B, T).
    """
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


def next_token_objective(model: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Next-token cross-entropy of `model` on an (inputs, targets) batch, each (B, T)."""
    inputs, targets = batch
    return next_token_loss(model(inputs), targets)


class Trainer:
    """Trains `model` to minimise `objective` on batches from `sample_batch`, reporting
    through `reporter`."""

    def __init__(
        self,
        model: torch.nn.Module,
        spec: TrainSpec,
        sample_batch: BatchSampler,
        reporter: Reporter,
        *,
        seed: int,
        device: torch.device,
        evaluate: Evaluator | None = None,
        checkpoint_state: dict[str, Any] | None = None,
        objective: Objective = next_token_objective,
    ) -> None:
        """`checkpoint_state` is JSON kept in every checkpoint; its "spec_hash", when
        present, must match a checkpoint's for the trainer to resume from it."""
        self.model = model.to(device)
        self.spec = spec
        self.sample_batch = sample_batch
        self.reporter = reporter
        self.device = device
        self.evaluate = evaluate
        self.objective = objective
        self.checkpoint_state = checkpoint_state or {}
        self.eval_history: list[tuple[int, dict[str, float]]] = []
        self.last_loss = math.nan
        self.sampler_rng = torch.Generator().manual_seed(seed)
        self.optimizer = make_adamw(model, spec)
        self.log_every = log_interval(spec)
        self.progress_every = progress_interval(spec)

    def fit(self) -> TrainOutcome:
        """Run from step 0, or from the newest checkpoint, to `spec.steps`."""
        started = time.monotonic()
        start_step = self._resume()
        loss_sum, loss_count = 0.0, 0
        last_eval: dict[str, float] = {}
        self.model.train()
        for step in range(start_step, self.spec.steps):
            if self.reporter.should_stop():
                self._checkpoint(step)
                raise RunCancelled(step)
            self.last_loss = self._train_step(step)
            loss_sum, loss_count = loss_sum + self.last_loss, loss_count + 1
            done = step + 1
            if is_due(done, self.log_every, self.spec):
                self.reporter.log_metrics(
                    done,
                    {
                        "train/loss": loss_sum / loss_count,
                        "train/lr": learning_rate(step, self.spec),
                    },
                )
                loss_sum, loss_count = 0.0, 0
            if is_due(done, self.progress_every, self.spec):
                self.reporter.progress(done / self.spec.steps, f"step {done}/{self.spec.steps}")
            if self.evaluate and is_due(done, self.spec.eval_every, self.spec):
                last_eval = self._evaluate(done)
            if is_due(done, self.spec.checkpoint_every, self.spec):
                self._checkpoint(done)
        if start_step == self.spec.steps and self.evaluate:
            # Resumed from the final checkpoint: its evaluation was logged before the stop.
            last_eval = self._evaluate(start_step, log=False)
        return TrainOutcome(
            steps=self.spec.steps,
            resumed_from_step=start_step,
            final_train_loss=self.last_loss,
            final_eval=last_eval,
            eval_history=list(self.eval_history),
            wall_seconds=time.monotonic() - started,
        )

    def _train_step(self, step: int) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(step, self.spec)
        batch = self.sample_batch(self.sampler_rng, self.device)
        loss = self.objective(self.model, batch)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(step, float(loss.item()))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.spec.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.spec.grad_clip)
        self.optimizer.step()
        return float(loss.item())

    def _evaluate(self, step: int, log: bool = True) -> dict[str, float]:
        assert self.evaluate is not None
        self.model.eval()
        with torch.no_grad():
            metrics = self.evaluate(self.model)
        self.model.train()
        if log:
            self.reporter.log_metrics(step, metrics)
            self.eval_history.append((step, metrics))
        return metrics

    def _checkpoint(self, step: int) -> None:
        checkpoint = save_checkpoint(
            self.reporter.checkpoint_dir(),
            step,
            self.model,
            self.optimizer,
            self.sampler_rng,
            {**self.checkpoint_state, **training_state(self.eval_history, self.last_loss)},
        )
        self.reporter.checkpoint_saved(step, checkpoint.files())

    def _resume(self) -> int:
        checkpoint = latest_checkpoint(self.reporter.checkpoint_dir())
        if checkpoint is None:
            return 0
        check_resumable(checkpoint, self.checkpoint_state)
        state = load_checkpoint(checkpoint, self.model, self.optimizer, self.sampler_rng)
        self.eval_history = eval_history_from_state(state)
        self.last_loss = last_loss_from_state(state)
        self.reporter.progress(
            checkpoint.step / self.spec.steps, f"resumed at step {checkpoint.step}"
        )
        return checkpoint.step
