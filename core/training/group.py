"""Several runs of one sweep trained as one batched ensemble, each reporting as if alone.

`run_group` takes runs whose specs share one `core.batching.batch_key` (they differ only
in seed, lr and min_lr), each with its own `Reporter`. Runs whose models have the same
parameter shapes train as one `Ensemble`; each member still gets what `Trainer.fit`
gives a solo run: its own model initialisation and batch generator, its own learning-rate
schedule, its loss and rate logged at the Trainer's steps, its evaluations, checkpoints
in the Trainer's format in its own folder (a solo Trainer or a probe reads them as its
own), resume, and its own stop: a member that is cancelled, diverges or fails is dropped
from the ensemble and the others go on with their numbers unchanged.

Every member keeps a solo model of its own beside the ensemble: the ensemble's row is
copied into it to evaluate, checkpoint and report on it. Each member also keeps its own
state of torch's global generator, swapped in around what it does alone (evaluation,
checkpoints), so a checkpoint's stored generator state is the one its solo run stores.

Dimensions: K members, P parameters per member.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from core.batching import batch_key, batch_refusal
from core.catalog import get_kind
from core.prepared import Prepared
from core.reporter import Reporter, RunCancelled
from core.specs import TrainedSpec, TrainSpec
from core.training.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    shared_checkpoint_step,
)
from core.training.device import resolve_device
from core.training.ensemble import (
    BatchedAdamW,
    Ensemble,
    ensemble_losses,
    ensemble_refusal,
    ensemble_update,
)
from core.training.fit import Trained, run_prepared
from core.training.schedule import learning_rate
from core.training.trainer import (
    TrainingDivergedError,
    TrainOutcome,
    check_resumable,
    eval_history_from_state,
    is_due,
    last_loss_from_state,
    log_interval,
    make_adamw,
    progress_interval,
    spec_checkpoint_state,
    training_state,
)

# (name, shape, dtype) of every parameter and buffer: models alike in this stack.
ShapeSignature = tuple[tuple[str, tuple[int, ...], torch.dtype], ...]


@dataclass(frozen=True)
class GroupResult:
    """One member's end.

    result:  the kind's result (its `prepared.report`) when the member succeeded.
    error:   why it did not: RunCancelled, TrainingDivergedError, or what its prepare,
             reporter, evaluation or report raised.
    batched: whether it trained inside an ensemble of two or more members.
    """

    result: dict[str, Any] | None
    error: BaseException | None
    batched: bool


# Told of each member's end as it happens: its index in `members` and how it ended.
MemberEnded = Callable[[int, GroupResult], None]


def run_group(
    members: Sequence[tuple[TrainedSpec, Reporter]],
    *,
    fatal: tuple[type[BaseException], ...] = (),
    on_end: MemberEnded | None = None,
) -> list[GroupResult]:
    """Train `members` (specs alike but for seed, lr and min_lr), batched where their
    models stack, each reporting to its own reporter; one result per member, in order.

    A member's failure is its own; an exception of a type in `fatal` (the host losing
    the run, say, raised from a reporter) propagates at once. `on_end` hears of each
    member's end when it happens: a member cancelled at step 10 of a million is told at
    step 10, not when the others finish. Raises ValueError when the specs do not share
    one batch key.
    """
    keys = {batch_key(spec) for spec, _ in members}
    if len(keys) > 1:
        raise ValueError(
            "a group's specs must differ only in seed, train.lr and train.min_lr; "
            f"these fall into {len(keys)} batch keys"
        )
    if not members:
        return []
    results: dict[int, GroupResult] = {}

    def settle(index: int, result: GroupResult) -> None:
        if index in results:  # told once, even if telling it failed and it is dropped again
            return
        results[index] = result
        if on_end is not None:
            on_end(index, result)

    if batch_refusal(members[0][0]) is not None:
        for index, (spec, reporter) in enumerate(members):
            settle(index, _run_alone(spec, reporter, None, fatal))
        return [results[index] for index in range(len(members))]
    runs: list[_MemberRun] = []
    for index, (spec, reporter) in enumerate(members):
        try:
            runs.append(_MemberRun.prepare(index, spec, reporter))
        except fatal:
            raise
        except Exception as error:
            settle(index, GroupResult(None, error, batched=False))
    for partition in _partitions(runs):
        if len(partition) < 2 or ensemble_refusal([run.model for run in partition]) is not None:
            for run in partition:
                settle(run.index, _run_alone(run.spec, run.reporter, run.prepared, fatal))
            continue
        _EnsembleTraining(partition, fatal, dropped=_told(settle)).fit()
        for run in partition:
            if run.index not in results:
                settle(run.index, run.finish(fatal))
    return [results[index] for index in range(len(members))]


def _told(settle: Callable[[int, GroupResult], None]) -> Callable[[_MemberRun], None]:
    """What the ensemble calls with a member it dropped: settle its end at once."""

    def dropped(run: _MemberRun) -> None:
        settle(run.index, GroupResult(None, run.error, batched=True))

    return dropped


def _run_alone(
    spec: TrainedSpec,
    reporter: Reporter,
    prepared: Prepared | None,
    fatal: tuple[type[BaseException], ...],
) -> GroupResult:
    """One member through the solo path: `run_prepared`, or the kind's own `run`."""
    try:
        if prepared is None:
            result = get_kind(spec.kind).run(spec, reporter)
        else:
            result = run_prepared(spec, prepared, reporter)
    except fatal:
        raise
    except Exception as error:
        return GroupResult(None, error, batched=False)
    return GroupResult(result, None, batched=False)


def _partitions(runs: list[_MemberRun]) -> list[list[_MemberRun]]:
    """Runs grouped by their models' shapes (a seed may change a vocabulary's size), in
    order of each group's first run."""
    groups: dict[ShapeSignature, list[_MemberRun]] = {}
    for run in runs:
        groups.setdefault(_shape_signature(run.model), []).append(run)
    return list(groups.values())


def _shape_signature(model: nn.Module) -> ShapeSignature:
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return tuple((name, tuple(value.shape), value.dtype) for name, value in tensors)


@dataclass
class _MemberRun:
    """One member's run: its spec, reporter and prepared parts, its solo model (which
    holds its weights whenever it is evaluated, checkpointed or reported on), its batch
    generator, its own state of torch's global generator, and what the trainer tracks."""

    index: int
    spec: TrainedSpec
    reporter: Reporter
    prepared: Prepared
    model: nn.Module
    sampler_rng: torch.Generator
    global_rng: torch.Tensor
    eval_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    loss_sum: float = 0.0
    loss_count: int = 0
    last_loss: float = math.nan
    last_eval: dict[str, float] = field(default_factory=dict)
    outcome: TrainOutcome | None = None
    error: BaseException | None = None

    @classmethod
    def prepare(cls, index: int, spec: TrainedSpec, reporter: Reporter) -> _MemberRun:
        """The kind's prepared run and its model, initialised as `Trainer` would get it."""
        prepare = get_kind(spec.kind).prepare
        assert prepare is not None  # batch_refusal checked it
        prepared = prepare(spec)
        model = prepared.built.make_model().to(resolve_device(spec.train.device))
        return cls(
            index=index,
            spec=spec,
            reporter=reporter,
            prepared=prepared,
            model=model,
            sampler_rng=torch.Generator().manual_seed(spec.seed),
            # make_model seeds torch's generator: its state after the model's draws is
            # the one a solo run trains, evaluates and checkpoints with.
            global_rng=torch.get_rng_state(),
        )

    @property
    def train(self) -> TrainSpec:
        return self.spec.train

    @property
    def active(self) -> bool:
        return self.error is None and self.outcome is None

    @contextmanager
    def own_global_rng(self) -> Iterator[None]:
        """Torch's global generator in this member's state while the block runs."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self.global_rng)
        try:
            yield
        finally:
            self.global_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def finish(self, fatal: tuple[type[BaseException], ...]) -> GroupResult:
        """The member's result: the kind's report on its trained model, or its error."""
        if self.error is not None or self.outcome is None:
            return GroupResult(None, self.error, batched=True)
        trained = Trained(self.model, self.outcome, resolve_device(self.train.device))
        try:
            result = self.prepared.report(trained, self.reporter)
        except fatal:
            raise
        except Exception as error:
            return GroupResult(None, error, batched=True)
        return GroupResult(result, None, batched=True)


class _EnsembleTraining:
    """`Trainer.fit` for every member at once: `rows[k]` is the member in the ensemble's
    row k; a member that stops, diverges or fails leaves `rows` and the ensemble."""

    def __init__(
        self,
        runs: list[_MemberRun],
        fatal: tuple[type[BaseException], ...],
        dropped: Callable[[_MemberRun], None],
    ) -> None:
        """`dropped` is told of each member the moment it leaves the ensemble."""
        self.rows = list(runs)
        self.fatal = fatal
        self.dropped = dropped
        self.spec = runs[0].train  # all but lr and min_lr are shared (one batch key)
        self.device = resolve_device(self.spec.device)
        self.log_every = log_interval(self.spec)
        self.progress_every = progress_interval(self.spec)
        self.ensemble: Ensemble
        self.optimizer: BatchedAdamW

    def fit(self) -> None:
        """Every member from step 0, or from the newest checkpoint all members hold, to
        `spec.steps`; each member ends with an outcome or an error."""
        started = time.monotonic()
        start_step = self._resume()
        for step in range(start_step, self.spec.steps):
            self._stop_where_asked(step)
            if not self.rows:
                return
            self._train_step(step)
            self._after_step(step)
        for row, run in enumerate(self.rows):
            self._copy_weights(row, run)
            if start_step == self.spec.steps and run.prepared.built.evaluate:
                # Resumed from the final checkpoint: its evaluation was logged before.
                with self._guard(run):
                    run.last_eval = self._evaluate(run, start_step, log=False)
            if run.error is None:
                run.outcome = TrainOutcome(
                    steps=self.spec.steps,
                    resumed_from_step=start_step,
                    final_train_loss=run.last_loss,
                    final_eval=run.last_eval,
                    eval_history=list(run.eval_history),
                    wall_seconds=time.monotonic() - started,
                )

    def _stop_where_asked(self, step: int) -> None:
        """Checkpoint and drop every member whose reporter asks it to stop, as Trainer
        does before a step."""
        for row, run in enumerate(self.rows):
            with self._guard(run):
                if run.reporter.should_stop():
                    self._checkpoint(row, run, step)
                    run.error = RunCancelled(step)
        self._drop_failed()

    def _train_step(self, step: int) -> None:
        # Each member draws from its own generator with its own sampler, as Trainer does;
        # a sampler that fails fails its member alone.
        drawn: dict[int, tuple[torch.Tensor, ...]] = {}
        for run in self.rows:
            with self._guard(run):
                drawn[run.index] = run.prepared.built.sample_batch(run.sampler_rng, self.device)
        self._drop_failed()
        if not self.rows:
            return
        batches = [drawn[run.index] for run in self.rows]
        try:
            losses = ensemble_losses(self.ensemble, batches)  # (K,)
            values = losses.tolist()
            diverged = [row for row, value in enumerate(values) if not math.isfinite(value)]
            if diverged:
                # Dropped before the update, as Trainer raises before its step; the others'
                # losses are recomputed without them on the batches they already drew.
                for row in diverged:
                    self.rows[row].error = TrainingDivergedError(step, values[row])
                batches = [batch for row, batch in enumerate(batches) if row not in diverged]
                self._drop_failed()
                if not self.rows:
                    return
                losses = ensemble_losses(self.ensemble, batches)
                values = losses.tolist()
            rates = [learning_rate(step, run.train) for run in self.rows]
            lrs = torch.tensor(rates, dtype=torch.float64)  # (K,)
            ensemble_update(self.ensemble, self.optimizer, losses, lrs, self.spec.grad_clip)
        except self.fatal:
            raise
        except Exception as error:
            # The shared computation failed (out of memory, say): every member with it.
            for run in self.rows:
                run.error = error
            self._drop_failed()
            return
        for run, value in zip(self.rows, values, strict=True):
            run.last_loss = value
            run.loss_sum, run.loss_count = run.loss_sum + value, run.loss_count + 1

    def _after_step(self, step: int) -> None:
        """Logging, progress, evaluation and checkpoints of each member, at Trainer's steps."""
        done = step + 1
        for row, run in enumerate(self.rows):
            with self._guard(run):
                if is_due(done, self.log_every, self.spec):
                    loss = run.loss_sum / run.loss_count
                    lr = learning_rate(step, run.train)
                    run.reporter.log_metrics(done, {"train/loss": loss, "train/lr": lr})
                    run.loss_sum, run.loss_count = 0.0, 0
                if is_due(done, self.progress_every, self.spec):
                    run.reporter.progress(done / self.spec.steps, f"step {done}/{self.spec.steps}")
                if run.prepared.built.evaluate and is_due(done, self.spec.eval_every, self.spec):
                    self._copy_weights(row, run)
                    run.last_eval = self._evaluate(run, done)
                if is_due(done, self.spec.checkpoint_every, self.spec):
                    self._checkpoint(row, run, done)
        self._drop_failed()

    def _evaluate(self, run: _MemberRun, step: int, log: bool = True) -> dict[str, float]:
        """The member's evaluation on its solo model (its weights already copied in)."""
        evaluate = run.prepared.built.evaluate
        assert evaluate is not None
        run.model.eval()
        with torch.no_grad(), run.own_global_rng():
            metrics = evaluate(run.model)
        run.model.train()
        if log:
            run.reporter.log_metrics(step, metrics)
            run.eval_history.append((step, metrics))
        return metrics

    def _checkpoint(self, row: int, run: _MemberRun, step: int) -> None:
        """The member's checkpoint, exactly as its solo Trainer writes it: its model, an
        AdamW holding its moments, its batch generator and its global generator."""
        self._copy_weights(row, run)
        optimizer = make_adamw(run.model, run.train)
        if self.optimizer.step_count > 0:
            self._fill_adamw_state(row, run.model, optimizer)
        state = {
            **spec_checkpoint_state(run.spec),
            **training_state(run.eval_history, run.last_loss),
        }
        with run.own_global_rng():
            checkpoint = save_checkpoint(
                run.reporter.checkpoint_dir(), step, run.model, optimizer, run.sampler_rng, state
            )
        run.reporter.checkpoint_saved(step, checkpoint.files())

    def _fill_adamw_state(self, row: int, model: nn.Module, optimizer: torch.optim.AdamW) -> None:
        """AdamW's per-parameter state from row `row` of the ensemble's moments."""
        # torch.optim.AdamW keeps its step count as a float32 scalar tensor per parameter.
        step = torch.tensor(float(self.optimizer.step_count), dtype=torch.float32)
        for name, param in model.named_parameters():
            optimizer.state[param] = {
                "step": step.clone(),
                "exp_avg": self._member_view(self.optimizer.exp_avg, row, name).clone(),
                "exp_avg_sq": self._member_view(self.optimizer.exp_avg_sq, row, name).clone(),
            }

    def _member_view(self, moments: torch.Tensor, row: int, name: str) -> torch.Tensor:
        """Parameter `name`'s part of row `row` of a (K, P) tensor laid out as `flat`."""
        offset = 0
        for other, value in self.ensemble.params.items():
            count = value[0].numel()
            if other == name:
                return moments[row, offset : offset + count].view(value.shape[1:])
            offset += count
        raise KeyError(name)

    def _copy_weights(self, row: int, run: _MemberRun) -> None:
        """The ensemble's row `row` into the member's solo model."""
        with torch.no_grad():
            for name, param in run.model.named_parameters():
                param.copy_(self.ensemble.params[name][row])

    def _resume(self) -> int:
        """Restore every member from the newest checkpoint step that all of them hold (0:
        none), checked against each member's spec as Trainer checks; stack the ensemble."""
        step = shared_checkpoint_step([run.reporter.checkpoint_dir() for run in self.rows])
        moments: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        for run in self.rows:
            with self._guard(run):
                optimizer = make_adamw(run.model, run.train)
                if step:
                    _restore(run, step, optimizer)
                moments.append(_flat_moments(run.model, optimizer))
        for run in self.rows:
            if run.error is not None:
                self.dropped(run)
        self.rows = [run for run in self.rows if run.error is None]
        if self.rows:
            self._stack(
                torch.stack([exp_avg for exp_avg, _, _ in moments]),
                torch.stack([exp_avg_sq for _, exp_avg_sq, _ in moments]),
                max(step_count for _, _, step_count in moments),
            )
        return step

    def _stack(self, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, step_count: int) -> None:
        """The ensemble of `rows`' solo models, and its optimizer holding the (K, P) moments
        and step count given."""
        self.ensemble = Ensemble([run.model for run in self.rows])
        self.optimizer = BatchedAdamW(
            self.ensemble.flat, self.spec, self.ensemble.decay_mask(self.spec.weight_decay_scope)
        )
        self.optimizer.exp_avg, self.optimizer.exp_avg_sq = exp_avg, exp_avg_sq
        self.optimizer.step_count = step_count

    def _drop_failed(self) -> None:
        """Restack the ensemble and its moments without the members that stopped."""
        kept = [row for row, run in enumerate(self.rows) if run.error is None]
        if len(kept) == len(self.rows):
            return
        for row in kept:
            self._copy_weights(row, self.rows[row])
        rows = torch.tensor(kept, dtype=torch.long, device=self.ensemble.flat.device)
        exp_avg, exp_avg_sq = self.optimizer.exp_avg[rows], self.optimizer.exp_avg_sq[rows]
        for run in self.rows:
            if run.error is not None:
                self.dropped(run)
        self.rows = [self.rows[row] for row in kept]
        if self.rows:
            self._stack(exp_avg, exp_avg_sq, self.optimizer.step_count)

    @contextmanager
    def _guard(self, run: _MemberRun) -> Iterator[None]:
        """A failure inside the block is the member's alone (it is dropped at the next
        restack), unless it is fatal to the whole group."""
        try:
            yield
        except self.fatal:
            raise
        except Exception as error:
            run.error = error


def _restore(run: _MemberRun, step: int, optimizer: torch.optim.AdamW) -> None:
    """Load the member's checkpoint of `step` into its model, `optimizer`, batch generator
    and global generator state, as Trainer._resume does."""
    directory = run.reporter.checkpoint_dir()
    checkpoint = next(c for c in list_checkpoints(directory) if c.step == step)
    check_resumable(checkpoint, spec_checkpoint_state(run.spec))
    with run.own_global_rng():
        state = load_checkpoint(checkpoint, run.model, optimizer, run.sampler_rng)
    run.eval_history = eval_history_from_state(state)
    run.last_loss = last_loss_from_state(state)
    run.reporter.progress(step / run.train.steps, f"resumed at step {step}")


def _flat_moments(
    model: nn.Module, optimizer: torch.optim.AdamW
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """AdamW's two moments for `model` as (P,) rows laid out as an ensemble's `flat`, and
    its step count (zeros and 0 before its first step)."""
    named = list(model.named_parameters())
    if not all(param in optimizer.state for _, param in named):
        zeros = torch.cat([torch.zeros_like(param).flatten() for _, param in named])
        return zeros, zeros.clone(), 0
    exp_avg = torch.cat([optimizer.state[param]["exp_avg"].flatten() for _, param in named])
    exp_avg_sq = torch.cat([optimizer.state[param]["exp_avg_sq"].flatten() for _, param in named])
    step = int(optimizer.state[named[0][1]]["step"])
    return exp_avg, exp_avg_sq, step
